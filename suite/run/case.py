"""The one case setup the worker and the resident process share: CPUs pinned, backend opened, data loaded, model built."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from suite.backends import Backend, StepHook, open_backend
from suite.core import data
from suite.core.models import shared_weights
from suite.core.spec import RunSpec
from suite.measure.host import rss_bytes
from suite.run.events import EventSink


def pin_cpus(threads: int, rank: int = 0) -> list[int]:
    """Restrict the process to `threads` CPUs when fewer than all: XLA (JAX) has no thread-count setting, so this is
    how every framework gets the same number of cores. Rank r of a torchrun launch takes the r-th block of CPUs, so
    ranks never share a core. Returns the CPUs the process may run on."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads < len(allowed) and (rank + 1) * threads <= len(allowed):
        os.sched_setaffinity(0, allowed[rank * threads:(rank + 1) * threads])
    return sorted(os.sched_getaffinity(0))


def torchrun_rank() -> int | None:
    """This process's rank when torchrun started it (it sets RANK), else None."""
    return int(os.environ["RANK"]) if "RANK" in os.environ else None


@dataclass
class CaseSetup:
    """One spec made ready to train; `open` fills the fields step by step, so a failed setup still shows how far it got."""

    spec: RunSpec
    framework_info: dict[str, Any] = field(default_factory=dict)
    import_s: float | None = None
    host_rss_baseline_bytes: int | None = None
    prepared: data.Prepared | None = None
    build_s: float | None = None
    backend: Backend | None = None

    def open(self, data_dir: str | None, events: EventSink | None = None) -> CaseSetup:
        """Pin CPUs, open the backend (timed: framework import and device setup), load the data, build the model;
        `events` hears of each phase as it starts."""
        spec, events = self.spec, events or EventSink(None)
        ranked = torchrun_rank() is not None
        cpus = pin_cpus(spec.threads_per_rank if ranked else spec.threads, int(os.environ.get("LOCAL_RANK", "0")))
        events.emit("import", framework=spec.framework if spec.framework == "torch" else f"keras ({spec.keras_backend})")
        t0 = time.perf_counter()
        self.backend, self.framework_info = open_backend(spec)
        # The same dict object the backend keeps filling in build() (e.g. Keras's jit_compile), so extend, not copy.
        self.framework_info["cpu_affinity"] = cpus
        self.import_s = time.perf_counter() - t0
        self.host_rss_baseline_bytes = rss_bytes()
        events.emit("build")
        self.prepared = data.prepare(data.load(data_dir), spec.task, spec.seed, spec.limit)
        t0 = time.perf_counter()
        self.backend.build(spec, shared_weights(spec) if spec.init == "shared" else None)
        self.build_s = time.perf_counter() - t0
        self.backend.load_data(self.prepared)
        return self

    def train_epoch(self, epoch: int, on_step: StepHook | None = None) -> tuple[float, float]:
        """One epoch over the training samples in `epoch`'s seeded order (augmented when the spec asks), device
        synchronised; returns mean loss and accuracy. `on_step(i)` is called as step i begins."""
        spec, prepared = self.spec, self.prepared
        images = data.augment(prepared.x_train, spec.seed, epoch) if spec.augment else None
        result = self.backend.train_epoch(data.batch_order(len(prepared.y_train), spec.seed, epoch), images, on_step)
        self.backend.sync()
        return result
