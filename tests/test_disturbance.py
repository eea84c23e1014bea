"""Disturbance: other work on the machine measured around a case (its own CPU time left out), the DISTURBED limit, the
caveats every table shows (negative warm-up, one-epoch steady figure, planted slowdown) and the planted slowdown."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from suite.cli import main
from suite.core.spec import RunSpec
from suite.measure.host import CpuCounters, PhaseContention, window
from suite.record.schema import DISTURBED_LOST_PCT, PLANT_SLOWDOWN_ENV, Contention, EpochStats, RunRecord
from suite.report import sections
from suite.report.cases import group_cases
from suite.run import plant
from tests.conftest import needs_data
from tests.test_report import fixture_records, setup_of, with_figures, write_all


def contention(others: float, case_cores: int = 2, cores: int = 2, steal: float = 0.0) -> Contention:
    """A Contention as the worker would store it."""
    return Contention(wall_s=10.0, cores_logical=cores, case_cores=case_cores, others_busy_cores=others,
                      steal_cores=steal, own_busy_cores=case_cores - min(others, case_cores))


def test_window_leaves_the_case_own_time_out_of_others():
    start = CpuCounters(wall_s=100.0, busy_s=50.0, steal_s=1.0, own_s=20.0)
    end = CpuCounters(wall_s=110.0, busy_s=70.0, steal_s=2.0, own_s=35.0)  # 20 s busy in 10 s: 15 ours, 5 others'
    w = window(start, end)
    assert w.own_busy_cores == pytest.approx(1.5)
    assert w.others_busy_cores == pytest.approx(0.5) and w.steal_cores == pytest.approx(0.1)


def test_lost_share_counts_only_cores_the_case_needed():
    # A 1-core case on 2 cores loses nothing to 0.9 busy cores of others; 1.3 busy cores take 30 % of its core.
    assert contention(0.9, case_cores=1).lost_pct == 0.0
    assert contention(1.3, case_cores=1).lost_pct == pytest.approx(30.0)
    assert contention(0.3).lost_pct == pytest.approx(15.0)
    assert contention(5.0).lost_pct == 100.0


def a_run(**figures) -> RunRecord:
    """One fixture run (3 epochs, undisturbed) with some figures replaced."""
    return with_figures(fixture_records()[2], **figures)


def test_disturbed_past_the_limit_with_the_reason():
    limit_cores = DISTURBED_LOST_PCT / 100 * 2
    assert a_run(contention_train=contention(limit_cores * 0.9)).disturbed is None
    run = a_run(contention_train=contention(0.86, steal=0.02), contention_profile=contention(0.0))
    assert run.disturbed == ("other work took 43% of its 2 core(s) during training (0.86 cores busy, steal 0.02; "
                             f"limit {DISTURBED_LOST_PCT:g}%)")
    assert "during profiling" in a_run(contention_profile=contention(1.0)).disturbed
    assert run.caveats == ["DISTURBED"] and a_run().caveats == [] and a_run().disturbed is None  # unmeasured: not flagged


def test_negative_warmup_and_one_epoch_steady_are_flagged():
    run = fixture_records()[2]
    two = with_figures(run, history=run.history[:2], warmup_s=-2.13)
    assert two.caveats == ["negative warm-up", "steady from 1 epoch"]
    one = with_figures(run, history=[EpochStats(epoch=1, train_loss=0.5, train_accuracy=0.8, train_s=1.0)])
    assert one.train_steady_samples_per_s is not None and one.caveats == ["steady from 1 epoch"]
    assert a_run(planted_slowdown_pct=10.0).caveats == ["planted slowdown 10%"]


def test_a_busy_process_counts_as_others_and_our_own_busy_loop_does_not():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        hog_before, own_before = sum(psutil.Process(hog.pid).cpu_times()[:2]), time.process_time()
        meter = PhaseContention(2)
        while time.process_time() - own_before < 0.5:  # CPU time, not wall time: a loaded machine only stretches it
            pass
        result = meter.result()
        hog_cpu_s, own_cpu_s = sum(psutil.Process(hog.pid).cpu_times()[:2]) - hog_before, time.process_time() - own_before
    finally:
        hog.kill()
        hog.wait()
    # Whatever else shares the machine: our loop is ours, and the hog's CPU time is inside the others' figure.
    assert result.own_busy_cores * result.wall_s == pytest.approx(own_cpu_s, rel=0.1)
    assert result.others_busy_cores * result.wall_s >= 0.9 * hog_cpu_s > 0
    assert result.case_cores == min(2, psutil.cpu_count())


def test_show_and_report_mark_disturbed_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    records = fixture_records()
    first_cnn = next(i for i, r in enumerate(records) if setup_of(r) == "torch/cnn/cpu")
    records[first_cnn] = with_figures(records[first_cnn], contention_train=contention(1.0))
    store = write_all(records, tmp_path / "store")
    assert main(["show", "--results", str(store), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    cnn = next(line for line in out.splitlines() if ",torch,cnn," in line)
    dense = next(line for line in out.splitlines() if ",torch,dense," in line)
    assert "DISTURBED 1/2" in cnn and "DISTURBED" not in dense
    cases = group_cases(records)
    (summary,) = [t for t in sections.summary_section(cases, {"10-class": 0.7, "tshirt-vs-shirt": 0.7})
                  if t["task"] == "10-class"]
    assert {row["label"]: row["flags"] for row in summary["rows"]}["torch/cnn/cpu"] == "DISTURBED 1/2"
    rows = sections.side_by_side_rows(cases)
    cnn_speed = next(r for r in rows if r["group"].startswith("cnn") and r["figure"] == "train samples/s")
    assert cnn_speed["noise"].startswith("not judged: DISTURBED runs (torch")
    cnn_acc = next(r for r in rows if r["group"].startswith("cnn") and r["figure"] == "test accuracy")
    assert "DISTURBED" not in cnn_acc["noise"]  # accuracy does not depend on how busy the machine was


def test_planted_slowdown_waits_its_share_of_each_step(monkeypatch: pytest.MonkeyPatch):
    clock, slept, seen = [0.0], [], []
    monkeypatch.setattr(plant.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(plant, "spin", lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)))
    hook = plant.PlantedSlowdown(10.0, seen.append)
    for step, step_s in enumerate([0.5, 0.2, 0.3]):
        hook(step)
        clock[0] += step_s  # the step itself
    hook.finish()
    assert seen == [0, 1, 2] and slept == pytest.approx([0.05, 0.02, 0.03])


@pytest.mark.parametrize("value,ok", [("10", True), ("", True), ("0", False), ("nan", False), ("ten", False),
                                      ("101", False)])
def test_planted_slowdown_setting_is_checked(monkeypatch: pytest.MonkeyPatch, value: str, ok: bool):
    monkeypatch.setenv(PLANT_SLOWDOWN_ENV, value)
    if ok:
        assert plant.planted_slowdown_pct() == (float(value) if value else None)
    else:
        with pytest.raises(ValueError, match=f"{PLANT_SLOWDOWN_ENV}=.* is not a percentage in \\(0, 100\\]"):
            plant.planted_slowdown_pct()


@needs_data
def test_worker_records_contention_per_epoch_and_the_planted_setting(monkeypatch: pytest.MonkeyPatch):
    torch = pytest.importorskip("torch")
    from suite.measure.machine import fingerprint
    from suite.run.worker import run_job

    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: None)  # allowed once per process; pytest shares it
    monkeypatch.setenv(PLANT_SLOWDOWN_ENV, "20")
    spec = RunSpec(framework="torch", model="dense", epochs=2, limit=512, batch_size=64, infer_batch_sizes=(8,))
    job = {"spec": spec.to_dict(), "machine": fingerprint().model_dump()}
    record = run_job(job)
    assert record.status == "ok", record.error
    train, profile = record.contention_train, record.contention_profile
    assert len(train.epoch_others_busy_cores) == 2 and train.case_cores == min(2, psutil.cpu_count())
    assert train.wall_s >= record.train_total_s and train.own_busy_cores > 0 and profile.own_busy_cores > 0
    assert record.planted_slowdown_pct == 20.0 and "planted slowdown 20%" in record.caveats
    monkeypatch.setenv(PLANT_SLOWDOWN_ENV, "lots")
    failed = run_job(job)
    assert failed.status == "error" and f"{PLANT_SLOWDOWN_ENV}='lots' is not a percentage" in failed.error


def test_a_torchrun_rank_counts_torchrun_and_every_rank_as_its_own():
    # The child stands in for rank 0: its parent (here pytest, as torchrun would be) and its siblings are the case.
    code = "from suite.measure.host import case_processes; print(*[p.pid for p in case_processes(True)])"
    siblings = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(2)]
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    finally:
        for sibling in siblings:
            sibling.kill()
            sibling.wait()
    pids = {int(pid) for pid in out.stdout.split()}
    assert {psutil.Process().pid, *(s.pid for s in siblings)} <= pids and len(pids) >= 4  # parent, 2 siblings, itself
