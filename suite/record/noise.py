"""The gate's statistics: run-to-run noise of a timing figure, the tests compare applies, the smallest change they
detect, the repeats a change needs, and the stored A/A calibrations (`fashionbench noise --save`).

Noise is multiplicative (a busy machine makes a run x % slower, not y seconds), so it is measured as the standard
deviation of the natural log of a figure: 0.03 means runs spread about 3 %. Every test is one-sided ("is NEW worse?",
and separately "is NEW better?") and returns a p-value; compare holds the whole comparison to GATE_ALPHA (Holm).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

from suite.record.store import cache_root

# The family-wise false-alarm rate: two sets of runs of identical code (independent runs) make compare exit 1 with at
# most this probability, however many figures it tests (Holm's step-down over them).
GATE_ALPHA = 0.01
# "Repeats needed to detect x %": the repeats per side that detect a change of x % this often.
POWER = 0.9
CALIBRATION_FILE = "noise.json"
CALIBRATION_VERSION = 1


def log_sd(values: Sequence[float]) -> float | None:
    """Sample standard deviation of ln(value), None with fewer than 2 values or any value <= 0."""
    if len(values) < 2 or min(values) <= 0:
        return None
    return float(np.std(np.log(values), ddof=1))


def pooled_log_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int] | None:
    """(sd of ln value within groups, its degrees of freedom) pooled over groups of repeats, None without a dof."""
    squares, dof = 0.0, 0
    for group in groups:
        if len(group) >= 2:
            if min(group) <= 0:
                return None
            logs = np.log(group)
            squares += float(((logs - logs.mean()) ** 2).sum())
            dof += len(group) - 1
    return (math.sqrt(squares / dof), dof) if dof else None


@dataclass(frozen=True)
class Evidence:
    """What one test says about NEW against BASE for one figure: one-sided p-values and what it could have seen."""

    method: str
    p_worse: float
    p_better: float
    sd: float | None = None  # noise of ln(figure) per run, where known
    dof: int | None = None
    n_base: int = 1
    n_new: int = 1
    min_p: float = 0.0  # the smallest p-value the test can give at these n (rank tests have a floor)

    def detectable_pct(self, level: float) -> float | None:
        """The smallest worse change (percent) this test flags at `level`; inf where it can flag none, None unknown."""
        if self.min_p > level:
            return math.inf
        if self.sd is None or self.dof is None:
            return None
        critical = float(stats.t.isf(level, self.dof))
        return 100.0 * math.expm1(critical * self.sd * math.sqrt(1 / self.n_base + 1 / self.n_new))


def worse_sign(higher_is_better: bool) -> float:
    """+1 where a larger value is worse (times), -1 where it is better (throughput)."""
    return -1.0 if higher_is_better else 1.0


def rank_test(base: Sequence[float], new: Sequence[float], higher_is_better: bool) -> Evidence:
    """Mann–Whitney U (as asv does): does NEW tend to be worse / better than BASE? No model of the noise's shape."""
    worse = "less" if higher_is_better else "greater"
    better = "greater" if higher_is_better else "less"
    # scipy's "auto" leaves the exact distribution past 8 runs a side, and its normal approximation can fall below the
    # exact p in the tail the gate reads; exact is valid without ties and quick at the sizes a gate sees.
    method = "exact" if len(set(base) | set(new)) == len(base) + len(new) and len(base) + len(new) <= 100 else "asymptotic"
    p_worse = float(stats.mannwhitneyu(new, base, alternative=worse, method=method).pvalue)
    p_better = float(stats.mannwhitneyu(new, base, alternative=better, method=method).pvalue)
    pooled = pooled_log_sd([base, new])
    return Evidence(f"Mann–Whitney {len(base)}+{len(new)}", p_worse, p_better, pooled and pooled[0],
                    pooled and pooled[1], len(base), len(new), rank_floor(len(base), len(new)))


