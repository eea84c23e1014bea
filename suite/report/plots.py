"""Matplotlib figures of the report (Agg, no pyplot state); each returns a Figure, or None when there is nothing to draw."""

from __future__ import annotations

import math
import textwrap
import zlib
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: the report is made on servers and in CI

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from suite.record.metrics import METRIC_BY_KEY, Metric, shown_in  # noqa: E402
from suite.report.asv_results import AsvSeries  # noqa: E402
from suite.report.cases import Case  # noqa: E402
from suite.report.curves import Curves, overfit_epochs  # noqa: E402
from suite.report.hardware import CaseCosts  # noqa: E402

FRAMEWORK_COLORS = {"torch": "#ee4c2c", "keras": "#2f6db5"}
MODEL_MARKERS = {"dense": "o", "cnn": "s", "binary": "^"}
OTHER_COLORS = ("#6a994e", "#8e6c8a", "#c9a227", "#555555")
DPI = 96
THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")
TICK_WRAP = 26  # characters per line of a group tick label; variant flags make labels long


def framework_color(framework: str) -> str:
    """Stable colour per framework, shared by every figure."""
    return FRAMEWORK_COLORS.get(framework, OTHER_COLORS[zlib.crc32(framework.encode()) % len(OTHER_COLORS)])


def group_label(case: Case) -> str:
    """The case label without its framework: cases that differ only by framework share it."""
    return case.label.split("/", 1)[1] if "/" in case.label else case.label


def framework_groups(cases: list[Case]) -> dict[str, dict[str, Case]]:
    """group label → framework → case, keeping report order."""
    groups: dict[str, dict[str, Case]] = {}
    for case in cases:
        groups.setdefault(group_label(case), {})[case.spec.framework] = case
    return groups


