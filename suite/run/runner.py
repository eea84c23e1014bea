"""Runs a plan of cases, each in its own worker process with a timeout; every outcome becomes a stored RunRecord."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import psutil
from pydantic import ValidationError

from suite.core.spec import RunSpec
from suite.measure import probe
from suite.measure.machine import fingerprint, git_commit
from suite.measure.nvml import NvmlUnavailable, load_nvml
from suite.record.safe_load import read_json
from suite.record.scaling import with_scaling_efficiency
from suite.record.schema import PeakProbe, RunRecord
from suite.record.store import read_store, refused_message, save_elsewhere, write_record
from suite.run.events import OnEvent, pump, sink_env
from suite.run.launch import devices_missing_reason, die_with_parent, launcher, rank_env

if TYPE_CHECKING:  # executors builds on run_case below; run_plan only needs the protocol's name
    from suite.run.executors import Executor

STDERR_TAIL_CHARS = 4000
OOM_HINT = "out of memory; try a smaller --batch-size (or --limit) or a device with more memory"


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived while a plan was running."""


def case_env(spec: RunSpec) -> dict[str, str]:
    """Environment fixed before the worker starts: identical thread counts for every framework, backend, GPU visibility."""
    env = dict(os.environ)
    threads = str(spec.threads)
    env.update(
        OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
        TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS="1",
        KERAS_BACKEND=spec.keras_backend, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
    )
    if spec.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # CPU cases must not touch (or be timed against) a GPU
    # JAX grabs 75% of GPU memory at start-up unless told not to; like TF's memory growth, allocate on demand so
    # device-memory figures mean what the model needs.
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


@dataclass
class WorkerResult:
    """How a worker process ended."""

    returncode: int | None
    timed_out: bool
    stderr_tail: str
    output: dict[str, Any] | None
    wall_s: float
    pid: int | None = None


def run_worker(job: dict[str, Any], env: dict[str, str], timeout_s: float, via: list[str] | None = None,
               on_event: OnEvent | None = None) -> WorkerResult:
    """Start `python -m [via...] suite.run.worker` (via: a launcher module's arguments, e.g. torchrun's) in its own
    process group, handing `on_event` its progress events as they come; kill the whole group on timeout. Its
    stdout/stderr (framework log lines included) go to the record's stderr_tail only."""
    with tempfile.TemporaryDirectory(prefix="fashionbench-") as tmp:
        job_path, out_path, err_path = Path(tmp, "job.json"), Path(tmp, "out.json"), Path(tmp, "stderr.txt")
        job_path.write_text(json.dumps(job))
        read_fd, write_fd = os.pipe()
        t0 = time.perf_counter()
        with open(err_path, "wb") as err, open(read_fd, "rb", buffering=0):
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", *(via or []), "suite.run.worker", str(job_path), str(out_path)],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT, env={**env, **sink_env(write_fd)},
                    start_new_session=True, preexec_fn=die_with_parent, pass_fds=(write_fd,),
                )
            finally:
                os.close(write_fd)  # the worker holds the only write end, so its exit ends the stream
            try:
                timed_out = not pump(read_fd, process, timeout_s, on_event)
                if timed_out:
                    kill_group(process)
            except BaseException:  # Ctrl-C / SIGTERM / a cancelled Ray task: no training is left running behind
                kill_group(process)
                raise
        wall_s = time.perf_counter() - t0
        tail = err_path.read_bytes()[-STDERR_TAIL_CHARS:].decode("utf-8", "replace")
        output = None
        if out_path.exists() and not timed_out:
            try:
                output = read_json(out_path)
            except ValueError:
                output = None
        return WorkerResult(process.returncode, timed_out, tail, output, wall_s, process.pid)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker, its process group and every descendant (torchrun puts each rank in a session of its own),
    then reap it."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for child in descendants:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait()


def describe_exit(returncode: int | None, stderr_tail: str) -> str:
    """One line for a worker that ended without a record: signal or exit code, OOM recognised."""
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        what = f"worker killed by {name}"
        if name == "SIGKILL":
            what += " (often the kernel's out-of-memory killer)"
    else:
        what = f"worker exited with code {returncode} without writing a record"
    if looks_like_oom(stderr_tail):
        what += f": {OOM_HINT}"
    return what


def looks_like_oom(text: str) -> bool:
    """True for host MemoryError and CUDA OOM messages from torch and TensorFlow."""
    markers = ("MemoryError", "CUDA out of memory", "OutOfMemoryError", "RESOURCE_EXHAUSTED", "OOM when allocating",
               "std::bad_alloc", "Cannot allocate memory")
    return any(m in text for m in markers)


