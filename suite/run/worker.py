"""Runs exactly one case (or the GEMM probe) in this fresh process and writes its RunRecord as JSON.

Invoked by the runner as `python -m suite.run.worker JOB.json OUT.json`; never imported by the parent.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from suite.backends import Backend, Unsupported, skip_message
from suite.core import data
from suite.core.models import forward_flops_per_sample, train_flops_per_sample
from suite.core.spec import RunSpec
from suite.measure.energy import HostEnergyMeter
from suite.measure.host import CpuMeter, HostSampler, PhaseContention, case_processes, peak_rss_bytes
from suite.measure.nvml import NvmlSampler
from suite.record.safe_load import read_json
from suite.record.schema import IN_EPOCH_STEADY_SCOPE, EpochStats, InferenceStats, Machine, RunRecord, SweepPoint
from suite.record.stats import percentile_ms, time_to_accuracy_s
from suite.run.case import CaseSetup, torchrun_rank
from suite.run.events import EventSink
from suite.run.launch import die_with_parent
from suite.run.plant import PlantedSlowdown, planted_slowdown_pct
from suite.run.watch import EpochWatch, SteadySpan

STEP_TIMING_STEPS = 30
PROFILED_STEPS = 20  # steady steps under the profiler: kernel-busy %, kernels and launches per step
INFERENCE_BUDGET_S = 1.0
INFERENCE_WARMUP_CALLS = 3
INFERENCE_MIN_CALLS = 10  # timed calls per batch size however slow one is (the budget sizes the count above it)
# A CUDA step whose host launch takes this share of its synced time leaves the GPU waiting on the CPU: launch-bound.
LAUNCH_BOUND_SHARE = 0.8


def eval_metrics(outputs: np.ndarray, labels: np.ndarray, binary: bool) -> tuple[float, np.ndarray]:
    """Mean loss and predicted classes from raw outputs, computed the same way for both frameworks."""
    if binary:
        p = np.clip(outputs.reshape(-1).astype(np.float64), 1e-7, 1 - 1e-7)
        loss = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
        return float(loss), (p >= 0.5).astype(np.int64)
    logits = outputs.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.mean(log_probs[np.arange(len(labels)), labels])
    return float(loss), logits.argmax(axis=1)


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted."""
    return np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)


