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

from suite.record.store import read_store
from tests.conftest import REPO, fault_env, needs_data, run_cli

pytestmark = needs_data
SMALL = ["--framework", "torch", "--device", "cpu", "--epochs", "2", "--limit", "300", "--batch-size", "50",
         "--infer-batch-sizes", "4"]


FAULT_OF_SEED = {0: None, 1: "raise", 2: "exit", 3: "sigkill", 4: "oom", 5: "nan"}


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory, probe_cache: Path):
    """One run of six cases (seeds 0..5): a healthy one first, then one fault per seed."""
    results = tmp_path_factory.mktemp("faults")
    out = run_cli("run", *SMALL, "--model", "dense", "--repeats", str(len(FAULT_OF_SEED)), "--results", str(results),
                  cache=probe_cache, env=fault_env(FAULT_OF_SEED))
    records, problems = read_store([results])
    assert not problems
    return out, {r.spec["seed"]: r for r in records}


def test_every_case_is_recorded_and_the_healthy_one_is_fine(faulty_run):
    out, by_seed = faulty_run
    assert sorted(by_seed) == sorted(FAULT_OF_SEED)
    assert by_seed[0].status == "ok" and by_seed[0].test_accuracy > 0.3
    assert out.returncode == 1, "errors in the matrix make a non-zero exit"
    assert "[6/6]" in out.stdout


def test_exception_becomes_an_error_record_with_traceback(faulty_run):
    record = faulty_run[1][1]
    assert record.status == "error" and record.error == "RuntimeError: injected fault"
    assert "Traceback" in record.stderr_tail and "_inject" in record.stderr_tail


def test_worker_exit_code_and_stderr_tail_are_kept(faulty_run):
    record = faulty_run[1][2]
    assert record.status == "error"
    assert "worker exited with code 3 without writing a record" in record.error
    assert "injected: exiting with 3" in record.stderr_tail


def test_worker_killed_by_signal(faulty_run):
    record = faulty_run[1][3]
    assert record.status == "error" and "killed by SIGKILL" in record.error


def test_host_out_of_memory_says_so_and_suggests_a_smaller_batch(faulty_run):
    record = faulty_run[1][4]
    assert record.status == "error"
    assert "MemoryError" in record.error and "out of memory" in record.error and "--batch-size" in record.error


def test_nan_loss_is_recorded_as_diverged_without_throughput(faulty_run):
    record = faulty_run[1][5]
    assert record.status == "diverged" and record.diverged_epoch == 1
    assert "lower --lr" in record.error and record.history[0].train_loss is None
    assert record.train_steady_samples_per_s is None and record.test_accuracy is None and record.mfu_pct is None


def test_hang_is_killed_with_its_whole_process_group(tmp_path, probe_cache):
    pidfile = tmp_path / "grandchild.pid"
    results = tmp_path / "results"
    run_cli("run", *SMALL, "--model", "dense", "--timeout", "20", "--results", str(results), cache=probe_cache,
            env=fault_env({0: "hang"}, FASHIONBENCH_FAULT_PIDFILE=str(pidfile)))
    (record,), _ = read_store([results])
    assert record.status == "timeout" and "--timeout 20" in record.error
    grandchild = int(pidfile.read_text())
    time.sleep(0.5)
    # Killed and orphaned, it may linger as a zombie until init reaps it; what matters is that it no longer runs.
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def start_run(results: Path, cache: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, FASHIONBENCH_CACHE=str(cache))
    return subprocess.Popen([sys.executable, "-m", "suite", "run", *SMALL, "--model", "dense", "binary",
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
        workers = [p for p in psutil.Process(run.pid).children(recursive=True) if "suite.run.worker" in " ".join(p.cmdline())]
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
    run = start_run(results, probe_cache, "--repeats", "2")
    wait_for_records(results, 1)
    workers = running_workers(run)
    run.send_signal(sig)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130
    assert "interrupted:" in stderr and "--resume" in stderr
    kept, problems = read_store([results])
    assert not problems and 1 <= len(kept) < 4
    assert_gone(workers, "the running worker must be stopped")
    if sig == signal.SIGTERM:
        return
    resumed = run_cli("run", *SMALL, "--model", "dense", "binary", "--repeats", "2", "--resume",
                      "--results", str(results), cache=probe_cache)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} case(s) already finished were not run again" in resumed.stdout
    final, _ = read_store([results])
    assert sorted((r.spec["model"], r.spec["seed"]) for r in final) == [("binary", 0), ("binary", 1), ("dense", 0), ("dense", 1)]


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
    assert not problems and len(records) == 4
    assert sorted(r.spec["seed"] for r in records) == [1, 1, 2, 2]
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
