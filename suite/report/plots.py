"""Matplotlib figures of the report (Agg, no pyplot state); each returns a Figure, or None when there is nothing to draw."""

from __future__ import annotations

import math
import textwrap
import zlib
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: the report is made on servers and in CI

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator  # noqa: E402

from suite.record.metrics import METRIC_BY_KEY, Metric, shown_in  # noqa: E402
from suite.report.asv_results import AsvSeries  # noqa: E402
from suite.report.cases import Case, framework_groups, model_rank  # noqa: E402
from suite.report.curves import Curves, case_curves, overfit_epochs  # noqa: E402
from suite.report.hardware import CaseCosts  # noqa: E402

FRAMEWORK_COLORS = {"torch": "#ee4c2c", "keras": "#2f6db5"}
MODEL_MARKERS = {"dense": "o", "cnn": "s", "binary": "^"}
OTHER_COLORS = ("#6a994e", "#8e6c8a", "#c9a227", "#555555")
PLACE_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")  # ColorBrewer Dark2
HATCHES = ("", "//", "..", "xx", "\\\\")  # a framework's second, third, ... contender (e.g. another Keras backend)
DPI = 96
THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")
# Log-axis ticks of any magnitude: 300,000 / 20 / 0.5 / 0.0002 (thousands separators would print 0.5 as "0").
TICKS = FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}")
TICK_WRAP = 28  # characters per line of a tick label; variant flags make labels long
TITLE_WRAP = 110  # characters per line of a figure title naming what every case shares
LOG_SPAN = 20  # a throughput axis turns logarithmic when its largest value is this many times its smallest


def framework_color(framework: str) -> str:
    """Stable colour per framework, shared by every figure."""
    return FRAMEWORK_COLORS.get(framework, OTHER_COLORS[zlib.crc32(framework.encode()) % len(OTHER_COLORS)])


def _tokens(label: str) -> list[str]:
    # "@host (GPU, 16 cores)" is one token although it holds spaces: it is everything after " @".
    head, sep, where = label.partition(" @")
    return head.split() + ([f"@{where}"] if sep else [])


def split_common(labels: Sequence[str]) -> tuple[str, list[str]]:
    """What every label shares (said once, in a title) and what is left of each; the leading setup stays in each."""
    tokens = [_tokens(label) for label in labels]
    if len(tokens) < 2:
        return "", list(labels)
    common = [t for t in tokens[0][1:] if all(t in other[1:] for other in tokens[1:])]
    return " ".join(common), [" ".join(t for i, t in enumerate(ts) if i == 0 or t not in common) for ts in tokens]


def _wrapped(label: str, width: int = TICK_WRAP) -> str:
    """A label broken into lines at spaces."""
    return textwrap.fill(label, width, break_long_words=False)


def _short(value: float) -> str:
    # Bar labels must fit beside a bar: 3 significant digits, thousands as k.
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _usd(value: float) -> str:
    """Dollars to three significant digits without an exponent: $0.00474, $0.0000680."""
    return f"${value:.{max(2, 2 - math.floor(math.log10(abs(value))))}f}"


def _title(text: str, common: str) -> str:
    return _wrapped(f"{text} — every case: {common}" if common else text, TITLE_WRAP)


def _contender_styles(names: Sequence[str]) -> dict[str, tuple[tuple[float, float, float], str]]:
    """Contender → (colour, hatch): the framework's colour, lighter and hatched for its second and later contenders."""
    styles = {}
    for name in sorted(set(names), key=lambda n: (n.split()[0], len(n.split()), n)):
        framework = name.split()[0]
        rank = sum(1 for other in styles if other.split()[0] == framework)
        base = np.array(to_rgb(framework_color(framework)))
        styles[name] = (tuple(base + (1 - base) * min(0.55, 0.3 * rank)), HATCHES[rank % len(HATCHES)])
    return styles  # type: ignore[return-value]


def _value_axis(ax, values: list[float], axis: str = "x") -> None:
    """Room for the value labels at the bar ends; logarithmic when the values span more than LOG_SPAN."""
    top, low = max(values), min(v for v in values if v > 0) if any(v > 0 for v in values) else 0.0
    setter = ax.set_xlim if axis == "x" else ax.set_ylim
    if low > 0 and top > LOG_SPAN * low:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(TICKS)
        setter(low / 2, top * 4)
    else:
        setter(0, top * 1.3 if top > 0 else 1)


