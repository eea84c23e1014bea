"""The one-shot GPU check's plan, its time estimate and what the box has, all judged without importing a framework.

The plan is a list of named parts (PLAN_PARTS), run in order, each with the cases it adds: the comparison cases first
(the CPU CNN the "CUDA beats CPU" rule needs, the Keras CNNs the 2026-12-04 run skipped), then the hardware-selection
plan's CUDA half, then the speed variants. A new part is one more entry; `gpu-check --dry-run` prints every part with
its estimate and the room left in the 8-minute budget.

Every estimate comes from the walls measured on the first real run (one NVIDIA H200, 2026-12-04, records in
reports/h200-2026-12-04/): MEASURED_2026_12_04 keeps each ok case's process wall and steady epoch, and the per-part
figures are medians over them (fixed_s, epoch_s below). tests/test_gpu_ready.py checks the table against those records.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from suite.bench.named_plans import hardware_plan
from suite.core.spec import TRAIN_SAMPLES, RunSpec, grid
from suite.measure.machine import package_version
from suite.measure.nvml import driver_versions, gpu_inventory

BUDGET_S = 480.0
EPOCHS = 2  # the least that gives a steady epoch (epoch 1 holds compilation)
BATCH_SIZE = 500  # divides the 48,000 training samples: no odd last batch, so no extra compiled graph for it
INFER_BATCH_SIZES = (1, 1024)
CPU_LIMIT = 6000  # the CPU CNN only needs a steady throughput to compare with
FULL_SPLIT = TRAIN_SAMPLES["10-class"]
DATA_ENV = "FASHIONBENCH_DATA"  # how the check hands its --data-dir to the gpu-marked tests (suite.core.data honours it)
PROBE_SEED_ENV = "FASHIONBENCH_PROBE_SEED"  # the check's probe.json: the tests' probe cache starts from it (conftest)

# The 2026-12-04 run, one row per ok record (run id prefix, the part it measures, training samples, process wall s,
# steady epoch s); all at 2 epochs, batch 500. The process wall (interpreter start to exit, as the runner saw it) is
# what a case costs the budget: the next case started within a second of it every time.
MEASURED_2026_12_04: tuple[tuple[str, str, str, str, str, str, int, float, float], ...] = (
    ("31bd3842", "torch", "dense", "cuda", "-", "none", FULL_SPLIT, 14.1, 0.158),
    ("0fe73a9b", "torch", "dense", "cuda", "-", "none", FULL_SPLIT, 10.6, 0.154),
    ("7ba36212", "torch", "dense", "cuda", "-", "none", FULL_SPLIT, 13.8, 0.145),
    ("2dbadd68", "torch", "dense", "cuda", "-", "none", FULL_SPLIT, 11.5, 0.169),
    ("abd8f6cb", "torch", "cnn", "cuda", "-", "none", FULL_SPLIT, 12.4, 0.203),
    ("6405d0c1", "torch", "cnn", "cuda", "-", "none", FULL_SPLIT, 11.8, 0.229),
    ("c2658133", "torch", "cnn", "cuda", "-", "none", FULL_SPLIT, 12.3, 0.305),
    ("9cf2bfbe", "torch", "cnn", "cuda", "-", "none", FULL_SPLIT, 13.0, 0.316),
    ("313e05a8", "torch", "dense", "cuda", "-", "reduce-overhead", FULL_SPLIT, 30.2, 0.195),
    ("13649067", "torch", "dense", "cuda", "-", "reduce-overhead", FULL_SPLIT, 26.8, 0.180),
    ("354b823e", "torch", "dense", "cuda", "-", "reduce-overhead", FULL_SPLIT, 27.4, 0.201),
    ("4dfcfbee", "torch", "dense", "cuda", "-", "reduce-overhead", FULL_SPLIT, 25.8, 0.198),
    ("55f9134e", "torch", "cnn", "cuda", "-", "reduce-overhead", FULL_SPLIT, 37.0, 0.209),
    ("d6b4553a", "torch", "cnn", "cuda", "-", "reduce-overhead", FULL_SPLIT, 31.7, 0.221),
    ("d829eb3b", "torch", "cnn", "cuda", "-", "reduce-overhead", FULL_SPLIT, 40.0, 0.255),
    ("d54be0e6", "torch", "cnn", "cuda", "-", "reduce-overhead", FULL_SPLIT, 28.9, 0.236),
    ("5db434bd", "keras", "dense", "cuda", "torch", "none", FULL_SPLIT, 24.7, 0.841),
    ("fe347a0a", "keras", "dense", "cuda", "jax", "none", FULL_SPLIT, 43.2, 0.258),
    ("a6c0966c", "keras", "dense", "cuda", "torch", "none", FULL_SPLIT, 20.6, 0.773),
    ("850eb527", "keras", "dense", "cuda", "jax", "none", FULL_SPLIT, 38.7, 0.231),
    ("0947af06", "keras", "cnn", "cuda", "torch", "none", FULL_SPLIT, 22.7, 1.164),
    ("ac04f6a6", "keras", "cnn", "cuda", "jax", "none", FULL_SPLIT, 49.4, 0.294),
    ("22d2940d", "torch", "cnn", "cpu", "-", "none", CPU_LIMIT, 17.8, 0.571),
)
MEASURED_EPOCHS = 2
# The binary model is the dense layers on the 9,600-sample T-shirt/shirt split: it costs what dense costs per step.
MODEL_STANDS_IN = {"binary": "dense"}
# Validation after each epoch: forward only (a third of a training step's FLOPs, suite.core.models) over a quarter as
# many samples as training. The measured 2-epoch walls hold their two validations; each further epoch adds this share.
VALIDATION_SHARE = 1 / 12

# The steps around the plan. probe: 52 s passed between the check's start and its first case on 2026-12-04 (467 s to
# the report, the 3 budget-skipped records written at 18:48:32, the first case at 18:41:37), less the gpu-marked tests
# (3.6 s by pytest's clock, about 1 s more to start it) and the environment step (about 3 s: NVML queries, package
# versions, the data checksum; not timed separately). report: 484 s at the end less the 467 s before the report.
STEPS_S = {"environment": 3.0, "probe": 44.0, "report": 17.0}
PYTEST_START_S = 4.6  # the gpu-marked tests' pytest: 3.57 s by its clock on 2026-12-04 (collection, all skipped), +1 s start
CLI_START_S = 3.0  # one `fashionbench run` before its first case: interpreter, imports, fingerprint; not timed separately
GPU_TEST_FILES = ("tests/test_gpu_ready.py", "tests/test_cuda_paths.py", "tests/test_nvml.py", "tests/test_variants.py")
PACKAGES = ("torch", "jax", "jaxlib", "keras", "tensorflow", "nvidia-ml-py", "numpy", "pydantic", "pydantic-core",
            "platformdirs", "pandas", "matplotlib", "jinja2", "psutil", "pytest", "pytest-benchmark", "asv", "rich")


class PlanError(ValueError):
    """A case whose time cannot be estimated from measured figures; the message names what to measure."""


# Estimates, not measured yet (no GPU has run them; recalibrate from the first run's walls, which summary.md puts next
# to these): what the launch figures add to a 2026-12-04 case. Every CUDA case now profiles 20 steady steps (profiler
# and CUPTI start-up, trace export: ~1 s) and a torch one also measures its launch-free floor (a capture and 220
# replays of a step under 0.5 ms at batch 500: ~0.3 s); Keras on JAX starts jax.profiler and converts its trace.
LAUNCH_FIGURES_S = {"torch": 1.3, "keras": 1.5}
CAPTURE_S = 0.1  # --step graph: three warm-up steps (~1.5 ms each at batch 500) and the capture, in epoch 1
# One batch size of a --batch-sweep: 50 eager steps, a capture and 220 replays. Floor steps at batch 8192 take about
# the model's train FLOPs over the GPU (CNN ~15 MFLOP/sample: 0.12 TFLOP a step, a few ms; dense a tenth of that).
SWEEP_POINT_S = {"dense": 0.4, "cnn": 1.0}
# Inference at one batch size: the worker's 1 s budget plus warm-up; the measured walls hold two (batch 1 and 1024).
INFERENCE_S = 1.2


def part_key(spec: RunSpec) -> tuple[str, str, str, str, str]:
    """What decides a case's cost: framework, Keras backend, compile mode, device, model (precision barely does)."""
    backend = spec.keras_backend if spec.framework == "keras" else "-"
    return spec.framework, MODEL_STANDS_IN.get(spec.model, spec.model), spec.device, backend, spec.compile


