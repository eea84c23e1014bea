"""The speed-goals benchmark: one run on this machine, every figure printed next to its goal with a verdict.

Goals (issue #7): harness ≥ 0.95× a bare torch loop; Keras's default path no slower than a plain `model.fit` and
the tuned one faster; best variant per framework and model on CPU ≥ the model's MFU goal (suite.core.models.CATALOG);
the default quick matrix ≤ 90 s wall; CV of the CNN's steady throughput over 5 repeats ≤ 3 %.
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
from suite.run.runner import run_plan

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


@dataclass(frozen=True)
class Verdict:
    """One goal: what was measured, against which goal, and whether it is met."""

    name: str
    measured: str
    goal: str
    met: bool
    detail: str = ""

    def line(self) -> str:
        """One printed row."""
        return f"{self.name:<44} {self.measured:>12}  goal {self.goal:<8} {'MEETS' if self.met else 'MISSES':<6}  {self.detail}"


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
    if "noise" in only:
        for framework in ("torch", "keras"):
            base = RunSpec(framework=framework, model="cnn", device="cpu", threads=threads, **SCREEN_SETTINGS["cnn"])
            specs = [replace(base, seed=base.seed + i, repeat=i) for i in range(CV_REPEATS)]
            verdicts.append(repeat_noise_goal(run_plan(specs, results, LocalExecutor(timeout_s)).records))
            say(verdicts[-1].line())
    return verdicts