class Case:
    """One case's state while it runs; fills a RunRecord field by field."""

    def __init__(self, spec: RunSpec, machine: Machine, peak_flops_per_s: float | None, data_dir: str | None,
                 monitoring: bool = True, peak_flops_dtype: str | None = None, trace_dir: str | None = None,
                 batch_sweep: tuple[int, ...] = ()) -> None:
        self.spec = spec
        self.record = RunRecord(
            case_id=spec.id, case_key=spec.case_key, machine=machine, spec=spec.to_dict(), status="ok",
            git_commit=None, peak_flops_per_s=peak_flops_per_s, peak_flops_dtype=peak_flops_dtype,
            threads=spec.threads, monitoring=monitoring,
        )
        self.data_dir = data_dir
        self.trace_dir = Path(trace_dir) if trace_dir else None
        self.batch_sweep = batch_sweep
        self.setup = CaseSetup(spec)
        self.events = EventSink.from_env()
        self.in_epoch: SteadySpan | None = None
        self.processes: list[psutil.Process] = []
        self.plant: float | None = None

    def run(self) -> RunRecord:
        """Set up, train, evaluate and profile; the record says how far it got."""
        spec, rec, setup = self.spec, self.record, self.setup
        self.plant = rec.planted_slowdown_pct = planted_slowdown_pct()
        try:
            setup.open(self.data_dir, self.events)
        finally:
            rec.framework_info, rec.import_s, rec.build_s = setup.framework_info, setup.import_s, setup.build_s
            rec.host_rss_baseline_bytes = setup.host_rss_baseline_bytes
            rec.class_names = list(setup.prepared.class_names) if setup.prepared else []
        backend, prepared = setup.backend, setup.prepared
        rec.params = backend.trainable_params()
        rec.forward_flops_per_sample = forward_flops_per_sample(spec)
        rec.train_flops_per_sample = train_flops_per_sample(spec)
        rec.train_data_device = backend.data_device()

        # monitoring=False exists only so the overhead benchmark can compare against a run without samplers.
        sampler = NvmlSampler() if spec.device == "cuda" and rec.monitoring else None
        if sampler:
            sampler.start()
        try:
            self._train(backend, prepared, sampler)
            if rec.status == "ok":
                self._test(backend, prepared)
                self._profile(backend, sampler)
        finally:
            if sampler:
                sampler.stop()
                rec.nvml_used_peak_bytes = sampler.peak_used_bytes()
        rec.host_rss_peak_bytes = peak_rss_bytes()
        return rec

    def _train(self, backend: Backend, prepared: data.Prepared, sampler: NvmlSampler | None) -> None:
        spec, rec = self.spec, self.record
        n_train = len(prepared.y_train)
        rec.train_samples = n_train
        best_loss, best_state, bad_epochs = math.inf, None, 0
        backend.reset_device_memory_peak()
        host = HostSampler() if rec.monitoring else nullcontext()
        self.processes = case_processes(torchrun_rank() is not None)  # now: every rank has started by the first epoch
        contention = PhaseContention(spec.threads, self.processes)
        energy = HostEnergyMeter() if rec.monitoring else None
        with CpuMeter() as cpu, host, (sampler.phase("train") if sampler else nullcontext()):
            for epoch in range(1, spec.epochs + 1):
                loss, accuracy, train_s = self._epoch(epoch, n_train)
                contention.mark()
                if energy:
                    rec.host_energy_train = energy.result()  # read after every epoch: a wrap is undone, a stop keeps it
                rec.contention_train = contention.result(per_epoch=True)
                if not math.isfinite(loss):
                    rec.history.append(EpochStats(epoch=epoch, train_loss=None, train_accuracy=accuracy, train_s=train_s))
                    rec.status, rec.diverged_epoch = "diverged", epoch
                    rec.error = f"training loss became {loss} at epoch {epoch}; lower --lr (now {spec.lr}) or add --batchnorm"
                    return
                val_loss, val_pred = eval_metrics(backend.outputs("val"), prepared.y_val, self.spec.binary)
                rec.history.append(EpochStats(
                    epoch=epoch, train_loss=loss, train_accuracy=accuracy, val_loss=val_loss,
                    val_accuracy=float(np.mean(val_pred == prepared.y_val)), train_s=train_s,
                ))
                self.events.emit("epoch", epoch=epoch, epochs=spec.epochs, loss=loss, val_accuracy=rec.history[-1].val_accuracy,
                                 train_s=train_s, samples_per_s=n_train / train_s)
                if spec.early_stopping is not None:
                    if val_loss < best_loss:
                        best_loss, best_state, bad_epochs, rec.best_epoch = val_loss, backend.snapshot(), 0, epoch
                    else:
                        bad_epochs += 1
                        if bad_epochs >= spec.early_stopping:
                            break
        if energy:
            rec.host_energy_train = energy.result()  # the last epoch's validation too, as the GPU's train phase has
        if best_state is not None:
            backend.restore(best_state)
        rec.cpu_util_pct = cpu.util_pct
        rec.cpu_util_p95_pct = host.p95_pct() if isinstance(host, HostSampler) else None
        for name, value in {**backend.device_memory(), **backend.distribution()}.items():
            setattr(rec, name, value)
        rec.global_batch_size, rec.lr_effective = spec.global_batch_size, spec.effective_lr
        self._throughput()

    def _epoch(self, epoch: int, n_train: int) -> tuple[float, float, float]:
        """One timed training epoch, watched step by step; a 1-epoch case also times its steady span."""
        backend = self.setup.backend
        watch = EpochWatch(self.events, epoch, self.spec.epochs, n_train, self.spec.global_batch_size,
                           sync=backend.sync if self.spec.epochs == 1 else None)
        hook = watch if self.plant is None else PlantedSlowdown(self.plant, watch)
        t0 = time.perf_counter()
        loss, accuracy = self.setup.train_epoch(epoch, hook)
        if isinstance(hook, PlantedSlowdown):
            hook.finish()
        t1 = time.perf_counter()
        if self.spec.epochs == 1:
            self.in_epoch = watch.steady(t1)
        return loss, accuracy, t1 - t0

    def _throughput(self) -> None:
        rec = self.record
        epoch_s = [h.train_s for h in rec.history]
        rec.first_epoch_s = epoch_s[0]
        rec.train_total_s = float(sum(epoch_s))
        rec.train_first_epoch_samples_per_s = rec.train_samples / epoch_s[0]
        if len(epoch_s) > 1:
            rec.steady_epoch_s = float(np.median(epoch_s[1:]))
            rec.warmup_s = rec.first_epoch_s - rec.steady_epoch_s
            rec.train_steady_samples_per_s = rec.train_samples / rec.steady_epoch_s
        elif self.in_epoch is not None:
            rec.in_epoch_warmup_steps, rec.in_epoch_timed_steps = self.in_epoch.first_step, self.in_epoch.steps
            rec.in_epoch_steady_s = self.in_epoch.seconds
            rec.train_steady_samples_per_s = self.in_epoch.samples_per_s
            rec.time_scopes["train_steady_samples_per_s"] = IN_EPOCH_STEADY_SCOPE
        if rec.train_steady_samples_per_s:
            rec.global_steady_samples_per_s = rec.train_steady_samples_per_s
            rec.per_rank_steady_samples_per_s = rec.train_steady_samples_per_s / (rec.world_size or 1)
            rec.achieved_train_flops_per_s = rec.train_steady_samples_per_s * rec.train_flops_per_sample
            if rec.peak_flops_per_s:
                # The GEMM probe measures one GPU, or on cpu all --threads cores, which the replicas share out.
                devices = (rec.world_size or 1) if self.spec.device == "cuda" else 1
                rec.mfu_pct = 100.0 * rec.achieved_train_flops_per_s / (rec.peak_flops_per_s * devices)
        rec.time_to_accuracy_s = time_to_accuracy_s(
            epoch_s, [h.val_accuracy for h in rec.history], self.spec.effective_targets
        )

    def _test(self, backend: Backend, prepared: data.Prepared) -> None:
        rec = self.record
        self.events.emit("evaluate")
        loss, predicted = eval_metrics(backend.outputs("test"), prepared.y_test, self.spec.binary)
        matrix = confusion(prepared.y_test, predicted, len(prepared.class_names))
        rec.test_loss = loss
        rec.test_accuracy = float(np.mean(predicted == prepared.y_test))
        rec.confusion_matrix = matrix.tolist()
        rec.per_class_accuracy = (np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)).tolist()

    def _profile(self, backend: Backend, sampler: NvmlSampler | None) -> None:
        rec = self.record
        self.events.emit("step_timing")
        contention = PhaseContention(self.spec.threads, self.processes)
        steps, launches = backend.step_times_s(STEP_TIMING_STEPS)
        rec.step_time_ms_p50, rec.step_time_ms_p95 = percentile_ms(steps, 50), percentile_ms(steps, 95)
        rec.step_launch_ms_p50 = percentile_ms(launches, 50) if launches else None
        step_balance(rec, self.spec)
        if self.spec.devices == 1:  # every rank of a --devices N case runs this code: one floor, one trace, not N
            self._launch_overhead(backend)
        with sampler.phase("inference") if sampler else nullcontext():
            for batch_size in self.spec.infer_batch_sizes:
                self.events.emit("inference", batch_size=batch_size)
                rec.inference.append(measure_inference(backend, batch_size))
        rec.contention_profile = contention.result()
        trained = (rec.train_samples or 0) * len(rec.history)
        if sampler:
            rec.gpu_train, rec.gpu_inference = sampler.stats("train"), sampler.stats("inference")
            if rec.gpu_train.energy_j is not None and rec.train_total_s:
                rec.energy_per_1k_train_samples_j = 1000.0 * rec.gpu_train.energy_j / trained
        if rec.host_energy_train and rec.host_energy_train.energy_j is not None and rec.train_total_s:
            rec.host_energy_per_1k_train_samples_j = 1000.0 * rec.host_energy_train.energy_j / trained


    def _launch_overhead(self, backend: Backend) -> None:
        """The launch-free floor (CUDA) and the profiled steady steps (CUDA, or any case with --trace). Both are extra
        figures: if the profiler or a capture fails here, the note says so and the case keeps what it measured."""
        rec, cuda = self.record, self.spec.device == "cuda"
        if cuda:
            self.events.emit("floor")
            rec.floor_note = _measured(lambda: _fill(rec, backend.launch_free_floor(), "floor_note"), "floor")
            rec.step_over_floor = step_over_floor(rec)
            if self.batch_sweep:
                self.events.emit("sweep", batch_sizes=list(self.batch_sweep))
                failed = _measured(lambda: self._sweep(backend), "sweep")
                rec.floor_note = "; ".join(n for n in (rec.floor_note, failed) if n) or None
        if cuda or self.trace_dir:
            self.events.emit("profile", steps=PROFILED_STEPS)
            path = self.trace_dir / f"{rec.case_id}_{rec.run_id[:8]}.trace.json.gz" if self.trace_dir else None
            rec.profile_note = _measured(lambda: _fill(rec, backend.step_profile(PROFILED_STEPS, path), "profile_note"),
                                         "profile")
            if path is not None and path.is_file():
                rec.trace_file = f"{path.parent.name}/{path.name}"  # the trace folder sits in the results folder
            if self.spec.framework == "torch" and rec.graph_launches_per_step is not None:
                rec.framework_info["cuda_graphs"] = rec.graph_launches_per_step > 0  # measured, not the flag

    def _sweep(self, backend: Backend) -> None:
        self.record.batch_sweep = [SweepPoint(**point) for point in backend.batch_sweep(self.batch_sweep)]


