"""Context builders for each report section: plain dicts and rows the template renders (no HTML here)."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from suite.record.metrics import METRIC_BY_KEY, Metric, shown_in, time_to_target_metric
from suite.record.store import safe_name
from suite.report import env, plots
from suite.report.asv_results import build_series, commit_subjects, read_asv_results
from suite.report.cases import Case, best_values, beyond_noise, launch_hint, median_with_inf, variant_families
from suite.report.curves import case_curves, run_overfit
from suite.report.hardware import case_costs, recommend
from suite.report.pytest_bench import read_files as read_pytest_benchmark
from suite.report.table import caveat_counts, probe_notes

BEST_MARK = "★"
NOISE_TEXT = {True: "beyond noise (IQRs apart)", False: "within noise (IQRs overlap)", None: "one run each: noise unknown"}


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
        file = f"{safe_name(name, limit=160, empty='figure')}.png"  # names hold labels and ids read from records
        (self.out / file).write_bytes(data)
        self.files.append(file)
        return {"file": file, "uri": "data:image/png;base64," + base64.b64encode(data).decode("ascii")}


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower()[:60] or "case"


def cell(case: Case, metric: Metric, best: dict[str, float]) -> dict[str, Any]:
    """One table cell: median, ± half IQR when repeated, min–max and n in the tooltip, best value marked."""
    stats = case.stats(metric)
    if stats is None:
        return {"text": "—", "spread": "", "best": False, "title": "not measured", "value": None}
    is_best = metric.key in best and math.isclose(stats.median, best[metric.key], rel_tol=1e-12, abs_tol=0.0)
    flag = metric.flag(stats.median)
    return {"text": metric.shown(stats.median) + (f" {BEST_MARK}" if is_best else ""),
            "spread": f"±{metric.format(stats.iqr / 2)}" if stats.n > 1 else "", "best": is_best, "value": stats.median,
            "title": f"median {metric.format(stats.median)}, min {metric.format(stats.min)}, "
                     f"max {metric.format(stats.max)}, n={stats.n}" + (f" — {flag}" if flag else ""),
            "note": probe_notes(case.ok) if metric.key == "mfu_pct" else ""}


def tta_cell(case: Case, metric: Metric, best: float | None) -> dict[str, Any]:
    """Time-to-target cell: runs that never reach it count as infinitely slow, so the median can be 'not reached'."""
    values = [metric.get(r) for r in case.ok]
    reached = sum(1 for v in values if v is not None and math.isfinite(v))
    measured = sum(1 for v in values if v is not None)
    value = median_with_inf(values)
    if value is None:
        return {"text": "—", "spread": "", "best": False, "title": "no validation history", "value": None}
    spread = f"{reached}/{measured} reached" if reached < measured else ""
    title = f"median of {measured} runs; runs that never reach the target count as infinitely slow"
    if math.isinf(value):
        return {"text": "not reached", "spread": spread, "best": False, "title": title, "value": None}
    is_best = best is not None and math.isclose(value, best)
    return {"text": metric.format(value) + (f" {BEST_MARK}" if is_best else ""), "spread": spread, "best": is_best,
            "value": value, "title": title}


def summary_section(cases: list[Case], targets: dict[str, float]) -> list[dict[str, Any]]:
    """One summary table per task (accuracy across tasks is not comparable), best per column marked."""
    tables = []
    for task in sorted({c.task for c in cases}):
        members = [c for c in cases if c.task == task and c.ok]
        if not members:
            continue
        # Columns nobody measured (GPU figures on CPU-only machines) are named once instead of shown empty.
        all_metrics = shown_in("summary")
        metrics = [m for m in all_metrics if any(c.values(m) for c in members)]
        unmeasured = [m.label for m in all_metrics if m not in metrics]
        tta = time_to_target_metric(targets[task])
        best = best_values(members, metrics)
        medians = [median_with_inf(tta.get(r) for r in c.ok) for c in members]
        reached = [v for v in medians if v is not None and math.isfinite(v)]
        best_tta = min(reached) if len(reached) >= 2 else None
        rows = [{"label": c.label, "host": c.where, "runs": f"{len(c.ok)}/{len(c.records)}",
                 "flags": caveat_counts(c.ok),
                 "cells": [cell(c, m, best) for m in metrics] + [tta_cell(c, tta, best_tta)]} for c in members]
        headers = [m.label for m in metrics] + [f"time to {targets[task]:g} val acc s"]
        tables.append({"task": task, "target": targets[task], "headers": headers, "rows": rows,
                       "batch_note": _batch_note(members), "unmeasured": unmeasured})
    return tables


def _batch_note(cases: list[Case]) -> str:
    sizes = sorted({i.batch_size for c in cases for r in c.ok for i in r.inference})
    if not sizes:
        return "no inference figures"
    return (f"Inference samples/s at the largest batch measured ({sizes[-1]}); "
            f"latency p50/p99 at the smallest ({sizes[0]})")


def failed_runs(cases: list[Case]) -> list[dict[str, str]]:
    """Runs whose status is not ok: listed with their error text, never plotted."""
    return [{"label": c.label, "host": c.where, "seed": str(r.spec.get("seed")), "status": r.status,
             "error": r.error or "(no error text)", "stderr": (r.stderr_tail or "")[-600:], "created": r.created_utc}
            for c in cases for r in c.records if r.status != "ok"]


def side_by_side_rows(cases: list[Case]) -> list[dict[str, Any]]:
    """Per model/device group and figure: each framework's median and which wins by how much (and beyond noise?)."""
    rows = []
    for group, by_fw in plots.framework_groups([c for c in cases if c.ok]).items():
        if len(by_fw) < 2:
            continue
        for metric in shown_in("frameworks"):
            stats = {fw: c.stats(metric) for fw, c in by_fw.items()}
            present = {fw: s for fw, s in stats.items() if s is not None}
            if len(present) < 2:
                continue
            ranked = sorted(present.items(), key=lambda kv: kv[1].median, reverse=metric.higher_is_better)
            (win_fw, win), (_, lose) = ranked[0], ranked[-1]
            rows.append({"group": group, "figure": metric.label,
                         "values": {fw: _median_spread(metric, s) for fw, s in present.items()},
                         "winner": f"{win_fw} {_margin(metric, win.median, lose.median)}",
                         "noise": _disturbed_text(by_fw, metric) or NOISE_TEXT[beyond_noise(win, lose)]})
    return rows


