"""Runner decisions that need no real failure to check: exit descriptions, OOM recognition, worker environment."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from suite.core.spec import RunSpec
from suite.run.runner import OOM_HINT, case_env, describe_exit, looks_like_oom

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text", [
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total capacity)",
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with shape[1024,1600]",
    "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1073741824 bytes.",
    "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 8.00 GiB ... MemoryError",
    "terminate called after throwing an instance of 'std::bad_alloc'",
])
def test_out_of_memory_messages_of_both_frameworks_are_recognised(text: str):
    assert looks_like_oom(text)
    assert OOM_HINT in describe_exit(-signal.SIGABRT, text)


def test_ordinary_failures_are_not_called_oom():
    assert not looks_like_oom("ValueError: shapes (128,10) and (128,) not aligned")
    assert describe_exit(3, "boom") == "worker exited with code 3 without writing a record"


def test_sigkill_mentions_the_oom_killer():
    assert "out-of-memory killer" in describe_exit(-signal.SIGKILL, "")


def test_worker_environment_fixes_threads_for_every_framework_and_hides_gpus_on_cpu():
    env = case_env(RunSpec(framework="keras", model="cnn", threads=3))
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["TF_NUM_INTRAOP_THREADS"] == "3"
    assert env["TF_NUM_INTEROP_THREADS"] == "1" and env["KERAS_BACKEND"] == "tensorflow"
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    cuda_env = case_env(RunSpec(framework="torch", model="cnn", device="cuda"))
    assert cuda_env.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES"), "CUDA cases keep the user's choice"
    jax_env = case_env(RunSpec(framework="keras", model="cnn", device="cuda", keras_backend="jax"))
    assert jax_env["KERAS_BACKEND"] == "jax" and jax_env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_nothing_is_unpickled_and_torch_loads_are_weights_only():
    sources = [p for p in (REPO / "suite").rglob("*.py")]
    for path in sources:
        text = path.read_text()
        assert not re.search(r"\bimport pickle\b|\bpickle\.load|\bcloudpickle\b|\bjoblib\.load|np\.load\(.*allow_pickle=True",
                             text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
