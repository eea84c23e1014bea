"""Shared pieces of the command line: the one-line-error parser, argument types, the default results folder."""

from __future__ import annotations

import argparse
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
    """argparse type: a float > 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not > 0")
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
