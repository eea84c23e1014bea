"""Read-only parser of asv results (`<results_dir>/<machine>/<commit>-<env>.json`, API v2 and v1) into series over commits."""

from __future__ import annotations

import itertools
import math
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from suite.record.metrics import METRIC_BY_ASV
from suite.record.safe_load import read_each, read_json
from suite.record.store import printable

# asv 0.6 writes each benchmark as a row whose cells follow `result_columns`; older files may omit it.
DEFAULT_COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
                   "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]
SKIP_FILES = {"machine.json", "benchmarks.json"}
# asv has no direction field: a track the metric registry names takes the registry's direction; any other name (older
# benchmarks) is higher-is-better when it has one of these words, everything else (times) lower-is-better.
HIGHER_IS_BETTER = re.compile(r"acc|per_s|throughput|mfu|util|speedup|_ops|score", re.I)
REGRESSION_WINDOW = 3
# asv dates are JavaScript timestamps (ms since 1970); the last one a date can show is 9999-12-31.
MAX_DATE_MS = 253_402_300_799_999


@dataclass(frozen=True)
class AsvPoint:
    """One benchmark value (one parameter combination) at one commit on one machine/env."""

    machine: str
    env: str
    commit: str
    date_ms: int | None
    started_at_ms: int | None
    benchmark: str
    params: tuple[str, ...]
    value: float


@dataclass
class AsvSeries:
    """One tracked figure over commits, in commit order, with the indices that regressed."""

    machine: str
    env: str
    benchmark: str
    params: tuple[str, ...]
    unit: str
    higher_is_better: bool
    points: list[AsvPoint] = field(default_factory=list)
    regressions: list[tuple[int, float, float]] = field(default_factory=list)  # (index, baseline, change %)

    @property
    def title(self) -> str:
        """benchmark(params) on machine/env."""
        params = f"({', '.join(p.strip(chr(39)) for p in self.params)})" if self.params else ""  # asv stores reprs
        return f"{self.benchmark}{params}"


def _rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    columns = data.get("result_columns") or DEFAULT_COLUMNS
    rows: dict[str, dict[str, Any]] = {}
    for name, row in (data.get("results") or {}).items():
        if isinstance(row, dict):  # API v1: {"result": [...], "params": [...]} or a bare number
            rows[name] = row
        elif isinstance(row, list):
            rows[name] = dict(zip(columns, row))
        else:
            rows[name] = {"result": [row], "params": []}
    return rows


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _timestamp(value: Any, what: str) -> int | None:
    """A JavaScript timestamp asv wrote (ms since 1970, up to year 9999), None when absent; anything else is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_DATE_MS:
        raise ValueError(f"{what} {value!r} is not a time in ms since 1970")
    return int(value)


def parse_result_file(path: Path, machine: str | None = None) -> tuple[list[AsvPoint], list[str]]:
    """Every finite value in one asv result file, and one line per benchmark skipped in it (an infinite value, an odd
    run start); failed (null) and skipped (NaN) values are left out, as asv means them. Raises ValueError when the file
    is not one or its commit date is no date."""
    data = read_json(path)
    if not isinstance(data, dict) or "results" not in data or "commit_hash" not in data:
        raise ValueError("not an asv result file (no results/commit_hash)")
    machine = (data.get("params") or {}).get("machine") or machine or printable(path.parent.name)
    date = _timestamp(data.get("date"), "date")
    points: list[AsvPoint] = []
    problems: list[str] = []
    for name, row in _rows(data).items():
        results = row.get("result")
        if results is None:
            continue
        if not isinstance(results, list):
            results = [results]
        params = row.get("params") or []
        combos = list(itertools.product(*params)) if params else [()]
        try:
            started = _timestamp(row.get("started_at"), "started_at")
            if any(isinstance(v, float) and math.isinf(v) for v in results):
                raise ValueError("a result is infinite")
        except ValueError as exc:
            problems.append(f"{path}: benchmark {name} ({exc})")
            continue
        for combo, value in zip(combos, results):
            number = _finite(value)
            if number is not None:
                points.append(AsvPoint(str(machine), str(data.get("env_name") or ""), str(data["commit_hash"]),
                                       date, started, name, tuple(str(c) for c in combo), number))
    return points, problems


def read_asv_results(root: Path) -> tuple[list[AsvPoint], dict[str, dict[str, Any]], list[str]]:
    """All points below an asv results dir, the benchmark metadata (benchmarks.json) and one line per skipped file."""
    problems: list[str] = []
    meta: dict[str, dict[str, Any]] = {}
    bench_file = root / "benchmarks.json"
    if bench_file.is_file():
        try:
            meta = {k: v for k, v in read_json(bench_file).items() if isinstance(v, dict)}
        except (OSError, ValueError, AttributeError) as exc:
            problems.append(f"{bench_file}: unreadable benchmarks.json ({exc})")
    points, skipped = read_each((p for p in sorted(root.rglob("*.json")) if p.name not in SKIP_FILES), parse_result_file)
    return points, meta, problems + skipped


def higher_is_better(benchmark: str, unit: str) -> bool:
    """Direction of a figure from its name (asv itself treats larger as worse)."""
    method = benchmark.rsplit(".", 1)[-1]
    if method in METRIC_BY_ASV:
        return METRIC_BY_ASV[method].higher_is_better
    return unit != "seconds" and bool(HIGHER_IS_BETTER.search(method))


def find_regressions(values: list[float], higher_better: bool, threshold_pct: float) -> list[tuple[int, float, float]]:
    """Points worse by more than the threshold than both the previous point and the median of the previous three."""
    found = []
    for i in range(1, len(values)):
        previous = values[max(0, i - REGRESSION_WINDOW):i]
        baselines = (values[i - 1], median(previous))
        changes = [100.0 * (values[i] - b) / abs(b) for b in baselines if b != 0]
        worse = [c if not higher_better else -c for c in changes]
        if len(worse) == 2 and min(worse) > threshold_pct:
            found.append((i, baselines[0], changes[0]))
    return found


def build_series(points: list[AsvPoint], meta: dict[str, dict[str, Any]], threshold_pct: float) -> list[AsvSeries]:
    """Group points into series ordered by commit date (then run start), flagging regressions."""
    grouped: dict[tuple[str, str, str, tuple[str, ...]], list[AsvPoint]] = {}
    for point in points:
        grouped.setdefault((point.machine, point.env, point.benchmark, point.params), []).append(point)
    series = []
    for (machine, env, name, params), group in sorted(grouped.items()):
        unit = str(meta.get(name, {}).get("unit") or ("seconds" if name.rsplit(".", 1)[-1].startswith("time_") else ""))
        group.sort(key=lambda p: (p.date_ms or 0, p.started_at_ms or 0, p.commit))
        item = AsvSeries(machine, env, name, params, unit, higher_is_better(name, unit), group)
        item.regressions = find_regressions([p.value for p in group], item.higher_is_better, threshold_pct)
        series.append(item)
    return series


def commit_subjects(commits: list[str], repo: Path) -> dict[str, str]:
    """First line of each commit message from git in `repo`; empty when git or the commits are unavailable."""
    if not commits:
        return {}
    try:
        # One `git log --all` instead of `git show HASH...`: an unknown hash would make git show fail for all.
        out = subprocess.run(["git", "-C", str(repo), "log", "--all", "--format=%H%x00%s"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    wanted = set(commits)
    subjects = {}
    for line in out.stdout.splitlines():
        if "\0" in line:
            sha, subject = line.split("\0", 1)
            if sha in wanted:
                subjects[sha] = subject
    return subjects
