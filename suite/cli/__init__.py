"""`fashionbench` command line: a short dispatcher over one module per command."""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Sequence

from suite.cli import calibrate, compare, data, doctor, goals, listing, probe, report, run, show, targets
from suite.cli.common import Parser, UsageError
from suite.core.data import DataError
from suite.core.spec import SpecError
from suite.record.schema import RecordError

# Order is the order `fashionbench --help` lists them in.
COMMANDS: tuple[ModuleType, ...] = (listing, run, show, probe, calibrate, goals, doctor, data, report, compare,
                                  targets)


def command_name(module: ModuleType) -> str:
    """The subcommand a module implements: its NAME, else its module name."""
    return getattr(module, "NAME", module.__name__.rsplit(".", 1)[-1])


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for all subcommands."""
    parser = Parser(prog="fashionbench", description="Benchmark and profile the Fashion-MNIST classifiers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.add_arguments(sub.add_parser(command_name(module), help=module.HELP))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; expected failures print one line and exit 2."""
    args = build_parser().parse_args(argv)
    handlers = {command_name(m): m.main for m in COMMANDS}
    try:
        return handlers[args.command](args)
    except (SpecError, UsageError, DataError, RecordError) as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return 2
