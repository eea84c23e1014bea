"""The one-shot GPU check's plan, its time estimate and what the box has, all judged without importing a framework.

The plan covers the CUDA half once, sized for one modern GPU in under 8 minutes with the tests, the probe and the
report: torch dense+CNN × fp32/tf32/bf16/fp16-mixed × eager/reduce-overhead, Keras on torch and on JAX (dense+CNN),
one CPU CNN (the CUDA-faster-than-CPU rule needs it), inference latency at batch 1 and 1024, NVML sampled every 150 ms.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from suite.core.spec import RunSpec, grid
from suite.measure.machine import package_version
from suite.measure.nvml import driver_versions, gpu_inventory

BUDGET_S = 480.0
EPOCHS = 2  # the least that gives a steady epoch (epoch 1 holds compilation)
BATCH_SIZE = 500  # divides the 48,000 training samples: no odd last batch, so no extra compiled graph for it
INFER_BATCH_SIZES = (1, 1024)
CPU_LIMIT = 6000  # the CPU CNN only needs a steady throughput to compare with

# Seconds per case part on one modern GPU box. Assumed, not yet measured (no GPU has run this check): start = worker
# start, framework import, CUDA context, data load and checksum; compile = torch.compile and CUDA-graph capture of
# the train and eval graphs (the inductor cache on disk serves later cases of the same graph); epoch = one training
# epoch with its validation pass; profile = 30 synced steps plus about 1.2 s per inference batch size (the worker's
# 1 s budget plus warm-up). summary.md puts each case's measured wall time next to its estimate.
START_S = {"torch": 4.0, "keras": 8.0}
COMPILE_S = {"reduce-overhead": 15.0, "keras-jax": 6.0}
EPOCH_S = {("cuda", "dense"): 0.4, ("cuda", "cnn"): 0.6, ("cpu", "cnn"): 0.8}
KERAS_EPOCH_FACTOR = 2.0  # fit's per-batch host copies (numpy input) against torch's resident tensors
PROFILE_S = 1.5 + 1.2 * len(INFER_BATCH_SIZES)
# The steps around the plan: what the box has, the gpu-marked tests, the GEMM probe (cuda and cpu), the report.
STEPS_S = {"environment": 2.0, "gpu-marked tests": 60.0, "probe": 15.0, "report": 10.0}
GPU_TEST_FILES = ("tests/test_gpu_ready.py", "tests/test_cuda_paths.py", "tests/test_nvml.py", "tests/test_variants.py")
PACKAGES = ("torch", "jax", "jaxlib", "keras", "tensorflow", "nvidia-ml-py", "numpy", "pydantic", "pydantic-core",
            "platformdirs", "pandas", "matplotlib", "jinja2", "psutil", "pytest", "pytest-benchmark", "asv", "rich")


@dataclass(frozen=True)
class Planned:
    """One case of the check and its estimated seconds."""

    spec: RunSpec
    estimate_s: float


def plan(threads: int | None = None) -> list[RunSpec]:
    """The check's cases in run order: torch eager first (the figures everything else is read against)."""
    fixed = {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "threads": threads or os.cpu_count() or 1,
             "infer_batch_sizes": INFER_BATCH_SIZES}
    precisions = ["fp32", "tf32", "bf16", "fp16-mixed"]
    torch_cases = [s for mode in ("none", "reduce-overhead") for s in grid(
        {"framework": ["torch"], "model": ["dense", "cnn"], "device": ["cuda"], "precision": precisions,
         "compile": [mode]}, **fixed)]
    keras_cases = grid({"framework": ["keras"], "model": ["dense", "cnn"], "device": ["cuda"],
                        "keras_backend": ["torch", "jax"]}, **fixed)
    cpu_case = grid({"framework": ["torch"], "model": ["cnn"], "device": ["cpu"]}, **{**fixed, "limit": CPU_LIMIT})
    return [*torch_cases, *keras_cases, *cpu_case]


def estimate_s(spec: RunSpec) -> float:
    """The case's seconds from the per-part figures above."""
    keras = spec.framework == "keras"
    compile_s = COMPILE_S.get(spec.compile, 0.0) + (COMPILE_S["keras-jax"] if keras and spec.keras_backend == "jax" else 0.0)
    epoch_s = EPOCH_S[(spec.device, spec.model)] * (KERAS_EPOCH_FACTOR if keras else 1.0)
    if spec.limit:
        epoch_s *= spec.limit / 48_000
    return START_S[spec.framework] + compile_s + spec.epochs * epoch_s + PROFILE_S


def planned(threads: int | None = None) -> list[Planned]:
    """The plan with each case's estimate."""
    return [Planned(spec, estimate_s(spec)) for spec in plan(threads)]


def total_estimate_s(cases: list[Planned]) -> float:
    """Plan plus the steps around it."""
    return sum(c.estimate_s for c in cases) + sum(STEPS_S.values())


def case_timeout_s(case: Planned) -> float:
    """Four times the estimate, at least two minutes: a slow case is measured, a hung one does not eat the budget."""
    return max(120.0, 4 * math.ceil(case.estimate_s))


def environment() -> dict[str, Any]:
    """What this box has: GPUs, driver, NVML and CUDA driver versions, and the version of every package the suite uses."""
    return {"gpus": gpu_inventory(), **driver_versions(), "cpu_count": os.cpu_count(),
            "packages": {p: package_version(p) or "not installed" for p in PACKAGES}}
