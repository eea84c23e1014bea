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


def frame(records: list[RunRecord]) -> pd.DataFrame:
    """All records as a DataFrame of flat rows."""
    return pd.DataFrame([r.to_row() for r in records])


def runs_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per run with the headline figures."""
    df = frame(records)
    cols = ["created_utc", "hostname", "framework", "model", "device", "seed", "status", "epochs", "limit",
            "test_accuracy", "train_steady_samples_per_s", "first_epoch_s", "mfu_pct", "error"]
    return df[[c for c in cols if c in df.columns]]


def _cell(values: list[float | None], fmt: str, scale: float, raw: bool = False) -> str | float | None:
    stats = summarize(v * scale if v is not None else None for v in values)
    if raw:
        return None if stats is None else stats.median
    if stats is None:
        return "-"
    text = format(stats.median, fmt)
    return text if stats.n == 1 else f"{text} ±{format(stats.iqr / 2, fmt)} (n={stats.n})"


def summary_table(records: list[RunRecord], raw: bool = False) -> pd.DataFrame:
    """One row per case and machine: medians over repeats with half the IQR as spread (`raw`: the medians as numbers,
    for CSV/JSON readers)."""
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
            row[header] = _cell(list(ok[column]) if column in ok else [], fmt, scale, raw)
        for column in tta_cols:
            row[column.replace("tta_", "tta@").replace("_s", "") + "_s"] = _cell(list(ok[column]), ".1f", 1.0, raw)
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