def _fit() -> dict[tuple[str, str, str, str, str], tuple[float, float]]:
    """Per part key: (fixed s, steady epoch s on the full split at batch 500), medians over the measured runs.
    fixed = process wall − epochs × steady epoch: start, imports, build, compilation, validation, profile, exit."""
    groups: dict[tuple[str, str, str, str, str], list[tuple[float, float]]] = {}
    for _, framework, model, device, backend, compile_mode, samples, wall_s, epoch_s in MEASURED_2026_12_04:
        fixed = wall_s - MEASURED_EPOCHS * epoch_s
        groups.setdefault((framework, model, device, backend, compile_mode), []).append((fixed, epoch_s * FULL_SPLIT / samples))
    return {key: (statistics.median(f for f, _ in rows), statistics.median(e for _, e in rows)) for key, rows in groups.items()}


PARTS_S = _fit()


def epoch_scale(spec: RunSpec) -> float:
    """This case's training epoch against the measured one: by samples on a CPU (compute-bound), by steps on a GPU
    (every 2026-12-04 CUDA case was launch-bound, so a step cost the same at any size up to batch 500)."""
    samples = min(spec.limit or math.inf, TRAIN_SAMPLES[spec.task])
    return samples / FULL_SPLIT * (BATCH_SIZE / spec.batch_size if spec.device == "cuda" else 1.0)


