"""`fashionbench goals`: the speed-goals benchmark, every ratio printed against its goal."""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.cli.common import ROUNDS_MAX, add_threads_argument, add_timeout_argument, check_rounds, path_arg
from suite.core import data
from suite.record.store import ensure_writable

HELP = ("the speed-goals benchmark: ratios, best-variant MFU, quick-matrix wall, repeat noise, each printed against "
        "its goal (takes ~15 min)")
PARTS = ("harness", "variants", "quick", "noise", "gpu")
EXIT_CODES = {1: "a goal was missed"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Which parts, threads, rounds, where cases are stored."""
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), metavar="PART",
                        help=f"the parts to run, of: {', '.join(PARTS)}")
    add_threads_argument(parser)
    parser.add_argument("--rounds", type=int, default=3, help=f"alternated repeats of each side of a ratio, 1..{ROUNDS_MAX}")
    parser.add_argument("--results", type=path_arg, default=Path("results/goals"),
                        help="where the screening and repeat cases are stored (for show/report)")
    add_timeout_argument(parser)


def main(args: argparse.Namespace) -> int:
    """Run the speed-goals benchmark; exit 1 when any goal is missed."""
    from suite.bench import goals

    check_rounds(args.rounds)
    data.load()
    ensure_writable(args.results)
    verdicts = goals.run_goals(args.results, args.threads, args.rounds, args.timeout, set(args.only),
                               lambda line: print(line, flush=True))
    missed = [v for v in verdicts if v.met is False]
    judged = [v for v in verdicts if v.met is not None]
    unmeasured = f", {len(verdicts) - len(judged)} not measured" if len(judged) < len(verdicts) else ""
    print(f"{len(judged) - len(missed)}/{len(judged)} goals met{unmeasured}; cases stored in {args.results}/")
    return 1 if missed else 0
