"""Steady steps under a profiler: kernel-busy %, kernels and launches per step, and the Chrome/Perfetto trace they come from.

Both profilers write the Chrome trace-event format (torch.profiler's export_chrome_trace, jax.profiler's
perfetto_trace.json.gz), so the figures are read from the trace file itself, one way for both. torch and JAX are
imported inside the functions: importing this module loads no framework.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from suite.record.safe_load import parse_json

STEP_LABEL = "fashionbench.step"  # one annotation around each profiled torch step
STEPS_LABEL = "fashionbench.steps"  # one annotation around a profiled Keras fit of several steps
# Host API calls that put one kernel on the GPU (runtime and driver API), and those that launch a whole CUDA graph.
KERNEL_LAUNCH_CALLS = frozenset({"cudaLaunchKernel", "cudaLaunchKernelExC", "cudaLaunchCooperativeKernel",
                                 "cuLaunchKernel", "cuLaunchKernelEx", "cuLaunchCooperativeKernel"})
GRAPH_LAUNCH_CALLS = frozenset({"cudaGraphLaunch", "cuGraphLaunch"})
Interval = tuple[float, float]


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The trace events of a Chrome trace file (plain or gzipped JSON, an object with traceEvents or a bare list)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        data = parse_json(handle.read())
    return data.get("traceEvents", []) if isinstance(data, dict) else data


def union_us(intervals: Iterable[Interval], window: Interval) -> float:
    """Length of the union of [start, end) intervals, each clipped to the window (overlapping kernels count once)."""
    low, high = window
    clipped = sorted((max(s, low), min(e, high)) for s, e in intervals if min(e, high) > max(s, low))
    total, run_start, run_end = 0.0, None, None
    for start, end in clipped:
        if run_end is None or start > run_end:
            if run_end is not None:
                total += run_end - run_start
            run_start, run_end = start, end
        else:
            run_end = max(run_end, end)
    return total + (run_end - run_start if run_end is not None else 0.0)


def busy_pct(intervals: list[Interval], window: Interval) -> float | None:
    """Share of the window covered by at least one interval, in percent (None for an empty window)."""
    width = window[1] - window[0]
    return None if width <= 0 else 100.0 * union_us(intervals, window) / width


def _complete(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("ph") == "X" and "ts" in e]


def _span(event: dict[str, Any]) -> Interval:
    start = float(event["ts"])
    return start, start + float(event.get("dur", 0.0))


def torch_kernels(events: list[dict[str, Any]]) -> list[Interval]:
    """GPU kernel intervals of a torch.profiler (Kineto) trace: its `kernel` category."""
    return [_span(e) for e in _complete(events) if e.get("cat") == "kernel"]


def jax_kernels(events: list[dict[str, Any]]) -> list[Interval]:
    """GPU kernel intervals of a jax.profiler trace: events on the stream threads of a /device:GPU process (its
    "XLA Modules"/"XLA Ops" rows span whole modules, gaps included, so they are left out)."""
    gpu_pids = {e["pid"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"
                and "/device:GPU" in str(e.get("args", {}).get("name", ""))}
    streams = {(e["pid"], e.get("tid")) for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"
               and e["pid"] in gpu_pids and str(e.get("args", {}).get("name", "")).startswith("Stream")}
    return [_span(e) for e in _complete(events) if (e.get("pid"), e.get("tid")) in streams]


def step_figures(events: list[dict[str, Any]], kernels: list[Interval], label: str, steps: int,
                 count_launches: bool) -> dict[str, Any]:
    """The RunRecord profile fields over the window the `label` annotations span (to the last kernel that ends after
    them, which the final device sync waited for); launches are counted only where the trace holds the host API."""
    marks = [_span(e) for e in _complete(events) if e.get("name") == label]
    if not marks:
        return {"profile_note": f"no {label!r} annotation in the trace"}
    low, high = min(s for s, _ in marks), max(e for _, e in marks)
    high = max([high, *(end for start, end in kernels if start < high)])
    inside = [k for k in kernels if low <= k[0] < high]
    figures: dict[str, Any] = {"profiled_steps": steps, "gpu_kernels_per_step": len(inside) / steps,
                               "kernel_busy_pct": busy_pct(inside, (low, high)) if inside else None,
                               "profile_note": None if inside else "no GPU kernel in the profiled steps"}
    if count_launches:
        names = [e.get("name") for e in _complete(events) if low <= float(e["ts"]) < high]
        figures["kernel_launches_per_step"] = sum(n in KERNEL_LAUNCH_CALLS for n in names) / steps
        figures["graph_launches_per_step"] = sum(n in GRAPH_LAUNCH_CALLS for n in names) / steps
    return figures


def keep_trace(made: Path, trace_path: Path | None) -> None:
    """Move the trace the profiler wrote to where the record names it (or drop it when no --trace was asked)."""
    if trace_path is not None:
        trace_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(made), trace_path)


def profile_torch(step: Callable[[int], None], calls: int, sync: Callable[[], None], cuda: bool,
                  trace_path: Path | None, label: str = STEP_LABEL) -> list[dict[str, Any]]:
    """`step(i)` for i < calls under torch.profiler (CPU, plus CUDA activity on a GPU), each call annotated with `label`
    and the device synchronised before the profile ends; returns the trace events (kept at `trace_path` if given)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    sync()
    with profile(activities=activities) as prof:
        for i in range(calls):
            with record_function(label):
                step(i)
        sync()
    with tempfile.TemporaryDirectory(prefix="fashionbench-trace-") as tmp:
        made = Path(tmp) / "trace.json.gz"
        prof.export_chrome_trace(str(made))
        events = read_trace(made)
        keep_trace(made, trace_path)
    return events


def profile_jax(run: Callable[[], None], trace_path: Path | None) -> list[dict[str, Any]]:
    """`run()` inside jax.profiler.trace with a perfetto trace, annotated with STEPS_LABEL; returns the trace events."""
    import jax

    with tempfile.TemporaryDirectory(prefix="fashionbench-jax-trace-") as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            with jax.profiler.TraceAnnotation(STEPS_LABEL):
                run()
        made = next(Path(tmp).rglob("perfetto_trace.json.gz"))
        events = read_trace(made)
        keep_trace(made, trace_path)
    return events
