"""Peak FLOP/s of a device from a GEMM probe, run once per machine/device/threads/dtype in its own process and cached."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

PROBE_DTYPES = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "tf32", "bf16", "fp16")}
# The probe figure MFU divides by for each --precision: the GEMM rate of the arithmetic that precision runs in.
PEAK_DTYPE = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16-mixed": "fp16"}
# Bumped when what a cached entry means changes; older entries are measured again.
PROBE_VERSION = 2
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags() -> set[str]:
    """The instruction-set flags of this Linux CPU (empty where /proc/cpuinfo is unreadable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def emulated_bf16_reason(flags: set[str]) -> str | None:
    """Why a CPU has no bf16 peak (no bf16 instructions, so frameworks emulate it), or None when it has one."""
    if flags & BF16_CPU_FLAGS:
        return None
    return ("no bf16 instructions (avx512_bf16/amx_bf16) on this CPU: bf16 is emulated, so there is no bf16 peak; "
            "MFU of bf16 cases divides by the fp32 peak")


def peak_for(entry: dict[str, Any], precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s, its dtype) for a precision: the precision's own figure, else fp32 where that arithmetic is
    emulated (bf16 on CPUs without bf16 instructions) — the machine's real capability the case is measured against."""
    rates = entry.get("flops_per_s") or {}
    dtype = PEAK_DTYPE[precision]
    if rates.get(dtype) is None and dtype in (entry.get("emulated") or {}):
        dtype = "fp32"
    return rates.get(dtype), dtype
PROBE_SIZE = {"cpu": 1024, "cuda": 8192}


def cache_file() -> Path:
    """Where measured peaks are kept (FASHIONBENCH_CACHE overrides, for tests)."""
    root = os.environ.get("FASHIONBENCH_CACHE") or platformdirs.user_cache_dir("fashionbench")
    return Path(root) / "peak_flops.json"


def _key(machine_id: str, device: str, threads: int) -> str:
    return f"{machine_id}/{device}/threads={threads}"


def cached(machine_id: str, device: str, threads: int) -> dict[str, Any] | None:
    """The cached probe result, or None (a corrupt cache counts as none)."""
    try:
        entries = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return None
    entry = entries.get(_key(machine_id, device, threads)) if isinstance(entries, dict) else None
    return entry if isinstance(entry, dict) and entry.get("probe_version") == PROBE_VERSION else None


def store(machine_id: str, device: str, threads: int, result: dict[str, Any]) -> None:
    """Add one probe result to the cache, atomically."""
    path = cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        entries = json.loads(path.read_text())
        entries = entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        entries = {}
    entries[_key(machine_id, device, threads)] = result
    # A temp name of its own: several Ray nodes on one host may store their probes at the same moment.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".peak_flops-", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(entries, indent=1))
    os.replace(tmp, path)
