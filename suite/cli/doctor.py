"""`fashionbench doctor`: the data set, GPU access and the results folders, one line per problem."""

from __future__ import annotations

import argparse
from pathlib import Path

from suite.cli.common import add_data_dir_argument, add_results_argument
from suite.core import data

HELP = "check the data set, frameworks, GPU access and results folders"
EXIT_CODES = {1: "a problem was found (each one printed as a FAIL line)"}


def add_arguments(doctor: argparse.ArgumentParser) -> None:
    """Which results folders and data dir to check."""
    add_results_argument(doctor)
    add_data_dir_argument(doctor)


def _store_problems(directory: Path) -> list[str]:
    from suite.record.store import read_store

    records, bad = read_store([directory])
    problems = [f"corrupt: {line}" for line in bad]
    leftovers = sorted(directory.rglob(".*.tmp"))
    problems += [f"leftover temp file {p} (an interrupted write; safe to delete)" for p in leftovers]
    statuses = ", ".join(f"{s}={sum(r.status == s for r in records)}" for s in sorted({r.status for r in records}))
    print(f"ok   {directory}: {len(records)} readable record(s) {statuses}")
    return problems


def main(args: argparse.Namespace) -> int:
    """List every problem found (one line each); exit 1 if there is any."""
    from suite.run.runner import no_gpu_reason

    problems: list[str] = []
    try:
        found = data.load(args.data_dir)
        print(f"ok   data set verified in {found.source_dir}")
    except data.DataError as exc:
        problems.append(f"data: {exc}")
    gpu = no_gpu_reason()
    print(f"info cuda: {'usable GPU listed by NVML' if gpu is None else 'unavailable — ' + gpu}")
    for directory in args.results:
        if not directory.exists():
            print(f"info {directory}: no results yet")
            continue
        problems += _store_problems(directory)
    for line in problems:
        print(f"FAIL {line}")
    return 1 if problems else 0
