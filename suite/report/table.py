"""Tables of records for the terminal and pandas users: one row per run, or medians with spread per case."""

from __future__ import annotations

import pandas as pd

from suite.record.machines import record_machine_labels
from suite.record.metrics import Metric, shown_in, time_to_target_metric
from suite.record.scaling import with_scaling_efficiency
from suite.record.schema import RunRecord
from suite.record.stats import Summary
from suite.report.cases import group_cases, launch_hint


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


def frame(records: list[RunRecord]) -> pd.DataFrame:
    """All records as a DataFrame of flat rows."""
    return pd.DataFrame([r.to_row() for r in records])


def runs_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run with the headline figures."""
    df = frame(records)
    df["mfu_peak"] = [probe_note(r) for r in records]
    names = record_machine_labels(records)
    df["machine"] = [names[r.machine.machine_id] for r in records]
    cols = ["created_utc", "machine", "framework", "model", "device", "seed", "status", "epochs", "limit",
            "test_accuracy", "train_steady_samples_per_s", "first_epoch_s", "mfu_pct", "mfu_peak", "error"]
    return df[[c for c in cols if c in df.columns]]


def _cell(metric: Metric, stats: Summary | None, raw: bool = False) -> str | float | None:
    if raw:
        return None if stats is None else stats.median
    if stats is None:
        return "-"
    text = metric.format(stats.median)
    return text if stats.n == 1 else f"{text} ±{metric.format(stats.iqr / 2)} (n={stats.n})"


def summary_table(records: list[RunRecord], raw: bool = False) -> pd.DataFrame:
    """One row per case and machine: medians over repeats with half the IQR as spread, one column per metric (`raw`: the
    medians as plain numbers, for CSV/JSON readers)."""
    targets = sorted({float(t) for r in records for t in r.time_to_accuracy_s})
    metrics = [*shown_in("table"), *(time_to_target_metric(t) for t in targets)]
    rows = []
    for case in group_cases(with_scaling_efficiency(records)):
        statuses = sorted({r.status for r in case.records})
        row: dict[str, object] = {
            "machine": case.where, "framework": case.spec.framework, "model": case.spec.model,
            "device": case.spec.device, "batch": case.spec.batch_size, "variant": case.variant, "runs": len(case.records),
            "status": "ok" if statuses == ["ok"] else ",".join(statuses),
        }
        for metric in metrics:
            row[metric.key] = _cell(metric, case.stats(metric), raw)
            if metric.key == "mfu_pct":
                row["mfu_peak"] = probe_notes(case.ok)
        row["launch"] = launch_hint(case.ok)
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub pipe table; cells are kept as written (no number parsing) and `|` in them is escaped."""
    cells = df.astype(object).where(df.notna(), "").map(lambda v: str(v).replace("|", "\\|"))
    return cells.to_markdown(index=False, disable_numparse=True)


def render(df: pd.DataFrame, fmt: str) -> str:
    """The frame as a fixed-width table, markdown, CSV or JSON records."""
    if fmt == "markdown":
        return markdown(df)
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    return df.to_string(index=False)
