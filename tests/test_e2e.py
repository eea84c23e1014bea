"""Real end-to-end runs: both frameworks × dense/cnn/binary on CPU with a small --limit, CUDA skipped, variants, show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.core.models import param_count
from suite.measure.nvml import gpu_inventory
from suite.record.schema import RunRecord
from suite.record.store import read_store
from tests.conftest import needs_data, run_cli

pytestmark = needs_data
LIMIT = 600


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, probe_cache: Path) -> tuple[Path, list[RunRecord], str]:
    """One real run of the whole small matrix, shared by the tests below."""
    results = tmp_path_factory.mktemp("results")
    out = run_cli("run", "--framework", "torch", "keras", "--model", "dense", "cnn", "binary", "--device", "cpu", "cuda",
                  "--epochs", "2", "--limit", str(LIMIT), "--batch-size", "64", "--infer-batch-sizes", "1", "32",
                  "--results", str(results), cache=probe_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    records, problems = read_store([results])
    assert not problems
    return results, records, out.stdout


def cpu_records(records: list[RunRecord]) -> list[RunRecord]:
    return [r for r in records if r.spec["device"] == "cpu"]


def test_every_case_is_recorded_once(matrix):
    _, records, stdout = matrix
    assert len(records) == 12
    assert {(r.spec["framework"], r.spec["model"], r.spec["device"]) for r in records} == {
        (f, m, d) for f in ("torch", "keras") for m in ("dense", "cnn", "binary") for d in ("cpu", "cuda")}
    assert "[12/12]" in stdout


def test_cpu_cases_learn_and_fill_every_cpu_figure(matrix):
    _, records, _ = matrix
    for r in cpu_records(records):
        spec = r.run_spec
        assert r.status == "ok", r.error
        chance = 0.5 if spec.model == "binary" else 0.1
        assert r.test_accuracy > chance + 0.2, (spec.label, r.test_accuracy)
        assert r.params == param_count(spec)
        assert [h.epoch for h in r.history] == [1, 2] and all(h.val_accuracy is not None for h in r.history)
        assert r.train_samples == LIMIT
        assert r.train_steady_samples_per_s == pytest.approx(LIMIT / r.steady_epoch_s)
        assert r.first_epoch_s == r.history[0].train_s and r.train_total_s == pytest.approx(sum(h.train_s for h in r.history))
        assert 0 < r.step_time_ms_p50 <= r.step_time_ms_p95
        assert [i.batch_size for i in r.inference] == [1, 32]
        assert all(0 < i.latency_ms_p50 <= i.latency_ms_p99 and i.samples_per_s > 0 for i in r.inference)
        assert r.host_rss_peak_bytes >= r.host_rss_baseline_bytes > 50 * 2**20
        assert r.cpu_util_pct > 0
        assert 0 < r.mfu_pct < 100 and r.peak_flops_per_s > 0
        assert r.achieved_train_flops_per_s == pytest.approx(r.train_flops_per_sample * r.train_steady_samples_per_s)
        assert set(r.time_to_accuracy_s) == {f"{t:g}" for t in spec.effective_targets}
        classes = 2 if spec.model == "binary" else 10
        assert len(r.per_class_accuracy) == classes and len(r.class_names) == classes
        assert sum(map(sum, r.confusion_matrix)) == (2000 if spec.model == "binary" else 10000)
        assert r.framework_info["intra_op_threads"] == spec.threads
        assert r.framework_info["inter_op_threads"] == 1


def test_gpu_figures_are_null_on_cpu(matrix):
    _, records, _ = matrix
    for r in cpu_records(records):
        assert r.gpu_train is None and r.gpu_inference is None and r.energy_per_1k_train_samples_j is None
        assert r.torch_peak_allocated_bytes is None and r.tf_peak_bytes is None and r.nvml_used_peak_bytes is None


@pytest.mark.skipif(bool(gpu_inventory()), reason="a GPU is present: CUDA cases run instead of being skipped")
def test_absent_cuda_is_skipped_with_the_reason(matrix):
    _, records, stdout = matrix
    cuda = [r for r in records if r.spec["device"] == "cuda"]
    assert len(cuda) == 6
    for r in cuda:
        assert r.status == "skipped" and r.error.startswith("cuda unavailable:")
        assert r.test_accuracy is None
    assert "skipped" in stdout


def test_records_carry_the_machine_and_commit(matrix):
    _, records, _ = matrix
    for r in records:
        assert r.machine.cpu_cores_logical >= 1 and r.machine.ram_bytes > 0
        assert r.machine.versions["torch"] and r.machine.versions["keras"]
    assert all(r.framework_info.get("keras_backend") == "tensorflow" for r in cpu_records(records)
               if r.spec["framework"] == "keras")


def test_show_prints_one_row_per_case(matrix):
    results, records, _ = matrix
    out = run_cli("show", "--results", str(results), "--format", "csv")
    assert out.returncode == 0
    rows = [line for line in out.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 12
    torch_cnn = next(r for r in records if r.spec["framework"] == "torch" and r.spec["model"] == "cnn"
                     and r.spec["device"] == "cpu")
    assert f"{torch_cnn.test_accuracy:.4f}" in out.stdout


def test_strict_turns_a_skip_into_failure(tmp_path: Path, probe_cache: Path):
    if gpu_inventory():
        pytest.skip("a GPU is present: nothing to skip")
    out = run_cli("run", "--framework", "torch", "--model", "dense", "--device", "cuda", "--strict",
                  "--results", str(tmp_path), cache=probe_cache)
    assert out.returncode == 1 and "--strict" in out.stderr
    records, _ = read_store([tmp_path])
    assert [r.status for r in records] == ["skipped"]


def test_variants_and_repeats_end_to_end(tmp_path: Path, probe_cache: Path):
    out = run_cli("run", "--framework", "torch", "keras", "--model", "dense", "--device", "cpu", "--epochs", "3",
                  "--limit", "800",
                  "--batch-size", "64", "--batchnorm", "--dropout", "0.3", "--augment", "--early-stopping", "1",
                  "--init", "shared", "--repeats", "2", "--infer-batch-sizes", "8", "--results", str(tmp_path),
                  cache=probe_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    records, _ = read_store([tmp_path])
    assert len(records) == 4
    for r in records:
        assert r.status == "ok", r.error
        assert r.spec["batchnorm"] and r.spec["augment"] and r.spec["dropout"] == 0.3 and r.spec["init"] == "shared"
        assert r.params == param_count(r.run_spec) == 101_770 + 256
        assert r.best_epoch is not None and 1 <= r.best_epoch <= len(r.history) <= 3
        assert min(h.val_loss for h in r.history) == r.history[r.best_epoch - 1].val_loss
    assert sorted(r.spec["seed"] for r in records) == [0, 0, 1, 1]
    shown = run_cli("show", "--results", str(tmp_path), "--format", "json")
    assert {item["runs"] for item in json.loads(shown.stdout)} == {2}
