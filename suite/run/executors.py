"""Where a plan's cases run: the Executor protocol, its job unit, and the local executor (one case after another here).

The Ray executor (suite.run.ray_cluster) runs the same run_case on cluster nodes; run_plan drives either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

from suite.core.spec import RunSpec
from suite.measure.machine import fingerprint
from suite.record.schema import RunRecord
from suite.run.events import OnEvent
from suite.run.runner import run_case

# Statuses --resume treats as done; errors and timeouts run again.
FINISHED = ("ok", "diverged", "skipped")


@dataclass(frozen=True)
class Job:
    """One case to run and the machine kind it must run on (None: wherever the executor runs cases)."""

    spec: RunSpec
    kind: str | None = None

    @property
    def key(self) -> tuple[str | None, str]:
        """What --resume compares with Executor.finished."""
        return self.kind, self.spec.id


class Executor(Protocol):
    """Runs jobs somewhere and hands their records back, in the order they finish; never writes the store."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def describe(self) -> str:
        """Where and how the cases run, for the plan's first line."""
        ...

    def jobs(self, specs: list[RunSpec]) -> list[Job]:
        """The plan's specs as jobs (one per spec, or one per spec and machine kind)."""
        ...

    def finished(self, records: list[RunRecord]) -> set[tuple[str | None, str]]:
        """Keys of the jobs that stored records show as done, for --resume."""
        ...

    def run(self, jobs: list[Job]) -> Iterator[RunRecord]:
        """Every job's record, each as soon as its case ends."""
        ...

    def cancel(self) -> list[RunRecord]:
        """Stop whatever still runs (after an interrupt); returns records that had finished but were not handed back."""
        ...


class LocalExecutor:
    """Every case in its own worker process on this machine, one after another."""

    def __init__(self, timeout_s: float, data_dir: str | None = None,
                 on_start: Callable[[int, int, RunSpec], None] | None = None, on_event: OnEvent | None = None,
                 trace_dir: Path | None = None, batch_sweep: tuple[int, ...] = ()) -> None:
        """`on_start(i, n, spec)` hears of each case before it runs, `on_event` gets its worker's progress events;
        with `trace_dir` each case keeps the trace of its profiled steps there (--trace); each torch CUDA case measures
        its eager step and floor at the `batch_sweep` sizes (--batch-sweep)."""
        self.timeout_s, self.data_dir, self.trace_dir = timeout_s, data_dir, trace_dir
        self.batch_sweep = batch_sweep
        self.on_start, self.on_event = on_start, on_event

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def describe(self) -> str:
        """Where and how the cases run."""
        return "one process each"

    def jobs(self, specs: list[RunSpec]) -> list[Job]:
        """One job per spec."""
        return [Job(spec) for spec in specs]

    def finished(self, records: list[RunRecord]) -> set[tuple[str | None, str]]:
        """Cases finished on this machine."""
        machine_id = fingerprint().machine_id
        return {(None, r.case_id) for r in records if r.machine.machine_id == machine_id and r.status in FINISHED}

    def run(self, jobs: list[Job]) -> Iterator[RunRecord]:
        """Each job in turn, in plan order."""
        for index, job in enumerate(jobs, 1):
            if self.on_start:
                self.on_start(index, len(jobs), job.spec)
            yield run_case(job.spec, self.timeout_s, self.data_dir, on_event=self.on_event, trace_dir=self.trace_dir,
                           batch_sweep=self.batch_sweep)

    def cancel(self) -> list[RunRecord]:
        """Nothing to do: an interrupt kills the running worker (run_worker) before it gets here."""
        return []
