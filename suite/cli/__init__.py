"""`fashionbench` command line: a short dispatcher over one module per command."""

from __future__ import annotations

import argparse
import errno
import io
import os
import sys
from types import ModuleType
from typing import Sequence, TextIO

try:  # the commands' modules take a moment to load; Ctrl-C then is one line (nothing has started), not a traceback
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
    from suite.cli.common import (
        EXIT_INTERRUPTED,
        EXIT_OUTPUT,
        INTERRUPTED_EARLY,
        Interrupted,
        Parser,
        UsageError,
        exit_codes_epilog,
        too_long_line,
    )
    from suite.core.data import DataError
    from suite.core.spec import SpecError
    from suite.record.schema import RecordError
except KeyboardInterrupt:
    from suite.cli.common import EXIT_INTERRUPTED, INTERRUPTED_EARLY

    print(f"fashionbench: {INTERRUPTED_EARLY}", file=sys.stderr)
    raise SystemExit(EXIT_INTERRUPTED) from None

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


class OutputError(Exception):
    """Writing the command's own output (stdout) failed: a full disk behind `> FILE`, /dev/full, a failing device."""


class GuardedStdout:
    """sys.stdout while a command runs: a write or flush that fails is raised as OutputError, so main() can tell it from
    a failure writing any other file; a reader gone away (BrokenPipeError) passes through as it is."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        """Write to the real stdout."""
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from exc

    def flush(self) -> None:
        """Flush the real stdout."""
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from exc

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)  # isatty, fileno, encoding: the real stream's


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; expected failures print one line and exit 2 (docs/cli.md lists every exit code)."""
    if sys.stdout is None:
        # Started with stdout closed (`>&-`): the next file opened would take its descriptor and get the output.
        print("fashionbench: error: cannot write the output (stdout is closed); run it with stdout open "
              "(`> /dev/null` to discard it)", file=sys.stderr)
        return EXIT_OUTPUT
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")  # PYTHONIOENCODING=ascii: "±" prints as "?" instead of a traceback
    stdout = sys.stdout
    sys.stdout = GuardedStdout(stdout)  # type: ignore[assignment]
    try:
        return dispatch(list(sys.argv[1:] if argv is None else argv))
    finally:
        sys.stdout = stdout


def dispatch(argv: list[str]) -> int:
    """Parse and run one command; every expected failure is one line on stderr and its exit code."""
    handlers = {command_name(m): m.main for m in COMMANDS}
    args = None
    try:
        args = parse(build_parser(), argv)
        code = handlers[args.command](args)
        sys.stdout.flush()  # a reader that went away is found here, not in the interpreter's flush at exit
        return code
    except (SpecError, UsageError, DataError, RecordError) as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `fashionbench show | head -1`: the reader has what it wanted. Point stdout at /dev/null so the flush at exit
        # cannot fail again (the recipe in Python's signal docs) and exit as a SIGPIPE'd tool would.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OutputError as exc:
        _silence_stdout()  # what is still buffered goes nowhere at exit, instead of failing (and printing) again
        print(f"fashionbench: error: cannot write the output ({exc})", file=sys.stderr)
        return EXIT_OUTPUT
    except Interrupted as exc:
        print(f"fashionbench: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        # Ctrl-C outside a plan (run_plan keeps finished cases and says so itself): one line, no traceback.
        print(f"fashionbench: {INTERRUPTED_EARLY if args is None else 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        # A path the OS refuses as too long that no flag's check saw (one built below a folder, $FASHIONBENCH_CACHE).
        print(f"fashionbench: error: {too_long_line(exc.filename)}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit cannot fail (and print) again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