def _hbars(ax, groups: dict[str, dict[str, Case]], metric: Metric, styles: dict) -> None:
    slots = max(len(by) for by in groups.values())
    height = 0.8 / slots
    values = []
    for i, by in enumerate(groups.values()):
        for j, (name, case) in enumerate(sorted(by.items(), key=lambda kv: list(styles).index(kv[0]))):
            stats = case.stats(metric)
            if stats is None:
                continue
            y = i + (j - (len(by) - 1) / 2) * height
            color, hatch = styles[name]
            ax.barh(y, stats.median, height * 0.9, color=color, hatch=hatch, edgecolor="white", lw=0)
            # After the rightmost of median, whisker and dots, so the label covers none of them.
            ax.annotate(_short(stats.median), (max(stats.max, stats.q3, stats.median), y), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=7)
            if stats.n > 1:
                ax.errorbar(stats.median, y, xerr=[[stats.median - stats.q1], [stats.q3 - stats.median]],
                            fmt="none", ecolor="black", capsize=2, lw=1)
                ax.scatter(case.values(metric)[: stats.n], [y] * stats.n, s=8, color="black", zorder=3)
            values.append(stats.median)
    if values:
        _value_axis(ax, values)
    arrow = "higher is better" if metric.higher_is_better else "lower is better"
    unit = f" ({metric.unit})" if metric.unit and metric.unit not in metric.label else ""
    ax.set_title(f"{metric.label}{unit}", fontsize=10)
    ax.set_xlabel(arrow, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)


def frameworks_figure(cases: list[Case]) -> Figure | None:
    """Per recipe and machine where two frameworks ran: each contender's median of every frameworks-view figure."""
    groups = framework_groups([c for c in cases if c.ok])
    if not groups:
        return None
    common, names = split_common(list(groups))
    styles = _contender_styles([name for by in groups.values() for name in by])
    metrics = shown_in("frameworks")
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    slots = max(len(by) for by in groups.values())
    lines = max(_wrapped(n).count("\n") + 1 for n in names)
    row_in = len(groups) * max(0.16 * slots, 0.15 * lines, 0.3) + 0.9
    fig = Figure(figsize=(13, row_in * rows + 1.1), dpi=DPI, layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False, sharey=True).flat)
    for ax, metric in zip(axes, metrics):
        _hbars(ax, groups, metric, styles)
    axes[0].set_yticks(range(len(groups)), [_wrapped(n) for n in names])
    axes[0].set_ylim(len(groups) - 0.5, -0.5)  # first group on top
    for ax in axes:
        ax.tick_params(axis="y", labelsize=8)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    handles = [Patch(facecolor=c, hatch=h, edgecolor="white", label=n) for n, (c, h) in styles.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8)
    fig.suptitle(_title("Frameworks side by side — bars: median, whiskers: IQR over repeats, dots: each run", common),
                 fontsize=10)
    return fig


def _inside(outer, box) -> bool:
    return box.x0 >= outer.x0 and box.x1 <= outer.x1 and box.y0 >= outer.y0 and box.y1 <= outer.y1


def _spread_labels(fig: Figure, texts: list) -> None:
    """Move text annotations (nearest first: right/left of the point, then further down/up) until none overlaps another
    or leaves its axes; a label with no free place keeps its first one."""
    for text in texts:
        text.set_in_layout(False)  # placed after the layout: moving a label must not move the axes again
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    placed = []
    for text in texts:
        dx, dy = text.xyann
        frame = text.axes.get_window_extent(renderer)
        step = text.get_window_extent(renderer).height * 72 / fig.dpi + 1
        tries = [(side, dy + sign * k * step) for k in range(16) for sign in (-1, 1) for side in (1, -1)]
        for side, y in tries:
            text.set_ha("left" if side > 0 else "right")
            text.xyann = (side * abs(dx), y)
            box = text.get_window_extent(renderer)
            if _inside(frame, box) and not any(box.overlaps(other) for other in placed):
                break
        else:
            text.set_ha("left")
            text.xyann = (dx, dy)
        placed.append(text.get_window_extent(renderer))


