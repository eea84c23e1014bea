"""Peak FLOP/s of a device from a GEMM probe, run once per machine/device/threads/dtype in its own process and cached."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs

PROBE_DTYPES = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "tf32", "bf16", "fp16")}
# The probe figure MFU divides by for each --precision: the GEMM rate of the arithmetic that precision runs in.
PEAK_DTYPE = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16-mixed": "fp16"}
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
    return entry if isinstance(entry, dict) else None


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
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    os.replace(tmp, path)


def run_probe(request: dict[str, Any]) -> dict[str, Any]:
    """Measure FLOP/s per dtype on one device (runs inside a worker process, which may import torch)."""
    from suite.backends import DeviceUnavailable
    from suite.backends.torch_backend import gemm_flops_per_s

    device, threads = request["device"], int(request["threads"])
    result: dict[str, Any] = {"device": device, "threads": threads, "size": PROBE_SIZE[device], "flops_per_s": {}}
    for dtype in PROBE_DTYPES[device]:
        try:
            result["flops_per_s"][dtype] = gemm_flops_per_s(device, dtype, threads, PROBE_SIZE[device])
        except DeviceUnavailable as exc:
            result["unavailable"] = str(exc)
            break
        except RuntimeError as exc:  # a dtype the device cannot multiply in
            result["flops_per_s"][dtype] = None
            result.setdefault("errors", {})[dtype] = str(exc).splitlines()[0]
    return result
