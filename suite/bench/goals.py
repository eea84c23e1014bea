"""The speed-goals benchmark: one run on this machine, every figure printed next to its goal with a verdict.

Goals (issue #7): harness ≥ 0.95× a bare torch loop; Keras's default path no slower than a plain `model.fit` and
the tuned one faster; best variant per framework and model on CPU ≥ the model's MFU goal (suite.core.models.CATALOG);
the default quick matrix ≤ 90 s wall; CV of the CNN's steady throughput over 5 repeats ≤ 3 %.

GPU goals (issue #20, part `gpu`; skipped with the reason where there is no GPU): on one GPU at batch 500 fp32, the
best torch variant of dense and of the CNN within 1.25× of its launch-free floor, and Keras on JAX within 1.5× of torch
eager per training step. The GPU check's summary judges its own records with the same functions.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from suite.bench import calibrate
from suite.core.models import CATALOG
from suite.core.spec import RunSpec
from suite.record.schema import RunRecord
from suite.record.stats import cv_pct, spread_pct
from suite.run.executors import LocalExecutor
from suite.run.runner import no_gpu_reason, run_plan

QUICK_MATRIX_GOAL_S = 90.0
CV_GOAL_PCT = 3.0
CV_REPEATS = 5
# Dense epochs take ~1-3 s on full data; CNN epochs ~20 s, so CNN screening uses a quarter of the training split.
SCREEN_SETTINGS = {"dense": {"epochs": 3}, "cnn": {"epochs": 3, "limit": 12_000}}
# Settings tried per framework and model; the default comes first and is the reference. Chosen from exploratory
# sweeps on the 2-vCPU VM: larger batches for the dense net, channels-last for the torch CNN (torch.compile was
# slower for the CNN on CPU), steps_per_execution and the JAX backend for Keras.
CANDIDATES: dict[tuple[str, str], list[dict[str, object]]] = {
    ("torch", "dense"): [{}, {"batch_size": 2048}, {"batch_size": 2048, "compile": "default"}],
    ("torch", "cnn"): [{}, {"channels_last": True}, {"channels_last": True, "batch_size": 64}],
    ("keras", "dense"): [{}, {"steps_per_execution": 16}, {"keras_backend": "jax", "steps_per_execution": 16},
                         {"keras_backend": "jax", "batch_size": 2048}],
    ("keras", "cnn"): [{}, {"jit_compile": "on"}, {"keras_backend": "jax"}],
}
# The tuned Keras path compared with a plain model.fit: the same TensorFlow backend and batch size.
KERAS_TUNED = {"steps_per_execution": 16}


# GPU goals (issue #20): one GPU, batch 500, fp32, one device.
GPU_GOAL_SETTINGS = {"device": "cuda", "batch_size": 500, "precision": "fp32", "devices": 1}
FLOOR_GOAL = 1.25  # the best torch variant's sync-free step / its launch-free floor
KERAS_JAX_GOAL = 1.5  # Keras-on-JAX step / torch eager step, same model and GPU
GPU_GOAL_MODELS = ("dense", "cnn")
# The torch variants the GPU goals compare (2 epochs, full split): eager, torch.compile's CUDA graphs, the whole step.
GPU_TORCH_VARIANTS: tuple[dict[str, str], ...] = ({}, {"compile": "reduce-overhead"}, {"step": "graph"})


@dataclass(frozen=True)
class Verdict:
    """One goal: what was measured, against which goal, and whether it is met (None: not measured, the detail says why)."""

    name: str
    measured: str
    goal: str
    met: bool | None
    detail: str = ""

    @property
    def verdict(self) -> str:
        """met, missed or not measured."""
        return {True: "met", False: "missed", None: "not measured"}[self.met]

    def line(self) -> str:
        """One printed row."""
        shown = {True: "MEETS", False: "MISSES", None: "NOT MEASURED"}[self.met]
        return f"{self.name:<44} {self.measured:>12}  goal {self.goal:<8} {shown:<6}  {self.detail}"


def ratio_verdict(name: str, comparison: calibrate.Comparison, goal: float, strictly: bool = False) -> Verdict:
    """median(first)/median(second) against a ratio goal, with both medians and spreads as detail."""
    ratio = comparison.ratio
    met = ratio > goal if strictly else ratio >= goal
    detail = (f"{statistics.median(comparison.first):,.0f} vs {statistics.median(comparison.second):,.0f} samples/s, "
              f"{len(comparison.first)} alternated rounds, spread {spread_pct(comparison.first):.1f}% / "
              f"{spread_pct(comparison.second):.1f}%")
    return Verdict(name, f"{ratio:.3f}", f"{'>' if strictly else '>='} {goal:g}", met, detail)


def harness_goals(rounds: int, threads: int, timeout_s: float) -> list[Verdict]:
    """Suite vs bare loop: torch dense (harness cost) and keras dense default/tuned (vs a plain model.fit)."""
    base = {"model": "dense", "device": "cpu", "epochs": 4, "threads": threads}
    torch_spec = RunSpec(framework="torch", **base)
    keras_spec = RunSpec(framework="keras", **base)
    keras_tuned = replace(keras_spec, **KERAS_TUNED)
    return [
        ratio_verdict("harness: suite torch dense / bare torch loop", calibrate.harness(torch_spec, rounds, timeout_s), 0.95),
        ratio_verdict("keras default path / plain model.fit (dense)", calibrate.harness(keras_spec, rounds, timeout_s), 1.0),
        ratio_verdict(f"keras tuned ({_flags(keras_tuned)}) / plain fit", calibrate.harness(keras_tuned, rounds, timeout_s),
                      1.0, strictly=True),
    ]


def _flags(spec: RunSpec, reference: RunSpec | None = None) -> str:
    """The settings where `spec` differs from `reference` (the defaults when None)."""
    if reference is None:
        return " ".join(f"{k}={v}" for k, v in spec.variant_flags().items()) or "default"
    ref = reference.to_dict()
    return " ".join(f"{k}={v}" for k, v in spec.to_dict().items() if v != ref[k]) or "default"


def candidate_specs(threads: int) -> list[RunSpec]:
    """Every screening case: default first, then the tuned settings, per framework and model."""
    return [
        RunSpec(framework=framework, model=model, device="cpu", threads=threads, **SCREEN_SETTINGS[model], **settings)
        for (framework, model), tries in CANDIDATES.items() for settings in tries
    ]


def best_variants(records: Iterable[RunRecord]) -> list[tuple[RunRecord, RunRecord]]:
    """(default, highest-MFU) record per framework and model; the default is the group's first record."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.spec["framework"], record.spec["model"]), []).append(record)
    pairs = []
    for group in groups.values():
        measured = [r for r in group if r.status == "ok" and r.mfu_pct is not None]
        if group[0] in measured:
            pairs.append((group[0], max(measured, key=lambda r: r.mfu_pct or 0.0)))
    return pairs