def _bars(ax, groups: dict[str, dict[str, Case]], metric: Metric, frameworks: list[str]) -> None:
    width = 0.8 / max(1, len(frameworks))
    for j, framework in enumerate(frameworks):
        labelled = False
        for i, by_fw in enumerate(groups.values()):
            case = by_fw.get(framework)
            stats = case.stats(metric) if case else None
            if stats is None:
                continue
            x = i + (j - (len(frameworks) - 1) / 2) * width
            ax.bar(x, stats.median, width * 0.9, color=framework_color(framework), label=None if labelled else framework)
            ax.annotate(_short(stats.median), (x, stats.median), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
            labelled = True
            if stats.n > 1:
                ax.errorbar(x, stats.median, yerr=[[stats.median - stats.q1], [stats.q3 - stats.median]],
                            fmt="none", ecolor="black", capsize=3, lw=1)
            ax.scatter([x] * stats.n, case.values(metric)[: stats.n], s=10, color="black", zorder=3)
    labels = [_wrapped(g) for g in groups]
    # Short labels read best slanted; wrapped ones (variant flags) only fit upright, side by side.
    wrapped = any("\n" in label for label in labels)
    ax.set_xticks(range(len(groups)), labels, rotation=90 if wrapped else 20, ha="center" if wrapped else "right",
                  fontsize=8)
    ax.set_title(f"{metric.label}" + (f" ({metric.unit})" if metric.unit and metric.unit not in metric.label else ""),
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _wrapped(label: str) -> str:
    """A tick label broken into lines at spaces."""
    return textwrap.fill(label, TICK_WRAP, break_long_words=False)


def _short(value: float) -> str:
    # Bar labels must fit above a bar: 3 significant digits, thousands as k.
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def frameworks_figure(cases: list[Case]) -> Figure | None:
    """Per model/device: frameworks side by side for throughput, accuracy, inference and epoch-1 vs steady time."""
    groups = framework_groups([c for c in cases if c.ok])
    if not groups:
        return None
    frameworks = sorted({fw for g in groups.values() for fw in g})
    longest = max(len(line) for g in groups for line in _wrapped(g).splitlines())
    # Upright wrapped tick labels take height from both rows of panels; grow the figure instead.
    extra = 2 * 0.075 * longest if any("\n" in _wrapped(g) for g in groups) else 0.0
    metrics = shown_in("frameworks")
    rows = math.ceil(len(metrics) / 3)
    fig = Figure(figsize=(13, 3.75 * rows + extra), dpi=DPI, layout="constrained")
    axes = list(fig.subplots(rows, 3, squeeze=False).flat)
    for ax, metric in zip(axes, metrics):
        _bars(ax, groups, metric, frameworks)
        ax.set_ylim(bottom=max(0.0, ax.get_ylim()[0]))  # every figure here is non-negative
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    # The legend goes on the first panel with bars: throughput is empty when every run had a single epoch.
    if labelled := next((ax for ax in axes if ax.get_legend_handles_labels()[0]), None):
        labelled.legend(fontsize=8)
    fig.suptitle("Frameworks side by side — bars: median, whiskers: IQR over repeats, dots: each run", fontsize=11)
    return fig


def pareto_figure(cases: list[Case], fronts: dict[str, list[Case]]) -> Figure | None:
    """Test accuracy vs training samples/s per task, with the Pareto front drawn as a step line."""
    tasks = [t for t in fronts if any(c.task == t and c.ok for c in cases)]
    if not tasks:
        return None
    acc, speed = METRIC_BY_KEY["test_accuracy"], METRIC_BY_KEY["train_samples_per_s"]
    fig = Figure(figsize=(6.5 * len(tasks), 5.2), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(tasks)))
    for ax, task in zip(axes, tasks):
        for case in (c for c in cases if c.task == task):
            a, s = case.stats(acc), case.stats(speed)
            if a is None or s is None:
                continue
            ax.errorbar(s.median, a.median, xerr=[[s.median - s.q1], [s.q3 - s.median]],
                        yerr=[[a.median - a.q1], [a.q3 - a.median]], fmt=MODEL_MARKERS.get(case.spec.model, "o"),
                        color=framework_color(case.spec.framework), ms=8, capsize=2, lw=1)
            ax.annotate(_wrapped(case.label), (s.median, a.median), textcoords="offset points", xytext=(6, 4),
                        fontsize=7)
        front = fronts[task]
        if front:
            xs = [c.stats(speed).median for c in front]  # type: ignore[union-attr]
            ys = [c.stats(acc).median for c in front]  # type: ignore[union-attr]
            # "pre": between two front points the best accuracy still reachable at that speed is the faster one's.
            ax.step(xs, ys, where="pre", color="#444", lw=1.2, ls="--")
            ax.scatter(xs, ys, s=260, facecolors="none", edgecolors="#444", lw=1.2, label="Pareto front")
            ax.legend(fontsize=8, loc="lower left")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(THOUSANDS)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel("training samples/s (steady epochs, log scale) →  faster")
        ax.set_ylabel("test accuracy ↑")
        ax.set_title(f"{task}: colour = framework, marker = model", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    return fig


def curves_figure(items: Sequence[tuple[str, dict[str, Curves]]]) -> Figure | None:
    """Rows of (loss, accuracy) panels; one row per model/device group, frameworks overlaid; flagged epochs marked."""
    if not items:
        return None
    fig = Figure(figsize=(12, 2.8 * len(items) + 0.6), dpi=DPI, layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(items), 2, squeeze=False))
    for (title, by_fw), (ax_loss, ax_acc) in zip(items, axes):
        for framework, curves in by_fw.items():
            color = framework_color(framework)
            ax_loss.plot(curves.epochs, curves.train_loss, color=color, marker=".", label=f"{framework} train")
            ax_acc.plot(curves.epochs, curves.train_acc, color=color, marker=".", label=f"{framework} train")
            if any(v is not None for v in curves.val_loss):
                val = {"color": color, "ls": "--", "marker": ".", "label": f"{framework} val"}
                ax_loss.plot(curves.epochs, _nan(curves.val_loss), **val)
                ax_acc.plot(curves.epochs, _nan(curves.val_acc), **val)
            for i in overfit_epochs(curves.train_loss, curves.val_loss):
                ax_loss.scatter(curves.epochs[i], curves.val_loss[i], s=120, facecolors="none", edgecolors="red",
                                lw=2, zorder=4, label="val loss rising, train loss falling")
        ax_loss.set_title(f"{title} — loss", fontsize=9)
        ax_acc.set_title(f"{title} — accuracy", fontsize=9)
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=7, handlelength=3)
    return fig


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _heatmap(ax, matrix: np.ndarray, text: list[list[str]], cmap: str, vmin: float, vmax: float) -> None:
    # Both colour maps used here run light → dark with the value, so high cells get white text.
    ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for (i, j), label in np.ndenumerate(np.asarray(text, dtype=object)):
        value = matrix[i, j]
        dark = not math.isnan(value) and (value - vmin) / (vmax - vmin or 1) > 0.6
        ax.text(j, i, label, ha="center", va="center", fontsize=7, color="white" if dark else "black")


