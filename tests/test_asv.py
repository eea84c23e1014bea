"""asv end to end in a temporary clone: `asv check`, a quick run here, two commits into one results dir, publish.

History here uses `--python=same --set-commit-hash` per commit with the clone's checkout first on PYTHONPATH, so each
commit's own code is benchmarked without building virtualenvs (asv's base requirements are pip-upgraded from the
network each time); the virtualenv mode of asv.conf.json is documented in docs/benchmarks.md.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from suite.bench import plans
from suite.record.scaling import with_scaling_efficiency
from tests.conftest import REPO, needs_data

pytestmark = needs_data

# One tiny CPU case; cuda stays in the grid so its skip path (NotImplementedError → n/a) is exercised too.
# The limit is the quick sweep's largest batch size, so the sweep keeps both of its batch sizes.
TINY_GRID = {plans.QUICK_ENV: "1", plans.LIMIT_ENV: str(max(plans.QUICK_SWEEP_BATCH_SIZES)),
             plans.AXIS_ENVS["framework"]: "torch", plans.AXIS_ENVS["model"]: "dense",
             plans.AXIS_ENVS["device"]: "cpu,cuda"}
CPU = ("'torch'", "'dense'", "'cpu'")
SWEEP = ("sweeps.CnnSweep.track_train_samples_per_s", "sweeps.CnnSweep.track_mfu_pct",
         "sweeps.CnnSweep.track_test_accuracy")
MUST_HAVE = ("training.Training.track_test_accuracy", "training.Training.track_train_samples_per_s",
             "inference.Inference.track_samples_per_s", "inference.Inference.track_latency_p50_ms",
             "memory.Memory.track_host_rss_peak_bytes", "training.TrainEpoch.time_train_epoch",
             "inference.InferencePass.time_inference_pass")
HISTORY_BENCH = r"training\.Training\.track_(test_accuracy|train_samples_per_s)"


@dataclass
class Clone:
    """A throwaway repository holding the working tree, with asv's machine file in its own HOME."""

    path: Path
    env: dict[str, str]
    machine: str = ""

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command in the clone; failure shows its output."""
        result = subprocess.run(args, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        return result

    def commit(self, message: str) -> str:
        """Commit everything; return the hash."""
        self.run("git", "add", "-A")
        self.run("git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-q", "-m", message)
        return self.run("git", "rev-parse", "HEAD").stdout.strip()

    def asv_run_same(self, commit: str, *args: str) -> None:
        """Benchmark `commit` checked out, in this environment, recorded under that commit."""
        self.run("git", "checkout", "-q", commit)
        self.run(sys.executable, "-m", "asv", "run", "--python=same", "--set-commit-hash", commit,
                 "--machine", self.machine, "--show-stderr", *args)

    def results(self, commit: str) -> dict[str, dict[str, object]]:
        """benchmark name → {result, params} of the commit's result file."""
        (path,) = (self.path / ".asv" / "results" / self.machine).glob(f"{commit[:8]}-*.json")
        data = json.loads(path.read_text())
        return {name: dict(zip(data["result_columns"], row)) for name, row in data["results"].items()}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory, probe_cache: Path) -> Clone:
    """The working tree (tracked and new files, not ignored ones) committed into a fresh repository."""
    root = tmp_path_factory.mktemp("asv")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source, target = REPO / name, root / "repo" / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    env = dict(os.environ, HOME=str(root / "home"), FASHIONBENCH_CACHE=str(probe_cache),
               PYTHONPATH=str(root / "repo"), **TINY_GRID)
    made = Clone(root / "repo", env)
    made.run("git", "init", "-q", "-b", "main")
    made.commit("working tree")
    made.machine = made.run(sys.executable, "-m", "suite.bench.plans", "machine-name").stdout.strip()
    made.run(sys.executable, "-m", "asv", "machine", "--yes", "--machine", made.machine)
    return made


