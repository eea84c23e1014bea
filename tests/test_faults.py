"""Faults injected for real (crash, hang, OOM, NaN, signals, concurrent writers, corrupt store): no result is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from suite.results import read_store
from tests.conftest import REPO, needs_data, run_cli

pytestmark = needs_data
FAULTS = REPO / "tests" / "helpers" / "faults"
SMALL = ["--framework", "torch", "--device", "cpu", "--epochs", "2", "--limit", "300", "--batch-size", "50",
         "--infer-batch-sizes", "4"]


def fault_env(fault: str, model: str = "dense", **extra: str) -> dict[str, str]:
    """Environment that makes dense-model workers fail in the given way while binary ones stay healthy."""
    path = os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "FASHIONBENCH_FAULT": fault, "FASHIONBENCH_FAULT_MODEL": model, **extra}


def run_with_fault(tmp_path: Path, cache: Path, fault: str, *extra: str, **env: str):
    results = tmp_path / "results"
    out = run_cli("run", *SMALL, "--model", "dense", "binary", *extra, "--results", str(results),
                  cache=cache, env=fault_env(fault, **env))
    records, problems = read_store([results])
    assert not problems
    by_model = {r.spec["model"]: r for r in records}
    assert set(by_model) == {"dense", "binary"}, "the healthy case must still run after the faulty one"
    assert by_model["binary"].status == "ok"
    return out, by_model["dense"]


def test_exception_becomes_an_error_record_with_traceback(tmp_path, probe_cache):
    out, record = run_with_fault(tmp_path, probe_cache, "raise")
    assert out.returncode == 1
    assert record.status == "error" and record.error == "RuntimeError: injected fault"
    assert "Traceback" in record.stderr_tail and "_inject" in record.stderr_tail


def test_worker_exit_code_and_stderr_tail_are_kept(tmp_path, probe_cache):
    out, record = run_with_fault(tmp_path, probe_cache, "exit")
    assert record.status == "error"
    assert "worker exited with code 3 without writing a record" in record.error
    assert "injected: exiting with 3" in record.stderr_tail


def test_worker_killed_by_signal(tmp_path, probe_cache):
    _, record = run_with_fault(tmp_path, probe_cache, "sigkill")
    assert record.status == "error" and "killed by SIGKILL" in record.error


def test_hang_is_killed_with_its_whole_process_group(tmp_path, probe_cache):
    pidfile = tmp_path / "grandchild.pid"
    _, record = run_with_fault(tmp_path, probe_cache, "hang", "--timeout", "25",
                               FASHIONBENCH_FAULT_PIDFILE=str(pidfile))
    assert record.status == "timeout" and "--timeout 25" in record.error
    grandchild = int(pidfile.read_text())
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(grandchild, 0)


def test_host_out_of_memory_says_so_and_suggests_a_smaller_batch(tmp_path, probe_cache):
    _, record = run_with_fault(tmp_path, probe_cache, "oom")
    assert record.status == "error"
    assert "MemoryError" in record.error and "out of memory" in record.error and "--batch-size" in record.error


def test_nan_loss_is_recorded_as_diverged_without_throughput(tmp_path, probe_cache):
    out, record = run_with_fault(tmp_path, probe_cache, "nan")
    assert record.status == "diverged" and record.diverged_epoch == 1
    assert "lower --lr" in record.error
    assert record.train_steady_samples_per_s is None and record.test_accuracy is None and record.mfu_pct is None
    assert out.returncode == 0, "divergence is a result, not a harness failure"


def start_run(results: Path, cache: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, FASHIONBENCH_CACHE=str(cache))
    return subprocess.Popen([sys.executable, "-m", "suite", "run", *SMALL, "--model", "dense", "binary", "cnn",
                             *extra, "--results", str(results)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_records(results: Path, count: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(list(results.glob("*.json"))) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} records after {timeout_s} s")


def running_workers(run: subprocess.Popen[str], timeout_s: float = 30) -> list[psutil.Process]:
    """The run's worker processes, waiting for the next one when the run is between cases."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers = [p for p in psutil.Process(run.pid).children(recursive=True) if "suite.worker" in " ".join(p.cmdline())]
        if workers:
            return workers
        time.sleep(0.05)
    raise AssertionError("no worker process started")