def failure_record(spec: RunSpec, status: str, error: str, result: WorkerResult | None) -> RunRecord:
    """A record for a case that produced none itself (crash, timeout, interruption)."""
    return RunRecord(
        case_id=spec.id, case_key=spec.case_key, machine=fingerprint(), spec=spec.to_dict(), status=status,
        error=error, stderr_tail=result.stderr_tail if result else None, wall_s=result.wall_s if result else None,
        git_commit=git_commit(), threads=spec.threads, worker_pid=result.pid if result else None,
        process_wall_s=result.wall_s if result else None,
    )


# Disturbed probes of this process by (device, threads): never cached on disk, but a plan measures them once, not per case.
_disturbed_probes: dict[tuple[str, int], dict[str, Any]] = {}


def probe_entry(device: str, threads: int, timeout_s: float, force: bool = False,
                on_event: OnEvent | None = None) -> dict[str, Any] | None:
    """The cached GEMM probe for this machine/device/threads, measured in a worker process when absent (or `force`);
    None when the probe process failed. `cached` says which it is; an "unavailable" entry (no such device) and a
    disturbed one (contention while it ran) are returned but never cached."""
    machine_id = fingerprint().machine_id
    if not force and (entry := probe.cached(machine_id, device, threads)) is not None:
        return {**entry, "cached": True}
    if not force and (entry := _disturbed_probes.get((device, threads))) is not None:
        return {**entry, "cached": False}
    if on_event:
        on_event({"phase": "probe", "device": device})
    env = case_env(RunSpec(framework="torch", model="dense", device=device, threads=threads))
    result = run_worker({"probe": {"device": device, "threads": threads}}, env, timeout_s)
    if result.output is None:
        return None
    entry = result.output
    if entry.get("disturbed"):
        _disturbed_probes[(device, threads)] = entry
    elif "unavailable" not in entry:
        probe.store(machine_id, device, threads, entry)
    return {**entry, "cached": False}


def peak_flops(spec: RunSpec, timeout_s: float,
               on_event: OnEvent | None = None) -> tuple[float | None, str | None, dict[str, Any] | None]:
    """(GEMM peak, its dtype, the probe's provenance) for the spec's precision, probing in a worker process when not cached."""
    entry = probe_entry(spec.device, spec.threads, timeout_s, on_event=on_event)
    if entry is None:
        return None, None, None
    peak, dtype = probe.peak_for(entry, spec.precision)
    return peak, dtype, probe.provenance(entry, dtype) if peak is not None else None


def no_gpu_reason() -> str | None:
    """Why no CUDA case can run here, judged by NVML without starting a framework; None when a GPU is listed."""
    if fingerprint().gpus:
        return None
    try:
        load_nvml().nvmlShutdown()
    except NvmlUnavailable as exc:
        return str(exc)
    return "NVML lists no GPU"


def present_devices() -> list[str]:
    """The devices this machine really has: cpu always, cuda when NVML lists a GPU (what `--device auto` means)."""
    return ["cpu"] if no_gpu_reason() else ["cpu", "cuda"]


def run_case(spec: RunSpec, timeout_s: float, data_dir: str | None = None, monitoring: bool = True,
             on_event: OnEvent | None = None, trace_dir: Path | None = None,
             batch_sweep: tuple[int, ...] = ()) -> RunRecord:
    """One case in one fresh process, its progress events handed to `on_event` as they come; whatever happens, a
    RunRecord comes back."""
    if spec.unsupported_reason:
        return failure_record(spec, "skipped", spec.unsupported_reason, None)
    if spec.device == "cuda" and (reason := no_gpu_reason()):
        # Without a driver no framework can reach a GPU; the worker still decides when NVML does list one.
        return failure_record(spec, "skipped", f"cuda unavailable: {reason}", None)
    if reason := devices_missing_reason(spec):
        return failure_record(spec, "skipped", reason, None)
    peak, peak_dtype, peak_probe = peak_flops(spec, timeout_s, on_event)
    job = {
        "spec": spec.to_dict(), "machine": fingerprint().model_dump(), "git_commit": git_commit(),
        "peak_flops_per_s": peak, "peak_flops_dtype": peak_dtype, "data_dir": data_dir, "monitoring": monitoring,
        "trace_dir": str(trace_dir) if trace_dir else None, "batch_sweep": list(batch_sweep),
    }
    result = run_worker(job, rank_env(spec, case_env(spec)), timeout_s, launcher(spec), on_event)
    if result.timed_out:
        return failure_record(spec, "timeout", f"killed after --timeout {timeout_s:g} s; raise --timeout or use --limit", result)
    if result.output is None:
        return failure_record(spec, "error", describe_exit(result.returncode, result.stderr_tail), result)
    try:
        record = RunRecord.model_validate(result.output)
    except ValidationError as exc:
        return failure_record(spec, "error", f"worker wrote an invalid record: {exc.errors()[0]['msg']}", result)
    # The worker's own output (framework start-up and log lines) is never shown while it runs; the record keeps it,
    # ahead of any traceback the worker stored.
    record.stderr_tail = (result.stderr_tail + (record.stderr_tail or ""))[-STDERR_TAIL_CHARS:] or None
    if record.status == "error" and looks_like_oom((record.error or "") + (record.stderr_tail or "")):
        record.error = f"{record.error} — {OOM_HINT}"
    record.peak_probe = PeakProbe.model_validate(peak_probe) if peak_probe else None
    record.worker_pid, record.process_wall_s = result.pid, result.wall_s
    return record


