"""The benchmark grids shared by asv (benchmarks/) and pytest-benchmark (tests/test_bench.py), and their runs."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Hashable
from typing import Any

from suite.core.spec import DEVICES, FRAMEWORKS, MODELS, PRECISIONS, RunSpec, SpecError, grid
from suite.measure.machine import fingerprint
from suite.record.schema import RunRecord
from suite.run.resident import CaseSkipped
from suite.run.runner import no_gpu_reason, run_case

QUICK_ENV = "FASHIONBENCH_QUICK"
# Narrow a grid without editing code (e.g. `FASHIONBENCH_FRAMEWORKS=torch asv run ...`); comma-separated values.
AXIS_ENVS = {"framework": "FASHIONBENCH_FRAMEWORKS", "model": "FASHIONBENCH_MODELS", "device": "FASHIONBENCH_DEVICES"}
LIMIT_ENV = "FASHIONBENCH_LIMIT"
PARAM_NAMES = ("framework", "model", "device")

QUICK_LIMIT = 2000
QUICK_EPOCHS = 2  # epoch 1 includes tracing and warm-up; the steady-state figures need a second one
FULL_EPOCHS = 10
LATENCY_BATCH = 1
THROUGHPUT_BATCH = 1024  # also the size of the timed inference pass
QUICK_INFER_BATCH_SIZES = (LATENCY_BATCH, THROUGHPUT_BATCH)  # each size costs the worker ~1 s of measuring
QUICK_CASE_TIMEOUT_S = 900.0
FULL_CASE_TIMEOUT_S = 3600.0

# The CNN sweep (benchmarks/sweeps.py): batch size × precision per framework and device.
SWEEP_MODEL = "cnn"
SWEEP_PARAM_NAMES = ("framework", "device", "batch_size", "precision")
FULL_SWEEP_BATCH_SIZES = (32, 128, 512, 2048, 8192)  # 8192: a tiny CNN fills a big GPU only at large batches
QUICK_SWEEP_BATCH_SIZES = (128, 512)
# Quick: fp32 plus fp16-mixed, which a CPU skips before any process starts (the skip path at no cost). bf16 is left
# to the full sweep: on CPUs without bf16 instructions it is emulated and its CNN cases took minutes in the quick run.
QUICK_SWEEP_PRECISIONS = ("fp32", "fp16-mixed")

# The scaling suite (benchmarks/scaling.py): the dense model on 1..N data-parallel replicas per framework and device.
SCALING_MODEL = "dense"
SCALING_PARAM_NAMES = ("framework", "device", "devices")
QUICK_SCALING_DEVICES = (1, 2)
FULL_SCALING_DEVICES = (1, 2, 4, 8)


def is_quick(quick: bool | None = None) -> bool:
    """An explicit choice, else FASHIONBENCH_QUICK=1."""
    return os.environ.get(QUICK_ENV) == "1" if quick is None else quick


def available_devices() -> tuple[str, ...]:
    """cpu, plus cuda when NVML lists a GPU (judged without starting a framework)."""
    return DEVICES if no_gpu_reason() is None else ("cpu",)


def _env_values(name: str, default: tuple[str, ...], choices: tuple[str, ...]) -> tuple[str, ...]:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in values if v not in choices]
    if unknown:
        raise SpecError(f"{name}={text!r}: {', '.join(unknown)} not known; choose from: {', '.join(choices)}")
    return values


def _env_limit() -> int | None:
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise SpecError(f"{LIMIT_ENV}={text!r} is not a whole number of training samples")
    return int(text)


def benchmark_axes(quick: bool | None = None) -> dict[str, tuple[str, ...]]:
    """framework × model × device: quick has only the devices present, full always has cpu and cuda."""
    devices = available_devices() if is_quick(quick) else DEVICES
    defaults = {"framework": FRAMEWORKS, "model": MODELS, "device": devices}
    choices = {"framework": FRAMEWORKS, "model": MODELS, "device": DEVICES}
    return {axis: _env_values(AXIS_ENVS[axis], defaults[axis], choices[axis]) for axis in PARAM_NAMES}


def training_limit(quick: bool | None = None) -> int | None:
    """Training samples per case: FASHIONBENCH_LIMIT, else 2000 when quick, else all (None)."""
    return _env_limit() or (QUICK_LIMIT if is_quick(quick) else None)


def _fixed_settings(quick: bool) -> dict[str, Any]:
    """Spec settings every benchmark case shares: epochs, training limit, threads, inference batch sizes."""
    return {
        "epochs": QUICK_EPOCHS if quick else FULL_EPOCHS, "limit": training_limit(quick),
        "threads": os.cpu_count() or 1,  # all logical cores, as `fashionbench run` defaults to
        "infer_batch_sizes": QUICK_INFER_BATCH_SIZES if quick else RunSpec.infer_batch_sizes,
    }


def benchmark_specs(quick: bool | None = None) -> list[RunSpec]:
    """The grid: quick is --limit 2000 and 2 epochs, full all data and 10 epochs; FASHIONBENCH_LIMIT overrides."""
    quick = is_quick(quick)
    return grid(benchmark_axes(quick), **_fixed_settings(quick))


def sweep_axes(quick: bool | None = None) -> dict[str, tuple[Any, ...]]:
    """framework × device (as the grid) × batch size × precision; batch sizes above the training limit are left out."""
    quick = is_quick(quick)
    axes = benchmark_axes(quick)
    limit = training_limit(quick)
    sizes = QUICK_SWEEP_BATCH_SIZES if quick else FULL_SWEEP_BATCH_SIZES
    fitting = tuple(size for size in sizes if limit is None or size <= limit)
    if not fitting:
        raise SpecError(f"{LIMIT_ENV}={limit} is below the sweep's smallest batch size {min(sizes)}; raise it")
    return {"framework": axes["framework"], "device": axes["device"], "batch_size": fitting,
            "precision": QUICK_SWEEP_PRECISIONS if quick else PRECISIONS}


def sweep_specs(quick: bool | None = None) -> list[RunSpec]:
    """The CNN sweep with the grid's epochs, limit, threads and inference batch sizes."""
    quick = is_quick(quick)
    return grid(sweep_axes(quick), model=SWEEP_MODEL, **_fixed_settings(quick))


