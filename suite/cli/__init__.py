"""`fashionbench` command line: a short dispatcher over one module per command."""

from __future__ import annotations

import argparse
import io
import os
import sys
from types import ModuleType
from typing import Sequence

from suite.cli import (
    calibrate,
    compare,
    data,
    doctor,
    goals,
    gpucheck,
    listing,
    noise,
    probe,
    report,
    run,
    show,
    targets,
)
from suite.cli.common import Parser, UsageError, exit_codes_epilog
from suite.core.data import DataError
from suite.core.spec import SpecError
from suite.record.schema import RecordError

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head -1` gives for yes

# Order is the order `fashionbench --help` lists them in.
COMMANDS: tuple[ModuleType, ...] = (listing, run, show, probe, calibrate, noise, goals, doctor, data, report, compare,
                                  targets, gpucheck)


def command_name(module: ModuleType) -> str:
    """The subcommand a module implements: its NAME, else its module name."""
    return getattr(module, "NAME", module.__name__.rsplit(".", 1)[-1])


def version_text() -> str:
    """`fashionbench 0.1.0 (git d8fffa3)`: the installed version and, in a checkout, its commit."""
    from importlib import metadata

    from suite.measure.machine import git_commit

    try:
        version = metadata.version("fashionbench")
    except metadata.PackageNotFoundError:
        version = "not installed (run from a checkout)"
    commit = git_commit()
    return f"fashionbench {version}" + (f" (git {commit[:7]})" if commit else "")


class VersionAction(argparse.Action):
    """--version, worked out only when asked for (no git call on every command)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version (and the git commit of a checkout) and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(version_text())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for all subcommands; each one's --help ends with its exit codes."""
    parser = Parser(prog="fashionbench", description="Benchmark and profile the Fashion-MNIST classifiers.",
                    epilog="`fashionbench COMMAND --help` for a command's flags and exit codes; docs/cli.md for all.")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for module in COMMANDS:
        module.add_arguments(sub.add_parser(command_name(module), help=module.HELP, description=module.HELP,
                                            epilog=exit_codes_epilog(getattr(module, "EXIT_CODES", {}))))
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The command line, with a `--plan`'s flags read in before the typed ones (which win); `plan_line` names it."""
    args = parser.parse_args(argv)
    if getattr(args, "plan", None):
        from suite.cli.planfile import with_plan

        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        argv, line = with_plan(argv, args.command, subparsers.choices[args.command], args.plan)
        args = parser.parse_args(argv)
        args.plan_line = line
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; expected failures print one line and exit 2 (docs/cli.md lists every exit code)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")  # PYTHONIOENCODING=ascii: "±" prints as "?" instead of a traceback
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    handlers = {command_name(m): m.main for m in COMMANDS}
    try:
        args = parse(parser, argv)
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
