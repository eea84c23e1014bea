"""`run --plan NAME|FILE`: a TOML file whose keys are `run`'s flags (without `--`), or a built-in plan, read before the
command line so that a flag typed there still wins.

A built-in plan is a `suite/cli/plans/NAME.toml` file: dropping one there makes `--plan NAME` work and lists it in
`run --help`. Its `description` key is the one line shown when it starts. A plan other code also runs (the GPU check runs
the hardware plan's CUDA half) is a table of the same keys in suite.bench.named_plans instead, so it has one source.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import Any, NoReturn, Sequence

from suite.bench.named_plans import NAMED_PLANS
from suite.cli.common import UsageError
from suite.record.safe_load import LoadProblem, parse_toml

BUILTIN_DIR = Path(__file__).with_name("plans")
NOT_FLAGS = {"help", "plan"}  # keys a plan may not set: a plan naming a plan would be a loop
DESCRIPTION_KEY = "description"  # the one key that is not a flag: shown when the plan starts


def builtin_plans() -> dict[str, Path | dict[str, Any]]:
    """Built-in plan name → its TOML file, or its table for the plans defined in code."""
    return {**{path.stem: path for path in sorted(BUILTIN_DIR.glob("*.toml"))}, **NAMED_PLANS}


def plan_path(name: str) -> Path | dict[str, Any]:
    """The file `--plan NAME|FILE` means: an existing file first, else a built-in plan of that name (its table when it
    is defined in code)."""
    path = Path(name)
    if path.is_file():
        return path
    if name in (builtins := builtin_plans()):
        return builtins[name]
    raise UsageError(f"--plan {name!r}: no such file and no built-in plan of that name; built-in plans: "
                     f"{', '.join(builtins) or 'none'}")


def read_plan(path: Path) -> dict[str, Any]:
    """The plan's table, or one line saying why it cannot be read."""
    try:
        return parse_toml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"plan {path}: cannot be read: {exc}") from None
    except LoadProblem as exc:
        raise UsageError(f"plan {path}: {exc}") from None


def _flag_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """`run`'s flags a plan may set, by dest (batch_size)."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest not in NOT_FLAGS}


def _token(value: Any, action: argparse.Action) -> str:
    """One TOML value as the text typed after the flag: true/false become on/off for off|on flags."""
    if isinstance(value, bool) and action.metavar == "off|on":
        return "on" if value else "off"
    if isinstance(value, (dict, list)):
        raise ValueError("a list may hold only plain values (strings, numbers, true/false)")
    return str(value)


def _tokens(key: str, value: Any, action: argparse.Action) -> list[str]:
    """The command-line tokens of one plan entry, checked by argparse's own conversion (type and choices)."""
    flag = action.option_strings[-1]
    if action.nargs == 0:  # --quick, --strict: a switch
        if not isinstance(value, bool):
            raise ValueError(f"{key} = {value!r} must be true or false")
        return [flag] if value else []
    values = value if isinstance(value, list) else [value]
    if action.nargs not in ("+", "*") and len(values) != 1:
        raise ValueError(f"{key} takes one value, not a list")
    if action.nargs == "+" and not values:
        raise ValueError(f"{key} = [] needs at least one value")
    texts = [_token(v, action) for v in values]
    check_values(action, texts)
    return [flag, *texts]


def check_values(action: argparse.Action, texts: list[str]) -> None:
    """ValueError with argparse's own message when the flag would refuse these texts (its type and choices)."""
    probe = _Probe(add_help=False, exit_on_error=False)
    probe.add_argument(*action.option_strings, dest=action.dest, nargs=action.nargs, type=action.type,
                       choices=action.choices)
    try:
        probe.parse_args([action.option_strings[-1], *texts])
    except argparse.ArgumentError as exc:
        raise ValueError(f"{action.dest} = {' '.join(texts)}: {exc.message}") from None


class _Probe(argparse.ArgumentParser):
    """A parser of one flag whose every refusal is a ValueError, never an exit."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def plan_argv(path: Path | dict[str, Any], parser: argparse.ArgumentParser) -> tuple[list[str], str | None]:
    """The plan as `run` tokens and its description; a bad key or value is one line naming the plan and the fix."""
    table = read_plan(path) if isinstance(path, Path) else dict(path)
    actions = _flag_actions(parser)
    description = table.pop(DESCRIPTION_KEY, None)
    argv: list[str] = []
    for key, value in table.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            close = difflib.get_close_matches(dest, actions, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; keys are `fashionbench run` flags without --"
            raise UsageError(f"plan {path}: {key!r} is not a flag of `fashionbench run`{hint}")
        try:
            argv += _tokens(key, value, actions[dest])
        except ValueError as exc:
            raise UsageError(f"plan {path}: {exc}") from None
    return argv, description if isinstance(description, str) else None


def with_plan(argv: Sequence[str], command: str, parser: argparse.ArgumentParser,
              plan: str) -> tuple[list[str], str]:
    """argv with the plan's flags put right after the command name (so the flags typed after it override them), and a
    line naming the plan."""
    path = plan_path(plan)
    tokens, description = plan_argv(path, parser)
    argv = list(argv)
    at = argv.index(command) + 1
    return [*argv[:at], *tokens, *argv[at:]], f"plan {plan}" + (f": {description}" if description else "")