def assert_gone(processes: list[psutil.Process], why: str) -> None:
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive, why


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_finished_cases_and_resume_runs_the_rest(tmp_path, probe_cache, sig):
    results = tmp_path / "results"
    run = start_run(results, probe_cache)
    wait_for_records(results, 1)
    workers = running_workers(run)
    run.send_signal(sig)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130
    assert "interrupted:" in stderr and "--resume" in stderr
    kept, problems = read_store([results])
    assert not problems and 1 <= len(kept) < 3
    assert_gone(workers, "the running worker must be stopped")
    resumed = run_cli("run", *SMALL, "--model", "dense", "binary", "cnn", "--resume", "--results", str(results),
                      cache=probe_cache)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} case(s) already finished were not run again" in resumed.stdout
    final, _ = read_store([results])
    assert sorted(r.spec["model"] for r in final) == ["binary", "cnn", "dense"]


def test_parent_killed_leaves_a_readable_store_and_no_orphan(tmp_path, probe_cache):
    results = tmp_path / "results"
    run = start_run(results, probe_cache)
    wait_for_records(results, 1)
    workers = running_workers(run)
    run.kill()
    run.communicate(timeout=30)
    assert_gone(workers, "PDEATHSIG must take the worker down with the runner")
    records, problems = read_store([results])
    assert not problems and records and all(r.status == "ok" for r in records)


def test_two_runs_writing_one_results_dir(tmp_path, probe_cache):
    results = tmp_path / "results"
    runs = [start_run(results, probe_cache, "--seed", str(seed)) for seed in (1, 2)]
    for run in runs:
        run.communicate(timeout=600)
        assert run.returncode == 0
    records, problems = read_store([results])
    assert not problems and len(records) == 6
    assert sorted(r.spec["seed"] for r in records) == [1, 1, 1, 2, 2, 2]
    assert not list(results.glob(".*.tmp"))


def test_corrupt_files_are_named_by_show_and_doctor(tmp_path, probe_cache):
    results = tmp_path / "results"
    out = run_cli("run", *SMALL, "--model", "binary", "--results", str(results), cache=probe_cache)
    assert out.returncode == 0
    good = next(results.glob("*.json"))
    (results / "truncated.json").write_text(good.read_text()[:100])
    (results / "empty.json").write_text("")
    (results / "foreign.json").write_text(json.dumps({"benchmarks": []}))
    (results / "future.json").write_text(good.read_text().replace('"schema_version": 1', '"schema_version": 7'))
    (results / ".half-written.tmp").write_text("{")
    shown = run_cli("show", "--results", str(results))
    assert shown.returncode == 0 and "binary" in shown.stdout
    for name in ("truncated.json", "empty.json", "foreign.json", "future.json"):
        assert name in shown.stderr
    doctor = run_cli("doctor", "--results", str(results))
    assert doctor.returncode == 1
    for name in ("truncated.json", "empty.json", "foreign.json", "future.json", ".half-written.tmp"):
        assert name in doctor.stdout
    assert "1 readable record(s)" in doctor.stdout


def test_torch_cpu_runs_are_reproducible(tmp_path, probe_cache):
    accuracies = []
    for attempt in range(2):
        results = tmp_path / f"r{attempt}"
        out = run_cli("run", *SMALL, "--model", "cnn", "--results", str(results), cache=probe_cache)
        assert out.returncode == 0
        (record,), _ = read_store([results])
        accuracies.append((record.test_accuracy, [h.train_loss for h in record.history]))
    assert accuracies[0] == accuracies[1]