def pareto_figure(cases: list[Case], fronts: dict[str, list[Case]]) -> Figure | None:
    """Test accuracy vs training samples/s per task; the Pareto front drawn as a step line, its cases numbered and
    named in a key below the plot (all cases are in the report's table)."""
    tasks = [t for t in fronts if any(c.task == t and c.ok for c in cases)]
    if not tasks:
        return None
    acc, speed = METRIC_BY_KEY["test_accuracy"], METRIC_BY_KEY["train_samples_per_s"]
    keys = {t: [_wrapped(f"{i}  {c.label}", 100) for i, c in enumerate(fronts[t], start=1)] for t in tasks}
    key_lines = max(sum(k.count("\n") + 1 for k in keys[t]) for t in tasks)
    fig = Figure(figsize=(max(6.5 * len(tasks), 9), 5.0 + 0.16 * key_lines + 0.3), dpi=DPI, layout="constrained")
    grid = fig.subplots(2, len(tasks), squeeze=False, height_ratios=[5.0, 0.16 * key_lines + 0.2])
    texts = []
    for ax, key_ax, task in zip(grid[0], grid[1], tasks):
        speeds = []
        for case in (c for c in cases if c.task == task):
            a, s = case.stats(acc), case.stats(speed)
            if a is None or s is None:
                continue
            speeds.append(s.median)
            ax.errorbar(s.median, a.median, xerr=[[s.median - s.q1], [s.q3 - s.median]],
                        yerr=[[a.median - a.q1], [a.q3 - a.median]], fmt=MODEL_MARKERS.get(case.spec.model, "o"),
                        color=framework_color(case.spec.framework), ms=7, capsize=2, lw=1, alpha=0.85)
        front = fronts[task]
        if front:
            xs = [c.stats(speed).median for c in front]  # type: ignore[union-attr]
            ys = [c.stats(acc).median for c in front]  # type: ignore[union-attr]
            # "pre": between two front points the best accuracy still reachable at that speed is the faster one's.
            ax.step(xs, ys, where="pre", color="#444", lw=1.2, ls="--")
            ax.scatter(xs, ys, s=200, facecolors="none", edgecolors="#444", lw=1.2)
            texts += [ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(7, 5), fontsize=8,
                                  fontweight="bold") for i, (x, y) in enumerate(zip(xs, ys), start=1)]
        _log_speed_axis(ax, speeds)
        ax.set_xlabel("training samples/s (steady epochs, log scale) →  faster")
        ax.set_ylabel("test accuracy ↑")
        ax.set_title(f"{task} — numbered: the Pareto front (key below)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        key_ax.axis("off")
        if front:
            key_ax.legend(handles=[Line2D([], [], ls="", label=k) for k in keys[task]], loc="upper left", frameon=False,
                          fontsize=7, handlelength=0, handletextpad=0, borderaxespad=0, title="Pareto front",
                          title_fontsize=8, alignment="left")
    fig.legend(handles=_pareto_handles(cases), loc="outside upper center", ncols=6, fontsize=8)
    _spread_labels(fig, texts)
    return fig


def _log_speed_axis(ax, speeds: list[float]) -> None:
    ax.set_xscale("log")
    if speeds and max(speeds) < 30 * min(speeds):
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # a front within a decade still gets ticks
    ax.xaxis.set_major_formatter(TICKS)
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.margins(x=0.15, y=0.1)


def _pareto_handles(cases: list[Case]) -> list:
    frameworks = sorted({c.spec.framework for c in cases})
    models = sorted({c.spec.model for c in cases})
    return ([Patch(color=framework_color(f), label=f) for f in frameworks]
            + [Line2D([], [], ls="", marker=MODEL_MARKERS.get(m, "o"), color="#555", label=m) for m in models]
            + [Line2D([], [], ls="--", marker="o", mfc="none", ms=10, color="#444", label="Pareto front")])


def place_label(case: Case) -> str:
    """Where and on what a case ran: the machine as the report names it, and the device."""
    return f"{case.where} · {case.spec.device}"


def curves_figure(cases: list[Case]) -> Figure | None:
    """Small multiples: one (loss, accuracy) pair per model × framework; one line per case, coloured by machine and
    device; train solid, validation dashed; flagged epochs circled."""
    curves = [(c, cv) for c in cases if (cv := case_curves(c)) is not None]
    if not curves:
        return None
    rows = sorted({(c.task, c.spec.model) for c, _ in curves}, key=lambda tm: (tm[0], model_rank(tm[1])))
    frameworks = sorted({c.spec.framework for c, _ in curves})
    places = sorted({place_label(c) for c, _ in curves})
    color = {p: PLACE_COLORS[i % len(PLACE_COLORS)] for i, p in enumerate(places)}
    fig = Figure(figsize=(13, 2.3 * len(rows) + 1.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(rows), 2 * len(frameworks), squeeze=False)
    for r, (task, model) in enumerate(rows):
        for f, framework in enumerate(frameworks):
            members = [(c, cv) for c, cv in curves if (c.task, c.spec.model, c.spec.framework) == (task, model, framework)]
            pair = axes[r][2 * f], axes[r][2 * f + 1]
            if not members:
                pair[0].set_visible(False)
                pair[1].set_visible(False)
                continue
            for case, cv in members:
                _curve_lines(pair, cv, color[place_label(case)], heavy=not case.spec.variant_flags())
            for ax, what in zip(pair, ("loss", "accuracy")):
                ax.set_title(f"{framework} {model} — {what} ({len(members)} case{'s' * (len(members) > 1)})", fontsize=8)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.tick_params(labelsize=7)
                ax.grid(alpha=0.3)
                ax.set_xlabel("epoch", fontsize=7)
    handles = [Line2D([], [], color=color[p], lw=2, label=p) for p in places]
    handles += [Line2D([], [], color="#444", label="train"), Line2D([], [], color="#444", ls="--", label="validation"),
                Line2D([], [], color="#444", lw=0.7, alpha=0.6, label="a speed or model variant"),
                Line2D([], [], ls="", marker="o", mfc="none", mec="red", ms=9, label="val loss rising, train falling")]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 4), fontsize=8)
    return fig


