"""Peak FLOP/s of a device from a GEMM probe, run once per machine/device/threads/dtype in its own process and cached."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from suite.record.safe_load import LoadProblem, read_json
from suite.record.store import cache_root

PROBE_DTYPES = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "tf32", "bf16", "fp16")}
# The probe figure MFU divides by for each --precision: the GEMM rate of the arithmetic that precision runs in.
PEAK_DTYPE = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16-mixed": "fp16"}
# Bumped when what a cached entry means changes; older entries are measured again (3: contention checked).
PROBE_VERSION = 3
# A probe is disturbed, and never cached, when its rounds differ by more than this ...
SPREAD_LIMIT_PCT = 10.0
# ... or other processes (or the hypervisor, as steal) kept this many cores busy while it ran ...
OTHERS_LIMIT_CORES = 0.25
# ... or its own threads got less than this share of the cores they asked for (CPU only).
OWN_SHARE_MIN_PCT = 80.0
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
    return cache_root() / "peak_flops.json"


def _key(machine_id: str, device: str, threads: int) -> str:
    return f"{machine_id}/{device}/threads={threads}"


_warned: set[str] = set()


def _entries() -> dict[str, Any]:
    """The cache's entries; a missing cache holds none, an unusable one none too, said once on stderr by name."""
    path = cache_file()
    try:
        entries = read_json(path)
    except OSError:
        return {}
    except LoadProblem as exc:
        entries, why = None, str(exc)
    else:
        why = "not a JSON object of probe entries"
    if isinstance(entries, dict):
        return entries
    if str(path) not in _warned:  # a plan asks once per case: one line is enough
        _warned.add(str(path))
        print(f"fashionbench: warning: probe cache {path} is unusable ({why}); the peak is measured again and the "
              "cache replaced", file=sys.stderr)
    return {}


def cached(machine_id: str, device: str, threads: int) -> dict[str, Any] | None:
    """The cached probe result, or None (an unusable cache counts as none)."""
    entry = _entries().get(_key(machine_id, device, threads))
    return entry if isinstance(entry, dict) and entry.get("probe_version") == PROBE_VERSION else None


def store(machine_id: str, device: str, threads: int, result: dict[str, Any]) -> None:
    """Add one probe result to the cache, atomically; a cache that cannot be written is left as it was."""
    path = cache_file()
    entries = _entries()
    entries[_key(machine_id, device, threads)] = result
    # A temp name of its own: several Ray nodes on one host may store their probes at the same moment.
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".peak_flops-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(entries, indent=1))
        os.replace(tmp, path)
    except OSError:
        # A full or read-only cache costs a probe next time, never the run.
        if tmp:
            Path(tmp).unlink(missing_ok=True)


def disturbance(spreads: dict[str, float], contention: dict[str, float], device: str) -> str | None:
    """Why a probe figure cannot be trusted as the machine's peak, or None when the probe ran undisturbed."""
    reasons = [f"{dtype} rounds {spread:.0f}% apart (limit {SPREAD_LIMIT_PCT:g}%)"
               for dtype, spread in spreads.items() if spread > SPREAD_LIMIT_PCT]
    if contention["others_busy_cores"] > OTHERS_LIMIT_CORES:
        reasons.append(f"other processes kept {contention['others_busy_cores']:.2f} cores busy")
    if device == "cpu" and contention["own_share_pct"] < OWN_SHARE_MIN_PCT:
        reasons.append(f"its threads got {contention['own_share_pct']:.0f}% of their cores")
    return "; ".join(reasons) or None


def provenance(entry: dict[str, Any], dtype: str) -> dict[str, Any]:
    """What a record keeps about the probe figure its MFU divides by: when, how steady, threads, cached or fresh."""
    return {"measured_utc": entry.get("measured_utc"), "cached": bool(entry.get("cached")), "threads": entry.get("threads"),
            "cpu_cores_logical": entry.get("cpu_cores_logical"), "spread_pct": (entry.get("spread_pct") or {}).get(dtype),
            "disturbed": entry.get("disturbed")}
