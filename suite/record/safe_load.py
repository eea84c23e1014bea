"""The one way fashionbench parses JSON (and YAML, TOML) that anyone may have written: records, the probe and noise
caches, asv and pytest-benchmark files, profiler traces, worker messages, --prices, --plan. A hostile file (an integer of thousands of
digits, nesting thousands of levels deep, a string that is no Unicode text) becomes one LoadProblem saying so in a few
words, never a traceback from deep inside a reader."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

Item = TypeVar("Item")

# Deeper than anything fashionbench reads (records, asv and pytest-benchmark files, Chrome traces nest 3 to 6 levels),
# shallow enough that every recursive step after the parse (pydantic, json.dumps, the record checks) has stack to spare.
MAX_DEPTH = 64
# More digits than any count, size or timestamp has, few enough that every integer read converts to a float (about 309
# digits overflow) and Python's own limit (4,300 digits, a ValueError that advises sys.set_int_max_str_digits) is never met.
MAX_INT_DIGITS = 100
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
_INT_LIMIT = 10**MAX_INT_DIGITS


class LoadProblem(ValueError):
    """Text no reader can use; the message says why in a few words, without a file name (each caller adds its own)."""


def _too_long(digits: int) -> LoadProblem:
    return LoadProblem(f"holds a {digits:,}-digit integer (at most {MAX_INT_DIGITS} digits are read)")


def _parse_int(text: str) -> int:
    # json calls this with the digits before converting them: a 5,000-digit number is refused before Python tries.
    if (digits := len(text.lstrip("-"))) > MAX_INT_DIGITS:
        raise _too_long(digits)
    return int(text)


def _not_unicode(text: str) -> bool:
    # JSON's "\ud800" escapes make lone surrogates: text no UTF-8 page, CSV or terminal can take.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_shape(value: Any) -> None:
    """Raise LoadProblem when lists/dicts nest deeper than MAX_DEPTH, an integer is too long or a string is no Unicode
    text; walked with a stack of its own (no recursion), each container once (YAML aliases share them)."""
    stack, seen = [(value, 1)], set()
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _not_unicode(item):
                raise LoadProblem(f"holds a string that is not Unicode text ({ascii(item)[:40]})")
            continue
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) >= _INT_LIMIT:
            raise _too_long(len(str(abs(item))))
        if not isinstance(item, (dict, list)) or id(item) in seen:
            continue
        if depth > MAX_DEPTH:
            raise LoadProblem(TOO_DEEP)
        seen.add(id(item))
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


def parse_json(text: str | bytes) -> Any:
    """json.loads for text anyone may have written: bad JSON, a too-long integer or too-deep nesting is a LoadProblem.
    NaN and Infinity parse (as Python does); the readers refuse them where a figure must be finite."""
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise LoadProblem(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:  # the C scanner's own depth guard, long before MAX_DEPTH's walk could run
        raise LoadProblem(TOO_DEEP) from None
    check_shape(data)
    return data


def read_json(path: Path) -> Any:
    """parse_json of a file's UTF-8 text; OSError (no such file, unreadable) is left to the caller, text that is not
    UTF-8 is a LoadProblem."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LoadProblem(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_json(text)


@functools.cache
def _yaml_loader() -> type:
    """yaml.SafeLoader whose integers are held to MAX_INT_DIGITS before int() sees them (PyYAML imported on first use)."""
    import yaml

    def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        if (digits := sum(c.isdigit() for c in node.value)) > MAX_INT_DIGITS:
            raise _too_long(digits)
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    return loader


def parse_yaml(text: str) -> Any:
    """yaml.safe_load held to the same limits as parse_json (PyYAML builds nesting by recursion)."""
    import yaml

    try:
        data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise LoadProblem(f"not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise LoadProblem(TOO_DEEP) from None
    except LoadProblem:
        raise
    except ValueError as exc:  # a value YAML's own constructors cannot build, such as the date 2026-13-45
        raise LoadProblem(f"holds a value that cannot be read ({exc})") from None
    check_shape(data)
    return data


def parse_toml(text: str) -> Any:
    """tomllib.loads held to the same limits as parse_json (tomllib nests by recursion and reads integers with int())."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LoadProblem(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise LoadProblem(TOO_DEEP) from None
    except ValueError:  # tomllib's one bare ValueError: int() of an integer beyond Python's 4,300 digits
        raise LoadProblem(f"holds an integer of more than 4,300 digits (at most {MAX_INT_DIGITS} digits are read)") from None
    check_shape(data)
    return data


def read_each(paths: Iterable[Path], read: Callable[[Path], tuple[list[Item], list[str]]]) -> tuple[list[Item], list[str]]:
    """What `read` finds in every file, and one line per file it could not read or entry it skipped."""
    found: list[Item] = []
    problems: list[str] = []
    for path in paths:
        try:
            items, skipped = read(path)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        found.extend(items)
        problems.extend(skipped)
    return found, problems
