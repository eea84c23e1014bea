"""Records grouped into cases (case_key + machine) and the direction-aware figures read from them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import numpy as np

from suite.core.spec import DEFAULT_TARGETS, TASK_OF_MODEL, RunSpec
from suite.record.schema import Machine, RunRecord
from suite.record.stats import Summary, summarize, time_to_accuracy_s

MIB = 2**20


@dataclass(frozen=True)
class Metric:
    """One figure of a record: how to read it, its unit, and which direction is better."""

    key: str
    header: str
    unit: str
    higher_is_better: bool
    fmt: str
    get: Callable[[RunRecord], float | None]
    gate: bool = True  # compare fails on a regression of this figure by default

    def better(self, a: float, b: float) -> bool:
        """True when a is strictly better than b."""
        return a > b if self.higher_is_better else a < b

    def format(self, value: float | None) -> str:
        """The value in this metric's format, '—' when missing."""
        return "—" if value is None or not math.isfinite(value) else format(value, self.fmt)


def _infer_largest(record: RunRecord) -> float | None:
    # Throughput is quoted at the largest batch measured: that is the serving/batch-scoring regime.
    return max(record.inference, key=lambda i: i.batch_size).samples_per_s if record.inference else None


def _latency(quantile: str) -> Callable[[RunRecord], float | None]:
    # Latency is quoted at the smallest batch measured (normally 1): the interactive regime.
    def get(record: RunRecord) -> float | None:
        if not record.inference:
            return None
        return getattr(min(record.inference, key=lambda i: i.batch_size), f"latency_ms_{quantile}")

    return get


def _mib(value: int | None) -> float | None:
    return None if value is None else value / MIB


def device_peak_bytes(record: RunRecord) -> int | None:
    """Peak device memory as the framework saw it (allocator peak), else NVML's used peak."""
    for value in (record.torch_peak_allocated_bytes, record.tf_peak_bytes, record.nvml_used_peak_bytes):
        if value is not None:
            return value
    return None


def _recorded_tta(record: RunRecord) -> float | None:
    # The first recorded target: equal case_keys share targets, so compare sees like for like.
    if not record.time_to_accuracy_s:
        return None
    value = next(iter(record.time_to_accuracy_s.values()))
    return math.inf if value is None else value