def variant_table(pairs: list[tuple[RunRecord, RunRecord]]) -> list[str]:
    """Default vs best variant per framework and model: samples/s, MFU, test accuracy."""
    lines = [f"{'case':<14} {'setting':<44} {'samples/s':>10} {'MFU %':>6} {'test acc':>8}"]
    for default, best in pairs:
        for role, record in (("default", default), ("best", best)):
            name = f"{record.spec['framework']}/{record.spec['model']}"
            setting = f"{role}: {_flags(record.run_spec, default.run_spec)}"
            lines.append(f"{name:<14} {setting:<44} {record.train_steady_samples_per_s:>10,.0f} "
                         f"{record.mfu_pct:>6.1f} {record.test_accuracy:>8.4f}")
    return lines


def mfu_goals(pairs: list[tuple[RunRecord, RunRecord]]) -> list[Verdict]:
    """Best variant's MFU against its model's goal (suite.core.models.CATALOG); models without one are left out."""
    verdicts = []
    for default, best in pairs:
        model = best.spec["model"]
        goal = CATALOG[model].mfu_goal_pct
        if goal is None:
            continue
        verdicts.append(Verdict(f"best MFU {best.spec['framework']}/{model} ({_flags(best.run_spec, default.run_spec)})",
                                f"{best.mfu_pct:.1f}%", f">= {goal:g}%", best.mfu_pct >= goal,
                                f"{best.train_steady_samples_per_s:,.0f} samples/s, peak {best.peak_flops_dtype} "
                                f"{(best.peak_flops_per_s or 0) / 1e9:,.1f} GFLOP/s"))
    return verdicts