def _curve_lines(pair, cv: Curves, color: str, heavy: bool) -> None:
    ax_loss, ax_acc = pair
    style = {"color": color, "lw": 1.6 if heavy else 0.7, "alpha": 1.0 if heavy else 0.6, "marker": "." if heavy else None}
    ax_loss.plot(cv.epochs, cv.train_loss, **style)
    ax_acc.plot(cv.epochs, cv.train_acc, **style)
    if any(v is not None for v in cv.val_loss):
        ax_loss.plot(cv.epochs, _nan(cv.val_loss), ls="--", **style)
        ax_acc.plot(cv.epochs, _nan(cv.val_acc), ls="--", **style)
    for i in overfit_epochs(cv.train_loss, cv.val_loss):
        ax_loss.scatter(cv.epochs[i], cv.val_loss[i], s=90, facecolors="none", edgecolors="red", lw=1.5, zorder=4)


def _nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _heatmap(ax, matrix: np.ndarray, text: list[list[str]], cmap: str, vmin: float, vmax: float, size: float = 7):
    """Coloured cells with their text; returns the image (for a colour bar)."""
    # Both colour maps used here run light → dark with the value, so high cells get white text.
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for (i, j), label in np.ndenumerate(np.asarray(text, dtype=object)):
        value = matrix[i, j]
        dark = not math.isnan(value) and (value - vmin) / (vmax - vmin or 1) > 0.6
        ax.text(j, i, label, ha="center", va="center", fontsize=size, color="white" if dark else "black")
    return image


def per_class_figure(labels: list[str], class_names: list[str], values: list[list[float | None]]) -> Figure:
    """Classes × columns heatmap of median per-class test accuracy; one column per labelled case."""
    matrix = np.array([[math.nan if v is None else v for v in row] for row in values], dtype=float)
    longest = max(len(line) for label in labels for line in _wrapped(label, 18).splitlines())
    fig = Figure(figsize=(max(6.0, 1.1 * len(labels) + 2.5), 0.36 * len(class_names) + 1.2 + 0.09 * longest),
                 dpi=DPI, layout="constrained")
    ax = fig.subplots()
    # The scale starts a little below the worst class: on 0..1 every class of a trained net is the same dark green.
    low = math.floor(10 * np.nanmin(matrix)) / 10 if np.isfinite(matrix).any() else 0.0
    image = _heatmap(ax, matrix, [["—" if math.isnan(v) else f"{v:.3f}" for v in row] for row in matrix], "YlGn",
                     low, 1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="test accuracy")
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xticks(range(len(labels)), [_wrapped(label, 18) for label in labels], fontsize=8)
    ax.set_title("per-class test accuracy (median over runs)", fontsize=10)
    return fig


