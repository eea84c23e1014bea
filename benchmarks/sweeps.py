"""CNN sweep: steady training throughput, MFU and test accuracy over batch size × precision per framework and device."""

from __future__ import annotations

from typing import Any

from .common import RunRecord, exit_with_parent, plans, tracked

SWEEP_SPECS = plans.sweep_specs()
SWEEP_AXES = plans.sweep_axes()
SweepRecords = dict[tuple[str, str, int, str], dict[str, Any]]


class CnnSweep:
    """Params framework × device × batch_size × precision; every case is trained once in setup_cache by the runner.

    Impossible combinations (fp16-mixed or tf32 on a CPU, cuda without a GPU, bf16 on a GPU without it) are recorded
    as skipped and show as n/a.
    """

    params = [list(SWEEP_AXES[name]) for name in plans.SWEEP_PARAM_NAMES]
    param_names = list(plans.SWEEP_PARAM_NAMES)
    record: RunRecord

    def setup_cache(self) -> SweepRecords:
        """Every case of the sweep, each in its own worker process (suite.run.runner.run_case); dies with asv."""
        exit_with_parent()
        return plans.run_records(SWEEP_SPECS, plans.sweep_key)

    # Its own cache key (module and line), so running the grid's suites never trains the sweep, nor the reverse.
    setup_cache.timeout = plans.cache_timeout_s(SWEEP_SPECS)  # type: ignore[attr-defined]

    def setup(self, records: SweepRecords, framework: str, device: str, batch_size: int, precision: str) -> None:
        """Skipped cases raise NotImplementedError (asv's n/a); failed cases fail the benchmark with their error."""
        self.record = plans.usable_record(records[(framework, device, batch_size, precision)])

    track_train_samples_per_s = tracked("train_samples_per_s")
    track_mfu_pct = tracked("mfu_pct")
    track_test_accuracy = tracked("test_accuracy")