@pytest.fixture(scope="module")
def history(clone: Clone) -> list[str]:
    """Commit 1 with every benchmark, then commit 2 with two, into the same results dir."""
    first = clone.run("git", "rev-parse", "HEAD").stdout.strip()
    clone.asv_run_same(first)
    (clone.path / "history-probe.txt").write_text("A second commit for the history test.\n")
    second = clone.commit("second commit")
    clone.asv_run_same(second, "--bench", HISTORY_BENCH)
    return [first, second]


def test_asv_check_finds_no_problems(clone: Clone) -> None:
    out = clone.run(sys.executable, "-m", "asv", "check", "--python=same")
    assert "No problems found" in out.stdout


def test_machine_name_carries_device_and_grid(clone: Clone) -> None:
    assert clone.machine.endswith("-quick"), clone.machine  # FASHIONBENCH_QUICK=1 in the clone's environment
    if plans.available_devices() == ("cpu",):
        assert clone.machine.endswith("-cpu-quick"), clone.machine


def test_clone_code_is_what_gets_benchmarked(clone: Clone) -> None:
    out = clone.run(sys.executable, "-c", "import suite.bench.plans; print(suite.bench.plans.__file__)")
    assert Path(out.stdout.strip()).is_relative_to(clone.path)


def param_values(row: dict[str, object]) -> dict[tuple[str, ...], float | None]:
    """A result row's values keyed by their params as asv stores them (reprs: "'torch'", "128")."""
    return dict(zip(itertools.product(*row["params"]), row["result"]))  # type: ignore[arg-type]


def test_quick_run_saves_every_figure_and_skips_cuda_without_gpu(clone: Clone, history: list[str]) -> None:
    results = clone.results(history[0])
    for name in MUST_HAVE:
        values = param_values(results[name])
        value = values[CPU]
        assert value is not None and math.isfinite(value) and value > 0, (name, value)
        if plans.available_devices() == ("cpu",):
            assert math.isnan(values[("'torch'", "'dense'", "'cuda'")]), (name, values)  # NaN is asv's "skipped"
    meta = json.loads((clone.path / ".asv" / "results" / "benchmarks.json").read_text())
    cached = {name: b["setup_cache_key"] for name, b in meta.items() if isinstance(b, dict) and "setup_cache_key" in b}
    grid_keys = {key for name, key in cached.items() if not name.startswith(("sweeps.", "scaling."))}
    sweep_keys = {key for name, key in cached.items() if name.startswith("sweeps.")}
    scaling_keys = {key for name, key in cached.items() if name.startswith("scaling.")}
    assert len(grid_keys) == 1, cached  # one training of the grid serves every grid suite
    assert len(sweep_keys) == 1 and not sweep_keys & grid_keys, cached  # the sweep trains its own cases, once
    assert len(scaling_keys) == 1 and not scaling_keys & (grid_keys | sweep_keys), cached


def test_quick_scaling_tracks_efficiency_on_two_cpu_replicas(clone: Clone, history: list[str]) -> None:
    values = param_values(clone.results(history[0])["scaling.Scaling.track_scaling_efficiency_pct"])
    two = values[("'torch'", "'cpu'", "2")]
    assert two is not None and math.isfinite(two) and two > 0, values
    assert math.isnan(values[("'torch'", "'cpu'", "1")]), values  # the reference has no efficiency of its own
    if plans.available_devices() == ("cpu",):
        assert math.isnan(values[("'torch'", "'cuda'", "2")]), values