def _fill(rec: RunRecord, figures: dict[str, Any], note_field: str) -> str | None:
    """Set the figures' record fields but the note, which comes back (the caller sets it, or the failure instead)."""
    note = figures.pop(note_field, None)
    for name, value in figures.items():
        setattr(rec, name, value)
    return note


def _measured(measure: Any, what: str) -> str | None:
    try:
        return measure()
    except Exception as exc:  # an optional figure must not lose the case: the note keeps why it is missing
        return f"{what} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


def step_over_floor(rec: RunRecord) -> float | None:
    """The training loop's step (sync-free, else the 1-epoch case's steady span per step) over the launch-free floor."""
    loop_ms = rec.sync_free_step_ms
    if loop_ms is None and rec.in_epoch_steady_s and rec.in_epoch_timed_steps:
        loop_ms = 1000.0 * rec.in_epoch_steady_s / rec.in_epoch_timed_steps
    return loop_ms / rec.floor_step_ms if loop_ms and rec.floor_step_ms else None


def step_balance(rec: RunRecord, spec: RunSpec) -> None:
    """Synced step time next to the sync-free loop's step time, and the launch-bound hint (CUDA, launch timed)."""
    if rec.steady_epoch_s and rec.train_samples:
        # One step of the loop takes a global batch: every replica's --batch-size samples (--devices N).
        rec.sync_free_step_ms = 1000.0 * rec.steady_epoch_s / math.ceil(rec.train_samples / spec.global_batch_size)
        if rec.step_time_ms_p50:
            rec.synced_step_ratio = rec.step_time_ms_p50 / rec.sync_free_step_ms
    if spec.device == "cuda" and rec.step_launch_ms_p50 is not None and rec.step_time_ms_p50:
        rec.launch_bound = rec.step_launch_ms_p50 >= LAUNCH_BOUND_SHARE * rec.step_time_ms_p50


