"""Tables of records for the terminal and pandas users: one row per run, or medians with spread per case."""

from __future__ import annotations

import pandas as pd

from suite.record.schema import RunRecord
from suite.record.stats import summarize

# Figures summarised per case: (column in RunRecord.to_row(), header, format, scale).
SUMMARY_FIGURES = (
    ("test_accuracy", "test_acc", ".4f", 1.0),
    ("train_steady_samples_per_s", "train_samples/s", ",.0f", 1.0),
    ("first_epoch_s", "epoch1_s", ".1f", 1.0),
    ("warmup_s", "warmup_s", ".1f", 1.0),
    ("steady_epoch_s", "epoch_s", ".2f", 1.0),
    ("infer_bs1_latency_ms_p50", "bs1_p50_ms", ".2f", 1.0),
    ("infer_bs1024_samples_per_s", "bs1024_samples/s", ",.0f", 1.0),
    ("host_rss_peak_bytes", "peak_rss_MiB", ",.0f", 1 / 2**20),
    ("mfu_pct", "mfu_%", ".1f", 1.0),
)


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
    cols = ["created_utc", "hostname", "framework", "model", "device", "seed", "status", "epochs", "limit",
            "test_accuracy", "train_steady_samples_per_s", "first_epoch_s", "mfu_pct", "mfu_peak", "error"]
    return df[[c for c in cols if c in df.columns]]


def _cell(values: list[float | None], fmt: str, scale: float) -> str:
    stats = summarize(v * scale if v is not None else None for v in values)
    if stats is None:
        return "-"
    text = format(stats.median, fmt)
    return text if stats.n == 1 else f"{text} ±{format(stats.iqr / 2, fmt)} (n={stats.n})"


def summary_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per case and machine: medians over repeats with half the IQR as spread."""
    df = frame(records)
    rows = []
    for (_, _), group in df.groupby(["case_key", "machine_id"], sort=False):
        first = group.iloc[0]
        ok = group[group["status"] == "ok"]
        row = {
            "host": first["hostname"], "framework": first["framework"], "model": first["model"],
            "device": first["device"], "batch": first["batch_size"], "variant": first["variant"], "runs": len(group),
            "status": "ok" if len(ok) == len(group) else ",".join(sorted(set(group["status"]))),
        }
        tta_cols = [c for c in df.columns if c.startswith("tta_")]
        for column, header, fmt, scale in SUMMARY_FIGURES:
            row[header] = _cell(list(ok[column]) if column in ok else [], fmt, scale)
        row["mfu_peak"] = probe_notes([r for r in records if r.case_key == first["case_key"]
                                       and r.machine.machine_id == first["machine_id"] and r.status == "ok"])
        for column in tta_cols:
            row[column.replace("tta_", "tta@").replace("_s", "") + "_s"] = _cell(list(ok[column]), ".1f", 1.0)
        rows.append(row)
    return pd.DataFrame(rows)
