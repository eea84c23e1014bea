"""Shared pieces of the command line: the one-line-error parser, its help format, argument types, exit codes, the
default results folder."""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterator, NoReturn

DEFAULT_RESULTS = Path("results")
# What every command may exit with; a command module's EXIT_CODES adds its own (its --help epilog and docs/cli.md list both).
COMMON_EXIT_CODES = {0: "success",
                     1: "the output could not be written (stdout on a full disk, or closed): one line on stderr",
                     2: "bad input (a flag, a plan file, the data set, a results folder): one line on stderr",
                     130: "interrupted (Ctrl-C) before anything was run: one line on stderr",
                     141: "the reader of stdout went away (`fashionbench show | head -1`)"}
EXIT_OUTPUT, EXIT_INTERRUPTED = 1, 130
INTERRUPTED_EARLY = "interrupted before the first case; nothing was run"


class UsageError(Exception):
    """Bad input found before any case ran; printed as one line."""


class Interrupted(Exception):
    """Ctrl-C at a point where the command can say what was (not) done; printed as one line, exit 130."""


@contextlib.contextmanager
def nothing_run_yet() -> Iterator[None]:
    """Ctrl-C inside the block (loading data, connecting a cluster: before any case) is one line, not a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(INTERRUPTED_EARLY) from None


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's help ends with its default (lists space-separated as typed; none for on/off switches and for
    flags whose help already says it); epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        # `is` for False: 0 == False, and --seed's default 0 is worth showing.
        unset = default is None or default is False or default is argparse.SUPPRESS or default == []
        if "(default" in text or unset or not action.option_strings:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def exit_codes_epilog(codes: dict[int, str]) -> str:
    """The exit codes of a command, for the end of its --help."""
    merged = {**COMMON_EXIT_CODES, **codes}
    return "exit codes:\n" + "\n".join(f"  {code:<4} {merged[code]}" for code in sorted(merged))


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help and the help format above."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"fashionbench: error: {message}; see `{self.prog} --help`\n")


def number_in(low: float | None = None, high: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """argparse type: a finite float in low..high (`above`: strictly above low). nan passes every comparison and inf
    means no limit at all, so both are refused here, by every float flag, before anything starts."""
    bounds = [f"{'>' if above else '>='} {low:g}"] if low is not None else []
    bounds += [f"<= {high:g}"] if high is not None else []
    wanted = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = low is not None and (value <= low if above else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {wanted}")
        return value

    parse.__name__ = "number"  # argparse names the type in its own messages
    return parse


positive_float = number_in(0, above=True)
finite_float = number_in()


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path for a one-line message: a long one cut to its start and its length."""
    text = os.fspath(path)
    return text if len(text) <= 80 else f"{text[:40]}… ({len(text):,} characters)"


def too_long_line(path: str | os.PathLike[str] | None) -> str:
    """The one line for a path the OS refuses as too long (ENAMETOOLONG)."""
    named = f"path {shown_path(path)}" if path else "a path"
    return f"{named} is too long ({os.strerror(errno.ENAMETOOLONG)}); pass a shorter path"


def _limit(name: str, fallback: int) -> int:
    """A path limit of this system (PATH_MAX, NAME_MAX), the POSIX-usual value where it cannot say."""
    try:
        return os.pathconf("/", name)
    except (OSError, ValueError):
        return fallback


def path_too_long(text: str) -> bool:
    """Whether the OS would refuse `text` with ENAMETOOLONG: the whole longer than PATH_MAX or a part than NAME_MAX."""
    raw = os.fsencode(text)
    return len(raw) >= _limit("PC_PATH_MAX", 4096) or any(len(part) > _limit("PC_NAME_MAX", 255) for part in raw.split(b"/"))


def path_arg(text: str) -> Path:
    """argparse type of every path flag: not empty (Path("") is the current folder) and not too long for the OS."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path names no folder or file; pass a path (`.` for the current folder)")
    if path_too_long(text):
        raise argparse.ArgumentTypeError(too_long_line(text))
    return Path(text)


def path_text(text: str) -> str:
    """path_arg's checks, the path kept as text (--data-dir travels to the worker processes in JSON)."""
    return os.fspath(path_arg(text))


def on_off(text: str) -> bool:
    """argparse type: on/off."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r} is not on or off")
    return text == "on"


ROUNDS_MAX = 100  # each round runs every case of both sides again: 100 is days of work already


def check_rounds(rounds: int) -> None:
    """--rounds must be in 1..ROUNDS_MAX."""
    if not 1 <= rounds <= ROUNDS_MAX:
        raise UsageError(f"--rounds {rounds} is out of range; valid: 1..{ROUNDS_MAX}")


def warn_threads_above_cores(threads: list[int]) -> None:
    """One stderr line when --threads asks for more threads than this machine has logical cores."""
    cores = os.cpu_count() or 1
    if over := sorted(t for t in threads if t > cores):
        print(f"fashionbench: warning: --threads {' '.join(map(str, over))} is more than the {cores} logical cores here: "
              "threads will share cores, so throughput and the GEMM peak come out low (each record keeps its threads)",
              file=sys.stderr)


def add_data_dir_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--data-dir, the same for every command that reads Fashion-MNIST."""
    parser.add_argument("--data-dir", type=path_text, default=None, metavar="DIR",
                        help="folder with the four Fashion-MNIST *-ubyte(.gz) files (default: the system copy, then the "
                             "cache; `fashionbench data` shows which)")


def add_threads_argument(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """--threads: intra-op threads, all logical cores unless told; `several` makes it an axis of the plan."""
    from suite.core.spec import THREADS_MAX  # here: this module loads nothing heavy (suite.cli's Ctrl-C line needs it)

    cores = os.cpu_count() or 1
    parser.add_argument("--threads", type=int, nargs="+" if several else None, default=[cores] if several else cores,
                        metavar="N", help=f"intra-op threads, 1..{THREADS_MAX}, the same for every framework (default: all {cores} logical "
                                          "cores here)")


def add_timeout_argument(parser: argparse.ArgumentParser) -> None:
    """--timeout: seconds one case may run before its process is killed."""
    parser.add_argument("--timeout", type=positive_float, default=3600.0, metavar="S",
                        help="seconds per case before its process is killed and it is recorded as timeout")


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    """--results for the commands that read stores: several folders or record files."""
    parser.add_argument("--results", type=path_arg, nargs="+", default=[DEFAULT_RESULTS], metavar="DIR",
                        help="results folders or record files to read")
