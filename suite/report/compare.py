"""`fashionbench compare BASE NEW`: case-by-case medians, direction-aware; a CI regression gate with a stated false-alarm
rate: timing figures fail only when a test over the runs' noise says so (suite.report.gate), at GATE_ALPHA over all
the figures of one comparison (Holm)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from suite.record.machines import record_machine_labels
from suite.record.metrics import ALIASES, METRIC_BY_KEY, METRICS, Metric, find_metric
from suite.record.noise import GATE_ALPHA, Calibration, Evidence, find_calibration, holm, load_calibrations
from suite.record.schema import RunRecord
from suite.record.stats import Summary, summarize
from suite.record.store import read_store
from suite.report.cases import beyond_noise, group_cases, place
from suite.report.gate import (
    INCONCLUSIVE,
    REGRESSED,
    Sides,
    evidence_for,
    evidence_text,
    format_failures,
    gate_failures,
    timing_verdict,
    undisturbed,
)
from suite.report.table import markdown

# 3: nothing regressed and nothing broke, but some gated figure could not be judged (too noisy, DISTURBED, one run a
# side with no known noise). Not 0: a gate must not pass on what it could not see; not 1: identical code must never
# read as a regression. CI that accepts it says so: `fashionbench compare A B || [ $? -eq 3 ]`.
EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3
DEFAULT_THRESHOLD_PCT = 5.0


class CompareError(ValueError):
    """Bad input (missing dir, no records, unknown metric, bad threshold); one line naming the fix."""


@dataclass(frozen=True)
class Thresholds:
    """Relative change (percent) allowed per metric before it counts."""

    default_pct: float = DEFAULT_THRESHOLD_PCT
    per_metric: dict[str, float] = field(default_factory=dict)

    def pct(self, metric: Metric) -> float:
        """The threshold for one metric."""
        return self.per_metric.get(metric.key, self.default_pct)


def _percent(text: str, item: str) -> float:
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise CompareError(f"--threshold {item!r}: use a percentage like 5% or METRIC=2%")
    return value


def parse_thresholds(items: list[str]) -> Thresholds:
    """`5%` sets the default; `METRIC=2%` sets one metric (bare numbers are percent too)."""
    default, per_metric = DEFAULT_THRESHOLD_PCT, {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            default = _percent(item, item)
            continue
        known = find_metric(name)
        if known is None:
            raise CompareError(f"--threshold {item!r}: unknown metric {name!r}; valid: {', '.join(METRIC_BY_KEY)}")
        per_metric[known.key] = _percent(value, item)
    return Thresholds(default, per_metric)


def metrics_help() -> str:
    """`compare --metric` help, generated from the metric registry so it cannot drift."""
    gated = " ".join(m.key for m in METRICS if m.gate)
    others = " ".join(m.key for m in METRICS if not m.gate)
    renamed = ", ".join(f"{old} = {new}" for old, new in ALIASES.items())
    return f"figures to compare and gate on (default, gated: {gated}; on request: {others}; earlier names: {renamed})"


def select_metrics(keys: list[str] | None) -> list[Metric]:
    """The named metrics (all of them gate), or the default gated set."""
    if not keys:
        return [m for m in METRICS if m.gate]
    unknown = [k for k in keys if find_metric(k) is None]
    if unknown:
        raise CompareError(f"--metric {unknown[0]!r} is not known; valid: {', '.join(METRIC_BY_KEY)}")
    return list(dict.fromkeys(m for k in keys if (m := find_metric(k)) is not None))


@dataclass(frozen=True)
class Row:
    """One metric of one matched case."""

    case: str
    metric: Metric
    base: Summary | None
    new: Summary | None
    change_pct: float | None
    noise: bool | None  # IQRs apart (figures that are not timing figures)
    verdict: str
    evidence: Evidence | None = None  # timing figures: the test applied
    evidence_text: str = ""  # timing figures: the noise cell (test, p-value, what it sees, runs left out)


@dataclass
class Comparison:
    """Every row, the cases found on one side only, and how cases were matched."""

    rows: list[Row]
    only_base: list[str]
    only_new: list[str]
    note: str | None = None
    neither: list[str] = field(default_factory=list)  # cases with no ok run on either side
    lost: list[tuple[str, str]] = field(default_factory=list)  # (case, its statuses in NEW or "absent"): ok in BASE only

    alpha: float = GATE_ALPHA
    tested: int = 0  # tests in the family Holm holds to alpha: one per case and measurement (Metric.test_key)

    @property
    def regressions(self) -> list[Row]:
        """Rows that fail the gate."""
        return [r for r in self.rows if r.verdict == REGRESSED]

    @property
    def inconclusive(self) -> list[Row]:
        """Rows the runs cannot decide."""
        return [r for r in self.rows if r.verdict == INCONCLUSIVE]


def load_side(path: Path, role: str) -> tuple[list[RunRecord], list[str]]:
    """Records of BASE or NEW; a missing path or a store without records is bad input."""
    if not path.exists():
        raise CompareError(f"{role} {path} does not exist; pass a results dir or file written by `fashionbench run`")
    records, problems = read_store([path])
    if not records:
        raise CompareError(f"{role} {path} holds no valid records ({len(problems)} file(s) skipped); "
                           "pass a results dir written by `fashionbench run`")
    return records, problems


def verdict(metric: Metric, change_pct: float | None, noise: bool | None, threshold_pct: float) -> str:
    """REGRESSED only when worse beyond the threshold and not inside the noise of repeats."""
    if change_pct is None:
        return "n/a"
    signed = change_pct if metric.higher_is_better else -change_pct  # positive = better
    if abs(signed) <= threshold_pct:
        return "ok"
    if noise is False:
        return "worse, within noise" if signed < 0 else "better, within noise"
    return REGRESSED if signed < 0 else "improved"


def _change(base: Summary | None, new: Summary | None) -> float | None:
    if base is None or new is None or base.median == 0:
        return None
    return 100.0 * (new.median - base.median) / abs(base.median)


def compare(base: list[RunRecord], new: list[RunRecord], metrics: list[Metric], thresholds: Thresholds,
            alpha: float = GATE_ALPHA, calibrations: dict[str, Calibration] | None = None) -> Comparison:
    """Match cases by case_key + machine (case_key alone when the sides share no machine) and compare medians; timing
    figures are tested against their noise (`calibrations`: the stored A/A noise, used on the machine it was taken)."""
    names = record_machine_labels(base + new)
    base_hosts = {r.machine.machine_id: names[r.machine.machine_id] for r in base}
    new_hosts = {r.machine.machine_id: names[r.machine.machine_id] for r in new}
    same_machine = bool(set(base_hosts) & set(new_hosts))
    note = None
    if not same_machine:
        note = (f"BASE ({', '.join(sorted(base_hosts.values()))}) and NEW ({', '.join(sorted(new_hosts.values()))}) "
                "share no machine: cases are matched by case_key alone, so differences include the hardware")
    labels = {(c.case_key, *c.place): c.label if same_machine else c.setup_label for c in group_cases(base + new)}

    def key(record: RunRecord) -> tuple[str, ...]:
        return (record.case_key, *place(record)) if same_machine else (record.case_key, "*")

    def label(record: RunRecord) -> str:
        return labels[(record.case_key, *place(record))]

    sides: list[dict[tuple[str, ...], list[RunRecord]]] = [{}, {}]
    names: dict[tuple[str, ...], str] = {}
    for side, records in zip(sides, (base, new)):
        for record in records:
            side.setdefault(key(record), []).append(record)
            names.setdefault(key(record), label(record))
    base_ok = {k: [r for r in v if r.status == "ok"] for k, v in sides[0].items()}
    new_ok = {k: [r for r in v if r.status == "ok"] for k, v in sides[1].items()}
    both = [k for k in base_ok if base_ok[k] and new_ok.get(k)]
    matched = [(names[k], base_ok[k], new_ok[k], k[1] if same_machine else None)
               for k in sorted(both, key=lambda k: names[k])]
    rows, tested = _rows(matched, metrics, thresholds, alpha, calibrations or {})
    only_base = sorted(_missing(names[k], sides[1].get(k, [])) for k in base_ok if base_ok[k] and not new_ok.get(k))
    only_new = sorted(_missing(names[k], sides[0].get(k, [])) for k in new_ok if new_ok[k] and not base_ok.get(k))
    neither = sorted(f"{names[k]} (BASE: {_statuses(sides[0].get(k, []))}; NEW: {_statuses(sides[1].get(k, []))})"
                     for k in set(sides[0]) | set(sides[1]) if not base_ok.get(k) and not new_ok.get(k))
    lost = sorted((names[k], _statuses(sides[1].get(k, []))) for k in base_ok if base_ok[k] and not new_ok.get(k))
    return Comparison(rows, only_base, only_new, note, neither, lost, alpha=alpha, tested=tested)


def _sides(metric: Metric, base: list[RunRecord], new: list[RunRecord], machine_id: str | None,
           calibrations: dict[str, Calibration]) -> Sides:
    (b, b_out), (n, n_out) = undisturbed(metric, base), undisturbed(metric, new)
    calibration = find_calibration(calibrations, machine_id, base[0].case_key, metric.key) if machine_id else None
    return Sides(b, n, b_out, n_out, calibration)


def _rows(matched: list[tuple[str, list[RunRecord], list[RunRecord], str | None]], metrics: list[Metric],
          thresholds: Thresholds, alpha: float, calibrations: dict[str, Calibration]) -> tuple[list[Row], int]:
    """Every row; figures judged against noise tested, one test per measurement (samples/s and MFU share the steady
    epoch's), their p-values held together to `alpha` by Holm (worse and better apart)."""
    rows: list[Row] = []
    tested_rows: list[tuple[int, Sides]] = []
    for name, base, new, machine_id in matched:
        for metric in metrics:
            b, n = summarize(metric.get(r) for r in base), summarize(metric.get(r) for r in new)
            if b is None and n is None:
                continue
            if not metric.against_noise:
                change, noise = _change(b, n), beyond_noise(b, n)
                rows.append(Row(name, metric, b, n, change, noise, verdict(metric, change, noise, thresholds.pct(metric))))
                continue
            sides = _sides(metric, base, new, machine_id, calibrations)
            if sides.base and sides.new:
                b, n = summarize(sides.base), summarize(sides.new)
            tested_rows.append((len(rows), sides))
            rows.append(Row(name, metric, b, n, _change(b, n), None, INCONCLUSIVE))
    judged = [(i, sides) for i, sides in tested_rows if sides.base and sides.new]
    family = {(rows[i].case, rows[i].metric.test_key) for i, _ in judged}
    level = alpha / max(len(family), 1)  # the Bonferroni level: which test to use, and the change it can see
    evidence = {i: evidence_for(sides, rows[i].metric.higher_is_better, level) for i, sides in judged}
    tests = _one_per_measurement(rows, evidence)
    worse = dict(zip(tests, holm([max(evidence[i].p_worse for i in members) for members in tests.values()], alpha)))
    better = dict(zip(tests, holm([max(evidence[i].p_better for i in members) for members in tests.values()], alpha)))
    for i, sides in tested_rows:
        row, found = rows[i], evidence.get(i)
        test = (row.case, row.metric.test_key)
        detectable = found.detectable_pct(level) if found else None
        signed = None if row.change_pct is None else row.change_pct * (1 if row.metric.higher_is_better else -1)
        verdict_text = (timing_verdict(signed, found, worse.get(test, False), better.get(test, False), detectable,
                                       thresholds.pct(row.metric)) if i in evidence else INCONCLUSIVE)
        rows[i] = replace(row, verdict=verdict_text, evidence=found,
                          evidence_text=evidence_text(sides, found, detectable))
    return rows, len(tests)


def _one_per_measurement(rows: list[Row], evidence: dict[int, Evidence | None]) -> dict[tuple[str, str], list[int]]:
    """The rows with a test, grouped by case and the measurement they are read from: Holm counts each group once and
    takes its largest p-value (they agree for figures that are fixed transforms of one another)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, found in evidence.items():
        if found is not None:
            groups.setdefault((rows[i].case, rows[i].metric.test_key), []).append(i)
    return groups


def _statuses(records: list[RunRecord]) -> str:
    return ", ".join(sorted({r.status for r in records})) or "absent"


def _missing(name: str, other_side: list[RunRecord]) -> str:
    # Say why a case is unmatched: absent on the other side, or there without an ok run.
    return f"{name} (other side: {_statuses(other_side)})" if other_side else name


def _fmt(metric: Metric, stats: Summary | None) -> str:
    if stats is None:
        return "—"
    spread = f" ±{metric.format(stats.iqr / 2)}" if stats.n > 1 else ""
    return f"{metric.shown(stats.median)}{spread} (n={stats.n})"


HEADER = ("case", "figure", "base", "new", "change", "noise", "verdict")
NOISE_TEXT = {True: "yes (IQRs apart)", False: "no (IQRs overlap)", None: "n/a (n<2)"}
FORMATS = ("table", "markdown")


def _body(comparison: Comparison) -> list[tuple[str, ...]]:
    return [(r.case, r.metric.key, _fmt(r.metric, r.base), _fmt(r.metric, r.new),
             "—" if r.change_pct is None else f"{r.change_pct:+.1f}%", r.evidence_text or NOISE_TEXT[r.noise], r.verdict)
            for r in comparison.rows]


def _unmatched(comparison: Comparison) -> list[str]:
    groups = (("only in BASE", comparison.only_base), ("only in NEW", comparison.only_new),
              ("no ok run on either side", comparison.neither))
    return [f"{title} ({len(items)}): " + "; ".join(items) for title, items in groups if items]


def _verdict_line(comparison: Comparison, thresholds: Thresholds) -> str:
    bad, unsure = comparison.regressions, comparison.inconclusive
    return (f"{len(bad)} regression(s) beyond the threshold ({thresholds.default_pct:g}%"
            + "".join(f", {k} {v:g}%" for k, v in thresholds.per_metric.items()) + ")"
            + (": " + "; ".join(f"{r.case} {r.metric.key} {r.change_pct:+.1f}%" for r in bad) if bad else "")
            + f"; {len(unsure)} inconclusive"
            + f"; false-alarm rate ≤ {comparison.alpha:.0%} over the {comparison.tested} test(s) of figures against their noise (Holm)")


def format_table(comparison: Comparison, thresholds: Thresholds, failures: list[str]) -> str:
    """Fixed-width table, then the unmatched cases, a one-line verdict and the cases that stopped working."""
    body = _body(comparison)
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *body)]
    lines = []
    if comparison.note:
        lines.append(f"note: {comparison.note}")
    lines.append("  ".join(h.ljust(w) for h, w in zip(HEADER, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in body]
    lines += _unmatched(comparison)
    lines.append(_verdict_line(comparison, thresholds))
    return "\n".join(lines) + "\n" + format_failures(failures)


def format_markdown(comparison: Comparison, thresholds: Thresholds, failures: list[str]) -> str:
    """GitHub-flavoured markdown for a pull-request comment or a CI job summary: the verdict first, then the table."""
    passed = not comparison.regressions and not failures
    mark = ("✅" if not comparison.inconclusive else "❔") if passed else "❌"
    lines = [f"**{mark} {_verdict_line(comparison, thresholds)}; "
             f"{format_failures(failures).splitlines()[-1]}**", ""]
    if comparison.note:
        lines += [f"> note: {comparison.note}", ""]
    lines.append(markdown(pd.DataFrame(_body(comparison), columns=list(HEADER))))
    notes = [*(f"FAILED {f}" for f in failures), *_unmatched(comparison)]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines)


def exit_code(comparison: Comparison, failures: list[str]) -> int:
    """1 on a regression or a failure, else 3 when a figure was inconclusive, else 0."""
    if comparison.regressions or failures:
        return EXIT_REGRESSION
    return EXIT_INCONCLUSIVE if comparison.inconclusive else EXIT_OK


def run(base: Path, new: Path, metric_keys: list[str] | None, threshold_items: list[str],
        allow_missing: bool = False, fmt: str = "table", alpha: float = GATE_ALPHA,
        calibration: Path | None = None) -> tuple[str, list[str], int]:
    """Table text (fixed-width or markdown), skipped-file lines and the exit code (0 ok, 1 regression or a case that
    stopped working, 3 only inconclusive figures besides ok ones); raises CompareError on bad input."""
    metrics = select_metrics(metric_keys)
    thresholds = parse_thresholds(threshold_items)
    if not 0 < alpha < 1:
        raise CompareError(f"--alpha {alpha:g}: use a false-alarm rate between 0 and 1, e.g. 0.01")
    if calibration is not None and not calibration.is_file():
        raise CompareError(f"--calibration {calibration} is not a file; pass one written by `fashionbench noise --save`")
    base_records, base_problems = load_side(base, "BASE")
    new_records, new_problems = load_side(new, "NEW")
    comparison = compare(base_records, new_records, metrics, thresholds, alpha, load_calibrations(calibration))
    if not comparison.rows:
        # A gate that compared nothing must not pass: the two sides were almost surely run with other settings.
        raise CompareError(f"BASE and NEW share no case with ok runs ({len(comparison.only_base)} only in BASE, "
                           f"{len(comparison.only_new)} only in NEW); run both with the same flags (see `fashionbench show`)")
    failures = gate_failures(comparison, new_problems, allow_missing)
    code = exit_code(comparison, failures)
    formatter = format_markdown if fmt == "markdown" else format_table
    return formatter(comparison, thresholds, failures), base_problems + new_problems, code
