"""The GPU goals (batch 500 fp32 on one GPU): judged on synthetic records here, skipped with the reason without a GPU,
shown as goal rows in the GPU check's summary, and the check's plan carrying the graph variant and the batch sweep."""

from __future__ import annotations

import pytest

from suite.bench import gpucheck
from suite.bench.goals import FLOOR_GOAL, gpu_goal_specs, gpu_goal_verdicts, gpu_goals, run_goals
from suite.core.spec import RunSpec
from suite.measure.machine import fingerprint
from suite.record.schema import RunRecord, SweepPoint
from suite.report.gpu_summary import CheckRun, summary_markdown

H200 = {"index": 0, "name": "NVIDIA H200", "memory_total_bytes": 141 * 2**30}


def _run(framework: str, model: str, samples_per_s: float, floor_ms: float | None = None, **settings) -> RunRecord:
    spec = RunSpec(framework=framework, model=model, device="cuda", batch_size=500, epochs=2, **settings)
    step_ms = 1000 * 500 / samples_per_s
    figures = {"train_steady_samples_per_s": samples_per_s, "sync_free_step_ms": step_ms,
               "train_data_device": "cuda:0 (jax arrays)" if framework == "keras" else "cuda:0"}
    if floor_ms:
        figures |= {"floor_step_ms": floor_ms, "step_over_floor": step_ms / floor_ms, "kernel_busy_pct": 40.0,
                    "kernel_launches_per_step": 60.0}
    machine = fingerprint().model_copy(update={"gpus": [H200]})
    return RunRecord(case_id=spec.id, case_key=spec.case_key, machine=machine, spec=spec.to_dict(), status="ok", **figures)


def _box(graph_rate: float = 1_000_000.0, keras_rate: float = 250_000.0) -> list[RunRecord]:
    """Dense and CNN: eager at 300k samples/s (1.667 ms a step) with a 0.4 ms floor, the graph variant at graph_rate."""
    records = []
    for model in ("dense", "cnn"):
        records += [_run("torch", model, 300_000.0, 0.4), _run("torch", model, 250_000.0, 0.4, compile="reduce-overhead"),
                    _run("torch", model, graph_rate, 0.4, step="graph"),
                    _run("keras", model, keras_rate, keras_backend="jax")]
    return records


def test_the_best_torch_variant_is_judged_against_its_floor():
    dense_floor, cnn_floor, keras_dense, keras_cnn = gpu_goal_verdicts(_box())
    # The graph variant: 0.5 ms a step over a 0.4 ms floor = 1.25x, exactly the goal.
    assert dense_floor.met is True and dense_floor.measured == "1.25x" and "step=graph" in dense_floor.detail
    assert "kernel busy 40 %" in dense_floor.detail and "NVIDIA H200" in dense_floor.detail
    assert keras_dense.met is True and keras_dense.measured == "1.20x"  # 300k torch eager / 250k Keras on JAX
    assert "cuda:0 (jax arrays)" in keras_dense.detail
    slow = gpu_goal_verdicts(_box(graph_rate=900_000.0, keras_rate=150_000.0))
    assert [v.met for v in slow] == [False, False, False, False]
    assert slow[0].measured == f"{0.5556 / 0.4:.2f}x" and FLOOR_GOAL == 1.25


def test_goals_are_not_measured_without_the_runs_they_need():
    cpu_and_variants = [_run("torch", "dense", 300_000.0, 0.4, dropout=0.2), _run("torch", "cnn", 300_000.0)]
    verdicts = gpu_goal_verdicts(cpu_and_variants)  # a model variant and a record without a floor do not count
    assert [v.verdict for v in verdicts] == ["not measured"] * 4
    assert "no ok torch/dense/cuda record at batch 500 fp32 with a floor" in verdicts[0].detail
    assert "not measured" in verdicts[2].verdict and "keras_backend=jax dense" in verdicts[2].detail
    only_keras = gpu_goal_verdicts([_run("keras", "cnn", 250_000.0, keras_backend="jax")])
    assert "no ok torch eager cnn record" in only_keras[3].detail


