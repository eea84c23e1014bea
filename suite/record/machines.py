"""Machines told apart: a label of host, GPU (or CPU) model and cores for every machine of a set of records."""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from suite.record.schema import Machine, RunRecord

# Trademark marks and "CPU @ 2.20GHz" tails make CPU names long without telling two machines apart.
_CPU_NOISE = re.compile(r"\((?:R|TM|tm)\)|(?:\bCPU\b)? *@ *[\d.]+ *GHz")


def hardware_name(machine: Machine) -> str:
    """What computes there: the GPU model (with a count when several), else the CPU model without trademark marks."""
    gpus = Counter(str(g.get("name")) for g in machine.gpus if g.get("name"))
    if gpus:
        return " + ".join(name if count == 1 else f"{count}× {name}" for name, count in gpus.items())
    return " ".join(_CPU_NOISE.sub(" ", machine.cpu_model).split()) or "unknown CPU"


def base_label(machine: Machine) -> str:
    """Host, hardware and cores: `vm (NVIDIA H200, 16 cores)`."""
    return f"{machine.hostname} ({hardware_name(machine)}, {machine.cpu_cores_logical} cores)"


def machine_labels(machines: Iterable[Machine]) -> dict[str, str]:
    """machine_id → a label unique within the set; the id is added only where host, hardware and cores still clash."""
    distinct = {m.machine_id: m for m in machines}
    clashes = Counter(base_label(m) for m in distinct.values())
    return {mid: base_label(m) if clashes[base_label(m)] == 1 else f"{base_label(m)[:-1]}, id {mid})"
            for mid, m in distinct.items()}


def record_machine_labels(records: Iterable[RunRecord]) -> dict[str, str]:
    """machine_id → label over the machines of these records."""
    return machine_labels(r.machine for r in records)