def measure_inference(backend: Backend, batch_size: int) -> InferenceStats:
    """Latency percentiles and throughput at one batch size; the call count is sized to a ~1 s budget."""
    probe = backend.inference_latencies_s(batch_size, calls=2, warmup_calls=INFERENCE_WARMUP_CALLS)
    calls = int(min(300, max(INFERENCE_MIN_CALLS, INFERENCE_BUDGET_S / max(np.median(probe), 1e-6))))
    times = backend.inference_latencies_s(batch_size, calls=calls, warmup_calls=1)
    return InferenceStats(
        batch_size=batch_size, calls=calls, samples_per_s=batch_size * len(times) / float(sum(times)),
        latency_ms_p50=percentile_ms(times, 50), latency_ms_p95=percentile_ms(times, 95),
        latency_ms_p99=percentile_ms(times, 99),
    )


def run_job(job: dict[str, Any]) -> RunRecord:
    """Run the job's case; device problems become `skipped`, anything else `error`, both with the reason."""
    spec = RunSpec.from_dict(job["spec"])
    case = Case(spec, Machine.model_validate(job["machine"]), job.get("peak_flops_per_s"), job.get("data_dir"),
                job.get("monitoring", True), job.get("peak_flops_dtype"), job.get("trace_dir"),
                tuple(job.get("batch_sweep") or ()))
    t0 = time.perf_counter()
    try:
        record = case.run()
    except Unsupported as exc:
        record = case.record
        record.status, record.error = "skipped", skip_message(spec, exc)
    except data.DataError as exc:
        record = case.record
        record.status, record.error = "error", str(exc)
    except Exception as exc:  # the record must say what went wrong rather than lose the case
        record = case.record
        record.status, record.error = "error", f"{type(exc).__name__}: {exc}"
        record.stderr_tail = traceback.format_exc()[-4000:]
    record.git_commit = job.get("git_commit")
    record.wall_s = time.perf_counter() - t0
    return record


def run_bare(request: dict[str, Any]) -> dict[str, Any]:
    """Time a hand-written reference loop on the same data the suite would use (calibration only)."""
    from suite.backends.bare_loops import LOOPS

    spec = RunSpec.from_dict(request["spec"])
    prepared = data.prepare(data.load(request.get("data_dir")), spec.task, spec.seed, spec.limit)
    epoch_s = LOOPS[spec.framework](spec.model, prepared.x_train, prepared.y_train, spec.batch_size, spec.epochs,
                                    spec.threads)
    return {"epoch_s": epoch_s, "train_samples": len(prepared.y_train)}


def main(argv: list[str]) -> int:
    """Entry point: `python -m suite.run.worker JOB.json OUT.json`."""
    job = read_json(Path(argv[0]))
    out = Path(argv[1])
    rank = torchrun_rank()
    if rank is not None:
        die_with_parent()  # torchrun gave this rank a session of its own: tie its life to torchrun's instead
    if job.get("probe"):
        from suite.run.probe_job import run_probe

        out.write_text(json.dumps(run_probe(job["probe"])))
    elif job.get("bare"):
        out.write_text(json.dumps(run_bare(job["bare"])))
    else:
        record = run_job(job)
        if not rank:  # every rank trains; rank 0 alone (or the only process) writes the record
            out.write_text(record.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
