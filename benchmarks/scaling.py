"""Data-parallel scaling: efficiency (global samples/s ÷ N × the 1-device case's) and DDP's communication share per
framework, device and device count."""

from __future__ import annotations

from typing import Any

from .common import RunRecord, exit_with_parent, plans, tracked

try:
    from suite.record.scaling import with_scaling_efficiency
except ImportError:  # commits from before --devices: every scaling track is n/a there
    with_scaling_efficiency = None

SCALING_SPECS = plans.scaling_specs() if hasattr(plans, "scaling_specs") else []
SCALING_AXES = plans.scaling_axes() if hasattr(plans, "scaling_axes") else {}
ScalingRecords = dict[tuple[str, str, int], dict[str, Any]]


class Scaling:
    """Params framework × device × devices; every case (the 1-device references included) is trained once in
    setup_cache by the runner, and each N-device record is given its efficiency against the 1-device one.

    Counts the machine cannot give (more devices than GPUs or cores) are recorded as skipped and show as n/a, and so
    do the 1-device rows: they are the reference, and torch's comm share exists only with several ranks.
    """

    params = [list(SCALING_AXES.get(name, ())) for name in getattr(plans, "SCALING_PARAM_NAMES", ())]
    param_names = list(getattr(plans, "SCALING_PARAM_NAMES", ()))
    record: RunRecord

    def setup_cache(self) -> ScalingRecords:
        """Every case of the scaling grid, each in its own launch (suite.run.runner.run_case); dies with asv."""
        exit_with_parent()
        records = with_scaling_efficiency([plans.run_record(s) for s in SCALING_SPECS])
        return {plans.scaling_key(s): r.model_dump(mode="json") for s, r in zip(SCALING_SPECS, records)}

    setup_cache.timeout = plans.cache_timeout_s(SCALING_SPECS)  # type: ignore[attr-defined]

    def setup(self, records: ScalingRecords, framework: str, device: str, devices: int) -> None:
        """Skipped cases raise NotImplementedError (asv's n/a); failed cases fail the benchmark with their error."""
        self.record = plans.usable_record(records[(framework, device, devices)])

    track_scaling_efficiency_pct = tracked("scaling_efficiency_pct")
    track_comm_share_pct = tracked("comm_share_pct")
