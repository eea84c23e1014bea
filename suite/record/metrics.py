"""The one metric registry: every figure that tables, the report, compare and asv read, with its unit and direction.

Keys follow `<figure>_<stat>_<unit>` (`latency_p50_ms`, `rss_peak_mib`); a figure with one value drops the stat
(`test_accuracy`, `first_epoch_s`). Renamed keys stay accepted through `aliases`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

from suite.record.scaling import impossible_efficiency
from suite.record.schema import DISTURBED_LOST_PCT, RunRecord
from suite.record.stats import time_to_accuracy_s

MIB = 2**20
IMPOSSIBLE_MARK = "(impossible)"  # after a value its metric's `impossible` check refuses; the reason is said once nearby
View = Literal["summary", "frameworks", "variants", "table"]
# Where a metric is shown besides compare and summary.csv, which take every metric:
#   summary    the report's per-task summary table (and its "not measured" list)
#   frameworks the report's frameworks side-by-side table and bar figure
#   variants   the report's speed-variants table
#   table      the terminal summary printed after `fashionbench run`


@dataclass(frozen=True)
class Metric:
    """One figure of a record: how to read it, its unit, which direction is better and where it is shown."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    fmt: str
    get: Callable[[RunRecord], float | None]
    gate: bool = True  # compare fails on a regression of this figure by default
    # A timing figure: other work on the machine moves it, so compare judges it against noise (a statistical test) and
    # leaves a disturbed run's value out. False: accuracy (deterministic for a seed) and memory.
    timing: bool = False
    # Varies from process to process although no other work moves it (a host memory peak: the allocator's arenas differ
    # by run, ~1,000 vs ~1,080 MiB for one CPU CNN case): judged against noise like a timing figure, disturbed runs kept.
    varies: bool = False
    # The figure this one is a fixed transform of (train samples/s and MFU of the steady epoch): one test, not three,
    # in the family compare holds to its false-alarm rate.
    same_test_as: str | None = None
    applies_to: Literal["any", "cuda"] = "any"  # "cuda": only a GPU case can have it (CPU cases say why not)
    views: frozenset[View] = frozenset()
    aliases: tuple[str, ...] = ()  # earlier keys, still accepted by `compare --metric/--threshold`
    asv: tuple[str, ...] = ()  # the asv track_* methods that report it (asv keys history by these names)
    doc: str = ""  # one sentence: what is measured and how (asv shows it beside the track)
    # Why a value cannot be a true measurement of this figure (None: it can): such a value is marked wherever it is
    # shown (`shown`), left out of CSV/JSON and reported to asv as n/a.
    impossible: Callable[[float], str | None] | None = None

    @property
    def against_noise(self) -> bool:
        """compare judges it with a test over the runs' noise (timing figures, and figures that vary by process)."""
        return self.timing or self.varies

    @property
    def test_key(self) -> str:
        """The one test this figure's verdict comes from (its own, or the figure it is a transform of)."""
        return self.same_test_as or self.key

    def better(self, a: float, b: float) -> bool:
        """True when a is strictly better than b."""
        return a > b if self.higher_is_better else a < b

    def format(self, value: float | None) -> str:
        """The value in this metric's format, '—' when missing."""
        return "—" if value is None or not math.isfinite(value) else format(value, self.fmt)

    def flag(self, value: float | None) -> str | None:
        """Why this value of the figure cannot be right, or None."""
        return self.impossible(value) if self.impossible and value is not None and math.isfinite(value) else None

    def shown(self, value: float | None) -> str:
        """The value as a table cell: formatted, with IMPOSSIBLE_MARK when it cannot be a true measurement."""
        return f"{self.format(value)} {IMPOSSIBLE_MARK}" if self.flag(value) else self.format(value)


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
    """Peak device memory as the framework's allocator saw it (torch, TensorFlow or JAX), else NVML's used peak."""
    for value in (record.torch_peak_allocated_bytes, record.tf_peak_bytes, record.jax_peak_bytes,
                  record.nvml_used_peak_bytes):
        if value is not None:
            return value
    return None


def time_to_target_s(record: RunRecord, target: float | None = None) -> float | None:
    """Training seconds until validation accuracy first reaches `target` (default: the record's first target).

    inf when it never did, None when there is nothing to judge by (no validation history, no target).
    """
    if target is None:
        if not record.time_to_accuracy_s:
            return None
        target = float(next(iter(record.time_to_accuracy_s)))  # equal case_keys share targets: like for like
    if not record.history or all(e.val_accuracy is None for e in record.history):
        return None
    value = time_to_accuracy_s([e.train_s for e in record.history], [e.val_accuracy for e in record.history], [target])
    seconds = next(iter(value.values()))
    return math.inf if seconds is None else seconds


