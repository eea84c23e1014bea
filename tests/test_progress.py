"""What users see while a plan runs: worker events streamed while the worker lives, the views, in-epoch steady timing
of 1-epoch cases, and `--device auto`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from suite.cli import build_parser
from suite.cli.common import UsageError
from suite.cli.progress import LiveView, PlainView, PlanView, make_view
from suite.cli.run import plan_from_args
from suite.core.models import train_flops_per_sample
from suite.core.spec import RunSpec
from suite.record.schema import IN_EPOCH_STEADY_SCOPE, EpochStats, RunRecord
from suite.record.store import read_store
from suite.run import runner
from suite.run.eta import PlanEta, after_training_units, training_units, work_s
from suite.run.events import EventSink, pump, sink_env
from suite.run.watch import MIN_TIMED_STEPS, WARMUP_STEPS, EpochWatch
from suite.run.worker import INFERENCE_BUDGET_S
from tests.test_report import fixture_records

DATA = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not DATA.exists(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
# 2,000 samples at batch 64: 31 full steps + a short one, enough for WARMUP_STEPS + MIN_TIMED_STEPS.
TINY = dict(epochs=1, limit=2000, batch_size=64, infer_batch_sizes=(1, 32), threads=1)
CASE_PHASES = ["import", "build", "steady", "epoch", "evaluate", "step_timing", "inference"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def phases(events: list[dict]) -> list[str]:
    """Event phases in order, repeats collapsed."""
    out: list[str] = []
    for event in events:
        if not out or out[-1] != event["phase"]:
            out.append(event["phase"])
    return out


def workers_of(pid: int) -> list[psutil.Process]:
    """The case worker processes `pid` has started and that still run."""
    return [p for p in psutil.Process(pid).children() if "suite.run.worker" in " ".join(p.cmdline())]


def emitter(script: str) -> tuple[int, subprocess.Popen[bytes]]:
    """A child process running `script` with an EventSink on a pipe; returns the read end and the process."""
    read_fd, write_fd = os.pipe()
    code = f"import sys; from suite.run.events import EventSink; sink = EventSink({write_fd}); {script}"
    process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(write_fd,), env=ENV)
    os.close(write_fd)
    return read_fd, process


def test_pump_delivers_events_while_the_process_runs_and_drops_garbage():
    read_fd, process = emitter("import os, time; sink.emit('build', n=1); os.write(sink.fd, b'not json\\n');"
                               " time.sleep(1.5); sink.emit('evaluate')")
    seen: list[tuple[str, bool]] = []
    try:
        assert pump(read_fd, process, 30, lambda e: seen.append((e["phase"], process.poll() is None)))
    finally:
        os.close(read_fd)
    assert seen[0] == ("build", True), "the first event must arrive while the process still sleeps"
    assert [phase for phase, _ in seen] == ["build", "evaluate"]


def test_pump_times_out_and_is_not_held_up_by_a_grandchild_holding_the_pipe():
    read_fd, process = emitter("import time; time.sleep(30)")
    t0 = time.monotonic()
    assert not pump(read_fd, process, 1.0, None)
    assert time.monotonic() - t0 < 5
    process.kill()
    process.wait()
    os.close(read_fd)
    read_fd, process = emitter("import subprocess; subprocess.Popen(['sleep', '20'], pass_fds=(sink.fd,));"
                               " sink.emit('build')")
    t0 = time.monotonic()
    events: list[dict] = []
    try:
        assert pump(read_fd, process, 30, events.append)
    finally:
        os.close(read_fd)
    assert time.monotonic() - t0 < 10 and phases(events) == ["build"]


def test_sink_without_a_pipe_or_after_the_reader_left_is_silent(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FASHIONBENCH_EVENTS_FD", raising=False)
    EventSink.from_env().emit("build")  # no runner: nowhere to go, no error
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    sink = EventSink(write_fd)
    sink.emit("build")  # the reader is gone (EPIPE): the sink stops instead of failing the case
    assert sink.fd is None
    os.close(write_fd)


def test_sink_takes_the_pipe_only_when_the_descriptor_is_still_that_pipe(monkeypatch: pytest.MonkeyPatch):
    read_fd, write_fd = os.pipe()
    other_read, other_write = os.pipe()
    try:
        monkeypatch.setenv("FASHIONBENCH_EVENTS_FD", sink_env(write_fd)["FASHIONBENCH_EVENTS_FD"])
        assert EventSink.from_env().fd == write_fd
        monkeypatch.setenv("RANK", "1")
        assert EventSink.from_env().fd is None, "only rank 0 of a torchrun launch reports"
        monkeypatch.delenv("RANK")
        inode = os.fstat(write_fd).st_ino
        monkeypatch.setenv("FASHIONBENCH_EVENTS_FD", f"{other_write}:{inode}")
        assert EventSink.from_env().fd is None, "a descriptor number now naming another pipe is not ours"
        monkeypatch.setenv("FASHIONBENCH_EVENTS_FD", f"{max(read_fd, write_fd, other_read, other_write) + 50}:{inode}")
        assert EventSink.from_env().fd is None, "a closed descriptor is not ours"
    finally:
        for fd in (read_fd, write_fd, other_read, other_write):
            os.close(fd)


def test_epoch_watch_times_the_full_steps_after_warmup_with_two_syncs():
    syncs: list[int] = []
    samples, batch = 40 * 64 + 17, 64  # 40 full steps and a short one
    watch = EpochWatch(EventSink(None), 1, 1, samples, batch, sync=lambda: syncs.append(1))
    for step in range(41):
        watch(step)
    span = watch.steady(time.perf_counter())
    assert len(syncs) == 2, "the device is synchronised at the split and before the short batch, nowhere else"
    assert (span.first_step, span.steps, span.samples) == (WARMUP_STEPS, 40 - WARMUP_STEPS, (40 - WARMUP_STEPS) * batch)
    assert span.seconds > 0


def test_epoch_watch_without_sync_or_with_too_few_steps_has_no_steady_span():
    watch = EpochWatch(EventSink(None), 1, 3, 64 * 40, 64)
    for step in range(40):
        watch(step)
    assert watch.steady(time.perf_counter()) is None and watch.split is None
    few = WARMUP_STEPS + MIN_TIMED_STEPS - 1
    watch = EpochWatch(EventSink(None), 1, 1, 64 * few, 64, sync=lambda: None)
    for step in range(few):
        watch(step)
    assert watch.steady(time.perf_counter()) is None


def test_epoch_watch_every_nth_step_like_keras_steps_per_execution():
    watch = EpochWatch(EventSink(None), 1, 1, 64 * 64, 64, sync=lambda: None)
    for step in range(0, 64, 16):
        watch(step)
    span = watch.steady(time.perf_counter())
    assert (span.first_step, span.steps, span.samples) == (16, 48, 48 * 64)


@pytest.mark.skipif(not DATA.exists(), reason="Fashion-MNIST not installed")
def test_torch_case_streams_every_phase_while_its_worker_runs_and_carries_an_in_epoch_steady_figure():
    events: list[dict] = []

    def on_event(event: dict) -> None:
        events.append({**event, "worker_alive": bool(workers_of(os.getpid()))})

    record = runner.run_case(RunSpec(framework="torch", model="dense", **TINY), 300, on_event=on_event)
    assert record.status == "ok", record.error
    worker_events = [e for e in events if e["phase"] != "probe"]
    # In-epoch step events come once a second, so how many there are depends on the machine's speed.
    assert phases([e for e in worker_events if e["phase"] != "train"]) == CASE_PHASES
    assert all(0 < e["step"] < e["steps"] == 32 for e in worker_events if e["phase"] == "train")
    assert all(e["worker_alive"] for e in worker_events), "every event must reach the runner before the worker exits"
    epoch = next(e for e in events if e["phase"] == "epoch")
    assert epoch["epoch"] == epoch["epochs"] == 1 and epoch["loss"] == pytest.approx(record.history[0].train_loss)
    # 2,000 samples at batch 64: steps 10..30 are timed, the short 32nd batch is not.
    assert (record.in_epoch_warmup_steps, record.in_epoch_timed_steps) == (WARMUP_STEPS, 31 - WARMUP_STEPS)
    assert record.train_steady_samples_per_s == pytest.approx(21 * 64 / record.in_epoch_steady_s)
    assert record.in_epoch_steady_s < record.first_epoch_s
    assert record.time_scopes["train_steady_samples_per_s"] == IN_EPOCH_STEADY_SCOPE
    assert record.steady_epoch_s is None and record.mfu_pct is not None and record.mfu_pct > 0


@needs_data
def test_quick_keras_run_prints_progress_lines_on_a_pipe_before_the_case_ends(tmp_path: Path):
    """Plain lines on a pipe, each read while the case's worker is still alive; the record has a steady figure."""
    args = ["run", "--quick", "--framework", "keras", "--model", "dense", "--limit", "2000", "--batch-size", "64",
            "--threads", "1", "--infer-batch-sizes", "1", "--results", str(tmp_path)]
    process = subprocess.Popen([sys.executable, "-m", "suite", *args], stdout=subprocess.PIPE, text=True, env=ENV)
    lines = [(line.rstrip("\n"), bool(workers_of(process.pid))) for line in process.stdout]
    assert process.wait(timeout=60) == 0
    text = [line for line, _ in lines]
    assert not any("\x1b[" in line for line in text), "no terminal codes on a pipe"
    epoch_at = next(i for i, line in enumerate(text) if "epoch 1/1 done: loss" in line)
    done_at = next(i for i, line in enumerate(text) if line.startswith("[1/1] keras/dense/cpu seed=0: ok"))
    assert epoch_at < done_at and lines[epoch_at][1], "the epoch line must be printed while the worker runs"
    assert any("importing keras (tensorflow)" in line for line in text[:epoch_at])
    assert not any("oneDNN" in line or "absl" in line for line in text), "framework log lines stay out of the output"
    (record,), _ = read_store([tmp_path])
    assert record.train_steady_samples_per_s and record.mfu_pct and record.in_epoch_timed_steps == 31 - WARMUP_STEPS
    # Which lines TensorFlow logs depends on the CPU (oneDNN's notice on some, absl's and cuInit's on others): whatever
    # they are, the record keeps them and the output did not show them.
    kept = [line for line in (record.stderr_tail or "").splitlines() if line.strip()]
    assert kept and not set(kept) & set(text), "the worker's log lines are kept in the record, not printed"


