"""`fashionbench compare`: two result sets case by case; exit 1 on a regression, 3 when only inconclusive (the CI gate)."""

from __future__ import annotations

import argparse
import sys

from suite.cli.common import finite_float, path_arg

HELP = "compare two result sets case by case; exit 1 on a regression, 3 when only inconclusive (CI gate)"
EXIT_CODES = {1: "a regression beyond its threshold, or a case that stopped working (the CI gate)",
              3: "nothing regressed or broke, but a gated figure could not be judged (noise, DISTURBED runs), or a case "
                 "failed now and then on both sides"}


def add_arguments(compare: argparse.ArgumentParser) -> None:
    """Base, candidate, metrics and thresholds."""
    from suite.record.noise import GATE_ALPHA
    from suite.report.compare import FORMATS, metrics_help

    compare.add_argument("base", type=path_arg, metavar="BASE", help="results dir or file (the reference)")
    compare.add_argument("new", type=path_arg, metavar="NEW", help="results dir or file (the candidate)")
    compare.add_argument("--metric", nargs="+", default=None, metavar="NAME", help=metrics_help())
    compare.add_argument("--threshold", nargs="+", default=["5%"], metavar="PCT",
                         help="allowed relative change: 5%% for all, METRIC=2%% for one")
    compare.add_argument("--allow-missing", action="store_true",
                         help="pass when a case ok in BASE is absent from NEW (dropped on purpose); one that failed still fails")
    compare.add_argument("--alpha", type=finite_float, default=GATE_ALPHA, metavar="RATE",
                         help="false-alarm rate of the whole comparison: identical code fails with at most this "
                              "probability (default %(default)g; Holm over the timing figures tested)")
    compare.add_argument("--calibration", type=path_arg, default=None, metavar="FILE",
                         help="A/A noise written by `fashionbench noise --save` (default: the one in the user cache)")
    compare.add_argument("--format", choices=FORMATS, default="table",
                         help="table (terminal) or markdown (pull-request comment, CI job summary); the exit code is the same")


def main(args: argparse.Namespace) -> int:
    """Print the comparison table; exit 0 ok, 1 regression, 2 bad input, 3 inconclusive (nothing failed)."""
    from suite.report import compare

    try:
        table, problems, code = compare.run(args.base, args.new, args.metric, args.threshold, args.allow_missing, args.format,
                                          args.alpha, args.calibration)
    except compare.CompareError as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return compare.EXIT_BAD_INPUT
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(table)
    return code