def time_to_target_metric(target: float) -> Metric:
    """Time to one accuracy target: the report's per-task column and the terminal table's per-target columns."""
    return Metric(f"time_to_{target:g}_s", f"time to {target:g} s", "s", False, ".2f",
                  lambda record: time_to_target_s(record, target), gate=False, timing=True,
                  doc=f"Training seconds until validation accuracy first reaches {target:g}.")


def _disturbance(record: RunRecord) -> float | None:
    return record.contention_train.lost_pct if record.contention_train else None


def _gpu_util(record: RunRecord) -> float | None:
    return record.gpu_train.util_mean_pct if record.gpu_train else None


ALL_VIEWS: frozenset[View] = frozenset({"summary", "frameworks", "variants", "table"})
METRICS: tuple[Metric, ...] = (
    Metric("test_accuracy", "test accuracy", "", True, ".4f", lambda r: r.test_accuracy, views=ALL_VIEWS,
           asv=("track_test_accuracy",), doc="Accuracy on the test split (T-shirt/Shirt test images for binary) after the last epoch."),
    Metric("train_samples_per_s", "train samples/s", "samples/s", True, ",.0f", lambda r: r.train_steady_samples_per_s,
           views=ALL_VIEWS, asv=("track_train_samples_per_s",),
           doc="Steady-state training throughput: samples / median epoch time of epochs 2..N (validation excluded).", timing=True,
           same_test_as="steady_epoch_s"),
    Metric("first_epoch_s", "first epoch s", "s", False, ".2f", lambda r: r.first_epoch_s,
           views=frozenset({"summary", "frameworks", "table"}), asv=("track_first_epoch_s",),
           doc="Epoch 1 training time, which includes tracing, compilation and warm-up.", timing=True),
    Metric("warmup_s", "warm-up s", "s", False, ".2f", lambda r: r.warmup_s, gate=False,
           views=frozenset({"variants", "table"}), doc="first_epoch_s - steady_epoch_s: the one-off cost of epoch 1.", timing=True),
    Metric("steady_epoch_s", "steady epoch s", "s", False, ".3f", lambda r: r.steady_epoch_s,
           views=frozenset({"frameworks", "table"}), doc="Median training time of epochs 2..N, device synchronised.", timing=True),
    Metric("step_time_p50_ms", "synced step ms", "ms", False, ".3f", lambda r: r.step_time_ms_p50, gate=False,
           views=frozenset({"variants", "table"}),
           doc="Median of 30 single optimizer steps after training, each ended by a device sync.", timing=True),
    Metric("sync_free_step_ms", "sync-free step ms", "ms", False, ".3f", lambda r: r.sync_free_step_ms, gate=False,
           views=frozenset({"variants", "table"}),
           doc="steady_epoch_s / steps per epoch: one step of the training loop that never waits for the device.", timing=True),
    Metric("floor_step_ms", "launch-free floor ms", "ms", False, ".3f", lambda r: r.floor_step_ms, gate=False,
           applies_to="cuda", views=frozenset({"variants", "table"}),
           doc="The case's whole training step captured once as a CUDA graph and replayed 200+ times, device-synced.",
           timing=True),
    Metric("step_over_floor", "step ÷ floor", "", False, ".2f", lambda r: r.step_over_floor, gate=False,
           applies_to="cuda", views=frozenset({"variants", "table"}),
           doc="Sync-free step / launch-free floor: 1.0 = no launch overhead left.", timing=True),
    Metric("kernel_busy_pct", "kernel busy %", "%", True, ".0f", lambda r: r.kernel_busy_pct, gate=False,
           applies_to="cuda", views=frozenset({"summary", "variants", "table"}),
           doc="Share of ~20 steady steps' wall time with a GPU kernel running (profiler), beside NVML utilisation.",
           timing=True),
    Metric("infer_samples_per_s", "infer samples/s", "samples/s", True, ",.0f", _infer_largest,
           views=frozenset({"summary", "frameworks", "table"}), asv=("track_samples_per_s",),
           doc="Eval-mode samples per second at the largest batch measured (1024 in the asv grid).", timing=True),
    Metric("latency_p50_ms", "latency p50 ms", "ms", False, ".3f", _latency("p50"),
           views=frozenset({"summary", "frameworks", "table"}), asv=("track_latency_p50_ms",),
           doc="Median latency of one forward call at the smallest batch measured (1 in the asv grid).", timing=True),
    Metric("latency_p99_ms", "latency p99 ms", "ms", False, ".3f", _latency("p99"), views=frozenset({"summary"}),
           doc="99th-percentile latency of one forward call at the smallest batch measured.", timing=True),
    Metric("rss_peak_mib", "peak RSS MiB", "MiB", False, ",.0f", lambda r: _mib(r.host_rss_peak_bytes),
           views=frozenset({"summary", "table"}), aliases=("peak_rss_mib",), asv=("track_host_rss_peak_bytes",),
           doc="Peak resident set size of the worker process over the whole case.", varies=True),
    Metric("device_peak_mib", "peak device MiB", "MiB", False, ",.0f", lambda r: _mib(device_peak_bytes(r)),
           applies_to="cuda", views=frozenset({"summary"}), aliases=("peak_device_mib",),
           asv=("track_device_alloc_peak_bytes",),
           doc="Framework allocator peak during training (torch, TensorFlow or JAX; NVML used when none).", varies=True),
    Metric("nvml_used_peak_mib", "NVML used peak MiB", "MiB", False, ",.0f", lambda r: _mib(r.nvml_used_peak_bytes),
           gate=False, applies_to="cuda", asv=("track_nvml_used_peak_bytes",),
           doc="Peak device memory in use as NVML sees it (CUDA context and allocator cache included)."),
    Metric("gpu_util_mean_pct", "GPU util %", "%", True, ".0f", _gpu_util, gate=False, applies_to="cuda",
           views=frozenset({"summary"}), aliases=("gpu_util_pct",), asv=("track_util_pct",),
           doc="Mean GPU utilisation sampled by NVML during training.", timing=True),
    Metric("energy_per_1k_samples_j", "J / 1k samples", "J", False, ".2f", lambda r: r.energy_per_1k_train_samples_j,
           applies_to="cuda", views=frozenset({"summary"}), aliases=("energy_per_1k_j",),
           asv=("track_energy_per_1k_samples_j",),
           doc="GPU energy per 1,000 training samples (NVML energy counter, else power × time).", timing=True),
    Metric("host_energy_per_1k_samples_j", "host J / 1k samples", "J", False, ".2f",
           lambda r: r.host_energy_per_1k_train_samples_j, gate=False, views=frozenset({"summary"}),
           doc="Host CPU package energy per 1,000 training samples (RAPL/powercap counters; the whole package, every "
               "process on it), where the machine exposes them.", timing=True),
    Metric("mfu_pct", "MFU %", "%", True, ".2f", lambda r: r.mfu_pct, views=frozenset({"summary", "variants", "table"}),
           asv=("track_mfu_pct",),
           doc="Model FLOP/s in steady-state training as a percentage of the device's GEMM peak in the case's precision.", timing=True,
           same_test_as="steady_epoch_s"),
    Metric("scaling_efficiency_pct", "scaling efficiency %", "%", True, ".0f", lambda r: r.scaling_efficiency_pct,
           gate=False, views=frozenset({"table"}), asv=("track_scaling_efficiency_pct",), impossible=impossible_efficiency,
           doc="Global steady samples/s on N replicas / (N x the 1-device case's); 100 is linear scaling.", timing=True),
    Metric("comm_share_pct", "comm share %", "%", False, ".0f", lambda r: r.comm_share_pct, gate=False,
           asv=("track_comm_share_pct",),
           doc="torch DDP's sampled all-reduce time not hidden behind backward, as a share of the step.", timing=True),
    Metric("disturbance_pct", "disturbance %", "%", False, ".0f", _disturbance, gate=False,
           doc=("Share of the case's cores other work (other processes, steal) took during training; "
                f"over {DISTURBED_LOST_PCT:g} % the run is DISTURBED.")),
    Metric("time_to_target_s", "time to target s", "s", False, ".2f", time_to_target_s, gate=False,
           aliases=("recorded_tta_s",), asv=("track_time_to_target_s",),
           doc="Training seconds until validation accuracy first reaches the case's first target; n/a if never.", timing=True),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}
ALIASES = {alias: m.key for m in METRICS for alias in m.aliases}
METRIC_BY_ASV = {name: m for m in METRICS for name in m.asv}


def find_metric(key: str) -> Metric | None:
    """The metric of a key or of one of its earlier names."""
    return METRIC_BY_KEY.get(ALIASES.get(key, key))


def shown_in(view: View) -> tuple[Metric, ...]:
    """The metrics one table or figure shows, in registry order."""
    return tuple(m for m in METRICS if view in m.views)
