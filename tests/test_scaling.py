"""Data-parallel scaling (--devices): real collectives on CPU in both frameworks, the launch's kill, the spec axis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest

from suite.backends.torch_ddp import comm_share_pct
from suite.core.spec import RunSpec, SpecError, grid
from suite.record.machines import record_machine_labels
from suite.record.scaling import with_scaling_efficiency
from suite.record.schema import RunRecord
from suite.report.page import ReportInputs, build_report
from suite.report.table import summary_table
from suite.run.launch import launcher, rank_env
from suite.run.runner import case_env, run_case
from suite.run.worker import step_balance
from tests.conftest import REPO, needs_data, run_cli
from tests.test_report import fixture_records, parse_html, with_figures, with_machine, write_all

pytestmark = needs_data

# (framework, keras backend, per-device batch, train samples): 601 leaves a last global batch of 89 that DDP splits
# 45/44, so the torch check also covers the loss weighting of uneven shards; Keras gets an even split.
SETTINGS = {"torch": ("torch", "tensorflow", 64, 601), "keras-tf": ("keras", "tensorflow", 64, 600),
            "keras-jax": ("keras", "jax", 64, 600)}


def _train(name: str, devices: int, out: Path) -> Path:
    framework, keras_backend, batch, limit = SETTINGS[name]
    # The single-device reference steps the combined batch: devices x the per-device batch.
    batch = batch if devices > 1 else batch * 2
    folder = out / f"{name}-{devices}"
    folder.mkdir()
    spec = RunSpec(framework=framework, model="dense", devices=devices, threads=devices, batch_size=batch, limit=limit)
    env = rank_env(spec, case_env(spec))
    args = ["tests.helpers.replicas", framework, keras_backend, str(devices), str(batch), str(limit), str(folder)]
    done = subprocess.run([sys.executable, "-m", *launcher(spec), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    """Every setting on 1 and 2 devices, launched together: six fresh processes (torch's 2-device one via torchrun)."""
    out = tmp_path_factory.mktemp("replicas")
    jobs = [(name, devices) for name in SETTINGS for devices in (1, 2)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        folders = list(pool.map(lambda job: _train(*job, out), jobs))
    return dict(zip(jobs, folders))


def _weights(folder: Path, rank: int = 0) -> dict[str, np.ndarray]:
    return dict(np.load(folder / f"rank{rank}.npz"))


def test_torch_ddp_ranks_agree_with_one_process_on_the_combined_batch(trained):
    rank0, rank1 = _weights(trained["torch", 2], 0), _weights(trained["torch", 2], 1)
    single = _weights(trained["torch", 1])
    assert rank0["replicas"] == 2
    np.testing.assert_array_equal(rank0["weights"], rank1["weights"])
    assert np.abs(rank0["weights"] - rank0["initial"]).max() > 1e-3  # the epoch did move the weights
    np.testing.assert_allclose(rank0["weights"], single["weights"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["keras-tf", "keras-jax"])
def test_keras_replicas_train_like_one_device_on_the_global_batch(trained, name):
    replicated, single = _weights(trained[name, 2]), _weights(trained[name, 1])
    assert replicated["replicas"] == 2 and single["replicas"] == 1
    assert np.abs(replicated["weights"] - replicated["initial"]).max() > 1e-3
    np.testing.assert_allclose(replicated["weights"], single["weights"], rtol=1e-4, atol=1e-6)


def _marked(mark: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("FASHIONBENCH_TEST_MARK") == mark:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _ranks(mark: str) -> int:
    count = 0
    for process in _marked(mark):
        try:
            count += "RANK" in process.environ()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return count


def test_timeout_kills_every_rank(monkeypatch, probe_cache):
    mark = uuid.uuid4().hex
    monkeypatch.setenv("FASHIONBENCH_TEST_MARK", mark)
    monkeypatch.setenv("FASHIONBENCH_CACHE", str(probe_cache))
    spec = RunSpec(framework="torch", model="dense", devices=2, threads=2, epochs=10_000, limit=3000,
                   infer_batch_sizes=(32,))
    seen, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen[0] = max(seen[0], _ranks(mark))
            stop.wait(0.5)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        record = run_case(spec, timeout_s=25)
    finally:
        stop.set()
        watcher.join()
    assert record.status == "timeout", record.error
    assert seen[0] == 2, f"expected both ranks running before the timeout, saw {seen[0]}"
    left = [p.pid for p in _marked(mark) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left after the timeout: {left}"


def test_more_devices_than_present_is_skipped_with_the_reason():
    cores = len(os.sched_getaffinity(0))
    record = run_case(RunSpec(framework="torch", model="dense", devices=cores + 1), timeout_s=60)
    assert record.status == "skipped"
    assert f"--devices {cores + 1} needs {cores + 1} CPU cores" in record.error


def test_keras_on_torch_has_no_data_parallel_engine():
    record = run_case(RunSpec(framework="keras", model="dense", keras_backend="torch", devices=2), timeout_s=60)
    assert record.status == "skipped" and "Keras 3 distributes only on JAX" in record.error


def test_devices_axis_expands_and_keeps_one_device_ids():
    one, two = grid({"framework": ["torch"], "model": ["dense"], "devices": [1, 2]}, lr_scaling="linear", lr=0.01)
    assert (one.devices, two.devices) == (1, 2)
    assert one.scaling_key == two.scaling_key and one.case_key != two.case_key
    assert (two.global_batch_size, two.effective_lr, one.effective_lr) == (256, 0.02, 0.01)
    assert "devices=2" in two.label
    # A spec at the defaults hashes exactly as it did before the axis existed (stored ids stay valid).
    plain = RunSpec(framework="torch", model="dense")
    assert plain.id == RunSpec.from_dict({k: v for k, v in plain.to_dict().items()
                                          if k not in ("devices", "lr_scaling")}).id
    assert plain.id == "torch-dense-cpu-03b2dc0602"


def test_bad_scaling_values_name_the_fix():
    with pytest.raises(SpecError, match="--devices 0 is out of range"):
        RunSpec(framework="torch", model="dense", devices=0)
    with pytest.raises(SpecError, match="global batch 1024 .* larger than --limit 600"):
        RunSpec(framework="torch", model="dense", devices=8, limit=600)
    done = run_cli("run", "--framework", "torch", "--model", "dense", "--devices", "0", "--limit", "600")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--devices 0 is out of range" in done.stderr


def _on_devices(record: RunRecord, devices: int, samples_per_s: float) -> RunRecord:
    """A copy of a real run as if made on `devices` replicas with that global throughput."""
    spec = RunSpec.from_dict({**record.spec, "devices": devices})
    return with_figures(record, spec=spec.to_dict(), case_key=spec.case_key, case_id=spec.id, world_size=devices,
                        train_steady_samples_per_s=samples_per_s, global_steady_samples_per_s=samples_per_s,
                        per_rank_steady_samples_per_s=samples_per_s / devices)


@pytest.fixture()
def scaled() -> list[RunRecord]:
    """Three 1-device runs (median 1,100 samples/s), a 2-device run at 1,650 and one on a machine with no reference."""
    base = next(r for r in fixture_records() if r.status == "ok" and r.spec["framework"] == "torch"
                and r.spec["model"] == "dense" and r.train_steady_samples_per_s)
    ones = [_on_devices(base, 1, v) for v in (1000.0, 1200.0, 1100.0)]
    elsewhere = with_machine(_on_devices(base, 2, 900.0), machine_id="e15e00e15e00", hostname="elsewhere")
    return [*ones, _on_devices(base, 2, 1650.0), elsewhere]


def test_efficiency_is_global_over_n_times_the_one_device_median(scaled):
    filled = with_scaling_efficiency(scaled)
    assert filled[3].scaling_efficiency_pct == pytest.approx(100 * 1650 / (2 * 1100))
    assert filled[4].scaling_efficiency_pct is None  # its machine has no 1-device run
    assert all(r.scaling_efficiency_pct is None for r in filled[:3]) and filled[:3] == scaled[:3]
    table = summary_table(scaled)
    two = table[table["variant"] == "devices=2"].set_index("machine")["scaling_efficiency_pct"]
    names = record_machine_labels(scaled)
    assert two.to_dict() == {names[scaled[0].machine.machine_id]: "75", names["e15e00e15e00"]: "-"}


def test_report_scaling_section_shows_ideal_and_efficiency(scaled, tmp_path):
    page, _ = build_report(ReportInputs(results=[write_all(scaled, tmp_path / "results")], out=tmp_path / "report"))
    section = parse_html(page.read_text(encoding="utf-8")).find("section", id="scaling")
    tables = section.find_all("table", class_="scaling")
    rows = {(t.attrs["data-family"], r["devices"]): r for t in tables for r in t.records()}
    family = next(f for f, n in rows if n == "2" and "elsewhere" not in f)
    assert rows[family, "1"]["efficiency %"] == "100" and rows[family, "1"]["global samples/s"] == "1,100"
    assert rows[family, "2"]["ideal samples/s"] == "2,200" and rows[family, "2"]["efficiency %"] == "75"
    assert rows[family, "2"]["per-rank samples/s"] == "825" and rows[family, "2"]["global batch"] == "256"
    assert "No ok 1-device run of this setup" in section.text  # the family on the machine without a reference
    assert (tmp_path / "report" / "scaling.png").is_file()


def test_comm_share_reads_ddps_own_timings():
    timings = {"avg_forward_compute_time": 300, "avg_backward_compute_time": 500, "avg_backward_comm_time": 400,
               "avg_backward_compute_comm_overlap_time": 200}
    assert comm_share_pct(timings) == pytest.approx(100 * 200 / 1000)
    assert comm_share_pct({}) is None


@pytest.mark.parametrize("devices", [1, 2, 4])
def test_sync_free_step_divides_the_steady_epoch_by_global_steps(devices: int):
    # 1,280 samples, 64 per replica: 20 steps on one device, 10 on two, 5 on four (each step takes every replica's batch).
    spec = RunSpec(framework="torch", model="dense", devices=devices, threads=4, batch_size=64, limit=1280)
    record = with_figures(fixture_records()[0], steady_epoch_s=1.0, train_samples=1280, step_time_ms_p50=None)
    step_balance(record, spec)
    assert record.sync_free_step_ms == pytest.approx(1000.0 / (20 / devices))


def test_a_two_rank_run_records_global_steps_and_counts_its_ranks_as_its_own(probe_cache, monkeypatch):
    monkeypatch.setenv("FASHIONBENCH_CACHE", str(probe_cache))
    spec = RunSpec(framework="torch", model="dense", devices=2, threads=2, epochs=2, limit=1280, batch_size=64,
                   infer_batch_sizes=(32,))
    record = run_case(spec, timeout_s=300)
    assert record.status == "ok", record.error
    assert record.sync_free_step_ms == pytest.approx(1000.0 * record.steady_epoch_s / 10)  # 1,280 / (2 x 64)
    # Both ranks and torchrun are the case: their CPU time is its own, not other work on the machine. The ranks step in
    # lockstep, so the case's own cores are about twice rank 0's (cpu_util_pct: rank 0's process alone).
    train = record.contention_train
    assert 100 * train.own_busy_cores >= 1.4 * record.cpu_util_pct and train.case_cores == min(2, os.cpu_count())
