"""Environment section: machine fingerprints, versions, threads, commits, and what was not measured and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from suite.record.machines import machine_labels
from suite.record.metrics import Metric
from suite.record.schema import Machine, RunRecord
from suite.record.stats import summarize
from suite.report.cases import Case

GIB = 2**30


@dataclass(frozen=True)
class Missing:
    """One figure that no ok run of a machine/device measured, with the reason."""

    machine: str
    device: str
    figure: str
    reason: str


def machines(cases: list[Case]) -> list[Machine]:
    """Distinct machines in report order."""
    seen: dict[str, Machine] = {}
    for case in cases:
        seen.setdefault(case.machine.machine_id, case.machine)
    return list(seen.values())


def machine_rows(items: list[Machine]) -> list[dict[str, str]]:
    """One row of fingerprint fields per machine."""
    rows = []
    names = machine_labels(items)
    for m in items:
        gpus = "; ".join(f"{g.get('name', '?')} ({(g.get('memory_total_bytes') or 0) / GIB:.1f} GiB, "
                         f"driver {g.get('driver', '?')})" for g in m.gpus) or "none found (NVML)"
        cores = f"{m.cpu_cores_logical} logical / {m.cpu_cores_physical if m.cpu_cores_physical else '?'} physical"
        rows.append({"hostname": m.hostname, "machine": names[m.machine_id], "machine_id": m.machine_id, "cpu": m.cpu_model, "cores": cores,
                     "ram": f"{m.ram_bytes / GIB:.1f} GiB", "gpus": gpus, "os": m.os, "python": m.python})
    return rows


def version_table(items: list[Machine]) -> tuple[list[str], list[list[str]]]:
    """Packages as rows, machines as columns (so a mismatch across machines is easy to spot)."""
    packages = sorted({p for m in items for p in m.versions})
    names = machine_labels(items)
    return [names[m.machine_id] for m in items], [[p, *(m.versions.get(p) or "not installed" for m in items)] for p in packages]


def thread_rows(cases: list[Case]) -> list[dict[str, str]]:
    """Requested and applied thread counts per case, and CPU utilisation (100% = one core busy)."""
    rows = []
    for case in cases:
        run = case.ok[0] if case.ok else case.records[0]
        info = run.framework_info
        applied = ", ".join(f"{k}={info[k]}" for k in sorted(info) if "thread" in k) or "—"
        util = summarize(r.cpu_util_pct for r in case.ok)
        p95 = summarize(r.cpu_util_p95_pct for r in case.ok)
        rows.append({"case": case.label, "host": case.where, "requested": str(case.spec.threads),
                     "recorded": str(run.threads) if run.threads is not None else "—", "applied": applied,
                     "cpu_util": f"{util.median:.0f}%" if util else "—", "cpu_p95": f"{p95.median:.0f}%" if p95 else "—"})
    return rows


def framework_info_rows(cases: list[Case]) -> list[dict[str, str]]:
    """framework_info of one run per (machine, framework, device): backend versions, devices, determinism."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for case in cases:
        run = case.ok[0] if case.ok else case.records[0]
        seen.setdefault((case.where, case.spec.framework, case.spec.device), run.framework_info)
    return [{"host": h, "framework": fw, "device": d,
             "info": ", ".join(f"{k}={v}" for k, v in sorted(info.items())) or "—"}
            for (h, fw, d), info in seen.items()]


def commit_rows(records: list[RunRecord]) -> list[dict[str, str]]:
    """Code versions the runs came from, with run counts and the time span."""
    counts = Counter(r.git_commit or "unknown" for r in records)
    rows = []
    for commit, count in counts.most_common():
        times = sorted(r.created_utc for r in records if (r.git_commit or "unknown") == commit)
        rows.append({"commit": commit, "runs": str(count), "first": times[0], "last": times[-1]})
    return rows


def _reason(metric: Metric, device: str, runs: list[RunRecord]) -> str:
    gpu_reasons = sorted({r.gpu_train.reason for r in runs if r.gpu_train and r.gpu_train.reason})
    figure = metric.key
    if metric.applies_to == "cuda":
        if device == "cuda" and not all(r.monitoring for r in runs):
            return "the NVML sampler was switched off (monitoring=False, an overhead calibration run)"
        if device == "cpu":
            why = "the case ran on the CPU: device memory, GPU utilisation and GPU energy do not apply"
            return why + (f" (NVML: {'; '.join(gpu_reasons)})" if gpu_reasons else "")
        return "; ".join(gpu_reasons) or "the NVML sampler reported nothing for this GPU"
    if figure.startswith("host_energy"):
        reasons = sorted({r.host_energy_train.reason for r in runs if r.host_energy_train and r.host_energy_train.reason})
        return "; ".join(reasons) or "not recorded by the worker version that made these runs (before host energy)"
    if figure == "mfu_pct":
        return f"no peak FLOP/s probe for this device; run `fashionbench probe --device {device}`"
    if figure.startswith(("infer", "latency")):
        return "inference was not measured (no --infer-batch-sizes)"
    if figure.startswith("time_to_"):
        return "no validation accuracy in the history"
    return "not recorded by the worker version that made these runs"


def not_measured(cases: list[Case], metrics: list[Metric]) -> list[Missing]:
    """Per (machine, device), each figure no ok run measured, and why."""
    groups: dict[tuple[str, str], list[Case]] = {}
    for case in cases:
        groups.setdefault((case.where, case.spec.device), []).append(case)
    missing = []
    for (host, device), members in groups.items():
        runs = [r for c in members for r in c.ok]
        if not runs:
            continue
        for metric in metrics:
            if not any(c.values(metric) for c in members):
                missing.append(Missing(host, device, metric.label, _reason(metric, device, runs)))
    return missing


def time_scopes(records: list[RunRecord]) -> dict[str, str]:
    """What each time figure includes, as stored in the records (first definition wins)."""
    scopes: dict[str, str] = {}
    for record in records:
        for key, text in record.time_scopes.items():
            scopes.setdefault(key, text)
    return scopes
