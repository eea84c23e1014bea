"""What `fashionbench run` shows while a plan runs: a live rich display on a terminal, plain lines elsewhere, or nothing.

Every view gets the same three calls from the runner: a case starts, its worker reports an event, its record is stored.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from suite.core.spec import RunSpec
from suite.record.schema import RunRecord
from suite.run.eta import PlanEta

PLAIN_STEP_EVERY_S = 15.0  # in a CI log, one in-epoch line per this many seconds is enough


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def describe(event: dict[str, Any]) -> str:
    """One human phrase for a worker event."""
    phase = event.get("phase")
    if phase == "train":
        return (f"epoch {event['epoch']}/{event['epochs']} step {event['step']}/{event['steps']} "
                f"{_num(event.get('samples_per_s'))} samples/s")
    if phase == "epoch":
        text = f"epoch {event['epoch']}/{event['epochs']} done: loss {_num(event.get('loss'), '.4f')}"
        if event.get("val_accuracy") is not None:
            text += f" val_acc {event['val_accuracy']:.4f}"
        return f"{text} {_num(event.get('samples_per_s'))} samples/s ({event['train_s']:.1f} s)"
    if phase == "steady":
        return f"steady timing from step {event['step']} (first steps are warm-up)"
    texts = {
        "probe": f"measuring the {event.get('device')} GEMM peak for MFU (once per machine)",
        "import": f"importing {event.get('framework')}",
        "build": "loading data, building the model",
        "evaluate": "evaluating on the test set",
        "step_timing": "timing single optimizer steps",
        "floor": "measuring the launch-free floor (the whole step as one CUDA graph, 200 replays)",
        "sweep": f"timing eager steps and the floor at batch sizes {event.get('batch_sizes')}",
        "profile": f"profiling {event.get('steps')} steady steps (kernel-busy %, launches per step)",
        "inference": f"inference at batch size {event.get('batch_size')}",
    }
    return texts.get(phase, str(phase))


def finished_line(index: int, total: int, record: RunRecord) -> str:
    """One line per finished case."""
    spec = record.run_spec
    where = f" on {record.node_kind or 'node'} {record.node_ip} ({(record.node_id or '?')[:8]})" if record.executor == "ray" else ""
    head = f"[{index}/{total}] {spec.label} seed={spec.seed}{where}: {record.status}"
    if record.status != "ok":
        return f"{head} — {record.error}"
    return (f"{head}  test_acc={_num(record.test_accuracy, '.4f')}  train={_num(record.train_steady_samples_per_s)} "
            f"samples/s  first_epoch={_num(record.first_epoch_s, '.1f')} s  wall={_num(record.wall_s, '.1f')} s")


class PlanView:
    """The calls a view answers; this base shows nothing (--quiet)."""

    def __init__(self) -> None:
        self.eta = PlanEta()

    def planned(self, specs: list[RunSpec]) -> None:
        """The cases the plan will run, in order (what the ETA prices)."""
        self.eta.planned(specs)

    def start(self, index: int, total: int, spec: RunSpec) -> None:
        """A case is about to run."""

    def event(self, event: dict[str, Any]) -> None:
        """The running case's worker reported progress."""

    def finished(self, index: int, total: int, record: RunRecord) -> None:
        """A case's record was stored."""

    def close(self) -> None:
        """The plan is over (or interrupted)."""


class PlainView(PlanView):
    """Plain lines for logs and pipes: phases and epoch ends as they happen, in-epoch steps now and then."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream
        self.prefix, self.last_line = "", 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.last_line = time.monotonic()

    def start(self, index: int, total: int, spec: RunSpec) -> None:
        """Start line with the plan ETA."""
        self.eta.started(spec)
        self.prefix = f"[{index}/{total}] {spec.label} seed={spec.seed}"
        self._print(f"{self.prefix}: started ({self.eta.text()})")

    def event(self, event: dict[str, Any]) -> None:
        """Every phase change; an in-epoch step line at most every PLAIN_STEP_EVERY_S; training lines end with the ETA."""
        self.eta.progress(event)
        if event.get("phase") == "train" and time.monotonic() - self.last_line < PLAIN_STEP_EVERY_S:
            return
        eta = f" ({self.eta.text()})" if event.get("phase") in ("train", "epoch") else ""
        self._print(f"{self.prefix}: {describe(event)}{eta}")

    def finished(self, index: int, total: int, record: RunRecord) -> None:
        """The case's one result line, and the plan's ETA after it."""
        self.eta.finished(record)
        self._print(finished_line(index, total, record) + (f" ({self.eta.text()})" if index < total else ""))


class LiveView(PlanView):
    """A rich display on a terminal: the plan (case i/N, elapsed, ETA) and the running case's phase and step bar."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console, refresh_per_second=4,
        )
        self.plan = self.progress.add_task("plan", total=None, info="")
        self.case = self.progress.add_task("", total=None, info="", visible=False)
        self.live = False

    def _show(self) -> None:
        # Started on the first case, not when made: an error before any case runs leaves the terminal untouched.
        if not self.live:
            self.progress.start()
            self.live = True

    def start(self, index: int, total: int, spec: RunSpec) -> None:
        """Plan bar to i-1/N, a fresh case row."""
        self._show()
        self.eta.started(spec)
        self.progress.update(self.plan, description=f"case {index}/{total}", total=total, completed=index - 1,
                             info=self.eta.text())
        self.progress.reset(self.case, description=f"  {spec.label} seed={spec.seed}", total=None, info="starting",
                            visible=True)

    def event(self, event: dict[str, Any]) -> None:
        """In-epoch events move the case bar; the others name the phase."""
        self.eta.progress(event)
        if event.get("phase") == "train":
            self.progress.update(self.case, total=event["steps"], completed=event["step"], info=describe(event))
        elif event.get("phase") == "epoch":
            task = self.progress.tasks[self.case]
            self.progress.update(self.case, completed=task.total or 0, info=describe(event))
        else:
            self.progress.update(self.case, info=describe(event))
        self.progress.update(self.plan, info=self.eta.text())

    def finished(self, index: int, total: int, record: RunRecord) -> None:
        """The case's one result line above the live rows."""
        self._show()
        self.eta.finished(record)
        self.progress.update(self.plan, description=f"case {index}/{total}", total=total, completed=index,
                             info=self.eta.text())
        self.progress.console.print(finished_line(index, total, record), highlight=False, markup=False)

    def close(self) -> None:
        """Stop the live display, leaving the printed lines; safe to call twice."""
        if self.live:
            self.progress.update(self.case, visible=False)
            self.progress.stop()
            self.live = False


def make_view(quiet: bool, stream: IO[str] | None = None) -> PlanView:
    """Nothing for --quiet, the live display on a terminal, plain lines otherwise (CI, pipes, files)."""
    stream = stream or sys.stdout
    if quiet:
        return PlanView()
    if stream.isatty():
        return LiveView(Console(file=stream))
    return PlainView(stream)