def per_class_figure(cases: list[Case], class_names: list[str], values: list[list[float | None]]) -> Figure:
    """Classes × cases heatmap of median per-class test accuracy."""
    matrix = np.array([[math.nan if v is None else v for v in row] for row in values], dtype=float)
    fig = Figure(figsize=(max(6.0, 1.25 * len(cases) + 3), 0.42 * len(class_names) + 2.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    _heatmap(ax, matrix, [["—" if math.isnan(v) else f"{v:.3f}" for v in row] for row in matrix], "YlGn", 0.0, 1.0)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xticks(range(len(cases)), [c.label for c in cases], rotation=25, ha="right", fontsize=8)
    ax.set_title("per-class test accuracy (median over runs)", fontsize=10)
    return fig


def confusion_figure(title: str, class_names: list[str], counts: np.ndarray) -> Figure:
    """Row-normalised confusion matrix (true rows, predicted columns), summed over runs."""
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)
    size = 1.5 + 0.55 * len(class_names)
    fig = Figure(figsize=(size + 1.2, size), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    _heatmap(ax, share, [[f"{100 * v:.0f}" if v >= 0.005 else "" for v in row] for row in share], "Blues", 0.0, 1.0)
    ax.set_xticks(range(len(class_names)), class_names, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\n% of each true class (summed over runs)", fontsize=9)
    return fig


def hardware_figure(rows: list[CaseCosts]) -> Figure | None:
    """Training throughput per case grouped by machine, plus cost per 1M samples when prices are known."""
    rows = [r for r in rows if r.case.stats(METRIC_BY_KEY["train_samples_per_s"]) is not None]
    if not rows:
        return None
    priced = [r for r in rows if r.cost_per_1m_samples_usd is not None]
    panels = 2 if priced else 1
    fig = Figure(figsize=(6.5 * panels, 0.38 * len(rows) + 1.6), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    labels = [r.case.label if r.case.label.count("@") else f"{r.case.label} @{r.case.where}" for r in rows]
    speed = [r.case.stats(METRIC_BY_KEY["train_samples_per_s"]).median for r in rows]  # type: ignore[union-attr]
    colors = [framework_color(r.case.spec.framework) for r in rows]
    axes[0].barh(range(len(rows)), speed, color=colors)
    for i, value in enumerate(speed):
        axes[0].annotate(f"{value:,.0f}", (value, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=8)
    if max(speed) > 20 * min(speed):  # a linear axis would hide the slow cases
        axes[0].set_xscale("log")
        axes[0].xaxis.set_major_formatter(THOUSANDS)
    axes[0].set_xlabel("training samples/s (median)" + (", log scale" if axes[0].get_xscale() == "log" else ""))
    axes[0].invert_yaxis()
    axes[0].grid(axis="x", alpha=0.3)
    if priced:
        cost = [r.cost_per_1m_samples_usd or 0.0 for r in rows]
        axes[1].barh(range(len(rows)), cost, color=colors)
        for i, value in enumerate(cost):
            axes[1].annotate(f"${value:.4f}" if value else "no price", (value, i), xytext=(3, 0),
                             textcoords="offset points", va="center", fontsize=7)
        axes[1].set_yticks(range(len(rows)), ["" for _ in rows])
        axes[1].set_xlabel("USD per 1M training samples (lower is better; 0 = no price)")
        axes[1].invert_yaxis()
        axes[1].grid(axis="x", alpha=0.3)
    return fig


def asv_figure(series: list[AsvSeries]) -> Figure | None:
    """Small multiples: each tracked figure over commits, regressions circled in red."""
    if not series:
        return None
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig = Figure(figsize=(5.0 * cols, 3.2 * rows), dpi=DPI, layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax, item in zip(axes, series):
        values = [p.value for p in item.points]
        ax.plot(range(len(values)), values, marker="o", color="#2f6db5", ms=4)
        bad = [i for i, _, _ in item.regressions]
        ax.scatter(bad, [values[i] for i in bad], s=140, facecolors="none", edgecolors="red", lw=2, zorder=3)
        ax.set_xticks(range(len(values)), [p.commit[:7] for p in item.points], rotation=45, ha="right", fontsize=7)
        arrow = "↑ better" if item.higher_is_better else "↓ better"
        ax.set_title(f"{item.title}\n{item.machine} · {item.unit or 'value'} ({arrow})", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(series):]:
        ax.set_visible(False)
    return fig