def estimate_s(spec: RunSpec) -> float:
    """The case's seconds of budget: the measured fixed part plus its epochs, each with its validation share."""
    key = part_key(spec)
    if key not in PARTS_S:
        raise PlanError(f"no measured figures for {spec.label} (part {key}); run it once on a GPU box and add its "
                        "process wall and steady epoch to MEASURED_2026_12_04, or leave it out of the plan")
    fixed_s, epoch_s = PARTS_S[key]
    extra_epochs = max(spec.epochs - MEASURED_EPOCHS, 0)
    training = epoch_s * epoch_scale(spec) * (spec.epochs + extra_epochs * VALIDATION_SHARE)
    return fixed_s + training + launch_extras_s(spec) - INFERENCE_S * (len(INFER_BATCH_SIZES) - len(spec.infer_batch_sizes))


def launch_extras_s(spec: RunSpec, batch_sweep: tuple[int, ...] = ()) -> float:
    """What the launch figures add to a CUDA case (estimates, see LAUNCH_FIGURES_S): profile, floor, capture, sweep."""
    if spec.device != "cuda":
        return 0.0
    sweep_s = SWEEP_POINT_S[MODEL_STANDS_IN.get(spec.model, spec.model)] * len(batch_sweep) if spec.framework == "torch" else 0
    return LAUNCH_FIGURES_S[spec.framework] + (CAPTURE_S if spec.step == "graph" else 0.0) + sweep_s


@dataclass(frozen=True)
class Planned:
    """One case of the check, its estimated seconds and the plan part it belongs to."""

    spec: RunSpec
    estimate_s: float
    part: str = ""
    batch_sweep: tuple[int, ...] = ()  # the batch sizes its eager step and floor are also timed at (--batch-sweep)


@dataclass(frozen=True)
class PlanPart:
    """One named part of the check: why it is there and the cases it adds, in run order."""

    name: str
    why: str
    cases: Callable[[dict[str, Any]], list[RunSpec]]
    batch_sweep: tuple[int, ...] = ()


def _comparison(fixed: dict[str, Any]) -> list[RunSpec]:
    cpu = grid({"framework": ["torch"], "model": ["cnn"], "device": ["cpu"]}, **{**fixed, "limit": CPU_LIMIT})
    keras = grid({"framework": ["keras"], "model": ["cnn"], "device": ["cuda"], "keras_backend": ["torch", "jax"]}, **fixed)
    return [*cpu, *keras]


def _hardware(fixed: dict[str, Any]) -> list[RunSpec]:
    return hardware_plan(["cuda"], fixed["threads"])


def _variants(fixed: dict[str, Any]) -> list[RunSpec]:
    # bf16 made room for the launch part: at batch 500 the H200 was launch-bound in every precision (bf16 CNN 157k vs
    # fp32 236k samples/s), which the floor in every CUDA record now shows; tests/test_variants.py still trains the
    # CNN in bf16, tf32 and fp16-mixed on the GPU within the check.
    return grid({"framework": ["torch"], "model": ["cnn"], "device": ["cuda"], "compile": ["reduce-overhead"]}, **fixed)


# Where each model stops being launch-bound: eager step against the launch-free floor from batch 500 to 8192.
SWEEP_BATCH_SIZES = (500, 2048, 8192)


def _launch(fixed: dict[str, Any]) -> list[RunSpec]:
    # Inference is the eager model's either way: these cases measure training only.
    return grid({"framework": ["torch"], "model": ["dense", "cnn"], "device": ["cuda"], "step": ["graph"]},
                **{**fixed, "infer_batch_sizes": ()})


