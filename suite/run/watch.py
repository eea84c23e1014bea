"""The per-step hook of one training epoch: throttled progress events, and the in-epoch steady timing of a 1-epoch case.

A single epoch has no steady epoch to time; instead the first WARMUP_STEPS steps (tracing, compilation, allocator and
cache warm-up) are left out and the full-size steps after them are timed, with the device synchronised at both ends.
The hook runs before each step and never waits for the device except at those two points, so it costs next to nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from suite.run.events import EventSink

WARMUP_STEPS = 10
MIN_TIMED_STEPS = 10  # fewer would make the figure mostly noise; the case then has no steady figure
EVENT_EVERY_S = 1.0


@dataclass(frozen=True)
class SteadySpan:
    """The timed part of a single epoch."""

    first_step: int
    steps: int
    samples: int
    seconds: float

    @property
    def samples_per_s(self) -> float:
        """Training samples per second over the timed steps."""
        return self.samples / self.seconds


class EpochWatch:
    """Called as each step of one epoch begins; `sync` given: time the steady span [WARMUP_STEPS, last full step]."""

    def __init__(self, events: EventSink, epoch: int, epochs: int, samples: int, batch_size: int,
                 sync: Callable[[], None] | None = None) -> None:
        self.events, self.epoch, self.epochs, self.batch_size, self.sync = events, epoch, epochs, batch_size, sync
        self.samples, self.steps = samples, -(-samples // batch_size)
        self.full_steps = samples // batch_size  # a short last batch has its own shape (a retrace in Keras): not timed
        self.rate_from = (0, time.perf_counter())
        self.last_event = 0.0
        self.split: tuple[int, float] | None = None
        self.end: tuple[int, float] | None = None

    def _mark(self) -> float:
        self.sync()
        return time.perf_counter()

    def __call__(self, step: int) -> None:
        """Split point, end point (before a short last batch), and a progress event at most every EVENT_EVERY_S."""
        if self.sync is not None and self.split is None and step >= WARMUP_STEPS:
            self.split = (step, self._mark())
            self.rate_from = self.split
            self.events.emit("steady", step=step, steps=self.steps)
        elif self.split is not None and self.end is None and step >= self.full_steps:
            self.end = (step, self._mark())
        now = time.perf_counter()
        if now - self.last_event >= EVENT_EVERY_S and step > self.rate_from[0]:
            self.last_event = now
            rate = (step - self.rate_from[0]) * self.batch_size / (now - self.rate_from[1])
            self.events.emit("train", epoch=self.epoch, epochs=self.epochs, step=step, steps=self.steps, samples_per_s=rate)

    def steady(self, epoch_end_s: float) -> SteadySpan | None:
        """The timed span; `epoch_end_s` (perf_counter after the synchronised epoch) ends it when no short batch did."""
        if self.split is None:
            return None
        first, start_s = self.split
        if self.end is not None:
            last, end_s = self.end
            steps, samples = last - first, (last - first) * self.batch_size
        else:
            end_s, steps, samples = epoch_end_s, self.steps - first, self.samples - first * self.batch_size
        if steps < MIN_TIMED_STEPS:
            return None
        return SteadySpan(first, steps, samples, end_s - start_s)
