"""`fashionbench report`: one self-contained HTML report with PNGs and summary.csv."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.cli.common import DEFAULT_RESULTS, path_arg, positive_float

HELP = "one self-contained HTML report (plots embedded) + PNGs + summary.csv"
EXIT_CODES = {1: "the report could not be written (disk full): nothing of it is left in --out, an earlier report there "
                 "is as it was"}


def add_arguments(report: argparse.ArgumentParser) -> None:
    """Inputs (results, asv, pytest-benchmark, prices), targets, output folder."""
    report.add_argument("--results", type=path_arg, nargs="+", default=[DEFAULT_RESULTS], metavar="DIR",
                        help="result dirs/files; merge machines by copying their result folders under one dir")
    report.add_argument("--asv-results", type=path_arg, default=None, metavar="DIR",
                        help="asv results_dir, e.g. .asv/results (default: no asv section)")
    report.add_argument("--pytest-benchmark", type=path_arg, nargs="+", default=[], metavar="FILE",
                        help="JSON from pytest --benchmark-json (or .benchmarks/*/*.json) (default: none)")
    report.add_argument("--prices", type=path_arg, default=None, metavar="FILE",
                        help="USD/hour per machine or device (YAML or CSV) (default: no cost figures)")
    report.add_argument("--target", nargs="+", default=[], metavar="ACC",
                        help="validation accuracy for time/cost/energy to target: ACC (10-class) or TASK=ACC (default: each "
                             "task's default target)")
    report.add_argument("--regression-threshold", type=positive_float, default=5.0, metavar="PCT",
                        help="percent worse than the previous commits that marks an asv regression")
    report.add_argument("--out", type=path_arg, default=None, help="output dir (default: reports/<date>-<host>/)")
    report.add_argument("--open", action="store_true", help="open the report in the default web browser")


def main(args: argparse.Namespace) -> int:
    """Write the HTML report; skipped input files are named on stderr."""
    from suite.report import page

    try:
        inputs = page.ReportInputs(
            results=args.results, out=args.out or page.default_out_dir(), asv_results=args.asv_results,
            pytest_benchmark=args.pytest_benchmark, prices=args.prices, targets=page.parse_targets(args.target),
            regression_pct=args.regression_threshold)
        written, problems = page.build_report(inputs)
    except page.ReportError as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return 2
    except page.ReportWriteError as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"report: {written}")
    if args.open:
        open_in_browser(written)
    return 0


def open_in_browser(path: Path) -> None:
    """Hand the page to the user's browser; where none is registered (a server, CI) say so rather than fail."""
    import webbrowser

    if not webbrowser.open(path.resolve().as_uri()):
        print(f"--open: no web browser found here; open {path} yourself", file=sys.stderr)
