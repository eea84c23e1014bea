"""`fashionbench report`: one self-contained HTML file (plots embedded) plus PNGs and summary.csv from result stores."""

from __future__ import annotations

import base64
import csv
import io
import math
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from matplotlib.figure import Figure

from suite import report_env as env
from suite import report_plots as plots
from suite.asv_results import build_series, commit_subjects, read_asv_results
from suite.prices import load_prices
from suite.report_cases import (METRIC_BY_KEY, Case, Metric, beyond_noise, best_values, default_targets, group_cases,
                                median_with_inf, pareto_front, tta_metric)
from suite.report_claims import REFERENCE, check_claims, overall
from suite.report_claims import RULES as CLAIM_RULES
from suite.report_curves import RULE as OVERFIT_RULE
from suite.report_curves import case_curves, run_overfit
from suite.report_hardware import case_costs, recommend
from suite.report_pytest_bench import read_files as read_pytest_benchmark
from suite.results import RecordError, read_store

SUMMARY_KEYS = ("test_accuracy", "train_samples_per_s", "first_epoch_s", "infer_samples_per_s", "latency_p50_ms",
                "latency_p99_ms", "peak_rss_mib", "peak_device_mib", "gpu_util_pct", "energy_per_1k_j", "mfu_pct")
SIDE_BY_SIDE_KEYS = ("train_samples_per_s", "test_accuracy", "first_epoch_s", "steady_epoch_s", "infer_samples_per_s",
                     "latency_p50_ms")
BEST_MARK = "★"
DEFAULT_REGRESSION_PCT = 5.0


class ReportError(ValueError):
    """Bad input to the report (missing dir, no records, bad prices); one line naming the fix."""


@dataclass
class ReportInputs:
    """What the report reads and where it writes."""

    results: list[Path]
    out: Path
    asv_results: Path | None = None
    pytest_benchmark: list[Path] = field(default_factory=list)
    prices: Path | None = None
    targets: dict[str, float] = field(default_factory=dict)
    regression_pct: float = DEFAULT_REGRESSION_PCT
    repo: Path = Path(".")


def default_out_dir(root: Path = Path("reports")) -> Path:
    """reports/<date>-<host>/ for the machine making the report."""
    return root / f"{datetime.now().strftime('%Y-%m-%d')}-{socket.gethostname()}"


def parse_targets(items: list[str]) -> dict[str, float]:
    """`0.85` (10-class) or `TASK=ACC` items into task → target; bad values raise ReportError."""
    targets: dict[str, float] = {}
    known = set(default_targets())
    for item in items:
        task, _, value = item.rpartition("=")
        task = task or "10-class"
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if task not in known or not 0 < number <= 1:
            raise ReportError(f"--target {item!r}: use ACC in (0, 1] or TASK=ACC with TASK one of {', '.join(sorted(known))}")
        targets[task] = number
    return targets


