"""Keras trains from device-resident data (JAX arrays via jax.device_put, torch tensors, TensorFlow's pipeline copying
batches to the device) in the shared order, exactly as it did from numpy arrays, and says where the data is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from suite.record.store import read_store
from tests.conftest import REPO, needs_data, run_cli


def _train_both_feeds(keras_backend: str, steps_per_execution: int) -> tuple[dict, dict]:
    """The resident and the numpy feed trained side by side, one process each (one thread each, so neither's
    figures depend on the other running)."""
    runs = [subprocess.Popen([sys.executable, "tests/helpers/keras_resident.py", keras_backend, feed,
                              str(steps_per_execution)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for feed in ("resident", "numpy")]
    results = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results[0], results[1]


@needs_data
@pytest.mark.parametrize(("keras_backend", "steps_per_execution", "device"), [
    ("jax", 1, "cpu:0 (jax arrays)"), ("jax", 4, "cpu:0 (jax arrays)"), ("torch", 1, "cpu (torch tensors)"),
    ("tensorflow", 1, "cpu:0 (tf.data: gathered on the host, copied to the device)")])
def test_resident_feed_trains_exactly_like_numpy_arrays_in_the_shared_order(keras_backend: str, steps_per_execution: int,
                                                                            device: str):
    resident, numpy_feed = _train_both_feeds(keras_backend, steps_per_execution)
    assert resident["epochs"] == numpy_feed["epochs"]  # loss and accuracy of both epochs, bit for bit
    for ours, theirs in zip(resident["weights"], numpy_feed["weights"]):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert resident["data_device"] == device and numpy_feed["data_device"] == "cpu (numpy arrays)"
    profile = resident["profile"]
    if keras_backend == "tensorflow":
        assert "not measured on Keras/TensorFlow" in profile["profile_note"]
    else:  # a real profiler ran over the fit: the steps are counted, and a CPU has no kernels to be busy with
        assert profile["profiled_steps"] == 5 and profile["kernel_busy_pct"] is None
        assert profile["profile_note"] == "a CPU case runs no GPU kernels"


def test_describe_device_reads_the_array_it_is_given():
    from suite.backends.keras_backend import describe_device

    class Placed:
        def __init__(self, platform: str) -> None:
            self.platform, self.id = platform, 0

    class JaxLike:
        def __init__(self, platform: str) -> None:
            self._device = Placed(platform)

        def devices(self) -> set:
            return {self._device}

    class TfLike:
        device = "/job:localhost/replica:0/task:0/device:GPU:0"

    assert describe_device(np.zeros(2)) == "cpu (numpy arrays)"
    assert describe_device(JaxLike("gpu")) == "cuda:0 (jax arrays)"
    assert describe_device(TfLike()) == "cuda:0 (tf.data: gathered on the host, copied to the device)"


@pytest.mark.gpu
@needs_data
def test_real_gpu_keras_trains_from_data_on_the_gpu(tmp_path: Path, probe_cache: Path):
    out = run_cli("run", "--framework", "keras", "--keras-backend", "jax", "torch", "--model", "dense", "--device", "cuda",
                  "--epochs", "2", "--limit", "4000", "--batch-size", "500", "--infer-batch-sizes", "1",
                  "--results", str(tmp_path), cache=probe_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    records = read_store([tmp_path])[0]
    assert len(records) == 2
    for record in records:
        assert record.status == "ok", (record.error, record.stderr_tail)
        assert record.train_data_device.startswith("cuda:0 ("), record.train_data_device
        assert record.kernel_busy_pct is not None and 0 < record.kernel_busy_pct <= 100, record.profile_note
