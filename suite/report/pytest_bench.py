"""Read pytest-benchmark JSON files (`--benchmark-json` / `--benchmark-autosave`) into rows for the report."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


def read_file(path: Path) -> list[BenchRow]:
    """Rows of one pytest-benchmark JSON file; raises ValueError when it is not one."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError("not a pytest-benchmark JSON file (no 'benchmarks' list)")
    commit = str((data.get("commit_info") or {}).get("id") or "")[:10]
    rows = []
    for bench in data["benchmarks"]:
        stats = bench.get("stats") or {}
        if not isinstance(stats.get("median"), (int, float)):
            continue
        rows.append(BenchRow(path.name, commit, str(data.get("datetime") or ""), str(bench.get("group") or ""),
                             str(bench.get("name") or ""), str(bench.get("fullname") or bench.get("name") or ""),
                             1000.0 * stats["median"], 1000.0 * float(stats.get("iqr") or 0.0),
                             int(stats.get("rounds") or 0), _extra(bench.get("extra_info") or {})))
    return rows


def read_files(paths: list[Path]) -> tuple[list[BenchRow], list[str]]:
    """Rows of all files ordered by benchmark then time, each with its change vs the previous file; and problems."""
    rows: list[BenchRow] = []
    problems: list[str] = []
    for path in paths:
        try:
            rows.extend(read_file(path))
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
            problems.append(f"{path}: skipped ({exc})")
    rows.sort(key=lambda r: (r.group, r.fullname, r.datetime))
    out: list[BenchRow] = []
    for row in rows:
        previous = out[-1] if out and out[-1].fullname == row.fullname else None
        change = None
        if previous is not None and previous.median_ms > 0 and math.isfinite(row.median_ms):
            change = 100.0 * (row.median_ms - previous.median_ms) / previous.median_ms
        out.append(BenchRow(**{**row.__dict__, "change_pct": change}))
    return out, problems