class Images:
    """Saves each figure as PNG beside index.html and keeps a base64 data URI for embedding."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: list[str] = []

    def add(self, name: str, fig: Figure | None) -> dict[str, str] | None:
        """PNG file name and data URI of the figure (None passes through)."""
        if fig is None:
            return None
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        data = buffer.getvalue()
        (self.out / f"{name}.png").write_bytes(data)
        self.files.append(f"{name}.png")
        return {"file": f"{name}.png", "uri": "data:image/png;base64," + base64.b64encode(data).decode("ascii")}


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower()[:60] or "case"


def cell(case: Case, metric: Metric, best: dict[str, float]) -> dict[str, Any]:
    """One table cell: median ± half IQR (n), min–max in the tooltip, best value marked."""
    stats = case.stats(metric)
    if stats is None:
        return {"text": "—", "best": False, "title": "not measured", "value": None}
    text = metric.format(stats.median)
    if stats.n > 1:
        text += f" ±{metric.format(stats.iqr / 2)}"
    is_best = metric.key in best and math.isclose(stats.median, best[metric.key], rel_tol=1e-12, abs_tol=0.0)
    return {"text": text + (f" {BEST_MARK}" if is_best else ""), "best": is_best, "value": stats.median,
            "title": f"median {metric.format(stats.median)}, min {metric.format(stats.min)}, "
                     f"max {metric.format(stats.max)}, n={stats.n}"}


def tta_cell(case: Case, metric: Metric, best: float | None) -> dict[str, Any]:
    """Time-to-target cell: runs that never reach it count as infinitely slow, so the median can be 'not reached'."""
    values = [metric.get(r) for r in case.ok]
    reached = sum(1 for v in values if v is not None and math.isfinite(v))
    measured = sum(1 for v in values if v is not None)
    value = median_with_inf(values)
    if value is None:
        return {"text": "—", "best": False, "title": "no validation history", "value": None}
    suffix = f" ({reached}/{measured} reached)" if reached < measured else ""
    if math.isinf(value):
        return {"text": "not reached" + suffix, "best": False, "title": "median run never reached the target", "value": None}
    is_best = best is not None and math.isclose(value, best)
    return {"text": metric.format(value) + suffix + (f" {BEST_MARK}" if is_best else ""), "best": is_best,
            "value": value, "title": f"median of {measured} runs; never-reaching runs count as infinite"}


def summary_section(cases: list[Case], targets: dict[str, float]) -> list[dict[str, Any]]:
    """One summary table per task (accuracy across tasks is not comparable), best per column marked."""
    metrics = [METRIC_BY_KEY[k] for k in SUMMARY_KEYS]
    tables = []
    for task in sorted({c.task for c in cases}):
        members = [c for c in cases if c.task == task and c.ok]
        if not members:
            continue
        tta = tta_metric(targets[task])
        best = best_values(members, metrics)
        tta_values = [v for c in members if (v := median_with_inf(tta.get(r) for r in c.ok)) is not None and math.isfinite(v)]
        best_tta = min(tta_values) if len(tta_values) >= 2 else None
        rows = [{"label": c.label, "host": c.machine.hostname, "runs": f"{len(c.ok)}/{len(c.records)}",
                 "cells": [cell(c, m, best) for m in metrics] + [tta_cell(c, tta, best_tta)]} for c in members]
        headers = [m.header for m in metrics] + [f"time to {targets[task]:g} val acc s"]
        tables.append({"task": task, "target": targets[task], "headers": headers, "rows": rows,
                       "batch_note": _batch_note(members)})
    return tables


def _batch_note(cases: list[Case]) -> str:
    sizes = sorted({i.batch_size for c in cases for r in c.ok for i in r.inference})
    if not sizes:
        return "no inference figures"
    return f"inference samples/s at the largest batch measured ({sizes[-1]}); latency p50/p99 at the smallest ({sizes[0]})"


def failed_runs(cases: list[Case]) -> list[dict[str, str]]:
    """Runs whose status is not ok: listed with their error text, never plotted."""
    return [{"label": c.label, "host": c.machine.hostname, "seed": str(r.spec.get("seed")), "status": r.status,
             "error": r.error or "(no error text)", "stderr": (r.stderr_tail or "")[-600:], "created": r.created_utc}
            for c in cases for r in c.records if r.status != "ok"]


def side_by_side_rows(cases: list[Case]) -> list[dict[str, Any]]:
    """Per model/device group and figure: each framework's median and which wins by how much (and beyond noise?)."""
    rows = []
    for group, by_fw in plots.framework_groups([c for c in cases if c.ok]).items():
        if len(by_fw) < 2:
            continue
        for key in SIDE_BY_SIDE_KEYS:
            metric = METRIC_BY_KEY[key]
            stats = {fw: c.stats(metric) for fw, c in by_fw.items()}
            present = {fw: s for fw, s in stats.items() if s is not None}
            if len(present) < 2:
                continue
            ranked = sorted(present.items(), key=lambda kv: kv[1].median, reverse=metric.higher_is_better)
            (win_fw, win), (lose_fw, lose) = ranked[0], ranked[-1]
            ratio = (win.median / lose.median if metric.higher_is_better else lose.median / win.median) if min(win.median, lose.median) > 0 else math.nan
            noise = beyond_noise(win, lose)
            verdict = {True: "beyond noise (IQRs apart)", False: "within noise (IQRs overlap)", None: "one run each: noise unknown"}[noise]
            rows.append({"group": group, "figure": metric.header,
                         "values": {fw: metric.format(s.median) + (f" ±{metric.format(s.iqr / 2)}" if s.n > 1 else "")
                                    for fw, s in stats.items() if s is not None},
                         "winner": f"{win_fw} by {ratio:.2f}×" if math.isfinite(ratio) else win_fw, "noise": verdict})
    return rows


