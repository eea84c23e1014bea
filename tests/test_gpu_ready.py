"""GPU readiness: the suite runs on a GPU image as it comes (no TensorFlow, no asv, another torch), the GPU speed
settings, the GPU sanity rules (synthetic records here, real ones where a GPU is present) and the one-shot GPU check."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite.core.spec import TORCH_COMPILE_MODES, RunSpec, SpecError, grid
from suite.measure.machine import fingerprint
from suite.record.schema import RunRecord, read_store
from suite.run.worker import LAUNCH_BOUND_SHARE, step_balance
from tests.conftest import REPO, needs_data, run_cli

GPU_IMAGE = REPO / "tests" / "helpers" / "no_tensorflow"
OTHER_TORCH = "2.11.0+cu130"  # the torch of the target H200 image, not the pinned one


def image_env() -> dict[str, str]:
    """PYTHONPATH with the blocker first: tensorflow and asv cannot be imported, torch says it is 2.11."""
    return {"PYTHONPATH": f"{GPU_IMAGE}:{REPO}", "FASHIONBENCH_FAKE_TORCH_VERSION": OTHER_TORCH}


def test_the_image_helper_really_blocks():
    code = ("import importlib.util, torch; print(importlib.util.find_spec('tensorflow'), importlib.util.find_spec('asv'), "
            "torch.__version__)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **image_env()}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "None", OTHER_TORCH]


@needs_data
def test_cli_runs_without_tensorflow_or_asv_and_with_another_torch(tmp_path: Path, probe_cache: Path):
    results, report = tmp_path / "results", tmp_path / "report"
    out = run_cli("run", "--framework", "torch", "keras", "--keras-backend", "tensorflow", "torch", "jax",
                  "--model", "dense", "--device", "cpu", "--epochs", "2", "--limit", "300", "--infer-batch-sizes", "1",
                  "--results", str(results), cache=probe_cache, env=image_env())
    assert out.returncode == 0, out.stderr[-3000:]
    records = {(r.spec["framework"], r.spec["keras_backend"] if r.spec["framework"] == "keras" else None): r
               for r in read_store([results])[0]}
    assert set(records) == {("torch", None), ("keras", "tensorflow"), ("keras", "torch"), ("keras", "jax")}
    tf_case = records.pop(("keras", "tensorflow"))
    assert tf_case.status == "skipped" and "needs TensorFlow, which cannot be imported here" in tf_case.error
    for key, record in records.items():
        assert record.status == "ok", (key, record.error, record.stderr_tail)
    assert records[("torch", None)].framework_info["torch_version"] == OTHER_TORCH
    assert records[("keras", "torch")].framework_info["torch_version"] == OTHER_TORCH
    for command in (["show", "--results", str(results)], ["report", "--results", str(results), "--out", str(report)]):
        done = run_cli(*command, env=image_env())
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert "Keras backend tensorflow needs TensorFlow" in (report / "index.html").read_text()


def test_reduce_overhead_and_large_batches_are_plan_settings():
    assert "reduce-overhead" in TORCH_COMPILE_MODES
    plan = grid({"framework": ["torch", "keras"], "model": ["cnn"], "compile": ["none", "reduce-overhead"],
                 "batch_size": [512, 8192]})
    assert {(s.framework, s.compile, s.batch_size) for s in plan} == {
        ("torch", "none", 512), ("torch", "reduce-overhead", 512), ("torch", "none", 8192),
        ("torch", "reduce-overhead", 8192), ("keras", "none", 512), ("keras", "none", 8192)}
    with pytest.raises(SpecError, match="--batch-size 16384 is larger than the 9600 training samples of --model binary"):
        grid({"framework": ["torch"], "model": ["binary"], "batch_size": [16384]})
    with pytest.raises(SpecError, match="--compile reduce-overhead applies to torch"):
        RunSpec(framework="keras", model="cnn", compile="reduce-overhead")


def _timed_record(device: str, step_ms: float, launch_ms: float | None) -> RunRecord:
    spec = RunSpec(framework="torch", model="dense", device=device, batch_size=100)
    return RunRecord(case_id=spec.id, case_key=spec.case_key, machine=fingerprint(), spec=spec.to_dict(), status="ok",
                     steady_epoch_s=0.5, train_samples=1000, step_time_ms_p50=step_ms, step_launch_ms_p50=launch_ms)


def test_step_balance_puts_synced_steps_next_to_the_sync_free_loop():
    spec = RunSpec(framework="torch", model="dense", device="cuda", batch_size=100)
    launch_bound = _timed_record("cuda", step_ms=2.0, launch_ms=LAUNCH_BOUND_SHARE * 2.0)
    step_balance(launch_bound, spec)
    assert launch_bound.sync_free_step_ms == pytest.approx(50.0)  # 0.5 s over 10 steps
    assert launch_bound.synced_step_ratio == pytest.approx(2.0 / 50.0) and launch_bound.launch_bound is True
    device_bound = _timed_record("cuda", step_ms=2.0, launch_ms=0.2)
    step_balance(device_bound, spec)
    assert device_bound.launch_bound is False
    on_cpu = _timed_record("cpu", step_ms=2.0, launch_ms=2.0)
    step_balance(on_cpu, RunSpec(framework="torch", model="dense", batch_size=100))
    assert on_cpu.launch_bound is None and math.isclose(on_cpu.sync_free_step_ms, 50.0)
