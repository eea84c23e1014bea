"""`fashionbench show`: one table of what is recorded."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import TextIO

from suite.cli.common import UsageError, add_results_argument

HELP = "one table of what is recorded"
FORMATS = ("table", "markdown", "csv", "json")
EXIT_CODES = {1: "no records in the --results folders"}


def add_arguments(show: argparse.ArgumentParser) -> None:
    """Which stores to read, whether to aggregate, the output format and width."""
    add_results_argument(show)
    show.add_argument("--all", action="store_true", help="one row per run instead of medians per case")
    show.add_argument("--format", choices=FORMATS, default="table",
                      help="table (terminal), markdown (PR comment, CI job summary), csv or json (figures as numbers or "
                           "null)")
    show.add_argument("--wide", action="store_true",
                      help="every column, however wide; without it a terminal gets the columns that fit its width, "
                           "most useful first (docs/cli.md)")


def table_width(stream: TextIO, wide: bool) -> int | None:
    """Columns the table may take: None (all) for --wide, or for a pipe or file without $COLUMNS; else the terminal's."""
    if wide:
        return None
    if "COLUMNS" in os.environ or stream.isatty():
        return shutil.get_terminal_size().columns
    return None


def ascii_only(stream: TextIO) -> bool:
    """True when the stream cannot take the table's line characters (PYTHONIOENCODING=ascii, a C locale)."""
    return not (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "").startswith("utf")


def print_table(records: list, fmt: str = "table", wide: bool = False, runs: bool = False) -> None:
    """The records' summary (or one row per run) on stdout in `fmt`, fitted to the terminal unless `wide`."""
    from suite.report.table import render, runs_table, summary_table

    raw = fmt in ("csv", "json")
    table = runs_table(records, raw=raw) if runs else summary_table(records, raw=raw)
    print(render(table, fmt, table_width(sys.stdout, wide), ascii_only(sys.stdout)))


def main(args: argparse.Namespace) -> int:
    """Print the store as a table; unreadable files are named on stderr and skipped."""
    from suite.record.store import missing_results, read_store

    if problem := missing_results(args.results):
        raise UsageError(problem)
    records, problems = read_store(args.results)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    if not records:
        print(f"no records in {' '.join(map(str, args.results))}; run `fashionbench run` first", file=sys.stderr)
        return 1
    print_table(records, args.format, args.wide, runs=args.all)
    return 0
