"""A test-only slowdown the gate's benchmark plants: each training step really waits a set share of its own time longer.

Set `FASHIONBENCH_TEST_SLOWDOWN_PCT=10` in the environment of a run; the record keeps the setting
(`planted_slowdown_pct`) and every table flags it. The wait is host time after each step, so it slows a CPU case by
that share; on CUDA it may hide behind queued device work.
"""

from __future__ import annotations

import math
import os
import time

from suite.backends import StepHook
from suite.record.schema import PLANT_SLOWDOWN_ENV


def planted_slowdown_pct() -> float | None:
    """The planted slowdown in percent, None when unset; a value that is no percentage in (0, 100] raises ValueError."""
    text = os.environ.get(PLANT_SLOWDOWN_ENV, "").strip()
    if not text:
        return None
    try:
        pct = float(text)
    except ValueError:
        pct = math.nan
    if not (math.isfinite(pct) and 0 < pct <= 100):
        raise ValueError(f"{PLANT_SLOWDOWN_ENV}={text!r} is not a percentage in (0, 100]; unset it for a real run")
    return pct


def spin(seconds: float) -> None:
    """Keep this thread busy for `seconds`."""
    # Spin, not sleep: a sleeping process lets its cores idle and its OpenMP workers park, and the next step pays for
    # waking them (a 10 % sleep measured +19 % on the 2-vCPU VM); a spin costs the time asked for and no more.
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


class PlantedSlowdown:
    """Wraps a step hook: before each step (and at `finish`), waits `pct` % of the time the previous step took."""

    def __init__(self, pct: float, hook: StepHook) -> None:
        self.share, self.hook = pct / 100.0, hook
        self.last: float | None = None

    def _wait(self) -> None:
        if self.last is not None:
            spin((time.perf_counter() - self.last) * self.share)

    def __call__(self, step: int) -> None:
        """Wait for the step that just ended, then hand on to the wrapped hook."""
        self._wait()
        self.hook(step)
        self.last = time.perf_counter()

    def finish(self) -> None:
        """Wait for the epoch's last step (no hook call follows it)."""
        self._wait()
        self.last = None
