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
from suite.report.cases import (
    Case,
    best_values,
    beyond_noise,
    framework_groups,
    launch_hint,
    median_with_inf,
    model_rank,
    representatives,
    variant_families,
)
from suite.report.curves import run_overfit
from suite.report.hardware import case_costs, recommend
from suite.report.prices import shared_hostnames
from suite.report.pytest_bench import read_files as read_pytest_benchmark
from suite.report.sanity import Check
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
    """Per recipe and machine where two frameworks ran, and per figure: each contender's median, the winner and by how
    much (and beyond noise?)."""
    rows = []
    for group, by_name in framework_groups([c for c in cases if c.ok]).items():
        for metric in shown_in("frameworks"):
            present = {name: s for name, c in by_name.items() if (s := c.stats(metric)) is not None}
            if len(present) < 2:
                continue
            ranked = sorted(present.items(), key=lambda kv: kv[1].median, reverse=metric.higher_is_better)
            (win_name, win), (_, lose) = ranked[0], ranked[-1]
            rows.append({"group": group, "figure": metric.label,
                         "values": {name: _median_spread(metric, s) for name, s in present.items()},
                         "winner": f"{win_name} {_margin(metric, win.median, lose.median)}",
                         "noise": _disturbed_text(by_name, metric) or NOISE_TEXT[beyond_noise(win, lose)]})
    return rows


# The three figures the frameworks verdict at the top of the page answers; the full set is in the section below.
VERDICT_METRICS = ("train_samples_per_s", "test_accuracy", "latency_p50_ms")
NOISE_SHORT = {True: "beyond noise", False: "within noise", None: "one run each: noise unknown"}


def frameworks_verdict(cases: list[Case]) -> dict[str, Any]:
    """Per recipe and machine where two frameworks ran: who leads each headline figure, against the best other framework."""
    metrics = [METRIC_BY_KEY[k] for k in VERDICT_METRICS]
    rows = [{"group": group, "cells": [_lead(metric, by_name) for metric in metrics]}
            for group, by_name in framework_groups([c for c in cases if c.ok]).items()]
    return {"headers": [m.label for m in metrics], "rows": rows}


def _lead(metric: Metric, by_name: dict[str, Case]) -> dict[str, str]:
    """The leading contender, its figure, and the best contender of another framework it beats."""
    present = [(name, c, s) for name, c in by_name.items() if (s := c.stats(metric)) is not None]
    if not present:
        return {"winner": "—", "text": "not measured", "noise": ""}
    ranked = sorted(present, key=lambda item: item[2].median, reverse=metric.higher_is_better)
    win_name, win_case, win = ranked[0]
    rival = next(((n, c, s) for n, c, s in ranked[1:] if c.spec.framework != win_case.spec.framework), None)
    if rival is None:
        return {"winner": win_name, "text": f"{metric.shown(win.median)}; no other framework measured", "noise": ""}
    name, case, other = rival
    noise = _disturbed_text({win_name: win_case, name: case}, metric) or NOISE_SHORT[beyond_noise(win, other)]
    return {"winner": win_name, "noise": noise,
            "text": f"{metric.shown(win.median)} vs {name} {metric.shown(other.median)} "
                    f"({_margin(metric, win.median, other.median).removeprefix('by ')})"}


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
    metrics = _variant_metrics()
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
    extra = {"ratio": f"{mine.median / base.median:.2f}×" if mine and base and base.median > 0 else "—",
             "noise": "baseline" if case is baseline else NOISE_TEXT[beyond_noise(mine, base)],
             "delta": f"{100 * (my_acc.median - base_acc.median):+.2f}" if my_acc and base_acc else "—",
             "peak": probe_notes(case.ok)}
    cells: list[dict[str, Any]] = []
    for metric in metrics:
        cells.append(cell(case, metric, best))
        cells += [{"text": extra[key], "plain": True, "left": key in LEFT_COMPANIONS} for key, _ in COMPANIONS.get(metric.key, ())]
    return {"variant": case.variant, "label": case.label, "runs": f"{len(case.ok)}/{len(case.records)}",
            "cells": cells, "launch": launch_hint(case.ok)}


# Columns computed against the baseline, shown right after the registry figure they qualify: (key, header).
COMPANIONS = {"train_samples_per_s": (("ratio", "× vs baseline"), ("noise", "noise")),
              "mfu_pct": (("peak", "MFU peak"),),
              "test_accuracy": (("delta", "Δ accuracy vs baseline (points)"),)}
LEFT_COMPANIONS = {"noise", "peak"}


def variant_headers() -> list[dict[str, Any]]:
    """The speed-variants table's figure columns: every registry metric of the variants view, each with its companions."""
    headers = []
    for metric in _variant_metrics():
        headers.append({"text": metric.label, "left": False})
        headers += [{"text": text, "left": key in LEFT_COMPANIONS} for key, text in COMPANIONS.get(metric.key, ())]
    return headers


def _variant_metrics() -> list[Metric]:
    # Throughput first: the table answers "how much faster", then what it costs in accuracy.
    return sorted(shown_in("variants"), key=lambda m: m.key != "train_samples_per_s")