def curves_section(cases: list[Case]) -> tuple[list[tuple[str, dict]], list[dict[str, str]]]:
    """Curves per model/device group (frameworks overlaid) and a per-run overfitting table."""
    items: dict[str, dict] = {}
    for case in cases:
        curves = case_curves(case)
        if curves is not None:
            items.setdefault(plots.group_label(case), {})[case.spec.framework] = curves
    runs = []
    for case in cases:
        for r in case.ok:
            if not r.history:
                continue
            vals = [(e.val_loss, e.epoch) for e in r.history if e.val_loss is not None]
            last = r.history[-1]
            runs.append({"label": case.label, "seed": str(r.spec.get("seed")), "epochs": str(len(r.history)),
                         "best_val_epoch": str(min(vals)[1]) if vals else "—",
                         "final": f"{last.train_loss:.4f} / {last.val_loss:.4f}" if last.val_loss is not None else f"{last.train_loss:.4f} / —",
                         "overfit": run_overfit(r) or "no",
                         "diverged": str(r.diverged_epoch) if r.diverged_epoch else "no"})
    return list(items.items()), runs


def per_class_section(cases: list[Case], images: Images) -> list[dict[str, Any]]:
    """Per task: classes × cases median accuracy (table + heatmap) and one confusion matrix per case."""
    sections = []
    for task in sorted({c.task for c in cases}):
        members = [c for c in cases if c.task == task and any(r.per_class_accuracy for r in c.ok)]
        if not members:
            continue
        names = next(r.class_names for c in members for r in c.ok if r.class_names)
        values = [[_median([r.per_class_accuracy[i] for r in c.ok if len(r.per_class_accuracy) > i]) for c in members]
                  for i in range(len(names))]
        confusions = []
        for case in members:
            matrices = [np.asarray(r.confusion_matrix, dtype=np.int64) for r in case.ok if r.confusion_matrix]
            if not matrices or any(m.shape != (len(names), len(names)) for m in matrices):
                continue
            counts = np.sum(matrices, axis=0)
            img = images.add(f"confusion-{_slug(case.label)}-{case.machine.machine_id}",
                             plots.confusion_figure(case.label, names, counts))
            confusions.append({"label": case.label, "img": img, "top": _top_confusions(names, counts),
                               "runs": len(matrices), "total": int(counts.sum())})
        sections.append({"task": task, "classes": names, "cases": [c.label for c in members],
                         "rows": [[names[i], *(("—" if v is None else f"{v:.3f}") for v in values[i])] for i in range(len(names))],
                         "img": images.add(f"per-class-{task}", plots.per_class_figure(members, names, values)),
                         "confusions": confusions})
    return sections


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _top_confusions(names: list[str], counts: np.ndarray, top: int = 3) -> list[str]:
    totals = counts.sum(axis=1)
    pairs = [(counts[i, j] / totals[i], names[i], names[j]) for i in range(len(names)) for j in range(len(names))
             if i != j and totals[i] > 0 and counts[i, j] > 0]
    return [f"{true} → {pred}: {100 * share:.1f}% of {true}" for share, true, pred in sorted(pairs, reverse=True)[:top]]