def record_of(status: str = "ok", wall_s: float = 10.0) -> RunRecord:
    """A stored run with another status and wall time."""
    return fixture_records()[0].model_copy(update={"status": status, "wall_s": wall_s})


def test_live_view_draws_plan_case_and_step_bar_on_a_terminal():
    buffer = io.StringIO()
    view = LiveView(Console(file=buffer, force_terminal=True, width=140))
    record = ran(CNN, 10.0, [2.0, 2.0])
    later = RunSpec(framework="torch", model="cnn", epochs=2, limit=6000, seed=1)
    view.planned([CNN, later])
    view.start(1, 2, CNN)
    view.event({"phase": "train", "epoch": 1, "epochs": 3, "step": 120, "steps": 375, "samples_per_s": 2345.6})
    view.progress.refresh()
    view.finished(1, 2, record)
    view.start(2, 2, later)
    view.progress.refresh()
    view.close()
    out = buffer.getvalue()
    assert "case 1/2" in out and "120/375" in out and "epoch 1/3 step 120/375 2,346 samples/s" in out
    assert "[1/2] " in out and ": ok  test_acc=" in out and "case 2/2" in out and "ETA 0:" in out


def test_live_view_of_an_executor_that_only_reports_finished_cases():
    buffer = io.StringIO()
    view = LiveView(Console(file=buffer, force_terminal=True, width=140))
    view.finished(1, 3, record_of())
    view.progress.refresh()
    view.close()
    view.close()
    assert "case 1/3" in buffer.getvalue() and "1/3" in buffer.getvalue()


