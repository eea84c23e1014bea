"""The one typed result record (RunRecord) and its parts; reading and writing them is suite.record.store."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from suite.core.spec import RunSpec

SCHEMA_VERSION = 1
STATUSES = ("ok", "error", "skipped", "timeout", "diverged")
Status = Literal["ok", "error", "skipped", "timeout", "diverged"]

# What each time figure includes, stored in every record so a number is never read without its scope.
TIME_SCOPES = {
    "first_epoch_s": "wall time of epoch 1 training steps incl. graph tracing/compilation and warm-up; excludes validation",
    "steady_epoch_s": "median wall time of epochs 2..N training steps, device synchronised; excludes validation",
    "train_total_s": "sum of all epochs' training time; excludes validation, test and inference",
    "warmup_s": ("first_epoch_s - steady_epoch_s: the one-off cost of epoch 1 (torch.compile/XLA compilation, graph tracing, "
                 "allocator warm-up)"),
    "train_steady_samples_per_s": "training samples / steady_epoch_s (epoch 1 excluded)",
    "train_first_epoch_samples_per_s": "training samples / first_epoch_s",
    "in_epoch_steady_s": ("1-epoch cases only: wall time of the epoch's full-size steps after its first in_epoch_warmup_steps "
                          "(tracing, compilation, warm-up), device synchronised at both ends; in_epoch_timed_steps steps"),
    "step_time_ms": "single optimizer steps timed one by one after training, each ended by a device sync",
    "step_launch_ms": ("host time for one of those steps to return, before the device sync (torch only): on CUDA the "
                       "CPU-side launch cost; close to step_time_ms means the GPU waits on the CPU (launch-bound)"),
    "sync_free_step_ms": "steady_epoch_s / steps per epoch: one step of the training loop that never waits for the device",
    "inference": "model forward at a fixed batch size after warm-up, each call ended by copying outputs to host",
    "time_to_accuracy_s": ("cumulative training time (validation excluded) until validation accuracy first reaches the target; "
                           "null if never"),
    "import_s": "seconds to import the framework in the worker process",
    "build_s": "seconds to build the model (and load shared weights)",
    "cpu_util_pct": "process CPU seconds / wall seconds over the training epochs (100 = one core busy)",
    "global_steady_samples_per_s": "training samples of all replicas / steady_epoch_s (= train_steady_samples_per_s)",
    "per_rank_steady_samples_per_s": "global_steady_samples_per_s / world_size: what one replica processed per second",
    "scaling_efficiency_pct": ("global_steady_samples_per_s / (world_size x that of the 1-device case of the same setup), "
                               "median over its runs; null until that case is recorded"),
    "comm_share_pct": ("torch DDP's own sampled step timings: all-reduce time not hidden behind backward / (forward + "
                       "backward + that all-reduce time); null where the framework exposes no such timing"),
    "floor_step_ms": ("the launch-free floor: a copy of the case's model and optimizer, its whole training step (forward, "
                      "loss, backward, Adam) captured once as a CUDA graph on one fixed batch of the case's size and "
                      "replayed floor_replays times back to back, device synchronised at both ends; ms per replay"),
    "step_over_floor": ("sync_free_step_ms (else the in-epoch steady step) / floor_step_ms: 1.0 = no launch overhead left; "
                        "below 1.0 a compiled variant's fused kernels beat the eager kernels the floor captures"),
    "kernel_busy_pct": ("over profiled_steps steady steps under torch.profiler (JAX: jax.profiler), the share of their wall "
                        "time during which at least one GPU kernel ran (union of kernel intervals / window)"),
    "process_wall_s": ("the worker process from start to exit, seen by the runner: interpreter start, imports, the case, "
                       "writing its record (wall_s starts after the worker's imports)"),
}


# A 1-epoch case has no steady epoch; its train_steady_samples_per_s (and MFU) come from within the epoch instead.
IN_EPOCH_STEADY_SCOPE = ("samples of the timed steps / in_epoch_steady_s: the only epoch, its first in_epoch_warmup_steps "
                         "steps excluded (not the median of epochs 2..N)")


# A case is DISTURBED when other work took more than this share of the cores it ran on (mean over a phase): a case
# that lost that much CPU time can come out slower by as much as compare's default 5 % threshold, so its speed figures
# can neither pass nor fail the gate. Cores the case left idle are no loss: others may use them.
DISTURBED_LOST_PCT = 5.0
# `PLANT_SLOWDOWN_ENV=10` makes every training step really wait 10 % longer (test-only: the gate's benchmark plants a
# slowdown it must detect); the record keeps the setting in planted_slowdown_pct.
PLANT_SLOWDOWN_ENV = "FASHIONBENCH_TEST_SLOWDOWN_PCT"


class RecordError(ValueError):
    """A results file that cannot be used; the message names the file and why."""


class Machine(BaseModel):
    """Fingerprint of the machine a case ran on."""

    model_config = ConfigDict(extra="forbid")

    machine_id: str
    hostname: str
    cpu_model: str
    cpu_cores_logical: int
    cpu_cores_physical: int | None = None
    ram_bytes: int
    gpus: list[dict[str, Any]] = Field(default_factory=list)
    os: str
    python: str
    versions: dict[str, str | None] = Field(default_factory=dict)


class EpochStats(BaseModel):
    """One epoch of training followed by validation."""

    epoch: int
    train_loss: float | None  # None when the loss was NaN/Inf (JSON has no such numbers); see RunRecord.error
    train_accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    train_s: float


class InferenceStats(BaseModel):
    """Forward-only throughput and latency at one batch size."""

    batch_size: int
    calls: int
    samples_per_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float


class GpuStats(BaseModel):
    """What the NVML sampler saw during one phase; `available=False` says why nothing was measured."""

    available: bool
    reason: str | None = None
    samples: int = 0
    duration_s: float | None = None
    util_mean_pct: float | None = None
    util_p95_pct: float | None = None
    mem_util_mean_pct: float | None = None
    mem_used_peak_bytes: int | None = None
    power_mean_w: float | None = None
    power_max_w: float | None = None
    sm_clock_mean_mhz: float | None = None
    throttle_reasons: list[str] = Field(default_factory=list)
    energy_j: float | None = None
    energy_source: str | None = None


class SweepPoint(BaseModel):
    """One batch size of a --batch-sweep: the eager step and the launch-free floor of the same step, both run back to
    back on a copy of the model and device-synced at both ends."""

    batch_size: int
    eager_step_ms: float
    floor_step_ms: float
    floor_replays: int

    @property
    def over_floor(self) -> float:
        """Eager step / floor: 1.0 = no launch overhead left at this batch size."""
        return self.eager_step_ms / self.floor_step_ms


class HostEnergy(BaseModel):
    """Host CPU package energy over one phase from RAPL/powercap counters; `available=False` says why nothing was measured."""

    available: bool
    reason: str | None = None
    source: str | None = None  # which counters: "RAPL package energy (powercap)"; the whole package, all its processes
    zones: list[str] = Field(default_factory=list)  # package-0, package-1, ...
    energy_j: float | None = None
    duration_s: float | None = None
    wraps: int = 0  # counter wrap-arounds undone between reads


class PeakProbe(BaseModel):
    """Where the peak FLOP/s a record's MFU divides by came from: when, how steady, at how many threads."""

    measured_utc: str | None = None
    cached: bool
    threads: int | None = None
    cpu_cores_logical: int | None = None
    spread_pct: float | None = None  # (max - min) / median of the probe's rounds
    disturbed: str | None = None  # why the probe was not trusted enough to cache (contention), None when steady


