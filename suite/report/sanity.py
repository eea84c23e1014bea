"""GPU sanity rules a real GPU run must pass, judged from its records: the report's check list and the GPU check's verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from suite.record.machines import record_machine_labels
from suite.record.metrics import device_peak_bytes
from suite.record.schema import RunRecord

Verdict = Literal["pass", "fail", "n/a"]
MIB = 2**20


@dataclass(frozen=True)
class Check:
    """One rule, its verdict over the records and the evidence (the failing cases, or why it could not be judged)."""

    rule: str
    verdict: Verdict
    detail: str


def _label(record: RunRecord) -> str:
    return record.run_spec.label


def _each(rule: str, records: list[RunRecord], problem: Callable[[RunRecord], str | None]) -> Check:
    """A rule every record must pass: fail names each record that does not, with its problem."""
    if not records:
        return Check(rule, "n/a", "no ok CUDA run to judge")
    failing = [f"{_label(r)}: {p}" for r in records if (p := problem(r))]
    if failing:
        return Check(rule, "fail", "; ".join(failing))
    return Check(rule, "pass", f"all {len(records)} ok CUDA run(s)")


def _util_problem(record: RunRecord) -> str | None:
    stats = record.gpu_train
    if stats is None or not stats.available:
        return f"no NVML figures ({stats.reason if stats else 'sampler not run'})"
    if not stats.util_mean_pct or stats.util_mean_pct <= 0:
        return f"utilisation {stats.util_mean_pct} % over {stats.samples} sample(s)"
    return None


def _energy_problem(record: RunRecord) -> str | None:
    stats = record.gpu_train
    if stats is None or stats.energy_j is None:
        return "no energy figure"
    if stats.energy_source != "counter":
        return f"energy from {stats.energy_source}, not the total-energy counter"
    return None if stats.energy_j > 0 else f"the energy counter did not increase ({stats.energy_j} J)"


def _card_bytes(record: RunRecord) -> int | None:
    gpus = record.machine.gpus
    return gpus[0].get("memory_total_bytes") if gpus else None  # cuda cases run on GPU 0


def _memory_problem(record: RunRecord) -> str | None:
    card = _card_bytes(record)
    for name, peak in (("allocator peak", device_peak_bytes(record)), ("NVML used peak", record.nvml_used_peak_bytes)):
        if not peak or peak <= 0:
            return f"{name} is {peak}"
        if card and peak >= card:
            return f"{name} {peak / MIB:,.0f} MiB is not below the card's {card / MIB:,.0f} MiB"
    return None


def _mfu_problem(record: RunRecord) -> str | None:
    if record.mfu_pct is None:
        return None
    return None if 0 < record.mfu_pct < 100 else f"MFU {record.mfu_pct:.1f} % against the {record.peak_flops_dtype} probe"


def _resident_problem(record: RunRecord) -> str | None:
    device = record.train_data_device or "not recorded"
    return None if device.startswith("cuda") else f"training tensors on {device}"


def _best_cnn(records: list[RunRecord], device: str) -> float | None:
    return max((r.train_steady_samples_per_s for r in records if r.spec["model"] == "cnn" and r.spec["device"] == device
                and r.train_steady_samples_per_s), default=None)


def _cuda_beats_cpu(records: list[RunRecord]) -> Check:
    """Per machine and framework, the best CUDA CNN against the best CPU CNN of that same machine: another box's CPU
    says nothing about this GPU's."""
    rule = "CUDA training throughput > CPU for the CNN (best run per device, same framework, same machine)"
    names = record_machine_labels(records)
    rows = []
    for machine_id, framework in sorted({(r.machine.machine_id, r.spec["framework"]) for r in records}):
        mine = [r for r in records if r.machine.machine_id == machine_id and r.spec["framework"] == framework]
        cuda, cpu = _best_cnn(mine, "cuda"), _best_cnn(mine, "cpu")
        if cuda and cpu:
            rows.append((f"{framework} on {names[machine_id]}", cuda, cpu))
    if not rows:
        return Check(rule, "n/a", "needs an ok CNN run on both cuda and cpu of one framework on one machine")
    detail = "; ".join(f"{where}: cuda {c:,.0f} vs cpu {p:,.0f} samples/s ({c / p:.1f}×)" for where, c, p in rows)
    return Check(rule, "pass" if all(c > p for _, c, p in rows) else "fail", detail)


def gpu_checks(records: list[RunRecord]) -> list[Check]:
    """Every GPU sanity rule over the ok runs; rules without the runs they need are n/a, with what is missing."""
    ok = [r for r in records if r.status == "ok"]
    cuda = [r for r in ok if r.spec["device"] == "cuda"]
    torch_cuda = [r for r in cuda if r.spec["framework"] == "torch"]
    timed = [r for r in cuda if r.mfu_pct is not None]
    return [
        _each("NVML utilisation > 0 during training", cuda, _util_problem),
        _each("GPU energy counter increases during training", cuda, _energy_problem),
        _each("device memory peak > 0 and below the card (allocator and NVML)", cuda, _memory_problem),
        _cuda_beats_cpu(ok),
        _each("MFU against the probe of the run's precision is > 0 and < 100 %", timed, _mfu_problem),
        _each("torch training tensors resident on the GPU", torch_cuda, _resident_problem),
    ]


def overall(checks: list[Check]) -> Verdict:
    """fail if any rule fails, pass if at least one passed and none failed, else n/a."""
    verdicts = {c.verdict for c in checks}
    return "fail" if "fail" in verdicts else ("pass" if "pass" in verdicts else "n/a")