@dataclass
class PlanOutcome:
    """What a plan run did."""

    records: list[RunRecord] = field(default_factory=list)
    skipped_as_done: int = 0
    already_done: list[RunRecord] = field(default_factory=list)  # the --resume records of this plan's cases
    unreadable: list[str] = field(default_factory=list)  # --resume: one line per results file it could not read
    interrupted: bool = False
    write_failure: str | None = None  # one line: the results folder refused a record and the plan stopped
    saved_elsewhere: list[Path] = field(default_factory=list)  # the records it refused, in a fallback folder
    unsaved: list[RunRecord] = field(default_factory=list)  # those no fallback folder took either


def _store_scaling_efficiency(outcome: PlanOutcome, results_dir: Path) -> None:
    """Rewrite the N-device records whose 1-device case ran in this plan (or finished before --resume), now carrying
    their scaling efficiency."""
    filled = with_scaling_efficiency(outcome.already_done + outcome.records)[len(outcome.already_done):]
    for index, (before, after) in enumerate(zip(outcome.records, filled)):
        if after is not before:
            write_record(after, results_dir)  # same file name: the record is replaced atomically
            outcome.records[index] = after


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_plan(
    specs: list[RunSpec], results_dir: Path, executor: Executor, resume: bool = False,
    on_record: Callable[[int, int, RunRecord, Path], None] | None = None,
    on_plan: Callable[[list[RunSpec]], None] | None = None,
) -> PlanOutcome:
    """Run every spec through the executor, storing each record as soon as it comes back (this process is the one writer);
    SIGINT/SIGTERM cancel what is still running, keep what finished, and return; a record the results folder refuses
    (disk full) goes to a fallback folder and stops the plan. `on_plan` hears the specs that will run, in order."""
    outcome = PlanOutcome()
    jobs = executor.jobs(specs)
    if resume:
        keys = {j.key for j in jobs}
        stored, outcome.unreadable = read_store([results_dir])
        outcome.already_done = [r for r in stored if executor.finished([r]) & keys]
        done = executor.finished(outcome.already_done)
        todo = [j for j in jobs if j.key not in done]
    else:
        todo = jobs
    outcome.skipped_as_done = len(jobs) - len(todo)
    if on_plan:
        on_plan([job.spec for job in todo])
    write_error: list[OSError] = []

    def keep(record: RunRecord) -> None:
        outcome.records.append(record)
        try:
            if write_error:
                raise write_error[0]  # once the folder refused a record, the rest go straight to the fallback
            path = write_record(record, results_dir)
        except OSError as exc:
            write_error[:1] = [exc]
            path = save_elsewhere(record)
            if path:
                outcome.saved_elsewhere.append(path)
            else:
                outcome.unsaved.append(record)
        if on_record and path:
            on_record(len(outcome.records), len(todo), record, path)

    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for record in executor.run(todo):
            keep(record)
            if write_error:
                for late in executor.cancel():
                    keep(late)
                break
        if not write_error:  # a full disk would refuse the rewrite too; the records as written stay valid
            _store_scaling_efficiency(outcome, results_dir)
    except Interrupted:
        outcome.interrupted = True
        for record in executor.cancel():
            keep(record)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if write_error:
        outcome.write_failure = refused_message(results_dir, write_error[0], outcome.saved_elsewhere, len(outcome.unsaved))
    return outcome
