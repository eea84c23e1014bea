"""The GPU check's one-page summary (Markdown): what the box has, the tests, the probe, the sanity verdict, every case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from suite.bench.goals import gpu_goal_verdicts
from suite.bench.gpucheck import BUDGET_S, Planned
from suite.record.schema import RunRecord
from suite.report.cases import launch_hint
from suite.report.sanity import Check, overall


@dataclass(frozen=True)
class CheckRun:
    """Everything one run of the GPU check produced, for the summary."""

    found: dict[str, Any]
    tests_line: str
    probes: dict[str, Any]
    cases: list[Planned]
    records: list[RunRecord]
    checks: list[Check]
    wall_s: float


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _found_lines(found: dict[str, Any]) -> list[str]:
    gpus = ", ".join(f"{g.get('name')} ({(g.get('memory_total_bytes') or 0) / 2**30:.0f} GiB)" for g in found["gpus"])
    packages = ", ".join(f"{k} {v}" for k, v in found["packages"].items())
    return [f"- GPU: {gpus or 'none listed by NVML'}; driver {found.get('driver', '—')}, NVML {found.get('nvml')}, "
            f"CUDA driver {found.get('cuda_driver', '—')}; {found.get('cpu_count')} CPUs", f"- packages: {packages}"]


def _probe_lines(probes: dict[str, Any]) -> list[str]:
    lines = []
    for device, entry in probes.items():
        if not entry or "unavailable" in entry:
            lines.append(f"- {device}: {(entry or {}).get('unavailable', 'probe failed')}")
            continue
        rates = ", ".join(f"{k} {v / 1e12:,.2f} TFLOP/s" if v else f"{k} —" for k, v in entry["flops_per_s"].items())
        lines.append(f"- {device}: {rates}")
    return lines


def _case_row(case: Planned, record: RunRecord | None) -> str:
    if record is None:
        return f"| {case.spec.label} | not run | {case.estimate_s:.0f} | — |" + " — |" * 12
    r = record
    peak = f" ({r.peak_flops_dtype})" if r.mfu_pct is not None and r.peak_flops_dtype else ""
    util = r.gpu_train.util_mean_pct if r.gpu_train else None
    notes = [r.error] if r.error else [n for n in (r.floor_note, r.profile_note) if n]
    note = "; ".join(notes).replace("|", "/")[:160]
    return (f"| {case.spec.label} | {r.status} | {case.estimate_s:.0f} | {_fmt(r.wall_s, '.0f')} | "
            f"{_fmt(r.train_steady_samples_per_s, ',.0f')} | {_fmt(r.step_time_ms_p50, '.3f')} | "
            f"{_fmt(r.sync_free_step_ms, '.3f')} | {_fmt(r.floor_step_ms, '.3f')} | {_fmt(r.step_over_floor, '.2f')} | "
            f"{launch_hint([r])} | {_fmt(r.mfu_pct, '.1f')}{peak} | {_fmt(util, '.0f')} | {_fmt(r.kernel_busy_pct, '.0f')} | "
            f"{r.train_data_device or '—'} | {_fmt(r.test_accuracy, '.4f')} | {note} |")


def _goal_lines(records: list[RunRecord]) -> list[str]:
    """The GPU goals (suite.bench.goals) judged on the check's own records."""
    rows = [f"| {v.name} | {v.measured} | {v.goal} | {v.verdict} | {v.detail.replace('|', '/')} |"
            for v in gpu_goal_verdicts(records)]
    return ["## Goals (batch 500, fp32, one GPU)", "| goal | measured | goal | verdict | evidence |", "|---|---|---|---|---|",
            *rows]


def _sweep_lines(records: list[RunRecord]) -> list[str]:
    """Each batch sweep: eager step against the launch-free floor; 1.0 = no launch overhead left at that batch."""
    rows = [f"| {r.run_spec.label} | {p.batch_size} | {p.eager_step_ms:.3f} | {p.floor_step_ms:.3f} | {p.over_floor:.2f} |"
            for r in records for p in r.batch_sweep]
    if not rows:
        return []
    return ["## Batch sweep: where launch overhead ends", "Eager step run back to back and its launch-free floor, "
            "both on a copy of the model; eager ÷ floor near 1.0 = no longer launch-bound.",
            "| case | batch | eager step ms | floor ms | eager ÷ floor |", "|---|---|---|---|---|", *rows, ""]


def summary_markdown(run: CheckRun) -> str:
    """One page: verdict first, then the box, tests, probe, sanity rules and the case table."""
    verdict = overall(run.checks)
    by_id = {r.case_id: r for r in run.records}
    estimated = sum(c.estimate_s for c in run.cases)
    measured = sum(r.wall_s or 0.0 for r in run.records)
    lines = [
        "# fashionbench GPU check", "",
        f"**GPU sanity: {verdict}** · gpu-marked tests: {run.tests_line} · {run.wall_s:.0f} s up to the report "
        f"(budget {BUDGET_S:.0f} s) · plan {measured:.0f} s measured vs {estimated:.0f} s estimated", "",
        "## What this box has", *_found_lines(run.found), "",
        "## GEMM probe (the MFU denominators)", *_probe_lines(run.probes), "",
        "## GPU sanity rules", "| rule | verdict | evidence |", "|---|---|---|",
        *(f"| {c.rule} | {c.verdict} | {c.detail.replace('|', '/')} |" for c in run.checks), "",
        *_goal_lines(run.records), "",
        "## Cases", "Synced step: median of 30 steps each ended by a device sync; sync-free step: steady epoch / steps; "
        "floor: the same step as one CUDA graph, replayed 200 times; kernel busy: share of 20 profiled steps' wall time "
        "with a GPU kernel running.",
        "| case | status | est s | wall s | train samples/s | synced step ms | sync-free step ms | floor ms | "
        "step ÷ floor | launch | MFU % | GPU util % | kernel busy % | data on | test acc | note |", "|---" * 16 + "|",
        *(_case_row(c, by_id.get(c.spec.id)) for c in run.cases), "",
        *_sweep_lines(run.records),
        "Records: `records.tar.gz` (`tar xzf records.tar.gz` then `fashionbench report --results results`); "
        "full report: `report.html`; per-case medians: `summary.csv`.",
    ]
    return "\n".join(lines) + "\n"