def test_quick_sweep_has_figures_per_batch_and_precision_and_skips_fp16_on_cpu(clone: Clone, history: list[str]) -> None:
    results = clone.results(history[0])
    batches = [str(b) for b in plans.QUICK_SWEEP_BATCH_SIZES]
    for name in SWEEP:
        row = results[name]
        assert row["params"] == [["'torch'"], ["'cpu'", "'cuda'"], batches,
                                 [f"'{p}'" for p in plans.QUICK_SWEEP_PRECISIONS]], row["params"]
        values = param_values(row)
        for batch, precision in itertools.product(batches, ("fp32",)):
            value = values[("'torch'", "'cpu'", batch, f"'{precision}'")]
            assert value is not None and math.isfinite(value) and value > 0, (name, batch, precision, value)
            assert not name.endswith("accuracy") or value <= 1, (name, value)
        for batch in batches:
            # fp16-mixed needs a GPU: the case is recorded as skipped, which asv stores as NaN (None would be a failure).
            assert math.isnan(values[("'torch'", "'cpu'", batch, "'fp16-mixed'")]), (name, batch, values)
        if plans.available_devices() == ("cpu",):
            assert all(math.isnan(v) for k, v in values.items() if k[1] == "'cuda'"), (name, values)


def test_history_of_two_commits_publishes_html(clone: Clone, history: list[str]) -> None:
    for commit in history:
        row = clone.results(commit)["training.Training.track_test_accuracy"]
        assert row["result"][0] is not None and row["result"][0] > 0.1, (commit, row)
    clone.run(sys.executable, "-m", "asv", "publish")
    html = clone.path / ".asv" / "html"
    assert (html / "index.html").is_file()
    published = set(json.loads((html / "index.json").read_text())["revision_to_hash"].values())
    assert set(history) <= published


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes whose environment carries this test's mark (zombies and vanished ones are gone)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("FASHIONBENCH_TEST_MARK") == mark and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_killed_asv_takes_setup_cache_and_its_workers_with_it(probe_cache: Path) -> None:
    """A stand-in for asv starts the real Training.setup_cache the way asv does (its own process group) and is then
    SIGKILLed while a case's worker runs: setup_cache and the worker must die, and no further worker may start."""
    mark = uuid.uuid4().hex
    env = dict(os.environ, PYTHONPATH=str(REPO), FASHIONBENCH_CACHE=str(probe_cache), FASHIONBENCH_TEST_MARK=mark,
               **{**TINY_GRID, plans.AXIS_ENVS["model"]: "dense,cnn,binary", plans.AXIS_ENVS["device"]: "cpu"})
    cache = "from benchmarks.training import Training; Training().setup_cache()"
    fake_asv = subprocess.Popen([sys.executable, "-c", "import os, subprocess, sys, time; subprocess.Popen("
                                 f"[sys.executable, '-c', {cache!r}], preexec_fn=lambda: os.setpgid(0, 0)); time.sleep(600)"],
                                cwd=REPO, env=env)
    deadline = time.monotonic() + 120
    while not any("suite.run.worker" in " ".join(p.cmdline()) for p in marked_processes(mark)):
        assert time.monotonic() < deadline and fake_asv.poll() is None, "setup_cache never started a worker"
        time.sleep(0.2)
    left = [p for p in marked_processes(mark) if p.pid != fake_asv.pid]
    fake_asv.kill()
    fake_asv.wait()
    deadline = time.monotonic() + 15
    while (alive := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in alive:  # clean up before failing, so a broken fix leaves nothing training behind
        process.kill()
    assert not alive, f"left running after asv was killed: {[' '.join(p.cmdline())[:120] for p in alive]}"
    assert len(left) >= 2, "both setup_cache and a worker were running when asv was killed"


def test_impossible_efficiency_goes_to_asv_as_nan_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.scaling import Scaling
    from tests.test_formats import _collapsed_baseline

    one, two = with_scaling_efficiency(_collapsed_baseline())
    bench = Scaling()
    bench.record = two
    assert math.isnan(bench.track_scaling_efficiency_pct(None)), "264 % is not a figure asv may store"
    assert "scaling_efficiency_pct reported as n/a: scaling efficiency 264 %" in capsys.readouterr().err
    bench.record = two.model_copy(update={"scaling_efficiency_pct": 75.0})
    assert bench.track_scaling_efficiency_pct(None) == 75.0
