"""pytest-benchmark entries: one training epoch and one inference pass per framework × model × available device.

`pytest --benchmark-enable --benchmark-only` times them (pyproject's addopts disable timing); FASHIONBENCH_QUICK=1
picks the quick grid. Each timed call is one request to a resident process built for the case (suite.run.resident),
so frameworks and devices never share a process; extra_info carries the figures of one isolated worker run of the
same spec. A plain `pytest` run executes the dense cases once, untimed, with a tiny --limit: tested, and fast.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from suite.bench import plans
from suite.core.spec import RunSpec
from suite.record.schema import RunRecord
from suite.run.resident import ResidentCase
from tests.conftest import REPO, needs_data

pytestmark = needs_data

PLAIN_LIMIT = 256
PLAIN_MODELS = ("dense",)  # cnn and binary share the backends' code paths, which test_e2e runs end to end
TRAIN_ROUNDS = 3
INFER_ROUNDS = 10
# Figures every CPU case must fill; GPU figures are present as keys (None on CPU).
REQUIRED_FIGURES = ("test_accuracy", "train_steady_samples_per_s", f"infer_bs{plans.THROUGHPUT_BATCH}_samples_per_s",
                    f"infer_bs{plans.LATENCY_BATCH}_latency_ms_p50", "host_rss_peak_bytes", "mfu_pct")
GPU_FIGURES = ("torch_peak_allocated_bytes", "tf_peak_bytes", "nvml_used_peak_bytes", "gpu_train_util_mean_pct",
               "energy_per_1k_train_samples_j")


def timing_enabled(config: pytest.Config) -> bool:
    """pytest-benchmark's own rule: timing is off with --benchmark-disable unless --benchmark-enable."""
    return not (config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))


def _param(spec: RunSpec, timed: bool) -> Any:
    marks = [pytest.mark.gpu] if spec.device == "cuda" else []  # conftest skips these where NVML lists no GPU
    if not timed and spec.model not in PLAIN_MODELS:
        reason = "untimed runs keep to dense; `pytest --benchmark-enable --benchmark-only` runs it"
        marks.append(pytest.mark.skip(reason=reason))
    return pytest.param(spec, id=f"{spec.framework}-{spec.model}-{spec.device}", marks=marks)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise by the shared grid; module scope keeps a case's two benchmarks on one resident process."""
    if "spec" not in metafunc.fixturenames:
        return
    timed = timing_enabled(metafunc.config)
    specs = plans.benchmark_specs() if timed else [replace(s, limit=PLAIN_LIMIT) for s in plans.benchmark_specs(True)]
    metafunc.parametrize("spec", [_param(s, timed) for s in specs], scope="module")


@pytest.fixture(scope="session")
def isolated_records() -> dict[str, RunRecord]:
    """Isolated worker runs by spec id: each spec is trained once per session."""
    return {}


def isolated_record(spec: RunSpec, records: dict[str, RunRecord], probe_cache: Path | None) -> RunRecord:
    """The spec's isolated worker run, once per session; `probe_cache` keeps a test's FLOP/s probe off the machine's."""
    if spec.id not in records:
        with pytest.MonkeyPatch.context() as env:
            if probe_cache is not None:
                env.setenv("FASHIONBENCH_CACHE", str(probe_cache))
            records[spec.id] = plans.run_record(spec)
    return plans.usable_record(records[spec.id])


@pytest.fixture(scope="module")
def case(request: pytest.FixtureRequest, spec: RunSpec, isolated_records: dict[str, RunRecord],
         probe_cache: Path) -> Iterator[tuple[RunRecord, ResidentCase, float]]:
    """The spec's isolated record and its resident process; timed runs start the process only after the isolated run."""
    timed = timing_enabled(request.config)
    with contextlib.ExitStack() as stack:
        # Untimed runs are tests: the resident process may start up while the isolated run works.
        early = None if timed else stack.enter_context(ResidentCase(spec))
        try:
            record = isolated_record(spec, isolated_records, None if timed else probe_cache)
            resident = early or stack.enter_context(ResidentCase(spec))
            resident.ready()
        except plans.CaseSkipped as exc:
            pytest.skip(str(exc))
        yield record, resident, resident.roundtrip_ms()