def hardware_section(cases: list[Case], inputs: ReportInputs, images: Images) -> dict[str, Any]:
    """Machines side by side, costs per case, recommendations per task."""
    prices = load_prices(inputs.prices) if inputs.prices else {}
    ok_cases = [c for c in cases if c.ok]
    costs = [case_costs(c, prices, inputs.targets[c.task]) for c in ok_cases]
    tasks = sorted({c.task for c in ok_cases})
    return {
        "machines": env.machine_rows(env.machines(cases)),
        "prices_file": str(inputs.prices) if inputs.prices else None,
        "costs": costs,
        "unpriced": sorted({f"{r.case.machine.hostname}/{r.case.spec.device}" for r in costs if r.price is None}) if prices else [],
        "recommendations": {t: recommend([r for r in costs if r.case.task == t], t, bool(prices)) for t in tasks},
        "img": images.add("hardware", plots.hardware_figure(costs)),
    }


def commits_section(inputs: ReportInputs, images: Images, problems: list[str]) -> dict[str, Any]:
    """asv series over commits with regressions, and pytest-benchmark runs."""
    result: dict[str, Any] = {"asv_dir": str(inputs.asv_results) if inputs.asv_results else None,
                              "series": [], "regressions": [], "img": None, "threshold": inputs.regression_pct}
    if inputs.asv_results:
        points, meta, asv_problems = read_asv_results(inputs.asv_results)
        problems.extend(asv_problems)
        series = build_series(points, meta, inputs.regression_pct)
        subjects = commit_subjects([p.commit for p in points], inputs.repo)
        result["series"] = series
        result["commits"] = sorted({(p.date_ms or 0, p.commit) for p in points})
        result["subjects"] = subjects
        result["regressions"] = [
            {"figure": s.title, "machine": s.machine, "commit": s.points[i].commit,
             "subject": subjects.get(s.points[i].commit, ""), "before": f"{base:.4g}", "after": f"{s.points[i].value:.4g}",
             "change": f"{change:+.1f}%", "unit": s.unit}
            for s in series for i, base, change in s.regressions]
        result["img"] = images.add("over-commits", plots.asv_figure(series))
    rows, bench_problems = read_pytest_benchmark(inputs.pytest_benchmark)
    problems.extend(bench_problems)
    result["pytest"] = rows
    return result


def environment_section(cases: list[Case], targets: dict[str, float]) -> dict[str, Any]:
    """Fingerprints, versions, threads, commits, not-measured figures and the time definitions."""
    records = [r for c in cases for r in c.records]
    hosts, versions = env.version_table(env.machines(cases))
    metrics = [METRIC_BY_KEY[k] for k in SUMMARY_KEYS] + [tta_metric(t) for t in sorted(set(targets.values()))]
    return {"machines": env.machine_rows(env.machines(cases)), "version_hosts": hosts, "versions": versions,
            "threads": env.thread_rows(cases), "framework_info": env.framework_info_rows(cases),
            "commits": env.commit_rows(records), "missing": env.not_measured([c for c in cases if c.ok], metrics),
            "time_scopes": env.time_scopes(records)}


def write_summary_csv(path: Path, cases: list[Case]) -> None:
    """Medians, quartiles, min, max and n of every figure per case and machine."""
    metrics = [METRIC_BY_KEY[k] for k in SUMMARY_KEYS if k in METRIC_BY_KEY] + [METRIC_BY_KEY["steady_epoch_s"]]
    header = ["task", "label", "framework", "model", "device", "hostname", "machine_id", "case_key", "runs", "ok_runs"]
    for m in metrics:
        header += [f"{m.key}_{s}" for s in ("median", "q1", "q3", "min", "max", "n")]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for c in cases:
            row: list[Any] = [c.task, c.label, c.spec.framework, c.spec.model, c.spec.device, c.machine.hostname,
                              c.machine.machine_id, c.case_key, len(c.records), len(c.ok)]
            for m in metrics:
                s = c.stats(m)
                row += [s.median, s.q1, s.q3, s.min, s.max, s.n] if s else ["", "", "", "", "", 0]
            writer.writerow(row)


