"""`run --executor ray` on a real Ray cluster on this machine: a head and three nodes (two kindA, one kindB).

The nodes carry the fault-injection PYTHONPATH (tests/helpers/faults), so the first worker of a SLEEP_SEED case sleeps:
that is how a test interrupts a run or kills a node while a case is in flight.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from suite.record.schema import RunRecord
from suite.record.store import read_store
from tests.conftest import REPO, fault_env, needs_data, run_cli

pytestmark = needs_data
cluster_utils = pytest.importorskip("ray.cluster_utils", reason="Ray is not installed")

MiB = 2**20
KINDS = ("kindA", "kindA", "kindB")
SLEEP_SEED = 9
TINY = ["--framework", "torch", "--model", "dense", "--device", "cpu", "--epochs", "1", "--limit", "600",
        "--batch-size", "100", "--infer-batch-sizes", "4", "--threads", "1"]


@dataclass
class LocalCluster:
    """The running cluster and what the tests need to know about its nodes."""

    cluster: cluster_utils.Cluster
    kind_of: dict[str, str]  # node id → kind
    raylet_pids: dict[int, object]  # raylet pid → ray node handle
    pidfile: Path
    cache: Path

    @property
    def address(self) -> str:
        return self.cluster.address

    def nodes_of(self, kind: str) -> set[str]:
        return {node_id for node_id, k in self.kind_of.items() if k == kind}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, probe_cache: Path):
    """Head (no slot, so no cases) plus one node per KINDS entry, each with one fashionbench-slot."""
    pidfile = tmp_path_factory.mktemp("ray") / "sleeping.pid"
    env = fault_env({SLEEP_SEED: "sleep"}, FASHIONBENCH_FAULT_PIDFILE=str(pidfile), FASHIONBENCH_CACHE=str(probe_cache))
    with pytest.MonkeyPatch.context() as patch:  # the nodes' processes inherit this environment
        for name, value in env.items():
            patch.setenv(name, value)
        head = dict(num_cpus=0, include_dashboard=False, object_store_memory=80 * MiB)
        cluster = cluster_utils.Cluster(initialize_head=True, head_node_args=head)
        kind_of, raylets = {}, {}
        for kind in KINDS:
            node = cluster.add_node(num_cpus=1, object_store_memory=80 * MiB,
                                    resources={f"kind:{kind}": 1, "fashionbench-slot": 1})
            kind_of[node.node_id] = kind
            raylets[node.all_processes["raylet"][0].process.pid] = node
        cluster.wait_for_nodes()
    try:
        yield LocalCluster(cluster, kind_of, raylets, pidfile, probe_cache)
    finally:
        cluster.shutdown()


def ray_run(cluster: LocalCluster, results: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`fashionbench run` of the tiny case through the cluster."""
    return run_cli("run", *TINY, "--executor", "ray", "--ray-address", cluster.address, *args, "--results", str(results),
                   cache=cluster.cache)


def stored(results: Path) -> list[RunRecord]:
    """The store's records; a store with an unreadable file fails the test."""
    records, problems = read_store([results])
    assert not problems
    return records


def span_s(record: RunRecord) -> tuple[float, float]:
    """(start, end) of the worker process in epoch seconds; created_utc has whole seconds."""
    end = datetime.fromisoformat(record.created_utc).timestamp()
    return end - record.wall_s, end


