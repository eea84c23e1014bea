"""Host measurements: process RSS and its true peak, CPU utilisation, a background CPU sampler."""

from __future__ import annotations

import resource
import sys
import threading
import time

import numpy as np
import psutil


def rss_bytes() -> int:
    """Current resident set size of this process."""
    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """True peak RSS of this process so far.

    Linux's VmHWM belongs to this process's own address space; ru_maxrss is not used there because it
    survives fork+exec, so a worker started from a large parent (pytest, asv) would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class CpuMeter:
    """Process CPU utilisation over a window: CPU seconds / wall seconds, in percent of one core."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cpu_s = 0.0
        self._wall_s = 0.0

    def __enter__(self) -> CpuMeter:
        times = self._process.cpu_times()
        self._cpu_s = times.user + times.system
        self._wall_s = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        times = self._process.cpu_times()
        self.cpu_s = times.user + times.system - self._cpu_s
        self.wall_s = time.perf_counter() - self._wall_s

    @property
    def util_pct(self) -> float:
        """100 means one core fully busy; 200 two cores."""
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class HostSampler:
    """Background thread sampling this process's CPU utilisation every period (the host twin of the NVML sampler)."""

    def __init__(self, period_s: float = 0.15) -> None:
        self.period_s = period_s
        self.cpu_util_pct: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="host-sampler", daemon=True)
        self._process = psutil.Process()

    def _loop(self) -> None:
        self._process.cpu_percent()  # the first call only sets psutil's reference point
        while not self._stop.wait(self.period_s):
            self.cpu_util_pct.append(self._process.cpu_percent())

    def __enter__(self) -> HostSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def p95_pct(self) -> float | None:
        """95th percentile of the sampled utilisation, None if the window was shorter than one period."""
        return float(np.percentile(self.cpu_util_pct, 95)) if self.cpu_util_pct else None
