"""The GEMM probe as a worker job: measures peak FLOP/s per dtype with the torch backend (framework code runs only here)."""

from __future__ import annotations

from typing import Any

from suite.backends import DeviceUnavailable
from suite.measure.probe import PROBE_DTYPES, PROBE_SIZE, PROBE_VERSION, cpu_flags, emulated_bf16_reason


def run_probe(request: dict[str, Any]) -> dict[str, Any]:
    """Measure FLOP/s per dtype on one device (runs inside a worker process, which may import torch)."""
    from suite.backends.torch_backend import gemm_flops_per_s

    device, threads = request["device"], int(request["threads"])
    result: dict[str, Any] = {"device": device, "threads": threads, "size": PROBE_SIZE[device], "flops_per_s": {},
                              "probe_version": PROBE_VERSION}
    for dtype in PROBE_DTYPES[device]:
        # An emulated bf16 GEMM takes a reference kernel far slower than the model's own bf16 paths; it is no peak.
        if device == "cpu" and dtype == "bf16" and (reason := emulated_bf16_reason(cpu_flags())):
            result["flops_per_s"][dtype] = None
            result.setdefault("emulated", {})[dtype] = reason
            continue
        try:
            result["flops_per_s"][dtype] = gemm_flops_per_s(device, dtype, threads, PROBE_SIZE[device])
        except DeviceUnavailable as exc:
            result["unavailable"] = str(exc)
            break
        except RuntimeError as exc:  # a dtype the device cannot multiply in
            result["flops_per_s"][dtype] = None
            result.setdefault("errors", {})[dtype] = str(exc).splitlines()[0]
    return result
