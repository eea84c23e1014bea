"""Tables of records, medians per case or one row per run: for the terminal (fitted to its width, what every row shares
said once above, notes below), markdown, and CSV/JSON (figures as numbers or null).

A table is a DataFrame of cells plus `attrs["notes"]`: the lines its cells point to (the MFU peak each [n] means, why
a figure marked IMPOSSIBLE_MARK cannot be right).
"""

from __future__ import annotations

import io
import math
import statistics
import textwrap
from typing import Any, Callable

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from suite.record.machines import record_machine_labels
from suite.record.metrics import Metric, shown_in, time_to_target_metric
from suite.record.scaling import with_scaling_efficiency
from suite.record.schema import RunRecord
from suite.record.stats import Summary
from suite.report.cases import group_cases, launch_hint

MISSING = "-"
# Columns that name a row's case or its runs rather than measure it: hoisted above the table when every row agrees.
IDENTITY = ("machine", "framework", "model", "device", "variant", "batch", "runs", "status", "flags", "seed", "epochs",
            "limit", "created_utc", "launch", "error")
# The terminal's columns, most useful first: which case, then what a reader compares. Metrics not named here (new
# ones) follow in registry order, then the LAST ones; TIME_TO stands for every time_to_<target>_s column.
TIME_TO = "time_to_*"
PRIORITY = ("framework", "model", "device", "variant", "machine", "status", "flags", "test_accuracy",
            "train_samples_per_s", "infer_samples_per_s", "latency_p50_ms", "mfu_pct", TIME_TO, "first_epoch_s",
            "scaling_efficiency_pct", "rss_peak_mib", "steady_epoch_s")
LAST = ("batch", "runs", "seed", "epochs", "limit", "created_utc", "launch", "error")
# Prose columns wrap at this many characters instead of widening the table (a variant can name four settings).
WRAP_AT = {"variant": 24, "error": 60, "machine": 28, "flags": 24}


class Notes:
    """The numbered notes of one table: each distinct text gets one [n], in the order first seen."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def mark(self, text: str) -> str:
        """The marker for a note text, numbering it on first sight."""
        return self.texts.setdefault(text, f"[{len(self.texts) + 1}]")

    def lines(self) -> list[str]:
        """`[1] text` for every note."""
        return [f"{marker} {text}" for text, marker in self.texts.items()]


def probe_note(record: RunRecord) -> str:
    """Where the peak an MFU divides by came from: figure and dtype, cached or fresh, when, round spread, threads."""
    if record.mfu_pct is None or not record.peak_flops_per_s:
        return "-"
    head = f"peak {record.peak_flops_per_s / 1e9:,.0f} GFLOP/s {record.peak_flops_dtype or ''}".rstrip()
    probe = record.peak_probe
    if probe is None:
        return f"{head}, provenance not recorded"
    parts = [head, "cached" if probe.cached else "fresh", (probe.measured_utc or "time unknown")[:16].replace("T", " "),
             f"±{probe.spread_pct:.0f}%" if probe.spread_pct is not None else "", f"{probe.threads} threads"]
    if probe.threads and probe.cpu_cores_logical and probe.threads > probe.cpu_cores_logical:
        parts.append(f"more than the {probe.cpu_cores_logical} cores")
    if probe.disturbed:
        parts.append(f"DISTURBED ({probe.disturbed})")
    return ", ".join(p for p in parts if p)


def probe_notes(records: list[RunRecord]) -> str:
    """The distinct probe notes of the runs that have an MFU."""
    return "; ".join(sorted({probe_note(r) for r in records if r.mfu_pct is not None})) or "-"


def caveat_counts(records: list[RunRecord]) -> str:
    """The caveats of a case's runs, each with how many runs carry it ("DISTURBED 2/3, negative warm-up 1/3"), or ""."""
    counts: dict[str, int] = {}
    for record in records:
        for flag in record.caveats:
            counts[flag] = counts.get(flag, 0) + 1
    return ", ".join(f"{flag} {n}/{len(records)}" for flag, n in counts.items())


def frame(records: list[RunRecord]) -> pd.DataFrame:
    """All records as a DataFrame of flat rows."""
    return pd.DataFrame([r.to_row() for r in records])


def _figure(row: dict[str, Any], metric: Metric, value: float | None, text: str, raw: bool, notes: Notes,
            where: str) -> None:
    """One figure into a row: the number (None when missing or impossible, said in `flags`) or its text, marked."""
    why = metric.flag(value)
    if raw:
        row[metric.key] = None if why or value is None or not math.isfinite(value) else value
        if why:
            row["flags"] = "; ".join(filter(None, [row.get("flags"), f"{metric.key}: {why}"]))
        return
    row[metric.key] = f"{text} {notes.mark(f'{where}: {why}')}" if why else text