METRICS: tuple[Metric, ...] = (
    Metric("test_accuracy", "test accuracy", "", True, ".4f", lambda r: r.test_accuracy),
    Metric("train_samples_per_s", "train samples/s", "samples/s", True, ",.0f", lambda r: r.train_steady_samples_per_s),
    Metric("first_epoch_s", "first epoch s", "s", False, ".2f", lambda r: r.first_epoch_s),
    Metric("warmup_s", "warm-up s", "s", False, ".2f", lambda r: r.warmup_s, gate=False),
    Metric("steady_epoch_s", "steady epoch s", "s", False, ".3f", lambda r: r.steady_epoch_s),
    Metric("step_ms", "synced step ms", "ms", False, ".3f", lambda r: r.step_time_ms_p50, gate=False),
    Metric("sync_free_step_ms", "sync-free step ms", "ms", False, ".3f", lambda r: r.sync_free_step_ms, gate=False),
    Metric("infer_samples_per_s", "infer samples/s", "samples/s", True, ",.0f", _infer_largest),
    Metric("latency_p50_ms", "latency p50 ms", "ms", False, ".3f", _latency("p50")),
    Metric("latency_p99_ms", "latency p99 ms", "ms", False, ".3f", _latency("p99")),
    Metric("peak_rss_mib", "peak RSS MiB", "MiB", False, ",.0f", lambda r: _mib(r.host_rss_peak_bytes)),
    Metric("peak_device_mib", "peak device MiB", "MiB", False, ",.0f", lambda r: _mib(device_peak_bytes(r))),
    Metric("gpu_util_pct", "GPU util %", "%", True, ".0f",
           lambda r: r.gpu_train.util_mean_pct if r.gpu_train else None, gate=False),
    Metric("energy_per_1k_j", "J / 1k samples", "J", False, ".2f", lambda r: r.energy_per_1k_train_samples_j),
    Metric("mfu_pct", "MFU %", "%", True, ".2f", lambda r: r.mfu_pct),
    Metric("recorded_tta_s", "time to target s", "s", False, ".2f", _recorded_tta, gate=False),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


def tta_metric(target: float) -> Metric:
    """Training seconds until validation accuracy first reaches `target` (inf when never), from the history."""

    def get(record: RunRecord) -> float | None:
        return record_tta_s(record, target)

    return Metric(f"tta_{target:g}_s", f"time to {target:g} s", "s", False, ".2f", get, gate=False)


def record_tta_s(record: RunRecord, target: float) -> float | None:
    """Seconds of training to reach the target; inf when never reached, None when there is no history."""
    if not record.history or all(e.val_accuracy is None for e in record.history):
        return None
    value = time_to_accuracy_s([e.train_s for e in record.history], [e.val_accuracy for e in record.history], [target])
    seconds = next(iter(value.values()))
    return math.inf if seconds is None else seconds


def epochs_to_target(record: RunRecord, target: float) -> int | None:
    """The first epoch (1-based) whose validation accuracy reaches the target."""
    return next((e.epoch for e in record.history if e.val_accuracy is not None and e.val_accuracy >= target), None)


def median_with_inf(values: Iterable[float | None]) -> float | None:
    """Median where inf means 'never reached': a majority of non-reaching runs makes the median inf."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return None
    return float(np.median(np.asarray(present, dtype=float)))


def default_targets() -> dict[str, float]:
    """Per task, the lowest model default target: one target per task keeps models comparable."""
    targets: dict[str, float] = {}
    for model, task in TASK_OF_MODEL.items():
        targets[task] = min(targets.get(task, 1.0), *DEFAULT_TARGETS[model])
    return targets


@dataclass
class Case:
    """All runs of one case on one machine: the unit every table and plot is made of."""

    case_key: str
    machine: Machine
    spec: RunSpec
    records: list[RunRecord] = field(default_factory=list)
    label: str = ""
    setup_label: str = ""  # the label without the host: what to run, as opposed to where

    @property
    def ok(self) -> list[RunRecord]:
        """Runs that finished with status ok."""
        return [r for r in self.records if r.status == "ok"]

    @property
    def task(self) -> str:
        """The classification task."""
        return self.spec.task

    @property
    def setup(self) -> str:
        """framework/model/device without host or settings."""
        return f"{self.spec.framework}/{self.spec.model}/{self.spec.device}"

    @property
    def variant(self) -> str:
        """The variant column of RunRecord.to_row(): "default" or the non-default settings."""
        return self.records[0].to_row()["variant"]

    @property
    def variant_family(self) -> str:
        """The label without its variant flags: what the cases of one speed-variants table share."""
        # group_cases builds every label as spec.label (framework/model/device + variant flags) + settings + host.
        return self.setup + self.label[len(self.spec.label):]

    def values(self, metric: Metric) -> list[float]:
        """The metric over ok runs, missing ones dropped."""
        return [v for v in (metric.get(r) for r in self.ok) if v is not None]

    def stats(self, metric: Metric) -> Summary | None:
        """Median, quartiles and n of the metric over ok runs (finite values only)."""
        return summarize(self.values(metric))


# Settings shown in a label only when they vary between the cases of one report. Variant flags (lr, init,
# keras_backend, precision, ...) are not listed: spec.label already names them when they are not at their default.
LABEL_SETTINGS = ("epochs", "limit", "batch_size", "threads")


def group_cases(records: list[RunRecord]) -> list[Case]:
    """Group runs by (case_key, machine_id) and give every case a label unique within the report."""
    cases: dict[tuple[str, str], Case] = {}
    for record in records:
        key = (record.case_key, record.machine.machine_id)
        if key not in cases:
            cases[key] = Case(record.case_key, record.machine, RunSpec.from_dict(record.spec))
        cases[key].records.append(record)
    ordered = sorted(cases.values(), key=lambda c: (c.task, c.spec.model, c.spec.device, c.machine.hostname,
                                                   c.spec.framework, c.case_key))
    hosts = {c.machine.machine_id for c in ordered}
    varying = [s for s in LABEL_SETTINGS if len({str(c.spec.to_dict().get(s)) for c in ordered}) > 1]
    for case in ordered:
        parts = [case.spec.label]
        parts += [f"{s}={case.spec.to_dict().get(s)}" for s in varying]
        case.setup_label = " ".join(parts)
        case.label = f"{case.setup_label} @{case.machine.hostname}" if len(hosts) > 1 else case.setup_label
    _disambiguate(ordered)
    return ordered


def _disambiguate(cases: list[Case]) -> None:
    # Two machines can share a hostname (cloud images): add the machine id so labels stay unique.
    seen: dict[str, int] = {}
    for case in cases:
        seen[case.label] = seen.get(case.label, 0) + 1
    for case in cases:
        if seen[case.label] > 1:
            case.label = f"{case.label} [{case.machine.machine_id}]"


def variant_base(spec: RunSpec) -> RunSpec:
    """The spec with every variant flag at its default: cases sharing it differ only in variant settings."""
    defaults = RunSpec(framework=spec.framework, model=spec.model)
    return replace(spec, **{name: getattr(defaults, name) for name in spec.variant_flags()})


def variant_families(cases: list[Case]) -> list[list[Case]]:
    """Cases that differ only in variant flags, on one machine, where there is more than one; report order kept."""
    families: dict[tuple[str, str], list[Case]] = {}
    for case in cases:
        families.setdefault((variant_base(case.spec).case_key, case.machine.machine_id), []).append(case)
    return [members for members in families.values() if len(members) > 1]


def best_values(cases: list[Case], metrics: Iterable[Metric]) -> dict[str, float]:
    """Per metric, the best median among the cases (only when at least two cases have a value)."""
    best: dict[str, float] = {}
    for metric in metrics:
        medians = [s.median for s in (c.stats(metric) for c in cases) if s is not None]
        if len(medians) >= 2:
            best[metric.key] = max(medians) if metric.higher_is_better else min(medians)
    return best


def beyond_noise(a: Summary | None, b: Summary | None) -> bool | None:
    """True when the two IQRs do not overlap; None without repeats on both sides (nothing to judge noise by)."""
    if a is None or b is None or a.n < 2 or b.n < 2:
        return None
    return a.q3 < b.q1 or b.q3 < a.q1


def pareto_front(cases: list[Case], x: Metric, y: Metric) -> list[Case]:
    """Cases no other case beats on both medians (both higher-is-better), ordered by x."""
    points = [(c, sx.median, sy.median) for c in cases if (sx := c.stats(x)) and (sy := c.stats(y))]
    front = [(c, px, py) for c, px, py in points
             if not any(qx >= px and qy >= py and (qx > px or qy > py) for _, qx, qy in points)]
    return [c for c, _, _ in sorted(front, key=lambda item: item[1])]