def test_plain_view_prints_phases_epochs_and_throttles_steps():
    buffer = io.StringIO()
    view = PlainView(buffer)
    spec = RunSpec(framework="keras", model="dense")
    view.start(1, 1, spec)
    for step in range(5):
        view.event({"phase": "train", "epoch": 1, "epochs": 1, "step": step, "steps": 10, "samples_per_s": 100.0})
    view.event({"phase": "epoch", "epoch": 1, "epochs": 1, "loss": 0.5, "val_accuracy": 0.8, "train_s": 2.0,
                "samples_per_s": 1000.0})
    view.finished(1, 1, record_of())
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "[1/1] keras/dense/cpu seed=0: started (ETA ?)"
    assert not any("step" in line for line in lines), "in-epoch steps right after the start line are throttled"
    assert lines[1] == "[1/1] keras/dense/cpu seed=0: epoch 1/1 done: loss 0.5000 val_acc 0.8000 1,000 samples/s (2.0 s) (ETA ?)"
    assert lines[2].startswith("[1/1] ") and len(lines) == 3


def test_views_are_chosen_by_quiet_and_terminal():
    assert type(make_view(True)) is PlanView
    assert type(make_view(False, io.StringIO())) is PlainView
    main_fd, tty_fd = os.openpty()
    with os.fdopen(tty_fd, "w") as tty:
        view = make_view(False, tty)
        assert isinstance(view, LiveView)
        view.close()
    os.close(main_fd)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ran(spec: RunSpec, wall_s: float, epoch_train_s: list[float], status: str = "ok") -> RunRecord:
    """A stored run of `spec` that took wall_s, training its epochs in epoch_train_s."""
    history = [EpochStats(epoch=i + 1, train_loss=0.5, train_accuracy=0.8, train_s=t) for i, t in enumerate(epoch_train_s)]
    return fixture_records()[0].model_copy(update={"spec": spec.to_dict(), "case_id": spec.id, "status": status,
                                                   "wall_s": wall_s, "history": history})