def scaling_axes(quick: bool | None = None) -> dict[str, tuple[Any, ...]]:
    """framework × device (as the grid) × devices: 1 and 2 when quick, up to 8 in full (counts a machine lacks are
    recorded as skipped and show as n/a)."""
    quick = is_quick(quick)
    axes = benchmark_axes(quick)
    return {"framework": axes["framework"], "device": axes["device"],
            "devices": QUICK_SCALING_DEVICES if quick else FULL_SCALING_DEVICES}


def scaling_specs(quick: bool | None = None) -> list[RunSpec]:
    """The scaling grid on the dense model with the grid's epochs, limit, threads and inference batch sizes."""
    quick = is_quick(quick)
    return grid(scaling_axes(quick), model=SCALING_MODEL, **_fixed_settings(quick))


def scaling_key(spec: RunSpec) -> tuple[str, str, int]:
    """The (framework, device, devices) tuple asv passes to the scaling suite."""
    return spec.framework, spec.device, spec.devices


def asv_machine_name(quick: bool | None = None) -> str:
    """asv has no GPU field, so the name carries it (`host-cpu`, `host-nvidia-h100-80gb-hbm3`), `-quick` if quick."""
    machine = fingerprint()
    device = machine.gpus[0].get("name") if machine.gpus else None  # cuda cases run on GPU 0
    slug = re.sub(r"[^a-z0-9]+", "-", f"{machine.hostname}-{device or 'cpu'}".lower()).strip("-")
    return f"{slug}-quick" if is_quick(quick) else slug


def case_timeout_s(spec: RunSpec) -> float:
    """Seconds one isolated run may take before the runner kills it."""
    return FULL_CASE_TIMEOUT_S if spec.limit is None else QUICK_CASE_TIMEOUT_S


def param_key(spec: RunSpec) -> tuple[str, str, str]:
    """The (framework, model, device) tuple asv passes as parameters."""
    return spec.framework, spec.model, spec.device


def run_record(spec: RunSpec) -> RunRecord:
    """One isolated worker run of the spec (suite.run.runner.run_case) with the grid's timeout."""
    return run_case(spec, case_timeout_s(spec), None)


def sweep_key(spec: RunSpec) -> tuple[str, str, int, str]:
    """The (framework, device, batch_size, precision) tuple asv passes to the sweep."""
    return spec.framework, spec.device, spec.batch_size, spec.precision


def run_records(specs: list[RunSpec], key: Callable[[RunSpec], Hashable] = param_key) -> dict[Any, dict[str, Any]]:
    """One isolated run per spec, as JSON-ready RunRecord dicts keyed by key (what asv's setup_cache returns)."""
    return {key(s): run_record(s).model_dump(mode="json") for s in specs}


def cache_timeout_s(specs: list[RunSpec]) -> float:
    """How long a setup_cache training every spec once may take: the sum of their timeouts plus a minute."""
    return sum(case_timeout_s(s) for s in specs) + 60


def usable_record(data: RunRecord | dict[str, Any]) -> RunRecord:
    """The record of an isolated run, or CaseSkipped / RuntimeError naming why its figures cannot be used."""
    record = RunRecord.model_validate(data)
    if record.status == "skipped":
        raise CaseSkipped(record.error or "skipped")
    if record.status != "ok":
        raise RuntimeError(f"{record.run_spec.label}: {record.status}: {record.error}")
    return record


if __name__ == "__main__":
    # `python -m suite.bench.plans machine-name`: what to pass to `asv machine --machine` and `asv run --machine`.
    if sys.argv[1:] != ["machine-name"]:
        sys.exit("usage: python -m suite.bench.plans machine-name")
    print(asv_machine_name())
