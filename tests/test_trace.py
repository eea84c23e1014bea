"""Kernel-busy % and launches per step from a Chrome trace: the interval maths, torch and JAX trace layouts, a real
CPU trace written by torch.profiler, and --trace end to end."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from suite.backends.trace import (
    STEP_LABEL,
    busy_pct,
    jax_kernels,
    read_trace,
    step_figures,
    torch_kernels,
    union_us,
)
from suite.record.store import read_store
from tests.conftest import needs_data, run_cli


def test_union_counts_overlapping_kernels_once_and_clips_to_the_window():
    assert union_us([], (0, 10)) == 0
    assert union_us([(0, 4), (2, 6), (8, 9)], (0, 10)) == 7  # [0, 6) and [8, 9)
    assert union_us([(1, 9), (2, 3), (4, 5)], (0, 10)) == 8  # nested ones add nothing
    assert union_us([(-5, 2), (9, 20), (30, 40)], (0, 10)) == 3  # clipped at both ends, outside dropped
    assert union_us([(5, 6), (1, 2)], (0, 10)) == 2  # order does not matter
    assert busy_pct([(0, 4), (2, 6)], (0, 12)) == pytest.approx(50.0)
    assert busy_pct([(0, 1)], (5, 5)) is None


def _x(name: str, ts: float, dur: float, **extra) -> dict:
    return {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": 1, **extra}


def _torch_trace(steps: int, graphs: bool) -> list[dict]:
    """A Kineto-like trace: each 100 µs step annotated, either 4 launches of 10 µs kernels or one graph launch."""
    events = []
    for i in range(steps):
        t = 100.0 * i
        events.append(_x(STEP_LABEL, t, 60, cat="user_annotation"))
        if graphs:
            events.append(_x("cudaGraphLaunch", t + 1, 5, cat="cuda_runtime"))
        else:
            events += [_x("cudaLaunchKernel", t + 10 * k, 5, cat="cuda_runtime") for k in range(4)]
        events += [_x("kernel", t + 20 + 10 * k, 10, cat="kernel", pid=0, tid=7) for k in range(4)]
        events.append(_x("aten::mm", t, 50, cat="cpu_op"))
    return events


@pytest.mark.parametrize("graphs", [False, True])
def test_step_figures_of_a_torch_trace(graphs: bool):
    events = _torch_trace(20, graphs)
    figures = step_figures(events, torch_kernels(events), STEP_LABEL, 20, count_launches=True)
    # The window runs from the first annotation to the last kernel's end: 19 * 100 + 20 + 40 = 1960 µs; busy 800 µs.
    assert figures["kernel_busy_pct"] == pytest.approx(100 * 20 * 40 / 1960)
    assert figures["gpu_kernels_per_step"] == 4 and figures["profiled_steps"] == 20 and figures["profile_note"] is None
    assert figures["kernel_launches_per_step"] == (0 if graphs else 4)
    assert figures["graph_launches_per_step"] == (1 if graphs else 0)


def test_step_figures_say_why_when_there_is_nothing_to_read():
    assert "no 'fashionbench.step' annotation" in step_figures([], [], STEP_LABEL, 20, True)["profile_note"]
    cpu_only = [_x(STEP_LABEL, 0, 50, cat="user_annotation"), _x("aten::mm", 0, 40, cat="cpu_op")]
    figures = step_figures(cpu_only, torch_kernels(cpu_only), STEP_LABEL, 1, count_launches=False)
    assert figures["kernel_busy_pct"] is None and figures["profile_note"] == "no GPU kernel in the profiled steps"
    assert "kernel_launches_per_step" not in figures  # not counted is not zero


def test_jax_kernels_are_the_gpu_stream_rows_only():
    meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
            {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/device:GPU:0"}},
            {"ph": "M", "name": "thread_name", "pid": 2, "tid": 5, "args": {"name": "Stream #14(Compute)"}},
            {"ph": "M", "name": "thread_name", "pid": 2, "tid": 6, "args": {"name": "XLA Modules"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 5, "args": {"name": "Stream lookalike on the host"}}]
    events = [*meta, _x("fusion.1", 10, 5, pid=2, tid=5), _x("jit_train_step", 0, 100, pid=2, tid=6),
              _x("python", 0, 100, pid=1, tid=5)]
    assert jax_kernels(events) == [(10.0, 15.0)]


def test_a_real_cpu_trace_from_torch_profiler_is_written_and_read(tmp_path: Path):
    torch = pytest.importorskip("torch")
    from suite.backends.trace import profile_torch

    model = torch.nn.Linear(8, 4)
    path = tmp_path / "traces" / "case.trace.json.gz"
    events = profile_torch(lambda i: model(torch.randn(16, 8)).sum().backward(), 3, lambda: None, False, path)
    with gzip.open(path, "rt") as handle:
        assert json.load(handle)["traceEvents"]  # a Chrome trace Perfetto opens
    assert read_trace(path) == events
    figures = step_figures(events, torch_kernels(events), STEP_LABEL, 3, count_launches=False)
    assert figures["profiled_steps"] == 3 and sum(e.get("name") == STEP_LABEL for e in events) == 3
    assert figures["profile_note"] == "no GPU kernel in the profiled steps"


@needs_data
def test_run_trace_writes_one_trace_per_case_named_in_its_record(tmp_path: Path, probe_cache: Path):
    out = run_cli("run", "--framework", "torch", "--model", "dense", "--device", "cpu", "--epochs", "2", "--limit", "500",
                  "--batch-size", "100", "--infer-batch-sizes", "1", "--trace", "--results", str(tmp_path),
                  cache=probe_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    (record,) = read_store([tmp_path])[0]
    assert record.status == "ok" and record.trace_file and record.trace_file.startswith("traces/")
    events = read_trace(tmp_path / record.trace_file)
    assert sum(e.get("name") == STEP_LABEL for e in events) == record.profiled_steps == 20
    assert record.kernel_busy_pct is None and record.profile_note == "a CPU case runs no GPU kernels"
    assert record.floor_step_ms is None  # the floor is a CUDA figure
    refused = run_cli("run", "--framework", "torch", "--trace", "--executor", "ray", "--results", str(tmp_path / "r"))
    assert refused.returncode == 2 and "use --executor local with --trace" in refused.stderr