DENSE = RunSpec(framework="torch", model="dense", epochs=2, limit=6000)
CNN = RunSpec(framework="torch", model="cnn", epochs=2, limit=6000)


def test_case_work_grows_with_the_model_and_inference_has_a_floor():
    flops = train_flops_per_sample(CNN) / train_flops_per_sample(DENSE)
    assert training_units(CNN) / training_units(DENSE) == pytest.approx(flops ** 0.5), "the square root of the FLOPs"
    assert after_training_units(CNN) > 4 * after_training_units(DENSE)
    floor = INFERENCE_BUDGET_S * len(DENSE.infer_batch_sizes)
    fast, slow = 1e-9, 1e-5  # seconds per work unit
    assert work_s(DENSE, fast) == pytest.approx(fast * (training_units(DENSE) + after_training_units(DENSE)) + floor)
    assert work_s(CNN, slow) > slow * (training_units(CNN) + after_training_units(CNN)) + floor, "slow calls outlast it"


def test_eta_prices_a_cnn_by_its_flops_not_by_the_mean_of_the_dense_case_before_it():
    clock = FakeClock()
    eta = PlanEta(clock)
    assert eta.text() == "ETA ?", "no plan yet"
    eta.planned([DENSE, CNN])
    eta.started(DENSE)
    assert eta.text() == "ETA ?", "nothing priced yet"
    clock.now += 10
    eta.finished(ran(DENSE, 20.0, [2.0, 2.0]))
    rate = 4.0 / training_units(DENSE)  # seconds per FLOP, from its epochs' training seconds
    fixed = 20.0 - work_s(DENSE, rate)  # what the rest of its wall time leaves: start-up, import, budgets
    assert fixed > 0
    eta.started(CNN)
    assert eta.remaining_s() == pytest.approx(fixed + work_s(CNN, rate))
    clock.now += 25  # 25 s into the CNN, no progress event yet: the flat mean (20 s a case) said 0:00 here
    assert eta.remaining_s() == pytest.approx(fixed + work_s(CNN, rate) - 25) and eta.remaining_s() > 10


