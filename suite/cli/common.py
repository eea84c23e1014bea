"""Shared pieces of the command line: the one-line-error parser, its help format, argument types, exit codes, the
default results folder."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import NoReturn

DEFAULT_RESULTS = Path("results")
# What every command may exit with; a command module's EXIT_CODES adds its own (its --help epilog and docs/cli.md list both).
COMMON_EXIT_CODES = {0: "success", 2: "bad input (a flag, a plan file, the data set, a results folder): one line on stderr",
                     141: "the reader of stdout went away (`fashionbench show | head -1`)"}


class UsageError(Exception):
    """Bad input found before any case ran; printed as one line."""


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


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0 (nan and inf would mean no limit at all)."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number > 0")
    return value


def on_off(text: str) -> bool:
    """argparse type: on/off."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r} is not on or off")
    return text == "on"


def check_rounds(rounds: int) -> None:
    """--rounds must be at least 1."""
    if rounds < 1:
        raise UsageError(f"--rounds {rounds} is out of range; valid: >= 1")


def warn_threads_above_cores(threads: list[int]) -> None:
    """One stderr line when --threads asks for more threads than this machine has logical cores."""
    cores = os.cpu_count() or 1
    if over := sorted(t for t in threads if t > cores):
        print(f"fashionbench: warning: --threads {' '.join(map(str, over))} is more than the {cores} logical cores here: "
              "threads will share cores, so throughput and the GEMM peak come out low (each record keeps its threads)",
              file=sys.stderr)


def add_data_dir_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--data-dir, the same for every command that reads Fashion-MNIST."""
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder with the four Fashion-MNIST *-ubyte(.gz) files (default: the system copy, then the "
                             "cache; `fashionbench data` shows which)")


def add_threads_argument(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """--threads: intra-op threads, all logical cores unless told; `several` makes it an axis of the plan."""
    cores = os.cpu_count() or 1
    parser.add_argument("--threads", type=int, nargs="+" if several else None, default=[cores] if several else cores,
                        metavar="N", help=f"intra-op threads, the same for every framework (default: all {cores} logical "
                                          "cores here)")


def add_timeout_argument(parser: argparse.ArgumentParser) -> None:
    """--timeout: seconds one case may run before its process is killed."""
    parser.add_argument("--timeout", type=positive_float, default=3600.0, metavar="S",
                        help="seconds per case before its process is killed and it is recorded as timeout")


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    """--results for the commands that read stores: several folders or record files."""
    parser.add_argument("--results", type=Path, nargs="+", default=[DEFAULT_RESULTS], metavar="DIR",
                        help="results folders or record files to read")