def test_every_kind_runs_the_plan_on_each_kind_in_own_processes_one_case_at_a_time_per_node(cluster: LocalCluster,
                                                                                            tmp_path: Path):
    out = ray_run(cluster, tmp_path, "--every-kind", "--repeats", "2")
    assert out.returncode == 0, out.stderr
    records = stored(tmp_path)
    assert sorted((r.node_kind, r.spec["seed"]) for r in records) == [("kindA", 0), ("kindA", 1), ("kindB", 0), ("kindB", 1)]
    assert {r.status for r in records} == {"ok"} and all(r.test_accuracy > 0.3 for r in records)
    assert {r.executor for r in records} == {"ray"} and {r.per_node for r in records} == {1}
    assert all(r.node_id in cluster.nodes_of(r.node_kind) for r in records), "each case ran on a node of its kind"
    assert {r.node_id for r in records if r.node_kind == "kindA"} == cluster.nodes_of("kindA"), "both kindA nodes took one"
    for record in records:
        assert f"on {record.node_kind} {record.node_ip} ({record.node_id[:8]})" in out.stdout
        assert record.machine.hostname == socket.gethostname() and record.peak_flops_per_s, "fingerprint and probe on the node"
    pids = [r.worker_pid for r in records]
    assert len(set(pids)) == 4 and os.getpid() not in pids
    assert not any(psutil.pid_exists(p) for p in pids), "each case had a worker process of its own, now gone"
    first, second = sorted((span_s(r) for r in records if r.node_kind == "kindB"), key=lambda s: s[1])
    assert second[0] >= first[1] - 1.0, "one slot on the kindB node: its second case started after the first ended"
    again = ray_run(cluster, tmp_path, "--every-kind", "--repeats", "2", "--resume")
    assert again.returncode == 0, again.stderr
    assert "--resume: 4 case(s) already finished" in again.stdout
    assert len(stored(tmp_path)) == 4


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_unreachable_cluster_and_unknown_kind_fail_in_one_line_before_any_case(cluster: LocalCluster, tmp_path: Path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    results = tmp_path / "results"
    line = one_line_error(run_cli("run", *TINY, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                                  "--results", str(results)))
    assert "cannot reach the Ray cluster" in line and "ray start --head" in line
    line = one_line_error(ray_run(cluster, results, "--on", "kindA", "kindZ"))
    assert "no node of kind kindZ" in line and "kindA, kindB" in line and '"kind:kindZ": 1' in line
    assert not results.exists(), "nothing starts for a plan the cluster cannot run"


def start_sleeping_run(cluster: LocalCluster, results: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    """A driver whose SLEEP_SEED case is asleep on a node; returns it and the sleeping worker's pid."""
    cluster.pidfile.unlink(missing_ok=True)
    env = dict(os.environ, FASHIONBENCH_CACHE=str(cluster.cache))
    driver = subprocess.Popen([sys.executable, "-m", "suite", "run", *TINY, "--executor", "ray", "--ray-address",
                               cluster.address, *args, "--results", str(results)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not cluster.pidfile.exists() or not cluster.pidfile.read_text():
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.2)
    return driver, int(cluster.pidfile.read_text())


def node_of(cluster: LocalCluster, pid: int):
    """The cluster node whose raylet is an ancestor of the process (worker → Ray worker → raylet)."""
    return next(cluster.raylet_pids[p.pid] for p in psutil.Process(pid).parents() if p.pid in cluster.raylet_pids)


def test_per_node_2_shares_a_node_and_interrupt_keeps_finished_records(cluster: LocalCluster, tmp_path: Path):
    driver, sleeper = start_sleeping_run(cluster, tmp_path, "--on", "kindB", "--per-node", "2",
                                         "--seed", str(SLEEP_SEED - 1), "--repeats", "2")
    assert cluster.kind_of[node_of(cluster, sleeper).node_id] == "kindB"
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob("*.json")):  # the healthy case finishes beside the sleeper on the one kindB node
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr
    assert "interrupted: 1 finished case(s) kept" in stderr
    [kept] = stored(tmp_path)
    assert kept.spec["seed"] == SLEEP_SEED - 1 and kept.node_kind == "kindB" and kept.per_node == 2
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(sleeper).wait(timeout=30)  # raises if the cancelled task's worker process lives on


def test_a_node_dying_mid_case_retries_it_on_the_other_node_of_its_kind(cluster: LocalCluster, tmp_path: Path):
    driver, sleeper = start_sleeping_run(cluster, tmp_path, "--on", "kindA", "--seed", str(SLEEP_SEED))
    doomed = node_of(cluster, sleeper)
    assert cluster.kind_of[doomed.node_id] == "kindA"
    cluster.cluster.remove_node(doomed, allow_graceful=False)
    stdout, stderr = driver.communicate(timeout=240)
    assert driver.returncode == 0, stdout + stderr
    records = stored(tmp_path)
    assert len(records) == 1, "exactly one record for the case"
    assert records[0].status == "ok" and records[0].spec["seed"] == SLEEP_SEED
    assert records[0].node_id == (cluster.nodes_of("kindA") - {doomed.node_id}).pop()


def test_a_node_dying_with_no_retry_left_records_an_error_with_the_reason(cluster: LocalCluster, tmp_path: Path):
    driver, _ = start_sleeping_run(cluster, tmp_path, "--on", "kindB", "--seed", str(SLEEP_SEED), "--retries", "0")
    cluster.cluster.remove_node(next(n for n in cluster.raylet_pids.values() if cluster.kind_of[n.node_id] == "kindB"),
                                allow_graceful=False)
    stdout, stderr = driver.communicate(timeout=240)
    assert driver.returncode == 1, "an error in the plan makes a non-zero exit"
    [record] = stored(tmp_path)
    assert record.status == "error" and record.node_kind == "kindB" and record.executor == "ray"
    assert "--retries 0" in record.error and "Error" in record.error, record.error
