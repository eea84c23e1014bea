"""`fashionbench probe`: the peak GEMM FLOP/s each device is measured against (the MFU denominator)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from suite.cli.common import add_threads_argument, warn_threads_above_cores
from suite.core import spec as specs
from suite.measure import probe

HELP = "measure (or show the cached) peak GEMM FLOP/s used for MFU"
EXIT_CODES = {1: "the probe failed in its worker process"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Devices, thread count, re-measure."""
    parser.add_argument("--device", nargs="+", default=["cpu"], metavar="NAME", help="devices to probe: cpu, cuda")
    add_threads_argument(parser)
    parser.add_argument("--force", action="store_true", help="measure again even if cached")


def main(args: argparse.Namespace) -> int:
    """Show the peak FLOP/s per device, measuring it first when not cached (or --force), with its provenance."""
    from suite.run.runner import probe_entry

    warn_threads_above_cores([args.threads])
    for device in args.device:
        specs.check_choice("device", device, specs.DEVICES)
        entry = probe_entry(device, args.threads, 600, force=args.force)
        if entry is None:
            print(f"{device}: probe failed in its worker process; run `fashionbench doctor`", file=sys.stderr)
            return 1
        if "unavailable" in entry:
            print(f"{device}: unavailable — {entry['unavailable']}")
            continue
        emulated = entry.get("emulated") or {}
        spreads = entry.get("spread_pct") or {}
        rates = ", ".join(f"{k}={v / 1e9:,.1f} GFLOP/s (rounds ±{spreads.get(k, 0):.0f}%)" if v
                          else f"{k}={'emulated' if k in emulated else 'unsupported'}" for k, v in entry["flops_per_s"].items())
        print(f"{device} ({args.threads} threads, {entry['size']}×{entry['size']} GEMM): {rates}")
        for dtype, reason in emulated.items():
            print(f"  {dtype}: {reason}")
        print(f"  {probe_origin(entry)}")
    print(f"cache: {probe.cache_file()}")
    return 0


def probe_origin(entry: dict[str, Any]) -> str:
    """Cached or fresh, when, and why a fresh figure was not cached."""
    if entry["cached"]:
        return f"cached, measured {entry.get('measured_utc')}; `fashionbench probe --force` measures again"
    if entry.get("disturbed"):
        return (f"NOT cached: disturbed ({entry['disturbed']}); MFU of cases run now carries this note — "
                "re-run `fashionbench probe --force` on an idle machine")
    return f"measured now ({entry.get('measured_utc')}) and cached"
