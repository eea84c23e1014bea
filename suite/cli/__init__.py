"""`fashionbench` command line: a short dispatcher over one module per command."""

from __future__ import annotations

import argparse
import io
import os
import sys
from types import ModuleType
from typing import Sequence

from suite.cli import calibrate, compare, data, doctor, goals, gpucheck, listing, probe, report, run, show, targets
from suite.cli.common import Parser, UsageError
from suite.core.data import DataError
from suite.core.spec import SpecError
from suite.record.schema import RecordError

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head -1` gives for yes

# Order is the order `fashionbench --help` lists them in.
COMMANDS: tuple[ModuleType, ...] = (listing, run, show, probe, calibrate, goals, doctor, data, report, compare,
                                  targets, gpucheck)


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
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")  # PYTHONIOENCODING=ascii: "±" prints as "?" instead of a traceback
    args = build_parser().parse_args(argv)
    handlers = {command_name(m): m.main for m in COMMANDS}
    try:
        code = handlers[args.command](args)
        sys.stdout.flush()  # a reader that went away is found here, not in the interpreter's flush at exit
        return code
    except (SpecError, UsageError, DataError, RecordError) as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `fashionbench show | head -1`: the reader has what it wanted. Point stdout at /dev/null so the flush at exit
        # cannot fail again (the recipe in Python's signal docs) and exit as a SIGPIPE'd tool would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
