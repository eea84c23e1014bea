"""CUDA code paths checked with fakes (this machine has no GPU), plus real-GPU tests marked `gpu`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from suite.backends import DeviceUnavailable
from suite.core.spec import RunSpec
from suite.measure.machine import fingerprint
from suite.record.schema import RunRecord
from suite.record.store import read_store
from tests.conftest import REPO, needs_data, run_cli


class FakeTfConfig:
    """Records the tf.config calls the Keras backend makes."""

    def __init__(self, gpus: list[str]) -> None:
        self.gpus = gpus
        self.calls: list[tuple] = []
        self.experimental = SimpleNamespace(
            set_memory_growth=lambda gpu, on: self.calls.append(("memory_growth", gpu, on)),
            reset_memory_stats=lambda name: self.calls.append(("reset", name)),
            get_memory_info=lambda name: {"current": 10, "peak": 123_456},
        )

    def list_physical_devices(self, kind: str) -> list[str]:
        return list(self.gpus)

    def set_visible_devices(self, devices: list, kind: str) -> None:
        self.calls.append(("visible", tuple(devices), kind))


@pytest.fixture
def fake_tf(monkeypatch):
    from suite.backends import keras_backend

    def install(gpus: list[str]) -> FakeTfConfig:
        config = FakeTfConfig(gpus)
        fake = SimpleNamespace(config=config, __version__="fake", test=SimpleNamespace(is_built_with_cuda=lambda: True))
        monkeypatch.setattr(keras_backend, "tf", fake)
        return config

    return keras_backend, install


def test_tensorflow_gets_memory_growth_on_every_gpu(fake_tf):
    keras_backend, install = fake_tf
    config = install(["GPU:0", "GPU:1"])
    assert keras_backend.configure_tensorflow_device("cuda") == "/GPU:0"
    assert config.calls == [("memory_growth", "GPU:0", True), ("memory_growth", "GPU:1", True)]


def test_tensorflow_cpu_cases_hide_the_gpus(fake_tf):
    keras_backend, install = fake_tf
    config = install(["GPU:0"])
    assert keras_backend.configure_tensorflow_device("cpu") == "/CPU:0"
    assert config.calls == [("visible", (), "GPU")]


def test_tensorflow_without_gpu_raises_device_unavailable(fake_tf):
    keras_backend, install = fake_tf
    install([])
    with pytest.raises(DeviceUnavailable, match="TensorFlow fake sees no GPU"):
        keras_backend.configure_tensorflow_device("cuda")


def test_keras_device_memory_reads_the_tf_allocator_peak_on_gpu_only(fake_tf):
    keras_backend, install = fake_tf
    config = install(["GPU:0"])
    backend = keras_backend.KerasBackend()
    assert backend.device_memory() == {"tf_peak_bytes": None}
    backend.reset_device_memory_peak()
    assert config.calls == []
    backend.tf_device = "/GPU:0"
    backend.reset_device_memory_peak()
    assert config.calls == [("reset", "GPU:0")]
    assert backend.device_memory() == {"tf_peak_bytes": 123_456}


@pytest.fixture
def torch_backend(monkeypatch):
    pytest.importorskip("torch")
    from suite.backends import torch_backend as module

    calls: list[str] = []
    cuda = module.torch.cuda
    monkeypatch.setattr(cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: 1_000)
    monkeypatch.setattr(cuda, "max_memory_reserved", lambda device=None: 2_000)
    return module, calls


def test_torch_cuda_unavailable_is_a_device_error(torch_backend, monkeypatch):
    module, _ = torch_backend
    monkeypatch.setattr(module.torch.cuda, "is_available", lambda: False)
    assert "torch.cuda.is_available() is False" in module.cuda_unavailable_reason()
    with pytest.raises(DeviceUnavailable):
        module.TorchBackend().setup(RunSpec(framework="torch", model="dense", device="cuda"))


def test_torch_synchronises_and_reads_peaks_only_on_cuda(torch_backend):
    module, calls = torch_backend
    backend = module.TorchBackend()
    backend.sync()
    backend.reset_device_memory_peak()
    assert calls == [] and backend.device_memory() == {"torch_peak_allocated_bytes": None, "torch_peak_reserved_bytes": None}
    backend.device = module.torch.device("cuda", 0)
    backend.sync()
    backend.reset_device_memory_peak()
    assert calls == ["sync", "reset"]
    assert backend.device_memory() == {"torch_peak_allocated_bytes": 1_000, "torch_peak_reserved_bytes": 2_000}


@needs_data
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_worker_itself_skips_cuda_when_the_framework_has_no_gpu(tmp_path: Path, framework: str):
    spec = RunSpec(framework=framework, model="dense", device="cuda", epochs=1, limit=200, batch_size=50)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"spec": spec.to_dict(), "machine": fingerprint().model_dump()}))
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-m", "suite.run.worker", str(job), str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = RunRecord.model_validate_json(out.read_text())
    if record.status == "ok":
        pytest.skip("this machine has a usable GPU")
    assert record.status == "skipped" and record.error.startswith("cuda unavailable:")
    assert ("torch.cuda.is_available() is False" if framework == "torch" else "sees no GPU") in record.error


@pytest.mark.gpu
@needs_data
def test_real_gpu_run_fills_device_figures(tmp_path: Path, probe_cache: Path):
    # Keras on torch and JAX: GPU images as they come have no TensorFlow (tests/test_gpu_ready.py).
    out = run_cli("run", "--framework", "torch", "keras", "--keras-backend", "torch", "jax", "--model", "cnn",
                  "--device", "cuda", "--epochs", "2", "--limit", "2000", "--infer-batch-sizes", "1", "--results", str(tmp_path),
                  cache=probe_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    records, _ = read_store([tmp_path])
    for record in records:
        assert record.status == "ok", record.error
        assert record.gpu_train is not None and record.gpu_train.available, record.gpu_train
        assert record.nvml_used_peak_bytes and record.nvml_used_peak_bytes > 0
        device_peak = record.torch_peak_allocated_bytes or record.tf_peak_bytes or record.jax_peak_bytes
        assert device_peak and device_peak > 0