def quick_matrix_goal(threads: int, timeout_s: float) -> Verdict:
    """Wall time of the CLI's default quick matrix, measured around the whole process (start-up included)."""
    with tempfile.TemporaryDirectory(prefix="fashionbench-quick-") as tmp:
        command = [sys.executable, "-m", "suite", "run", "--quick", "--threads", str(threads), "--results", tmp]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        wall_s = time.perf_counter() - t0
    ok = done.returncode == 0
    detail = f"`fashionbench run --quick` (2 frameworks × dense/cnn × cpu, 1 epoch, full data); exit {done.returncode}"
    return Verdict("quick matrix wall, start-up included", f"{wall_s:.1f} s", f"<= {QUICK_MATRIX_GOAL_S:g} s",
                   ok and wall_s <= QUICK_MATRIX_GOAL_S, detail)


def repeat_noise_goal(records: list[RunRecord]) -> Verdict:
    """CV of steady throughput over the repeats of one case."""
    values = [r.train_steady_samples_per_s for r in records if r.status == "ok" and r.train_steady_samples_per_s]
    spec = records[0].run_spec
    name = f"CV steady samples/s, {spec.framework}/{spec.model} × {len(values)}"
    if len(values) < 2:
        return Verdict(name, "-", f"<= {CV_GOAL_PCT:g}%", False, "fewer than 2 ok repeats")
    detail = (f"{', '.join(f'{v:,.0f}' for v in values)} samples/s; limit {spec.limit}, {spec.epochs} epochs, "
              f"one process per repeat")
    return Verdict(name, f"{cv_pct(values):.2f}%", f"<= {CV_GOAL_PCT:g}%", cv_pct(values) <= CV_GOAL_PCT, detail)