def rank_floor(n: int, m: int) -> float:
    """The smallest one-sided p-value Mann–Whitney can reach with n and m runs: 1 / C(n+m, n)."""
    return 1.0 / math.comb(n + m, n)


def known_noise_test(base: Sequence[float], new: Sequence[float], higher_is_better: bool, sd: float, dof: int,
                     source: str) -> Evidence | None:
    """Student t on ln(figure) with the noise `sd` known from `source` (a calibration, the repeats of one side): how
    far the means of the two sides are apart in standard errors. None where a value is <= 0 (no log)."""
    if min(*base, *new) <= 0 or sd <= 0:
        return None
    shift = worse_sign(higher_is_better) * (float(np.mean(np.log(new))) - float(np.mean(np.log(base))))
    t = shift / (sd * math.sqrt(1 / len(base) + 1 / len(new)))
    return Evidence(f"noise of {source}", float(stats.t.sf(t, dof)), float(stats.t.cdf(t, dof)), sd, dof,
                    len(base), len(new))


def rank_repeats(level: float) -> int:
    """The fewest runs a side with which Mann–Whitney can reach `level` at all."""
    return next(n for n in range(2, 10_000) if rank_floor(n, n) <= level)


def repeats_needed(sd: float, change_pct: float, level: float, power: float = POWER) -> int:
    """Runs per side for a one-sided test at `level` to detect a change of `change_pct` with `power` (normal
    approximation, Mann–Whitney's 3/π efficiency and its floor included)."""
    effect = math.log1p(change_pct / 100.0)
    z = float(stats.norm.isf(level) + stats.norm.isf(1 - power))
    parametric = math.ceil(2 * (z * sd / effect) ** 2 / (3 / math.pi))
    return max(parametric, rank_repeats(level))


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses Holm's step-down rejects at family-wise level `alpha` (same order as given)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


@dataclass(frozen=True)
class Calibration:
    """The A/A noise of one figure of one case on one machine, as `fashionbench noise --save` measured it."""

    machine_id: str
    case_key: str
    metric: str
    sd: float  # of ln(figure), per run
    runs: int
    cv_pct: float
    spread_pct: float
    measured_utc: str

    @property
    def source(self) -> str:
        """How compare names it: `calibration (10 runs, 2026-12-06)`."""
        return f"calibration ({self.runs} runs, {self.measured_utc[:10]})"


def calibration_file() -> Path:
    """Where calibrations are kept (FASHIONBENCH_CACHE overrides)."""
    return cache_root() / CALIBRATION_FILE


def _key(machine_id: str, case_key: str, metric: str) -> str:
    return f"{machine_id}/{case_key}/{metric}"


def load_calibrations(path: Path | None = None) -> dict[str, Calibration]:
    """Every stored calibration by machine/case/metric; a missing or unreadable file holds none."""
    try:
        data = json.loads((path or calibration_file()).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CALIBRATION_VERSION:
        return {}
    found = {}
    for key, entry in (data.get("entries") or {}).items():
        try:
            found[key] = Calibration(**entry)
        except TypeError:
            continue
    return found


def find_calibration(calibrations: dict[str, Calibration], machine_id: str, case_key: str, metric: str) -> Calibration | None:
    """The calibration of one figure of one case on one machine, if stored."""
    return calibrations.get(_key(machine_id, case_key, metric))


def save_calibrations(new: Sequence[Calibration], path: Path | None = None) -> Path:
    """Add calibrations (replacing those of the same machine/case/metric), atomically; returns the file."""
    path = path or calibration_file()
    entries = {k: asdict(c) for k, c in load_calibrations(path).items()}
    entries.update({_key(c.machine_id, c.case_key, c.metric): asdict(c) for c in new})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".noise-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": CALIBRATION_VERSION, "entries": entries}, handle, indent=1)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def now_utc() -> str:
    """The time a calibration is stamped with."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