class Contention(BaseModel):
    """Other work on the machine while one phase of a case ran: /proc/stat's busy time of all CPUs (steal included) minus
    the case's own processes' CPU time, as mean cores over the phase."""

    wall_s: float
    cores_logical: int
    case_cores: int  # the cores the case may use: --threads, at most the machine's
    others_busy_cores: float  # other processes and the hypervisor (steal)
    steal_cores: float
    own_busy_cores: float
    epoch_others_busy_cores: list[float] = Field(default_factory=list)  # training phase: each epoch's figure

    @property
    def lost_pct(self) -> float:
        """The share of the case's cores that other work took: what others kept busy beyond the cores the case left idle."""
        taken = max(0.0, self.others_busy_cores + self.case_cores - self.cores_logical)
        return 100.0 * min(taken, self.case_cores) / max(self.case_cores, 1)


class RunRecord(BaseModel):
    """Everything measured for one case (one spec, one process)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    case_id: str
    case_key: str
    created_utc: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    git_commit: str | None = None
    machine: Machine
    spec: dict[str, Any]
    status: Status
    error: str | None = None
    stderr_tail: str | None = None
    wall_s: float | None = None
    framework_info: dict[str, Any] = Field(default_factory=dict)

    params: int | None = None
    history: list[EpochStats] = Field(default_factory=list)
    diverged_epoch: int | None = None
    best_epoch: int | None = None

    import_s: float | None = None
    build_s: float | None = None
    first_epoch_s: float | None = None
    steady_epoch_s: float | None = None
    warmup_s: float | None = None
    train_total_s: float | None = None
    train_samples: int | None = None
    train_steady_samples_per_s: float | None = None
    train_first_epoch_samples_per_s: float | None = None
    in_epoch_warmup_steps: int | None = None
    in_epoch_timed_steps: int | None = None
    in_epoch_steady_s: float | None = None
    step_time_ms_p50: float | None = None
    step_time_ms_p95: float | None = None
    step_launch_ms_p50: float | None = None
    sync_free_step_ms: float | None = None
    synced_step_ratio: float | None = None  # step_time_ms_p50 / sync_free_step_ms: what waiting for the device costs
    launch_bound: bool | None = None  # CUDA only: launching a step takes most of the step (see worker.LAUNCH_BOUND_SHARE)
    train_data_device: str | None = None  # where the training tensors live, read from the tensor itself after loading
    # Launch overhead measured, not assumed (CUDA; TIME_SCOPES and docs/gpu-speed.md): the launch-free floor of the
    # same model and batch, and what the profiler saw over the case's own steady steps.
    floor_step_ms: float | None = None
    floor_replays: int | None = None
    floor_note: str | None = None  # what the floor leaves out or why it was not measured
    step_over_floor: float | None = None
    profiled_steps: int | None = None
    kernel_busy_pct: float | None = None
    gpu_kernels_per_step: float | None = None  # kernels that ran on the GPU, per step
    kernel_launches_per_step: float | None = None  # kernel launch API calls made by the host, per step
    graph_launches_per_step: float | None = None  # CUDA graph launch API calls made by the host, per step
    profile_note: str | None = None  # why a profile figure is missing
    trace_file: str | None = None  # the Chrome/Perfetto trace of the profiled steps (--trace), relative to the record
    batch_sweep: list[SweepPoint] = Field(default_factory=list)  # --batch-sweep: launch overhead against batch size

    test_accuracy: float | None = None
    test_loss: float | None = None
    class_names: list[str] = Field(default_factory=list)
    per_class_accuracy: list[float] = Field(default_factory=list)
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    time_to_accuracy_s: dict[str, float | None] = Field(default_factory=dict)

    inference: list[InferenceStats] = Field(default_factory=list)

    threads: int | None = None
    cpu_util_pct: float | None = None
    cpu_util_p95_pct: float | None = None
    monitoring: bool = True
    host_rss_baseline_bytes: int | None = None
    host_rss_peak_bytes: int | None = None
    torch_peak_allocated_bytes: int | None = None
    torch_peak_reserved_bytes: int | None = None
    tf_peak_bytes: int | None = None
    jax_peak_bytes: int | None = None
    nvml_used_peak_bytes: int | None = None
    gpu_train: GpuStats | None = None
    gpu_inference: GpuStats | None = None
    energy_per_1k_train_samples_j: float | None = None
    # Host CPU package energy over training (RAPL), for every device; None on records stored before it was measured.
    host_energy_train: HostEnergy | None = None
    host_energy_per_1k_train_samples_j: float | None = None

    forward_flops_per_sample: int | None = None
    train_flops_per_sample: int | None = None
    achieved_train_flops_per_s: float | None = None
    peak_flops_per_s: float | None = None
    peak_flops_dtype: str | None = None  # which probe figure MFU divides by: the spec's arithmetic precision
    mfu_pct: float | None = None
    peak_probe: PeakProbe | None = None

    # Data parallelism (--devices); None on records stored before the axis existed.
    world_size: int | None = None
    dist_backend: str | None = None  # gloo, nccl, mirrored (tf.distribute), jax-dataparallel; None for one device
    global_batch_size: int | None = None
    lr_effective: float | None = None
    threads_per_rank: int | None = None  # torch: each rank's intra-op threads; Keras: None (one pool serves all replicas)
    global_steady_samples_per_s: float | None = None
    per_rank_steady_samples_per_s: float | None = None
    scaling_efficiency_pct: float | None = None
    comm_share_pct: float | None = None

    time_scopes: dict[str, str] = Field(default_factory=lambda: dict(TIME_SCOPES))

    # Other work on the machine during training and during the profile phase (step timing, inference); None on
    # records stored before it was measured. See DISTURBED_LOST_PCT.
    contention_train: Contention | None = None
    contention_profile: Contention | None = None
    planted_slowdown_pct: float | None = None  # test-only slowdown (PLANT_SLOWDOWN_ENV); None in every real run

    # Where the case ran (added with the Ray executor; records without them ran locally, one case at a time).
    executor: Literal["local", "ray"] = "local"
    worker_pid: int | None = None
    process_wall_s: float | None = None  # the worker process's whole life as the runner saw it (TIME_SCOPES)
    node_id: str | None = None
    node_ip: str | None = None
    node_kind: str | None = None
    per_node: int = 1  # timed cases allowed on the node at once (--per-node)

    @property
    def run_spec(self) -> RunSpec:
        """The spec as a RunSpec object."""
        return RunSpec.from_dict(self.spec)

    @property
    def disturbed(self) -> str | None:
        """Why other work on the machine makes this run's speed figures untrustworthy, or None (also when unmeasured)."""
        phases = [(name, c) for name, c in (("training", self.contention_train), ("profiling", self.contention_profile))
                  if c is not None and c.lost_pct > DISTURBED_LOST_PCT]
        if not phases:
            return None
        return "; ".join(f"other work took {c.lost_pct:.0f}% of its {c.case_cores} core(s) during {name} "
                         f"({c.others_busy_cores:.2f} cores busy, steal {c.steal_cores:.2f}; limit {DISTURBED_LOST_PCT:g}%)"
                         for name, c in phases)

    @property
    def caveats(self) -> list[str]:
        """Short flags a reader must see beside this run's figures: disturbed, negative warm-up, a one-epoch steady
        figure, a planted slowdown."""
        flags = ["DISTURBED"] if self.disturbed else []
        if self.warmup_s is not None and self.warmup_s < 0:
            flags.append("negative warm-up")
        if self.train_steady_samples_per_s is not None and len(self.history) <= 2:
            flags.append("steady from 1 epoch")
        if self.planted_slowdown_pct:
            flags.append(f"planted slowdown {self.planted_slowdown_pct:g}%")
        return flags

    def inference_at(self, batch_size: int) -> InferenceStats | None:
        """The inference figures at one batch size, if measured."""
        return next((i for i in self.inference if i.batch_size == batch_size), None)

    def to_row(self) -> dict[str, Any]:
        """A flat dict of scalars (spec fields, machine, figures) for tables and pandas."""
        row: dict[str, Any] = dict(self.spec)
        row["targets"] = ",".join(str(t) for t in self.spec.get("targets") or [])
        row["variant"] = " ".join(f"{k}={v}" for k, v in self.run_spec.variant_flags().items()) or "default"
        row.update(
            case_id=self.case_id,
            case_key=self.case_key,
            run_id=self.run_id,
            created_utc=self.created_utc,
            git_commit=self.git_commit,
            machine_id=self.machine.machine_id,
            hostname=self.machine.hostname,
            status=self.status,
            error=self.error,
        )
        skip = {"history", "inference", "per_class_accuracy", "confusion_matrix", "class_names", "machine", "spec",
                "time_scopes", "gpu_train", "gpu_inference", "time_to_accuracy_s", "framework_info", "stderr_tail",
                "peak_probe", "contention_train", "contention_profile", "host_energy_train", "batch_sweep"}
        for name in type(self).model_fields:
            if name not in skip and name not in row:
                row[name] = getattr(self, name)
        for item in self.inference:
            row[f"infer_bs{item.batch_size}_samples_per_s"] = item.samples_per_s
            row[f"infer_bs{item.batch_size}_latency_ms_p50"] = item.latency_ms_p50
            row[f"infer_bs{item.batch_size}_latency_ms_p99"] = item.latency_ms_p99
        for target, seconds in self.time_to_accuracy_s.items():
            row[f"tta_{target}_s"] = seconds
        for key, value in (self.peak_probe or PeakProbe(cached=False)).model_dump().items():
            row[f"peak_probe_{key}"] = value if self.peak_probe else None
        for phase, contention in (("train", self.contention_train), ("profile", self.contention_profile)):
            row[f"others_busy_cores_{phase}"] = contention.others_busy_cores if contention else None
        row["disturbed"] = self.disturbed
        row["caveats"] = ", ".join(self.caveats)
        for phase, stats in (("train", self.gpu_train), ("infer", self.gpu_inference)):
            row[f"gpu_{phase}_util_mean_pct"] = stats.util_mean_pct if stats else None
            row[f"gpu_{phase}_energy_j"] = stats.energy_j if stats else None
            row[f"gpu_{phase}_power_mean_w"] = stats.power_mean_w if stats else None
        row["host_train_energy_j"] = self.host_energy_train.energy_j if self.host_energy_train else None
        return row
