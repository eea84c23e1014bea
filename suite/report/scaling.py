"""Data-parallel scaling section: per setup and machine, devices vs global samples/s against the ideal line,
scaling efficiency, communication share and accuracy at scale."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from suite.record.metrics import METRIC_BY_KEY
from suite.report.cases import Case
from suite.report.plots import DPI, THOUSANDS, framework_color

ROW_METRICS = ("train_samples_per_s", "scaling_efficiency_pct", "comm_share_pct", "test_accuracy", "time_to_target_s")


def scaling_families(cases: list[Case]) -> list[list[Case]]:
    """Cases that differ only in --devices, on one machine, where one of them runs on more than one device."""
    families: dict[tuple[str, str], list[Case]] = {}
    for case in cases:
        families.setdefault((case.spec.scaling_key, case.machine.machine_id), []).append(case)
    return [sorted(members, key=lambda c: c.spec.devices) for members in families.values()
            if any(c.spec.devices > 1 for c in members)]


def _median(case: Case, key: str) -> float | None:
    stats = case.stats(METRIC_BY_KEY[key])
    return stats.median if stats else None


def _row(case: Case, reference: Case | None) -> dict[str, Any]:
    """One device count: the figures as text, the ideal throughput (N x the 1-device median) beside the measured one."""
    spec, run = case.spec, (case.ok[0] if case.ok else case.records[0])
    one = _median(reference, "train_samples_per_s") if reference else None
    row: dict[str, Any] = {
        "devices": spec.devices, "global_batch": spec.global_batch_size, "lr": f"{spec.effective_lr:g} ({spec.lr_scaling})",
        "backend": run.dist_backend or "—", "threads_per_rank": run.threads_per_rank or "—", "runs": len(case.ok),
        "ideal": METRIC_BY_KEY["train_samples_per_s"].format(one * spec.devices if one else None),
        "status": "ok" if case.ok else f"{run.status}: {run.error}",
    }
    for key in ROW_METRICS:
        value = _median(case, key)
        if key == "scaling_efficiency_pct" and spec.devices == 1 and value is None and case.ok:
            value = 100.0  # the reference itself
        row[key] = METRIC_BY_KEY[key].shown(value)
    per_rank = [r.per_rank_steady_samples_per_s for r in case.ok if r.per_rank_steady_samples_per_s]
    row["per_rank"] = METRIC_BY_KEY["train_samples_per_s"].format(sorted(per_rank)[len(per_rank) // 2] if per_rank else None)
    return row


def scaling_section(cases: list[Case]) -> list[dict[str, Any]]:
    """One table per scaling family: a row per device count, the 1-device case as the reference."""
    tables = []
    for members in scaling_families(cases):
        reference = next((c for c in members if c.spec.devices == 1 and c.ok), None)
        family = members[0].label.replace(f" devices={members[0].spec.devices}", "")
        efficiency = METRIC_BY_KEY["scaling_efficiency_pct"]
        impossible = [f"devices={c.spec.devices}: {why}" for c in members
                      if (why := efficiency.flag(_median(c, "scaling_efficiency_pct")))]
        tables.append({"family": family, "has_reference": reference is not None,
                       "rows": [_row(c, reference) for c in members], "impossible": impossible})
    return tables


def scaling_figure(cases: list[Case]) -> Figure | None:
    """Devices vs median global samples/s per family, with the ideal line (N x the 1-device median) dashed."""
    families = [m for m in scaling_families(cases) if sum(bool(c.ok) for c in m) >= 1]
    if not families:
        return None
    fig = Figure(figsize=(7.5, 4.8), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for members in families:
        points = [(c.spec.devices, v) for c in members if (v := _median(c, "train_samples_per_s")) is not None]
        if not points:
            continue
        color = framework_color(members[0].spec.framework)
        label = members[0].label.replace(f" devices={members[0].spec.devices}", "")
        ax.plot(*zip(*points), marker="o", color=color, label=label)
        one = next((v for n, v in points if n == 1), None)
        if one is not None:
            ax.plot([n for n, _ in points], [one * n for n, _ in points], linestyle="--", color=color, alpha=0.5)
    ax.set_xlabel("devices (data-parallel replicas)")
    ax.set_ylabel("global steady train samples/s")
    ax.yaxis.set_major_formatter(THOUSANDS)
    ax.set_xticks(sorted({c.spec.devices for m in families for c in m}))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    ax.set_title("Data-parallel scaling — solid: measured median, dashed: ideal (N x 1 device)", fontsize=10)
    return fig
