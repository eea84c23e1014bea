"""Read pytest-benchmark JSON files (`--benchmark-json` / `--benchmark-autosave`) into rows for the report."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from suite.record.safe_load import read_each, read_json
from suite.record.store import printable

# The most a count (rounds, iterations) can be: what numpy and pandas hold (int64).
MAX_COUNT = 2**63 - 1


@dataclass(frozen=True)
class BenchRow:
    """One benchmark from one pytest-benchmark file, times in milliseconds."""

    source: str
    commit: str
    datetime: str
    group: str
    name: str
    fullname: str
    median_ms: float
    iqr_ms: float
    rounds: int
    extra: str
    change_pct: float | None = None  # vs the same benchmark in the previous file (by datetime)


def _extra(info: dict[str, Any]) -> str:
    # Long extra_info dicts would swamp the table; scalars only, in the order the test wrote them.
    items = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
             if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return ", ".join(items[:8])


def _seconds(stats: dict[str, Any], key: str) -> float:
    value = stats.get(key) or 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"stats.{key} is {value!r}, not a time in seconds >= 0")
    return float(value)


def _count(stats: dict[str, Any], key: str) -> int:
    value = stats.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"stats.{key} is {value!r}, not a count (0 to 2**63-1)")
    return value


def _when(data: dict[str, Any]) -> str:
    # The runs of one benchmark are ordered by this, and each compared with the one before: it must be a date.
    text = str(data.get("datetime") or "")
    try:
        if text:
            datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"datetime {text!r} is not an ISO date and time") from None
    return text


def read_file(path: Path) -> tuple[list[BenchRow], list[str]]:
    """Rows of one pytest-benchmark JSON file and one line per benchmark in it that was skipped (a median that is not a
    finite time, a count beyond 2**63); raises ValueError when the file is not one."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError("not a pytest-benchmark JSON file (no 'benchmarks' list)")
    commit, when = str((data.get("commit_info") or {}).get("id") or "")[:10], _when(data)
    rows, problems = [], []
    for bench in data["benchmarks"]:
        stats = bench.get("stats") or {}
        if stats.get("median") is None:
            continue  # no timing (pytest --benchmark-disable): nothing to show, nothing wrong
        name = str(bench.get("fullname") or bench.get("name") or "")
        try:
            median, iqr, rounds = _seconds(stats, "median"), _seconds(stats, "iqr"), _count(stats, "rounds")
            _count(stats, "iterations")
        except ValueError as exc:
            problems.append(f"{path}: benchmark {name} ({exc})")
            continue
        rows.append(BenchRow(printable(path.name), commit, when, str(bench.get("group") or ""), str(bench.get("name") or ""),
                             name, 1000.0 * median, 1000.0 * iqr, rounds, _extra(bench.get("extra_info") or {})))
    return rows, problems


def read_files(paths: list[Path]) -> tuple[list[BenchRow], list[str]]:
    """Rows of all files ordered by benchmark then time, each with its change vs the previous file; and problems."""
    rows, problems = read_each(paths, read_file)
    rows.sort(key=lambda r: (r.group, r.fullname, r.datetime))
    out: list[BenchRow] = []
    for row in rows:
        previous = out[-1] if out and out[-1].fullname == row.fullname else None
        change = None
        if previous is not None and previous.median_ms > 0 and math.isfinite(row.median_ms):
            change = 100.0 * (row.median_ms - previous.median_ms) / previous.median_ms
        out.append(BenchRow(**{**row.__dict__, "change_pct": change}))
    return out, problems
