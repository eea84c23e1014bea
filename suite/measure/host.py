"""Host measurements: process RSS and its true peak, CPU utilisation, a background CPU sampler, and contention: how
much of the machine other processes (and the hypervisor, as steal) took while a case or the probe ran."""

from __future__ import annotations

import resource
import sys
import threading
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import psutil

from suite.record.schema import Contention


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


@dataclass(frozen=True)
class CpuCounters:
    """Cumulative CPU seconds at one instant: all CPUs busy (steal included), steal alone, and the case's own processes."""

    wall_s: float
    busy_s: float
    steal_s: float
    own_s: float


def _own_cpu_s(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # a sibling rank that already exited: its time no longer counts as ours or others'
            continue
        total += times.user + times.system
    return total


def read_counters(processes: Sequence[psutil.Process] | None = None) -> CpuCounters:
    """The counters now; `processes` are the case's own (default: this process)."""
    times = psutil.cpu_times()
    # /proc/stat counts guest time inside user and nice already, so it is taken out of the sum, as are idle and iowait.
    idle = times.idle + getattr(times, "iowait", 0.0) + getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    return CpuCounters(time.perf_counter(), sum(times) - idle, getattr(times, "steal", 0.0),
                       _own_cpu_s(processes or [psutil.Process()]))


@dataclass(frozen=True)
class Window:
    """Cores kept busy on average between two counter readings, split into the case's own and everyone else's."""

    wall_s: float
    others_busy_cores: float  # other processes plus steal (the hypervisor running other guests on our vCPUs)
    steal_cores: float
    own_busy_cores: float

    def own_share_pct(self, threads: int) -> float:
        """The share of the cores its threads asked for (at most the machine's) that the case got."""
        cores = min(threads, psutil.cpu_count(logical=True) or 1)
        return 100.0 * self.own_busy_cores / cores


def window(start: CpuCounters, end: CpuCounters) -> Window:
    """The window between two readings (a zero-length window reads as idle)."""
    wall = max(end.wall_s - start.wall_s, 1e-9)
    own = max(0.0, end.own_s - start.own_s)
    others = max(0.0, end.busy_s - start.busy_s - own)
    return Window(wall, others / wall, max(0.0, end.steal_s - start.steal_s) / wall, own / wall)


class ContentionMeter:
    """Contention over a `with` block: `.window` after it ends."""

    def __init__(self, processes: Sequence[psutil.Process] | None = None) -> None:
        self.processes = processes

    def __enter__(self) -> ContentionMeter:
        self._start = read_counters(self.processes)
        return self

    def __exit__(self, *exc: object) -> None:
        self.window = window(self._start, read_counters(self.processes))

    def figures(self, threads: int) -> dict[str, float]:
        """Cores kept busy by others, and the share of its cores this process got, over the window (the probe's)."""
        return {"others_busy_cores": self.window.others_busy_cores, "own_share_pct": self.window.own_share_pct(threads)}


def case_processes(ranked: bool) -> list[psutil.Process]:
    """The processes whose CPU time is the case's own: this one, and for a torchrun rank also torchrun and every rank."""
    me = psutil.Process()
    parent = me.parent() if ranked else None
    if parent is None:
        return [me]
    return [parent, *parent.children()]


class PhaseContention:
    """Counters read as a phase starts and at each `mark()` (the end of an epoch): the phase's Contention."""

    def __init__(self, threads: int, processes: Sequence[psutil.Process] | None = None) -> None:
        self.threads, self.processes = threads, processes
        self.marks = [read_counters(processes)]

    def mark(self) -> None:
        """End one sub-window (an epoch) here."""
        self.marks.append(read_counters(self.processes))

    def result(self, per_epoch: bool = False) -> Contention:
        """The whole phase, from the first reading to a final one taken now; `per_epoch`: each mark's window too."""
        epochs = [window(a, b).others_busy_cores for a, b in zip(self.marks, self.marks[1:])] if per_epoch else []
        whole = window(self.marks[0], read_counters(self.processes))
        cores = psutil.cpu_count(logical=True) or 1
        return Contention(wall_s=whole.wall_s, cores_logical=cores, case_cores=min(self.threads, cores),
                          others_busy_cores=whole.others_busy_cores, steal_cores=whole.steal_cores,
                          own_busy_cores=whole.own_busy_cores, epoch_others_busy_cores=epochs)