def test_without_a_gpu_the_gpu_part_is_skipped_with_the_reason_and_runs_nothing(tmp_path, monkeypatch):
    from suite.bench import goals

    monkeypatch.setattr(goals, "no_gpu_reason", lambda: "NVML lists no GPU")  # also on a box that has one
    lines: list[str] = []
    verdicts = run_goals(tmp_path, threads=2, rounds=1, timeout_s=10, only={"gpu"}, say=lines.append)
    assert len(verdicts) == 4 and all(v.met is None for v in verdicts)
    assert all("skipped: no CUDA GPU (" in v.detail for v in verdicts) and all("NOT MEASURED" in line for line in lines)
    assert not any(tmp_path.iterdir())
    assert gpu_goals(tmp_path, 2, 10, "NVML library not found")[0].detail == "skipped: no CUDA GPU (NVML library not found)"
    assert {(s.framework, s.model, s.step, s.compile, s.keras_backend) for s in gpu_goal_specs(2)} >= {
        ("torch", "dense", "graph", "none", "tensorflow"), ("keras", "cnn", "eager", "none", "jax")}


def test_the_check_summary_has_goal_rows_floor_columns_and_the_sweep():
    cases = gpucheck.planned(threads=2)
    graph_case = next(c for c in cases if c.spec.step == "graph" and c.spec.model == "cnn")
    assert graph_case.part == "launch" and graph_case.batch_sweep == (500, 2048, 8192)
    record = _run("torch", "cnn", 1_000_000.0, 0.4, step="graph").model_copy(update={
        "case_id": graph_case.spec.id, "spec": graph_case.spec.to_dict(),
        "batch_sweep": [SweepPoint(batch_size=500, eager_step_ms=1.6, floor_step_ms=0.4, floor_replays=200),
                        SweepPoint(batch_size=8192, eager_step_ms=5.5, floor_step_ms=5.0, floor_replays=200)]})
    page = summary_markdown(CheckRun(found=gpucheck.environment(), tests_line="1 passed", probes={}, cases=cases,
                                     records=[record], checks=[], wall_s=1.0))
    assert "## Goals (batch 500, fp32, one GPU)" in page
    assert "| best torch cnn step / launch-free floor | 1.25x | <= 1.25 | met |" in page
    assert "| best torch dense step / launch-free floor | - | <= 1.25 | not measured |" in page
    row = next(line for line in page.splitlines() if line.startswith(f"| {graph_case.spec.label} | ok |"))
    assert "| 0.400 | 1.25 |" in row and "| 40 |" in row
    assert f"| {graph_case.spec.label} | 500 | 1.600 | 0.400 | 4.00 |" in page
    assert f"| {graph_case.spec.label} | 8192 | 5.500 | 5.000 | 1.10 |" in page
    assert len(page.splitlines()) < 90


def test_the_launch_part_fits_the_budget_and_estimates_its_extras():
    cases = gpucheck.planned(threads=2)
    launch = [c for c in cases if c.part == "launch"]
    assert [c.spec.label for c in launch] == ["torch/dense/cuda step=graph", "torch/cnn/cuda step=graph"]
    eager = RunSpec(framework="torch", model="cnn", device="cuda", epochs=2, batch_size=500, infer_batch_sizes=(1, 1024))
    assert gpucheck.launch_extras_s(eager) == gpucheck.LAUNCH_FIGURES_S["torch"]
    graph = launch[1]
    expected = (gpucheck.estimate_s(eager) - 2 * gpucheck.INFERENCE_S + gpucheck.CAPTURE_S
                + 3 * gpucheck.SWEEP_POINT_S["cnn"])
    assert graph.estimate_s == pytest.approx(expected)
    assert gpucheck.launch_extras_s(RunSpec(framework="torch", model="cnn", device="cpu")) == 0
    assert gpucheck.total_estimate_s(cases) <= gpucheck.BUDGET_S