PLAN_PARTS: tuple[PlanPart, ...] = (
    PlanPart("comparison", "the CPU CNN the CUDA-beats-CPU rule compares with, and Keras CNN on torch and on JAX",
             _comparison),
    PlanPart("hardware", "the hardware-selection plan's CUDA half: each model to its accuracy target "
             "(`fashionbench run --plan hardware` on another box gives the like-for-like verdict)", _hardware),
    PlanPart("variants", "torch CNN under --compile reduce-overhead (torch.compile's CUDA graphs)", _variants),
    PlanPart("launch", "the whole step as one CUDA graph (--step graph), dense and CNN, each with a batch sweep "
             f"{'/'.join(map(str, SWEEP_BATCH_SIZES))} of eager step against launch-free floor", _launch,
             SWEEP_BATCH_SIZES),
)


def planned(threads: int | None = None) -> list[Planned]:
    """The check's cases in run order, each with its estimate and its part."""
    fixed = {"epochs": EPOCHS, "batch_size": BATCH_SIZE, "threads": threads or os.cpu_count() or 1,
             "infer_batch_sizes": INFER_BATCH_SIZES}
    return [Planned(spec, estimate_s(spec) + launch_extras_s(spec, part.batch_sweep) - launch_extras_s(spec), part.name,
                    part.batch_sweep) for part in PLAN_PARTS for spec in part.cases(fixed)]


def plan(threads: int | None = None) -> list[RunSpec]:
    """The check's cases in run order."""
    return [case.spec for case in planned(threads)]


def gpu_test_runs(threads: int | None = None) -> dict[str, list[list[RunSpec]]]:
    """What each gpu-marked test that trains runs: one list of specs per `fashionbench run` it makes (tests/test_gpu_ready.py
    checks these against the tests' own command lines)."""
    fixed = {"threads": threads or os.cpu_count() or 1}
    cnn_cuda = {"framework": "torch", "model": "cnn", "device": "cuda", **fixed}
    return {
        "tests/test_gpu_ready.py::test_real_gpu_run_passes_the_sanity_rules": [
            [RunSpec(**cnn_cuda, epochs=3, batch_size=500, infer_batch_sizes=(1,))],
            [RunSpec(**{**cnn_cuda, "device": "cpu"}, epochs=3, limit=6000, batch_size=500, infer_batch_sizes=(1,))]],
        "tests/test_gpu_ready.py::test_real_gpu_reduce_overhead_replays_cuda_graphs": [
            [RunSpec(framework="torch", model="dense", device="cuda", compile="reduce-overhead", epochs=2, limit=4000,
                     batch_size=500, infer_batch_sizes=(1, 1024), **fixed)]],
        "tests/test_cuda_paths.py::test_real_gpu_run_fills_device_figures": [
            grid({"framework": ["torch", "keras"], "keras_backend": ["torch", "jax"]}, model="cnn", device="cuda", epochs=2,
                 limit=2000, infer_batch_sizes=(1,), **fixed)],
        "tests/test_variants.py::test_real_gpu_torch_cnn_in_every_gpu_precision": [
            grid({"precision": ["fp16-mixed", "tf32", "bf16"]}, **cnn_cuda, epochs=2, limit=2000,
                 infer_batch_sizes=(1, 32))],
    }


def gpu_tests_estimate_s(threads: int | None = None) -> float:
    """The gpu-marked tests: pytest itself, then each `fashionbench run` they make and its cases."""
    runs = [run for test in gpu_test_runs(threads).values() for run in test]
    return PYTEST_START_S + sum(CLI_START_S + sum(estimate_s(spec) for spec in run) for run in runs)


def steps_s(threads: int | None = None) -> dict[str, float]:
    """The steps around the plan with their estimates, in the order the check runs them."""
    return {"environment": STEPS_S["environment"], "probe": STEPS_S["probe"],
            "gpu-marked tests": gpu_tests_estimate_s(threads), "report": STEPS_S["report"]}


def total_estimate_s(cases: list[Planned], threads: int | None = None) -> float:
    """Plan plus the steps around it."""
    return sum(c.estimate_s for c in cases) + sum(steps_s(threads).values())


def case_timeout_s(case: Planned) -> float:
    """Four times the estimate, at least two minutes: a slow case is measured, a hung one does not eat the budget."""
    return max(120.0, 4 * math.ceil(case.estimate_s))


def environment() -> dict[str, Any]:
    """What this box has: GPUs, driver, NVML and CUDA driver versions, and the version of every package the suite uses."""
    return {"gpus": gpu_inventory(), **driver_versions(), "cpu_count": os.cpu_count(),
            "packages": {p: package_version(p) or "not installed" for p in PACKAGES}}