def overfit_runs(cases: list[Case]) -> list[dict[str, str]]:
    """The per-run overfitting table under the curves: lowest validation loss, final losses, the rule's verdict."""
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
    return runs


def per_class_section(cases: list[Case], images: Images) -> list[dict[str, Any]]:
    """Per task: classes × cases median accuracy (table), a heatmap and confusion matrices of one case per
    model × framework (small multiples), and every case's most confused pairs."""
    sections = []
    stand_ins = representatives(cases, METRIC_BY_KEY["test_accuracy"])
    for task in sorted({c.task for c in cases}):
        members = [c for c in cases if c.task == task and any(r.per_class_accuracy for r in c.ok)]
        if not members:
            continue
        names = next(r.class_names for c in members for r in c.ok if r.class_names)
        values = {c.label: [_median([r.per_class_accuracy[i] for r in c.ok if len(r.per_class_accuracy) > i])
                            for i in range(len(names))] for c in members}
        counts = {c.label: m for c in members if (m := _confusion(c, len(names))) is not None}
        shown = [c for (t, model, _), c in sorted(stand_ins.items(), key=lambda kv: (model_rank(kv[0][1]), kv[0][2]))
                 if t == task and c in members]
        panels = [(f"{_stand_in_title(c)}\n{c.label}", counts[c.label]) for c in shown if c.label in counts]
        frameworks = len({c.spec.framework for c in shown})
        rows = [[name, *("—" if values[c.label][i] is None else f"{values[c.label][i]:.3f}" for c in members)]
                for i, name in enumerate(names)]
        heat = plots.per_class_figure([_stand_in_title(c) for c in shown], names,
                                      [[values[c.label][i] for c in shown] for i in range(len(names))]) if shown else None
        sections.append({
            "task": task, "classes": names, "cases": [c.label for c in members], "rows": rows,
            "shown": [{"title": _stand_in_title(c), "label": c.label} for c in shown],
            "img": images.add(f"per-class-{task}", heat),
            "confusion_img": images.add(f"confusion-{task}", plots.confusion_figure(panels, names, max(1, frameworks)))
            if panels else None,
            "confusions": [{"label": c.label, "runs": sum(1 for r in c.ok if r.confusion_matrix),
                            "total": int(counts[c.label].sum()), "top": _top_confusions(names, counts[c.label])}
                           for c in members if c.label in counts],
        })
    return sections


def _stand_in_title(case: Case) -> str:
    return f"{case.spec.framework} {case.spec.model}"


def _confusion(case: Case, classes: int) -> np.ndarray | None:
    """The case's confusion counts summed over its runs; None when a run lacks them or has another shape."""
    matrices = [np.asarray(r.confusion_matrix, dtype=np.int64) for r in case.ok if r.confusion_matrix]
    if not matrices or any(m.shape != (classes, classes) for m in matrices):
        return None
    return np.sum(matrices, axis=0)


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _top_confusions(names: list[str], counts: np.ndarray, top: int = 3) -> list[str]:
    totals = counts.sum(axis=1)
    pairs = [(counts[i, j] / totals[i], names[i], names[j]) for i in range(len(names)) for j in range(len(names))
             if i != j and totals[i] > 0 and counts[i, j] > 0]
    return [f"{true} → {pred}: {100 * share:.1f}% of {true}" for share, true, pred in sorted(pairs, reverse=True)[:top]]


def verdict_section(cases: list[Case], hardware: dict[str, Any], gpu_sanity: list[Check] | None) -> dict[str, Any]:
    """The answer first: what to run on (per task), which framework leads, and how far the figures can be trusted."""
    # CUDA cases skipped on a CPU machine leave every rule unjudged: no sanity line then.
    verdicts = [c.verdict for c in gpu_sanity or []]
    judged = any(v != "n/a" for v in verdicts)
    return {"machines": sorted({f"{c.where} ({c.spec.device})" for c in cases if c.ok}),
            "hardware": hardware["recommendations"], "frameworks": frameworks_verdict(cases),
            "not_ok": sum(1 for c in cases for r in c.records if r.status != "ok"),
            "sanity": {v: verdicts.count(v) for v in ("pass", "fail", "n/a")} if judged else None}


def hardware_section(cases: list[Case], prices: dict[str, float], prices_file: Path | None,
                     targets: dict[str, float], images: Images) -> dict[str, Any]:
    """Machines side by side, costs per case, recommendations per task."""
    ok_cases = [c for c in cases if c.ok]
    shared_hosts = shared_hostnames([c.machine for c in ok_cases])
    costs = [case_costs(c, prices, targets[c.task], shared_hosts) for c in ok_cases]
    unpriced = {f"{r.case.where}/{r.case.spec.device}" for r in costs if r.price is None}
    folded_keys = {key.casefold() for key in prices}
    return {
        "machines": env.machine_rows(env.machines(cases)),
        "prices_file": str(prices_file) if prices_file else None,
        "costs": costs,
        "unpriced": sorted(unpriced) if prices else [],
        "shared_host_keys": sorted(host for host in shared_hosts if host.casefold() in folded_keys),
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