def _disturbed_text(by_fw: dict[str, Case], metric: Metric) -> str | None:
    """A timing figure with DISTURBED runs cannot be called beyond or within noise: say whose runs were disturbed."""
    hit = [fw for fw, case in by_fw.items() if any(r.disturbed for r in case.ok)]
    if not metric.timing or not hit:
        return None
    return f"not judged: DISTURBED runs ({', '.join(hit)}; other work shared the machine)"


def _median_spread(metric: Metric, stats: Any) -> str:
    return metric.shown(stats.median) + (f" ±{metric.format(stats.iqr / 2)}" if stats.n > 1 else "")


def _margin(metric: Metric, best: float, other: float) -> str:
    # Accuracies differ by points, everything else by a ratio ("2.1× faster" reads better than "+110%").
    if metric.key == "test_accuracy":
        return f"by {100 * (best - other):.2f} points"
    if min(best, other) <= 0:
        return ""
    return f"by {max(best, other) / min(best, other):.2f}×"


def variants_section(cases: list[Case]) -> list[dict[str, Any]]:
    """Per framework/model/device/machine with several variants: each variant's speed and accuracy vs a baseline."""
    tables = []
    speed = METRIC_BY_KEY["train_samples_per_s"]
    metrics = list(shown_in("variants"))
    for members in variant_families(cases):
        measured = [c for c in members if c.ok]
        baseline = _variant_baseline(measured)
        best = best_values(measured, metrics)
        # Fastest first; variants without a throughput figure (a single epoch) last.
        ranked = sorted(measured, key=lambda c: -(_median_of(c, speed) or 0.0))
        tables.append({
            "family": members[0].variant_family, "baseline": baseline.variant if baseline else None,
            "baseline_is_default": baseline is not None and baseline.variant == "default",
            "rows": [_variant_row(c, baseline, metrics, best) for c in ranked],
            "not_run": [{"variant": c.variant, "status": ", ".join(sorted({r.status for r in c.records})),
                         "reason": "; ".join(sorted({r.error or "(no reason recorded)" for r in c.records}))}
                        for c in members if not c.ok],
        })
    return tables


def _median_of(case: Case, metric: Metric) -> float | None:
    """The case's median of the metric over ok runs, None when unmeasured."""
    stats = case.stats(metric)
    return stats.median if stats else None


def _variant_baseline(measured: list[Case]) -> Case | None:
    """The default variant when it has ok runs, else the slowest variant with a throughput figure."""
    default = next((c for c in measured if c.variant == "default"), None)
    if default is not None:
        return default
    speed = METRIC_BY_KEY["train_samples_per_s"]
    timed = [c for c in measured if _median_of(c, speed) is not None]
    return min(timed, key=lambda c: _median_of(c, speed) or 0.0, default=None)


