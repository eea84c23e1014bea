"""What every suite shares: the grid as params, one isolated run per case in setup_cache, skip or fail by record."""

from __future__ import annotations

import math
from typing import Any

try:
    from suite.bench import plans
    from suite.record.schema import RunRecord
    from suite.run.resident import ResidentCase
except ImportError:  # asv runs these benchmarks against commits from before the layered packages too
    from suite.resident import ResidentCase  # type: ignore[no-redef]
    from suite.results import RunRecord  # type: ignore[no-redef]

    from suite import plans  # type: ignore[no-redef]

SPECS = plans.benchmark_specs()
AXES = plans.benchmark_axes()
Records = dict[tuple[str, str, str], dict[str, Any]]


def figure(value: float | None) -> float:
    """asv shows NaN as n/a and None as a failure: a figure this case does not have (a GPU figure on CPU) is n/a."""
    return math.nan if value is None else float(value)


class CaseBenchmark:
    """Params framework × model × device; the cases are trained in setup_cache, never in the benchmark process."""

    params = [list(AXES[name]) for name in plans.PARAM_NAMES]
    param_names = list(plans.PARAM_NAMES)
    record: RunRecord

    def setup_cache(self) -> Records:
        """Every case of the grid, each in its own worker process (suite.run.runner.run_case)."""
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