def test_eta_follows_the_running_case_pace_and_prices_its_setup_for_the_rest():
    clock = FakeClock()
    eta = PlanEta(clock)
    later = RunSpec(framework="torch", model="cnn", epochs=2, limit=6000, seed=1)
    eta.planned([DENSE, CNN, later])
    eta.started(DENSE)
    clock.now += 10
    eta.finished(ran(DENSE, 20.0, [2.0, 2.0]))
    fixed = 20.0 - work_s(DENSE, 4.0 / training_units(DENSE))
    eta.started(CNN)
    started = clock.now
    clock.now += 3  # import and data: 3 s before the first step event
    eta.progress({"phase": "train", "epoch": 1, "epochs": 2, "step": 10, "steps": 47})
    clock.now += 8
    eta.progress({"phase": "epoch", "epoch": 1, "epochs": 2, "train_s": 9.0})
    pace = 8 / ((0.5 - 10 / 94) * training_units(CNN))  # 0.5 - 10/94 of the CNN's training went by in 8 s
    began = started + 3 - 10 / 94 * pace * training_units(CNN)
    clock.now += 2
    current = began + work_s(CNN, pace) + max(0.0, fixed - (began - started)) - clock.now
    assert eta.remaining_s() == pytest.approx(current + fixed + work_s(later, pace)), "`later` at the CNN's pace"
    clock.now += 70
    eta.finished(ran(CNN, 90.0, [18.0, 19.0]))
    eta.started(later)
    cnn_rate = 37.0 / training_units(CNN)
    assert eta.remaining_s() == pytest.approx(max(90.0, work_s(CNN, cnn_rate))), "priced by the finished CNN alone"
    assert eta.text() == "ETA {}:{:02d}".format(*divmod(round(eta.remaining_s()), 60))


def test_eta_of_parallel_cases_shares_the_elapsed_time_and_skips_cost_nothing():
    clock = FakeClock()
    eta = PlanEta(clock)
    specs = [RunSpec(framework="torch", model="dense", epochs=2, limit=6000, seed=i) for i in range(4)]
    gpu = RunSpec(framework="torch", model="dense", device="cuda", epochs=2, limit=6000)
    eta.planned([*specs, gpu])
    clock.now += 20
    eta.finished(ran(specs[0], 10.0, [2.0, 2.0]))
    eta.finished(ran(gpu, 0.0, [], status="skipped"))
    eta.finished(ran(specs[1], 10.0, [2.0, 2.0]))
    assert eta.remaining_s() == pytest.approx(20.0), "2 of 4 equal cases (and a skip, which costs nothing) in 20 s"
    clock.now += 3600
    assert eta.text() == "ETA 1:00:20"


def plan_devices(*argv: str) -> list[str]:
    """The devices of the plan `fashionbench run ARGV` would run."""
    args = build_parser().parse_args(["run", "--framework", "torch", "--model", "dense", *argv])
    return sorted({spec.device for spec in plan_from_args(args)})


def test_device_auto_is_the_default_and_picks_only_present_devices(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runner, "no_gpu_reason", lambda: "NVML library not found")
    assert plan_devices() == ["cpu"] == plan_devices("--device", "auto")
    assert plan_devices("--device", "cuda") == ["cuda"], "an explicit cuda stays in the plan (recorded as skipped)"
    monkeypatch.setattr(runner, "no_gpu_reason", lambda: None)  # a fake machine whose NVML lists a GPU
    assert plan_devices() == ["cpu", "cuda"] == plan_devices("--device", "auto", "cuda")
    assert plan_devices("--quick") == ["cpu"], "the quick matrix stays on cpu"
    with pytest.raises(UsageError, match="--device 'tpu' is not known; choose from: cpu, cuda, auto"):
        plan_devices("--device", "auto", "tpu")


@needs_data
def test_explicit_cuda_without_a_gpu_is_skipped_and_strict_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from suite.cli import main

    monkeypatch.setattr(runner, "no_gpu_reason", lambda: "NVML library not found")
    argv = ["run", "--framework", "torch", "--model", "dense", "--device", "cuda", "--quiet", "--results", str(tmp_path)]
    assert main(argv) == 0
    assert main([*argv, "--strict"]) == 1
    records, _ = read_store([tmp_path])
    assert {r.status for r in records} == {"skipped"} and "NVML library not found" in records[0].error
    assert json.loads(next(tmp_path.iterdir()).read_text())["spec"]["device"] == "cuda"
