"""The GEMM probe as a worker job: measures peak FLOP/s per dtype with the torch backend (framework code runs only here)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import psutil

from suite.backends import DeviceUnavailable
from suite.measure.host import ContentionMeter
from suite.measure.probe import (
    PROBE_DTYPES,
    PROBE_SIZE,
    PROBE_VERSION,
    cpu_flags,
    disturbance,
    emulated_bf16_reason,
)
from suite.record.stats import spread_pct


def run_probe(request: dict[str, Any]) -> dict[str, Any]:
    """Measure FLOP/s per dtype on one device, and whether anything disturbed it (runs inside a worker process)."""
    from suite.backends.torch_backend import gemm_round_rates

    device, threads = request["device"], int(request["threads"])
    result: dict[str, Any] = {"device": device, "threads": threads, "size": PROBE_SIZE[device], "flops_per_s": {},
                              "spread_pct": {}, "probe_version": PROBE_VERSION,
                              "measured_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "cpu_cores_logical": psutil.cpu_count(logical=True)}
    with ContentionMeter() as meter:
        for dtype in PROBE_DTYPES[device]:
            # An emulated bf16 GEMM takes a reference kernel far slower than the model's own bf16 paths; it is no peak.
            if device == "cpu" and dtype == "bf16" and (reason := emulated_bf16_reason(cpu_flags())):
                result["flops_per_s"][dtype] = None
                result.setdefault("emulated", {})[dtype] = reason
                continue
            try:
                rates = gemm_round_rates(device, dtype, threads, PROBE_SIZE[device])
            except DeviceUnavailable as exc:
                result["unavailable"] = str(exc)
                return result
            except RuntimeError as exc:  # a dtype the device cannot multiply in
                result["flops_per_s"][dtype] = None
                result.setdefault("errors", {})[dtype] = str(exc).splitlines()[0]
                continue
            result["flops_per_s"][dtype], result["spread_pct"][dtype] = max(rates), spread_pct(rates)
    result["contention"] = meter.figures(threads)
    result["disturbed"] = disturbance(result["spread_pct"], result["contention"], device)
    return result
