"""What every suite shares: the grid as params, one isolated run per case in setup_cache, skip or fail by record."""

from __future__ import annotations

import math
import sys
from typing import Any, Callable

try:
    from suite.bench import plans
    from suite.record.metrics import MIB, find_metric
    from suite.record.schema import RunRecord
    from suite.run.resident import ResidentCase
except ImportError:  # asv runs these benchmarks against commits from before the layered packages too
    from suite.report_cases import METRIC_BY_KEY, MIB  # type: ignore[no-redef]
    from suite.resident import ResidentCase  # type: ignore[no-redef]
    from suite.results import RunRecord  # type: ignore[no-redef]

    from suite import plans  # type: ignore[no-redef]

    # Those commits kept the registry in report_cases under the keys before the rename (now the registry's aliases).
    BEFORE_RENAME = {"rss_peak_mib": "peak_rss_mib", "device_peak_mib": "peak_device_mib", "gpu_util_mean_pct": "gpu_util_pct",
                     "energy_per_1k_samples_j": "energy_per_1k_j", "time_to_target_s": "recorded_tta_s"}

    def find_metric(key: str) -> Any:  # type: ignore[misc]
        """The pre-refactor metric of a key (None for metrics those commits did not have: their tracks are n/a)."""
        return METRIC_BY_KEY.get(BEFORE_RENAME.get(key, key))

try:
    from suite.run.launch import exit_with_parent
except ImportError:  # commits from before it: a killed asv may leave their setup_cache running, as it always did
    def exit_with_parent() -> None:
        """Nothing to tie to on those commits."""

SPECS = plans.benchmark_specs()
AXES = plans.benchmark_axes()
Records = dict[tuple[str, str, str], dict[str, Any]]


def figure(value: float | None, per_unit: float = 1.0) -> float:
    """asv shows NaN as n/a and None as a failure: a figure this case does not have (GPU on CPU, target never reached)
    is n/a."""
    return float(value) * per_unit if value is not None and math.isfinite(value) else math.nan


# The units asv has always shown; MiB figures go out in bytes so their history does not jump by 2**20.
ASV_UNITS = {"": ("fraction", 1.0), "s": ("seconds", 1.0), "MiB": ("bytes", MIB)}


def impossible(metric: Any, value: float | None) -> str | None:
    """Why the registry says this value cannot be true (commits before the check: never)."""
    flag = getattr(metric, "flag", None)
    return flag(value) if flag is not None else None


def tracked(key: str) -> Callable[..., float]:
    """A track_* method reporting one registry metric of the case's record, with the metric's doc and unit.

    The attribute name, not the metric key, names the asv benchmark: keep it when keys change, asv keys history by it.
    """
    metric = find_metric(key)
    unit, per_unit = ASV_UNITS.get(metric.unit, (metric.unit, 1.0)) if metric is not None else ("unit", 1.0)

    def track(self: Any, records: Any, *params: Any) -> float:
        value = metric.get(self.record) if metric is not None else None
        if why := impossible(metric, value):
            # asv keeps a number per commit and no flag beside it: a stored impossible figure would be drawn and
            # step-detected as real, so it is n/a, with the reason in the benchmark's stderr (--show-stderr).
            print(f"{self.record.run_spec.label}: {key} reported as n/a: {why}", file=sys.stderr)
            return math.nan
        return figure(value, per_unit)

    track.unit = unit  # type: ignore[attr-defined]
    track.__doc__ = getattr(metric, "doc", None) or key
    return track


class CaseBenchmark:
    """Params framework × model × device; the cases are trained in setup_cache, never in the benchmark process."""

    params = [list(AXES[name]) for name in plans.PARAM_NAMES]
    param_names = list(plans.PARAM_NAMES)
    record: RunRecord

    def setup_cache(self) -> Records:
        """Every case of the grid, each in its own worker process (suite.run.runner.run_case); dies with asv."""
        exit_with_parent()
        return plans.run_records(SPECS)

    # asv keys the cache by this function's module and line, so every subclass shares one training of the grid.
    setup_cache.timeout = plans.cache_timeout_s(SPECS)  # type: ignore[attr-defined]

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Skipped cases (no GPU) raise NotImplementedError, which asv shows as n/a; failed cases fail the benchmark."""
        self.record = plans.usable_record(records[(framework, model, device)])


class TimedCase(CaseBenchmark):
    """time_* over one call into a resident process built for the case; setup pays for start-up and one warm-up call."""

    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0
    timeout = plans.FULL_CASE_TIMEOUT_S
    case: ResidentCase

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Start the case's process; subclasses warm it up."""
        super().setup(records, framework, model, device)
        self.case = ResidentCase(self.record.run_spec)

    def teardown(self, records: Records, framework: str, model: str, device: str) -> None:
        """Close the case's process (asv tears down even after a skipped setup, when there is none)."""
        case = getattr(self, "case", None)
        if case is not None:
            case.close()
