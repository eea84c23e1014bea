"""Shared pieces of the command line: the one-line-error parser, argument types, the default results folder."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import NoReturn

DEFAULT_RESULTS = Path("results")


class UsageError(Exception):
    """Bad input found before any case ran; printed as one line."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help."""

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