def confusion_figure(panels: list[tuple[str, np.ndarray]], class_names: list[str], columns: int) -> Figure:
    """Small multiples of row-normalised confusion matrices (true rows, predicted columns, summed over runs)."""
    rows = math.ceil(len(panels) / columns)
    size = max(3.0, 1.0 + 0.28 * len(class_names))  # a two-class matrix still needs room for its case's name
    fig = Figure(figsize=(min(13.0, columns * size + 1.2), rows * (size + 1.0) + 0.3), dpi=DPI, layout="constrained")
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    for i, (ax, (title, counts)) in enumerate(zip(axes, panels)):
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)
        _heatmap(ax, share, [[f"{100 * v:.0f}" if v >= 0.005 else "" for v in row] for row in share], "Blues", 0.0,
                 1.0, size=6)
        ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)  # upright names never overprint
        first = i % columns == 0
        ax.set_yticks(range(len(class_names)), class_names if first else [], fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        if first:
            ax.set_ylabel("true", fontsize=7)
        ax.set_title("\n".join(_wrapped(line, int(13 * size)) for line in title.splitlines()), fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("% of each true class, summed over runs", fontsize=9)
    return fig


def hardware_figure(rows: list[CaseCosts]) -> Figure | None:
    """Training throughput per case, one panel per machine and device, plus USD per 1M samples when priced."""
    speed = METRIC_BY_KEY["train_samples_per_s"]
    rows = [r for r in rows if r.case.stats(speed) is not None]
    if not rows:
        return None
    places: dict[str, list[CaseCosts]] = {}
    # Fastest first within a machine: the bar a buyer looks for is on top.
    for row in sorted(rows, key=lambda r: -r.case.stats(speed).median):  # type: ignore[union-attr]
        places.setdefault(place_label(row.case), []).append(row)
    priced = any(r.cost_per_1m_samples_usd is not None for r in rows)
    longest = max(len(_wrapped(r.case.setup_label, 40).splitlines()) for r in rows)
    heights = [len(members) * max(0.3, 0.14 * longest) + 0.45 for members in places.values()]
    fig = Figure(figsize=(13 if priced else 10, sum(heights) + 1.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(places), 2 if priced else 1, squeeze=False, sharex="col",
                        gridspec_kw={"height_ratios": heights})
    all_speeds = [r.case.stats(speed).median for r in rows]  # type: ignore[union-attr]
    for (place, members), panel in zip(places.items(), axes):
        common, names = split_common([r.case.setup_label for r in members])
        colors = [framework_color(r.case.spec.framework) for r in members]
        _hardware_panel(panel[0], [r.case.stats(speed).median for r in members], colors, names,  # type: ignore[union-attr]
                        lambda v: f"{v:,.0f}")
        panel[0].set_title(_wrapped(f"{place}" + (f" — {common}" if common else ""), 90), fontsize=9, loc="left")
        if priced:
            costs = [r.cost_per_1m_samples_usd for r in members]
            _hardware_panel(panel[1], [c or 0.0 for c in costs], colors, None,
                            lambda v: _usd(v) if v else "no price")
    _value_axis(axes[0][0], all_speeds)
    axes[-1][0].set_xlabel("training samples/s (median" + (", log scale)" if axes[0][0].get_xscale() == "log" else ")"))
    if priced:
        costs = [r.cost_per_1m_samples_usd or 0.0 for r in rows]
        _value_axis(axes[0][1], costs)
        axes[-1][1].set_xlabel("USD per 1M training samples (lower is better)")
    frameworks = sorted({r.case.spec.framework for r in rows})
    fig.legend(handles=[Patch(color=framework_color(f), label=f) for f in frameworks], loc="outside upper center",
               ncols=len(frameworks), fontsize=8, title="colour = framework", title_fontsize=8)
    return fig


def _hardware_panel(ax, values: list[float], colors: list[str], names: list[str] | None, fmt) -> None:
    ax.barh(range(len(values)), values, color=colors)
    for i, value in enumerate(values):
        # A missing figure (no price) has no bar end: its note starts at the axis.
        where = {"xy": (value, i)} if value > 0 else {"xy": (0, i), "xycoords": ax.get_yaxis_transform()}
        ax.annotate(fmt(value), **where, xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks(range(len(values)), [_wrapped(n, 40) for n in names] if names else ["" for _ in values], fontsize=8)
    ax.set_ylim(len(values) - 0.5, -0.5)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)


def asv_figure(series: list[AsvSeries]) -> Figure | None:
    """Small multiples: each tracked figure over commits, regressions circled in red."""
    if not series:
        return None
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig = Figure(figsize=(min(13.0, 4.4 * cols), 3.2 * rows), dpi=DPI, layout="constrained")  # 13 in: the page width
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
