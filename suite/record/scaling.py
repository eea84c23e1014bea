"""Scaling efficiency of data-parallel cases: global samples/s on N replicas ÷ (N × the 1-device case's), per machine."""

from __future__ import annotations

import statistics

from suite.core.spec import RunSpec
from suite.record.schema import RunRecord

# N replicas each doing the 1-device case's work cannot beat N times its rate; a few points above 100 are run-to-run
# noise, more means the 1-device baseline collapsed (a disturbed or throttled run), as in the 264 % an asv run stored.
MAX_EFFICIENCY_PCT = 105.0


def _devices(record: RunRecord) -> int:
    return int(record.spec.get("devices", 1))  # records stored before the axis ran on one device


def _reference_key(record: RunRecord) -> tuple[str, str]:
    return RunSpec.from_dict(record.spec).scaling_key, record.machine.machine_id


def one_device_samples_per_s(records: list[RunRecord]) -> dict[tuple[str, str], float]:
    """Median steady samples/s of the ok 1-device runs, per (scaling key, machine): the baseline N replicas are held to."""
    runs: dict[tuple[str, str], list[float]] = {}
    for record in records:
        if record.status == "ok" and _devices(record) == 1 and record.train_steady_samples_per_s:
            runs.setdefault(_reference_key(record), []).append(record.train_steady_samples_per_s)
    return {key: statistics.median(values) for key, values in runs.items()}


def with_scaling_efficiency(records: list[RunRecord]) -> list[RunRecord]:
    """The records, where an N-device run's 1-device case is among them as a copy carrying scaling_efficiency_pct
    (computed against the median of that case's runs); every other record as given."""
    baseline = one_device_samples_per_s(records)
    filled = []
    for record in records:
        reference = baseline.get(_reference_key(record)) if _devices(record) > 1 else None
        if reference and record.status == "ok" and record.train_steady_samples_per_s:
            efficiency = 100.0 * record.train_steady_samples_per_s / (_devices(record) * reference)
            record = record.model_copy(update={"scaling_efficiency_pct": efficiency})
        filled.append(record)
    return filled


def impossible_efficiency(efficiency_pct: float) -> str | None:
    """Why a scaling efficiency cannot be true (above linear beyond noise), or None."""
    if efficiency_pct <= MAX_EFFICIENCY_PCT:
        return None
    return (f"scaling efficiency {efficiency_pct:,.0f} % is above linear (> {MAX_EFFICIENCY_PCT:.0f} %): N replicas "
            "cannot beat N x the 1-device rate, so the 1-device baseline collapsed (a disturbed or throttled run); "
            "rerun the devices=1 case on a quiet machine")
