"""Host CPU energy from the Linux powercap (RAPL) counters, read around training; why not, where the host hides them.

Each CPU package is a zone `/sys/class/powercap/intel-rapl:N` (AMD exposes the same interface on recent kernels) whose
`energy_uj` counts microjoules and wraps at `max_energy_range_uj`. The meter reads every package zone at the start,
after each epoch and at the end, so a wrap between two reads is undone (a counter wraps after tens of minutes at full
power, longer than any epoch here). The counters are the whole package's: every process on it, not only this case.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from suite.record.schema import HostEnergy

POWERCAP_ROOT = Path("/sys/class/powercap")
SOURCE = "RAPL package energy (powercap)"


class EnergyUnavailable(Exception):
    """No readable package counter here; the message says why (and how to allow it where that is the fix)."""


@dataclass(frozen=True)
class Zone:
    """One package zone: its name (package-0), its counter file and the value the counter wraps at."""

    name: str
    counter: Path
    range_uj: int


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError:
        raise EnergyUnavailable(f"permission denied reading {path} (root-only since Linux 5.10; `sudo chmod a+r "
                                f"{path.parent}/energy_uj` allows it until the next boot)") from None
    except (OSError, ValueError) as exc:
        raise EnergyUnavailable(f"cannot read {path}: {exc}") from None


def package_zones(root: Path = POWERCAP_ROOT) -> list[Zone]:
    """The package zones under a powercap root (sub-zones intel-rapl:N:M, core and uncore, are parts of a package)."""
    if not root.is_dir():
        raise EnergyUnavailable(f"no powercap interface ({root} absent: not Linux, or a VM or container without RAPL)")
    zones = []
    for path in sorted(root.glob("intel-rapl:*")):
        if path.name.count(":") != 1 or not (path / "name").is_file():
            continue
        name = (path / "name").read_text().strip()
        if name.startswith("package"):
            zones.append(Zone(name, path / "energy_uj", _read_int(path / "max_energy_range_uj")))
    if not zones:
        raise EnergyUnavailable(f"no RAPL package zone under {root} (the CPU or the hypervisor does not expose one)")
    return zones


def wrapped_delta_uj(before: int, after: int, range_uj: int) -> int:
    """Microjoules between two reads of a counter that wraps at range_uj (at most one wrap between them)."""
    return after - before if after >= before else after + range_uj - before


class HostEnergyMeter:
    """Package energy over a phase: `mark()` after each epoch, `result()` at the end; unavailable says why."""

    def __init__(self, root: Path = POWERCAP_ROOT, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.total_uj = 0
        self.wraps = 0
        try:
            self.zones = package_zones(root)
            self.last = [_read_int(z.counter) for z in self.zones]
            self.reason: str | None = None
        except EnergyUnavailable as exc:
            self.zones, self.last, self.reason = [], [], str(exc)
        self.t0 = self.clock()

    def mark(self) -> None:
        """Add what each package used since the last read."""
        if self.reason is not None:
            return
        try:
            now = [_read_int(z.counter) for z in self.zones]
        except EnergyUnavailable as exc:
            self.reason = str(exc)
            return
        for zone, before, after in zip(self.zones, self.last, now):
            self.wraps += after < before
            self.total_uj += wrapped_delta_uj(before, after, zone.range_uj)
        self.last = now

    def result(self) -> HostEnergy:
        """The phase's energy with its source, or why it was not measured."""
        self.mark()
        if self.reason is not None:
            return HostEnergy(available=False, reason=self.reason)
        return HostEnergy(available=True, source=SOURCE, zones=[z.name for z in self.zones], energy_j=self.total_uj / 1e6,
                          duration_s=self.clock() - self.t0, wraps=self.wraps)