def _variant_row(case: Case, baseline: Case | None, metrics: list[Metric], best: dict[str, float]) -> dict[str, Any]:
    """One variant: its cells, throughput ratio and accuracy difference to the baseline, and the MFU denominator."""
    speed, acc = METRIC_BY_KEY["train_samples_per_s"], METRIC_BY_KEY["test_accuracy"]
    mine, base = case.stats(speed), baseline.stats(speed) if baseline else None
    my_acc, base_acc = case.stats(acc), baseline.stats(acc) if baseline else None
    return {"variant": case.variant, "label": case.label,
            "runs": f"{len(case.ok)}/{len(case.records)}", "cells": {m.key: cell(case, m, best) for m in metrics},
            "ratio": f"{mine.median / base.median:.2f}×" if mine and base and base.median > 0 else "—",
            "noise": "baseline" if case is baseline else NOISE_TEXT[beyond_noise(mine, base)],
            "delta": f"{100 * (my_acc.median - base_acc.median):+.2f}" if my_acc and base_acc else "—",
            "peak": probe_notes(case.ok), "launch": launch_hint(case.ok)}


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
            final_val = "—" if last.val_loss is None else f"{last.val_loss:.4f}"
            runs.append({"label": case.label, "seed": str(r.spec.get("seed")), "epochs": str(len(r.history)),
                         "best_val_epoch": str(min(vals)[1]) if vals else "—",
                         "final": f"{last.train_loss:.4f} / {final_val}",
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
            # The slug is cut at 60 characters, so long variant labels could collide without the case key.
            img = images.add(f"confusion-{_slug(case.label)}-{case.case_key}-{'-'.join(filter(None, case.place))}",
                             plots.confusion_figure(case.label, names, counts))
            confusions.append({"label": case.label, "img": img, "top": _top_confusions(names, counts),
                               "runs": len(matrices), "total": int(counts.sum())})
        rows = [[name, *("—" if v is None else f"{v:.3f}" for v in row)] for name, row in zip(names, values)]
        sections.append({"task": task, "classes": names, "cases": [c.label for c in members], "rows": rows,
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


def hardware_section(cases: list[Case], prices: dict[str, float], prices_file: Path | None,
                     targets: dict[str, float], images: Images) -> dict[str, Any]:
    """Machines side by side, costs per case, recommendations per task."""
    ok_cases = [c for c in cases if c.ok]
    costs = [case_costs(c, prices, targets[c.task]) for c in ok_cases]
    unpriced = {f"{r.case.where}/{r.case.spec.device}" for r in costs if r.price is None}
    return {
        "machines": env.machine_rows(env.machines(cases)),
        "prices_file": str(prices_file) if prices_file else None,
        "costs": costs,
        "unpriced": sorted(unpriced) if prices else [],
        "recommendations": {t: recommend([r for r in costs if r.case.task == t], t, bool(prices))
                            for t in sorted({c.task for c in ok_cases})},
        "img": images.add("hardware", plots.hardware_figure(costs)),
    }


def commits_section(asv_dir: Path | None, bench_files: list[Path], threshold_pct: float, repo: Path,
                    images: Images, problems: list[str]) -> dict[str, Any]:
    """asv series over commits with regressions, and pytest-benchmark runs; unreadable files go to problems."""
    result: dict[str, Any] = {"asv_dir": str(asv_dir) if asv_dir else None, "series": [], "regressions": [],
                              "img": None, "threshold": threshold_pct, "commits": [], "subjects": {}}
    if asv_dir:
        points, meta, asv_problems = read_asv_results(asv_dir)
        problems.extend(asv_problems)
        series = build_series(points, meta, threshold_pct)
        subjects = commit_subjects([p.commit for p in points], repo)
        result.update(series=series, subjects=subjects, commits=sorted({(p.date_ms or 0, p.commit) for p in points}),
                      img=images.add("over-commits", plots.asv_figure(series)))
        result["regressions"] = [
            {"figure": s.title, "machine": s.machine, "commit": s.points[i].commit, "unit": s.unit,
             "subject": subjects.get(s.points[i].commit, ""), "before": f"{base:.4g}",
             "after": f"{s.points[i].value:.4g}", "change": f"{change:+.1f}%"}
            for s in series for i, base, change in s.regressions]
    rows, bench_problems = read_pytest_benchmark(bench_files)
    problems.extend(bench_problems)
    result["pytest"] = rows
    return result


def environment_section(cases: list[Case], targets: dict[str, float]) -> dict[str, Any]:
    """Fingerprints, versions, threads, commits, not-measured figures and the time definitions."""
    records = [r for c in cases for r in c.records]
    hosts, versions = env.version_table(env.machines(cases))
    metrics = [*shown_in("summary"), *(time_to_target_metric(t) for t in sorted(set(targets.values())))]
    return {"machines": env.machine_rows(env.machines(cases)), "version_hosts": hosts, "versions": versions,
            "threads": env.thread_rows(cases), "framework_info": env.framework_info_rows(cases),
            "commits": env.commit_rows(records), "missing": env.not_measured([c for c in cases if c.ok], metrics),
            "time_scopes": env.time_scopes(records)}