def _environment() -> jinja2.Environment:
    # Autoescape everything: hostnames, errors and commit messages come from files anyone can write.
    environment = jinja2.Environment(loader=jinja2.PackageLoader("suite", "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.globals["inf"] = math.inf
    environment.filters["utc"] = _utc
    return environment


def _utc(ms: int | None) -> str:
    # asv stores commit dates as JavaScript timestamps (ms since the epoch).
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M") if ms else "—"


def build_report(inputs: ReportInputs) -> tuple[Path, list[str]]:
    """Read everything, write index.html, the PNGs and summary.csv; return the page and the skipped-input lines."""
    missing = [p for p in inputs.results if not p.exists()]
    if missing:
        raise ReportError(f"results path {missing[0]} does not exist; pass --results DIR with records from `fashionbench run`")
    if inputs.asv_results and not inputs.asv_results.is_dir():
        raise ReportError(f"--asv-results {inputs.asv_results} is not a directory; pass asv's results_dir (e.g. .asv/results)")
    for path in inputs.pytest_benchmark:
        if not path.is_file():
            raise ReportError(f"--pytest-benchmark {path} is not a file; pass the JSON from pytest --benchmark-json FILE")
    if inputs.prices and not inputs.prices.is_file():
        raise ReportError(f"--prices {inputs.prices} is not a file; see reports/README.md for the format")
    records, problems = read_store(inputs.results)
    if not records:
        detail = f" ({len(problems)} file(s) skipped: {problems[0]})" if problems else ""
        raise ReportError(f"no valid records in {' '.join(map(str, inputs.results))}{detail}; run `fashionbench run` first")
    targets = {**default_targets(), **inputs.targets}
    inputs.targets = targets
    inputs.out.mkdir(parents=True, exist_ok=True)
    images = Images(inputs.out)
    cases = group_cases(records)
    ok_cases = [c for c in cases if c.ok]
    try:
        hardware = hardware_section(cases, inputs, images)
    except ValueError as exc:  # PriceError
        raise ReportError(str(exc)) from None
    acc, speed = METRIC_BY_KEY["test_accuracy"], METRIC_BY_KEY["train_samples_per_s"]
    fronts = {t: pareto_front([c for c in ok_cases if c.task == t], speed, acc) for t in sorted({c.task for c in ok_cases})}
    curve_items, curve_runs = curves_section(ok_cases)
    claims = check_claims(records)
    context = {
        "title": "fashionbench report",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": [str(p) for p in inputs.results],
        "n_records": len(records), "n_ok": sum(r.status == "ok" for r in records),
        "n_cases": len(cases), "n_machines": len({c.machine.machine_id for c in cases}),
        "summary": summary_section(cases, targets), "best_mark": BEST_MARK,
        "failed": failed_runs(cases),
        "claims": claims, "claims_overall": overall(claims), "claim_rules": CLAIM_RULES, "reference": REFERENCE,
        "side_by_side": side_by_side_rows(ok_cases), "frameworks": sorted({c.spec.framework for c in ok_cases}),
        "frameworks_img": images.add("frameworks", plots.frameworks_figure(ok_cases)),
        "pareto_img": images.add("accuracy-vs-speed", plots.pareto_figure(ok_cases, fronts)),
        "fronts": {t: [{"label": c.label, "acc": acc.format(c.stats(acc).median), "speed": speed.format(c.stats(speed).median)}
                       for c in front] for t, front in fronts.items()},
        "curves_img": images.add("training-curves", plots.curves_figure(curve_items)),
        "curve_runs": curve_runs, "overfit_rule": OVERFIT_RULE,
        "per_class": per_class_section(ok_cases, images),
        "hardware": hardware,
        "commits": commits_section(inputs, images, problems),
        "environment": environment_section(cases, targets),
        "targets": targets,
    }
    context["problems"] = problems
    write_summary_csv(inputs.out / "summary.csv", cases)
    html = _environment().get_template("report.html.j2").render(**context)
    page = inputs.out / "index.html"
    page.write_text(html, encoding="utf-8")
    return page, problems


__all__ = ["ReportError", "ReportInputs", "build_report", "default_out_dir", "parse_targets", "RecordError"]