def describe(benchmark: Any, phase: str, spec: RunSpec, case: tuple[RunRecord, ResidentCase, float]) -> None:
    """Group by phase, model and device (frameworks side by side) and attach the isolated run's figures."""
    record, _, roundtrip_ms = case
    benchmark.group = f"{phase} {spec.model}/{spec.device}"
    benchmark.extra_info.update(record.to_row())
    benchmark.extra_info["harness_roundtrip_ms"] = roundtrip_ms


def test_train_epoch(benchmark: Any, spec: RunSpec, case: tuple[RunRecord, ResidentCase, float]) -> None:
    """One training epoch over the spec's training samples, device synchronised; the warm-up round takes tracing."""
    describe(benchmark, "train-epoch", spec, case)
    reply = benchmark.pedantic(case[1].train_epoch, rounds=TRAIN_ROUNDS, iterations=1, warmup_rounds=1)
    # Untimed, the call runs once; timed, after one warm-up round. Either way each call trained the next epoch.
    assert reply["epoch"] == (1 if benchmark.disabled else 1 + TRAIN_ROUNDS)
    assert math.isfinite(reply["loss"]) and reply["loss"] > 0
    if reply["epoch"] == 1:  # same spec, seed and data order as the isolated run: its first epoch, in another process
        assert reply["loss"] == pytest.approx(case[0].history[0].train_loss, rel=1e-4)
        assert reply["accuracy"] == pytest.approx(case[0].history[0].train_accuracy, abs=1e-6)


def test_inference_pass(benchmark: Any, spec: RunSpec, case: tuple[RunRecord, ResidentCase, float]) -> None:
    """One eval-mode forward of 1,024 test images in one batch, outputs copied to host."""
    describe(benchmark, "inference-pass", spec, case)
    reply = benchmark.pedantic(case[1].inference_pass, args=(plans.THROUGHPUT_BATCH,), rounds=INFER_ROUNDS,
                               iterations=1, warmup_rounds=1)
    assert reply["batch_size"] == plans.THROUGHPUT_BATCH and 0 < reply["seconds"] < 60


def test_benchmark_only_json_carries_the_isolated_figures(tmp_path: Path, probe_cache: Path) -> None:
    """The documented timing command on a one-case quick grid writes JSON with timings, groups and extra_info."""
    out = tmp_path / "bench.json"
    grid = {plans.QUICK_ENV: "1", plans.LIMIT_ENV: str(PLAIN_LIMIT), plans.AXIS_ENVS["framework"]: "torch",
            plans.AXIS_ENVS["model"]: "dense", plans.AXIS_ENVS["device"]: "cpu"}
    env = dict(os.environ, FASHIONBENCH_CACHE=str(probe_cache), **grid)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_bench.py", "--benchmark-enable", "--benchmark-only",
         "-p", "no:cacheprovider", f"--benchmark-json={out}", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    benchmarks = {b["name"]: b for b in json.loads(out.read_text())["benchmarks"]}
    assert set(benchmarks) == {"test_train_epoch[torch-dense-cpu]", "test_inference_pass[torch-dense-cpu]"}
    train, infer = benchmarks["test_train_epoch[torch-dense-cpu]"], benchmarks["test_inference_pass[torch-dense-cpu]"]
    assert (train["group"], train["stats"]["rounds"]) == ("train-epoch dense/cpu", TRAIN_ROUNDS)
    assert (infer["group"], infer["stats"]["rounds"]) == ("inference-pass dense/cpu", INFER_ROUNDS)
    for bench in (train, infer):
        info = bench["extra_info"]
        assert bench["stats"]["median"] > 0
        assert all(info[name] is not None and info[name] > 0 for name in REQUIRED_FIGURES), info
        assert all(name in info for name in GPU_FIGURES), info
        spec = (info["framework"], info["model"], info["limit"], info["status"])
        assert spec == ("torch", "dense", PLAIN_LIMIT, "ok"), spec
        assert 0 < info["harness_roundtrip_ms"] < 50, info["harness_roundtrip_ms"]  # a pipe round trip, not work
