"""The regression gate's two halves: a case that worked in BASE must still work in NEW, with every figure (status);
and a timing figure fails only when a test says NEW is worse beyond the noise of its runs (statistics)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from suite.record.metrics import Metric
from suite.record.noise import Calibration, Evidence, known_noise_test, pooled_log_sd, rank_floor, rank_test
from suite.record.schema import RunRecord

if TYPE_CHECKING:  # compare.run calls this module, so it imports compare only for the type
    from suite.report.compare import Comparison

REGRESSED = "REGRESSED"

ABSENT = "absent"


def gate_failures(comparison: Comparison, new_problems: list[str], allow_missing: bool = False) -> list[str]:
    """One line per reason NEW cannot pass whatever its figures say: a case ok in BASE is not ok (or gone) in NEW, a
    figure BASE measured is missing in NEW, or a NEW file could not be read. `allow_missing` lets cases go on purpose."""
    failures = []
    for case, statuses in comparison.lost:
        if statuses != ABSENT:
            failures.append(f"{case}: ok in BASE, {statuses} in NEW")
        elif not allow_missing:
            failures.append(f"{case}: ok in BASE, absent from NEW (pass --allow-missing if it was dropped on purpose)")
    failures += [f"{r.case}: {r.metric.key} measured in BASE, missing in NEW" for r in comparison.rows
                 if r.base is not None and r.new is None]
    # An unreadable NEW file may be the very case that broke (a NaN accuracy is refused on read).
    failures += [f"NEW file skipped: {problem}" for problem in new_problems]
    return failures


def format_failures(failures: list[str]) -> str:
    """The lines printed under the comparison table."""
    if not failures:
        return "0 case(s) stopped working or lost a figure"
    return "\n".join([*(f"FAILED {f}" for f in failures), f"{len(failures)} case(s) stopped working or lost a figure"])


# ---------------------------------------------------------------- the statistical half: timing figures against noise

INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Sides:
    """One timing figure of one matched case: the values compared (DISTURBED runs left out) and how many were left out."""

    base: list[float]
    new: list[float]
    left_out_base: int = 0
    left_out_new: int = 0
    calibration: Calibration | None = None


def undisturbed(metric: Metric, records: list[RunRecord]) -> tuple[list[float], int]:
    """A timing figure's finite values over the runs that were not DISTURBED, and how many disturbed runs had one."""
    values, left_out = [], 0
    for record in records:
        value = metric.get(record)
        if value is None or not math.isfinite(value):
            continue
        if record.disturbed and metric.timing:  # other work moves a timing figure, not a memory peak
            left_out += 1
        else:
            values.append(value)
    return values, left_out


def evidence_for(sides: Sides, higher_is_better: bool, level: float) -> Evidence | None:
    """The strongest valid test the runs allow: Mann–Whitney when both sides have enough repeats to reach `level`, else
    the known noise (a stored calibration, else the repeats of one side against a single run of the other), else
    Mann–Whitney as it is (it may not reach `level`); None with one run a side and no known noise."""
    base, new = sides.base, sides.new
    repeats = len(base) >= 2 and len(new) >= 2
    if repeats and rank_floor(len(base), len(new)) <= level:
        return rank_test(base, new, higher_is_better)
    cal = sides.calibration
    if cal is not None and cal.runs >= 3 and (found := known_noise_test(base, new, higher_is_better, cal.sd,
                                                                       cal.runs - 1, cal.source)):
        return found
    pooled = pooled_log_sd([base, new])
    if not repeats and pooled and pooled[1] >= 2:
        side = "BASE" if len(base) > 1 else "NEW"
        found = known_noise_test(base, new, higher_is_better, pooled[0], pooled[1], f"the {pooled[1] + 1} {side} runs")
        if found:
            return found
    return rank_test(base, new, higher_is_better) if repeats else None


def timing_verdict(signed_change_pct: float | None, evidence: Evidence | None, worse: bool, better: bool,
                   detectable_pct: float | None, threshold_pct: float) -> str:
    """REGRESSED: worse beyond the threshold and significant; ok: within the threshold, where a threshold-sized change
    would have been seen (or the change is real but small); inconclusive: anything the runs cannot tell apart."""
    if signed_change_pct is None:
        return "n/a"
    if evidence is None:
        return INCONCLUSIVE
    if worse and -signed_change_pct > threshold_pct:
        return REGRESSED
    if better and signed_change_pct > threshold_pct:
        return "improved"
    sees_threshold = detectable_pct is not None and detectable_pct <= threshold_pct
    if abs(signed_change_pct) <= threshold_pct and (worse or better or sees_threshold):
        return "ok"
    return INCONCLUSIVE


def evidence_text(sides: Sides, evidence: Evidence | None, detectable_pct: float | None) -> str:
    """The compare table's noise cell: what was left out, which test, its p-value and the smallest change it sees."""
    left = [f"{n} DISTURBED {side} run(s) left out" for side, n in (("BASE", sides.left_out_base),
                                                                   ("NEW", sides.left_out_new)) if n]
    if not sides.base or not sides.new:
        return "; ".join(left) + ": nothing left to judge"
    if evidence is None:
        text = "noise unknown (1 run a side: --repeats, or `fashionbench noise --save`)"
    else:
        sees = ("sees no change at these repeats" if detectable_pct == math.inf else
                f"sees ≥{detectable_pct:.1f}%" if detectable_pct is not None else "")
        text = f"{evidence.method}: p(worse)={evidence.p_worse:.2g}" + (f", {sees}" if sees else "")
    return "; ".join([*left, text])
