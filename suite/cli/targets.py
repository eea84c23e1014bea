"""`fashionbench targets`: the old name of `fashionbench goals` ("target" now means an accuracy threshold only)."""

from __future__ import annotations

import argparse
import sys

from suite.cli import goals

HELP = "renamed to `goals`; runs it"
add_arguments = goals.add_arguments
EXIT_CODES = goals.EXIT_CODES


def main(args: argparse.Namespace) -> int:
    """Say the command was renamed, then run `goals` with the same flags."""
    print("fashionbench: `targets` was renamed to `goals` (speed goals; a target is an accuracy threshold); "
          "running `fashionbench goals`", file=sys.stderr)
    return goals.main(args)
