"""`fashionbench calibrate`: the harness benchmarked against a bare loop, samplers on vs off."""

from __future__ import annotations

import argparse

from suite.cli.common import ROUNDS_MAX, UsageError, add_threads_argument, add_timeout_argument, check_rounds
from suite.core import data
from suite.core import spec as specs

HELP = "benchmark the harness: suite loop vs a bare loop, samplers on vs off"


def add_arguments(cal: argparse.ArgumentParser) -> None:
    """What to calibrate and how often."""
    cal.add_argument("--framework", nargs="+", default=["torch", "keras"], metavar="NAME", help="frameworks to calibrate")
    cal.add_argument("--model", nargs="+", default=["dense"], metavar="NAME", help="models to calibrate")
    cal.add_argument("--epochs", type=int, default=4, help=f"epochs of each calibration case, 2..{specs.EPOCHS_MAX}")
    cal.add_argument("--batch-size", type=int, default=128, metavar="N", help=f"training batch size, 1..{specs.BATCH_SIZE_MAX}")
    cal.add_argument("--limit", type=int, default=None, metavar="N",
                     help="train on the first N samples of the seeded split (default: all of it)")
    add_threads_argument(cal)
    cal.add_argument("--rounds", type=int, default=3, help=f"alternated repeats of each side, 1..{ROUNDS_MAX}")
    cal.add_argument("--only", choices=["harness", "sampling"], default=None,
                     help="harness: suite loop vs a bare loop; sampling: samplers on vs off (default: both)")
    add_timeout_argument(cal)


def main(args: argparse.Namespace) -> int:
    """Print the harness ratio and the sampling overhead per framework and model."""
    from suite.bench import calibrate

    data.load()
    check_rounds(args.rounds)
    for framework in args.framework:
        for model in args.model:
            spec = specs.RunSpec(framework=framework, model=model, epochs=args.epochs, batch_size=args.batch_size,
                                 limit=args.limit, threads=args.threads)
            if spec.epochs < 2:
                raise UsageError("--epochs must be >= 2: steady-state throughput excludes epoch 1")
            if args.only in (None, "harness"):
                print(calibrate.describe("harness", calibrate.harness(spec, args.rounds, args.timeout)), flush=True)
            if args.only in (None, "sampling"):
                print(calibrate.describe("sampling", calibrate.sampler_overhead(spec, args.rounds, args.timeout)), flush=True)
    return 0
