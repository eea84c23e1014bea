"""`fashionbench show`: one table of what is recorded."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suite.cli.common import DEFAULT_RESULTS, UsageError

HELP = "one table of what is recorded"
FORMATS = ("table", "markdown", "csv", "json")


def add_arguments(show: argparse.ArgumentParser) -> None:
    """Which stores to read, whether to aggregate, and the output format."""
    show.add_argument("--results", type=Path, nargs="+", default=[DEFAULT_RESULTS])
    show.add_argument("--all", action="store_true", help="one row per run instead of medians per case")
    show.add_argument("--format", choices=FORMATS, default="table",
                      help="table (terminal), markdown (PR comment, CI job summary), csv or json (figures as plain numbers)")


def main(args: argparse.Namespace) -> int:
    """Print the store as a table; unreadable files are named on stderr and skipped."""
    from suite.record.store import missing_results, read_store
    from suite.report.table import render, runs_table, summary_table

    if problem := missing_results(args.results):
        raise UsageError(problem)
    records, problems = read_store(args.results)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    if not records:
        print(f"no records in {' '.join(map(str, args.results))}; run `fashionbench run` first", file=sys.stderr)
        return 1
    table = runs_table(records) if args.all else summary_table(records, raw=args.format in ("csv", "json"))
    print(render(table, args.format))
    return 0