def _mfu_peak(row: dict[str, Any], records: list[RunRecord], raw: bool, notes: Notes) -> None:
    """The GEMM peak behind the MFU: its median FLOP/s in raw rows, a note marker after the MFU cell in text rows."""
    with_mfu = [r for r in records if r.mfu_pct is not None and r.peak_flops_per_s]
    if raw:
        row["mfu_peak_flops_per_s"] = statistics.median(r.peak_flops_per_s for r in with_mfu) if with_mfu else None
    elif with_mfu and row.get("mfu_pct") not in (None, MISSING):
        row["mfu_pct"] = f"{row['mfu_pct']} {notes.mark('MFU against ' + probe_notes(with_mfu))}"


def _summary_cell(metric: Metric, stats: Summary | None, runs: int) -> str:
    """Median ± half the IQR; (n=k) only when fewer than the case's ok runs have the figure."""
    if stats is None:
        return MISSING
    text = metric.shown(stats.median)
    spread = f" ±{metric.format(stats.iqr / 2)}" if stats.n > 1 else ""
    return f"{text}{spread}" + (f" (n={stats.n})" if stats.n != runs else "")


def summary_table(records: list[RunRecord], raw: bool = False) -> pd.DataFrame:
    """One row per case and machine: medians over repeats with half the IQR as spread, one column per metric of the
    `table` view and per recorded target (`raw`: the medians as plain numbers or None, for CSV/JSON)."""
    targets = sorted({float(t) for r in records for t in r.time_to_accuracy_s})
    metrics = [*shown_in("table"), *(time_to_target_metric(t) for t in targets)]
    rows, notes = [], Notes()
    for case in group_cases(with_scaling_efficiency(records)):
        statuses = sorted({r.status for r in case.records})
        row: dict[str, Any] = {
            "machine": case.where, "framework": case.spec.framework, "model": case.spec.model,
            "device": case.spec.device, "batch": case.spec.batch_size, "variant": case.variant, "runs": len(case.records),
            "status": "ok" if statuses == ["ok"] else ",".join(statuses),
            "flags": caveat_counts(case.ok) or (None if raw else MISSING),
        }
        for metric in metrics:
            stats = case.stats(metric)
            _figure(row, metric, stats and stats.median, _summary_cell(metric, stats, len(case.ok)), raw, notes,
                    case.label)
        _mfu_peak(row, case.ok, raw, notes)
        hint = launch_hint(case.ok)
        row["launch"] = hint if hint != "—" else (None if raw else MISSING)
        rows.append(row)
    return _with_notes(pd.DataFrame(rows), notes, metrics)


def runs_table(records: list[RunRecord], raw: bool = False) -> pd.DataFrame:
    """One row per run: when and where, the case, its status, the figures of the `table` view, its error."""
    rows, notes, machines = [], Notes(), record_machine_labels(records)
    for record in with_scaling_efficiency(records):
        spec = record.run_spec
        row: dict[str, Any] = {
            "created_utc": record.created_utc if raw else record.created_utc[:16].replace("T", " "),
            "machine": machines[record.machine.machine_id], "framework": spec.framework, "model": spec.model, "device": spec.device,
            "variant": record.to_row()["variant"], "seed": spec.seed, "status": record.status, "epochs": spec.epochs,
            "limit": spec.limit if raw or spec.limit is not None else MISSING,
            "flags": ", ".join(record.caveats) or (None if raw else MISSING),
        }
        for metric in shown_in("table"):
            value = metric.get(record)
            _figure(row, metric, value, MISSING if value is None else metric.shown(value), raw, notes,
                    f"{spec.label} seed={spec.seed}")
        _mfu_peak(row, [record], raw, notes)
        row["error"] = record.error if raw or record.error else MISSING
        rows.append(row)
    return _with_notes(pd.DataFrame(rows), notes, shown_in("table"))


def _with_notes(df: pd.DataFrame, notes: Notes, metrics: list[Metric] | tuple[Metric, ...]) -> pd.DataFrame:
    """The frame carrying its notes and its metrics' labels (the terminal's headers)."""
    df.attrs["notes"] = notes.lines()
    df.attrs["labels"] = {m.key: m.label for m in metrics}
    return df


def markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table; cells are kept as written (no number parsing) and `|` in them is escaped."""
    cells = df.astype(object).where(df.notna(), "").map(lambda v: str(v).replace("|", "\\|"))
    return cells.to_markdown(index=False, disable_numparse=True)


def render(df: pd.DataFrame, fmt: str, width: int | None = None, ascii_only: bool = False) -> str:
    """The table for the terminal (`width` columns, None: every column), as markdown with its notes, CSV or JSON."""
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    shared, body = hoist_shared(df)
    if fmt == "markdown":
        parts = [_facts_line(shared), markdown(body), *df.attrs.get("notes", [])]
        return "\n\n".join(p for p in parts if p)
    return terminal(df, width, ascii_only)


def hoist_shared(df: pd.DataFrame) -> tuple[dict[str, str], pd.DataFrame]:
    """The identity columns every row (of two or more) agrees on, and the table without them (or without ones every
    row leaves empty)."""
    if len(df) < 2:
        return {}, df
    shared = {c: str(df[c].iloc[0]) for c in df.columns if c in IDENTITY and df[c].astype(str).nunique() == 1}
    return {c: v for c, v in shared.items() if not _is_missing(v)}, df.drop(columns=list(shared))


def _facts_line(shared: dict[str, str]) -> str:
    return "every row: " + " · ".join(f"{key} {value}" for key, value in shared.items()) if shared else ""


def _rank(column: str) -> tuple[int, int]:
    """Where a column comes in the terminal's priority order."""
    slot = TIME_TO if column.startswith("time_to_") and column != "time_to_target_s" else column
    if slot in PRIORITY:
        return 0, PRIORITY.index(slot)
    if slot in LAST:
        return 2, LAST.index(slot)
    return 1, 0  # a metric the list does not name yet: after the named ones, in the frame's (registry) order


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or str(value) in ("", MISSING, "—")


def _header(column: str, labels: dict[str, str]) -> str:
    """The registry label of a metric column (two lines when long), the key of any other."""
    label = labels.get(column, column)
    if len(label) > 10 and " " in label:
        middle = min((i for i, ch in enumerate(label) if ch == " "), key=lambda i: abs(i - len(label) / 2))
        label = f"{label[:middle]}\n{label[middle + 1:]}"
    return label


def _rich_table(df: pd.DataFrame, columns: list[str], ascii_only: bool) -> Table:
    table = Table(box=box.ASCII2 if ascii_only else box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in columns:
        numeric = column not in IDENTITY
        table.add_column(_header(column, df.attrs.get("labels", {})), justify="right" if numeric else "left",
                         no_wrap=column not in WRAP_AT, overflow="fold", max_width=WRAP_AT.get(column))
    for _, row in df[columns].iterrows():
        table.add_row(*(MISSING if _is_missing(v) else str(v) for v in row))
    return table


def _width(table: Table) -> int:
    return Console(width=100_000).measure(table).maximum


def fit_columns(df: pd.DataFrame, width: int | None, measure: Callable[[list[str]], int]) -> list[str]:
    """The columns in priority order, each kept when the table still fits `width` with it (None: all of them)."""
    order = sorted(df.columns, key=_rank)
    if width is None:
        return order
    chosen: list[str] = []
    for column in order:
        if not chosen or measure([*chosen, column]) <= width:
            chosen.append(column)
    return chosen


def terminal(df: pd.DataFrame, width: int | None, ascii_only: bool = False) -> str:
    """What every row shares, then the columns that fit `width` (None: all), then the notes and what was left out."""
    shared, body = hoist_shared(df)
    empty = [c for c in body.columns if c not in IDENTITY and all(_is_missing(v) for v in body[c])]
    body = body.drop(columns=empty)
    columns = fit_columns(body, width, lambda cols: _width(_rich_table(body, cols, ascii_only)))
    hidden = [c for c in sorted(body.columns, key=_rank) if c not in columns]
    out = io.StringIO()
    Console(file=out, width=width or 100_000, color_system=None, legacy_windows=False).print(
        _rich_table(body, columns, ascii_only))
    table = "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())
    notes = [note for note in df.attrs.get("notes", []) if note.split(" ", 1)[0] in table]  # of the columns shown
    if empty:
        notes.append(f"no figure in any row: {', '.join(empty)}")
    if hidden:
        notes.append(f"left out to fit {width} columns (--wide shows them): {', '.join(hidden)}")
    above = [_facts_line(shared)]
    if width:  # the table fits by its columns; the prose around it wraps
        above, notes = ([textwrap.fill(line, width, subsequent_indent="    ", break_on_hyphens=False) for line in lines]
                        for lines in (above, notes))
    return "\n".join(filter(None, [*above, table, *notes]))