def _gpu_goal_runs(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The ok records the GPU goals read: one GPU, batch 500, fp32, no model variant (dropout, batchnorm, augment)."""
    plain = ("dropout", "batchnorm", "augment", "early_stopping")
    return [r for r in records if r.status == "ok" and all(r.spec.get(k) == v for k, v in GPU_GOAL_SETTINGS.items())
            and not any(r.spec.get(k) for k in plain)]


def _gpu(record: RunRecord) -> str:
    return next((g.get("name", "GPU") for g in record.machine.gpus), "GPU") + f" on {record.machine.hostname}"


def floor_goal(records: list[RunRecord], model: str) -> Verdict:
    """The fastest torch variant of `model` (lowest sync-free step) against its own launch-free floor."""
    name = f"best torch {model} step / launch-free floor"
    runs = [r for r in records if r.spec["framework"] == "torch" and r.spec["model"] == model and r.step_over_floor]
    if not runs:
        return Verdict(name, "-", f"<= {FLOOR_GOAL:g}", None, f"no ok torch/{model}/cuda record at batch 500 fp32 with "
                       "a floor (run `fashionbench goals --only gpu` on a GPU box)")
    best = min(runs, key=lambda r: r.floor_step_ms * r.step_over_floor)  # the training loop's own step
    busy = "n/a" if best.kernel_busy_pct is None else f"{best.kernel_busy_pct:.0f} %"
    detail = (f"{_flags(best.run_spec, RunSpec(framework='torch', model=model))}: step "
              f"{best.floor_step_ms * best.step_over_floor:.3f} ms vs floor {best.floor_step_ms:.3f} ms; kernel busy "
              f"{busy}, {best.kernel_launches_per_step or 0:.0f} kernel launches/step; {len(runs)} variant(s); {_gpu(best)}")
    return Verdict(name, f"{best.step_over_floor:.2f}x", f"<= {FLOOR_GOAL:g}", best.step_over_floor <= FLOOR_GOAL, detail)


def keras_jax_goal(records: list[RunRecord], model: str) -> Verdict:
    """Keras-on-JAX's steady step against torch eager's, same model, same machine: medians of their training rates."""
    name = f"Keras on JAX {model} step / torch eager step"
    keras = [r for r in records if r.spec["framework"] == "keras" and r.spec["keras_backend"] == "jax"
             and r.spec["model"] == model and r.train_steady_samples_per_s]
    machines = {r.machine.machine_id for r in keras}
    eager = [r for r in records if r.spec["framework"] == "torch" and r.spec["model"] == model and r.machine.machine_id in
             machines and not r.run_spec.variant_flags() and r.train_steady_samples_per_s]
    if not keras or not eager:
        missing = "keras_backend=jax" if not keras else "torch eager"
        return Verdict(name, "-", f"<= {KERAS_JAX_GOAL:g}", None, f"no ok {missing} {model} record at batch 500 fp32 on "
                       "this GPU")
    torch_rate = statistics.median(r.train_steady_samples_per_s for r in eager)
    keras_rate = statistics.median(r.train_steady_samples_per_s for r in keras)
    ratio = torch_rate / keras_rate
    detail = (f"{keras_rate:,.0f} vs {torch_rate:,.0f} samples/s (data on {keras[0].train_data_device}); {_gpu(keras[0])}")
    return Verdict(name, f"{ratio:.2f}x", f"<= {KERAS_JAX_GOAL:g}", ratio <= KERAS_JAX_GOAL, detail)


def gpu_goal_verdicts(records: Iterable[RunRecord]) -> list[Verdict]:
    """Every GPU goal judged on these records: not measured where the runs it needs are missing."""
    runs = _gpu_goal_runs(records)
    return [*(floor_goal(runs, m) for m in GPU_GOAL_MODELS), *(keras_jax_goal(runs, m) for m in GPU_GOAL_MODELS)]


def gpu_goal_specs(threads: int) -> list[RunSpec]:
    """The cases the GPU goals need: each torch variant and Keras on JAX, dense and CNN, 2 epochs on the full split."""
    base = {**{k: v for k, v in GPU_GOAL_SETTINGS.items() if k != "devices"}, "epochs": 2, "threads": threads,
            "infer_batch_sizes": (1024,)}
    torch_cases = [RunSpec(framework="torch", model=m, **base, **variant) for m in GPU_GOAL_MODELS
                   for variant in GPU_TORCH_VARIANTS]
    return [*torch_cases, *(RunSpec(framework="keras", model=m, keras_backend="jax", **base) for m in GPU_GOAL_MODELS)]


def gpu_goals(results: Path, threads: int, timeout_s: float, no_gpu: str | None) -> list[Verdict]:
    """Run the GPU goals' cases (when there is a GPU) and judge them; without one every goal is not measured."""
    if no_gpu:
        return [replace(v, detail=f"skipped: no CUDA GPU ({no_gpu})") for v in gpu_goal_verdicts([])]
    return gpu_goal_verdicts(run_plan(gpu_goal_specs(threads), results, LocalExecutor(timeout_s)).records)


def run_goals(results: Path, threads: int, rounds: int, timeout_s: float, only: set[str],
                say: Callable[[str], None]) -> list[Verdict]:
    """Run the chosen parts, storing every suite case in `results`; returns the verdicts in order."""
    verdicts: list[Verdict] = []
    if "harness" in only:
        verdicts += harness_goals(rounds, threads, timeout_s)
        for v in verdicts:
            say(v.line())
    if "variants" in only:
        outcome = run_plan(candidate_specs(threads), results, LocalExecutor(timeout_s))
        pairs = best_variants(outcome.records)
        for line in variant_table(pairs):
            say(line)
        for v in mfu_goals(pairs):
            verdicts.append(v)
            say(v.line())
    if "quick" in only:
        verdicts.append(quick_matrix_goal(threads, timeout_s))
        say(verdicts[-1].line())
    if "gpu" in only:
        for v in gpu_goals(results, threads, timeout_s, no_gpu_reason()):
            verdicts.append(v)
            say(v.line())
    if "noise" in only:
        for framework in ("torch", "keras"):
            base = RunSpec(framework=framework, model="cnn", device="cpu", threads=threads, **SCREEN_SETTINGS["cnn"])
            specs = [replace(base, seed=base.seed + i, repeat=i) for i in range(CV_REPEATS)]
            verdicts.append(repeat_noise_goal(run_plan(specs, results, LocalExecutor(timeout_s)).records))
            say(verdicts[-1].line())
    return verdicts
