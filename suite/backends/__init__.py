"""The one small interface both frameworks implement; the only package that imports torch, TensorFlow or Keras."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from suite.core.data import Prepared
from suite.core.frameworks import FRAMEWORKS
from suite.core.spec import RunSpec

StepHook = Callable[[int], None]


class Unsupported(RuntimeError):
    """This case cannot run here (a setting the device or installation lacks); it is recorded as skipped with the message."""


class DeviceUnavailable(Unsupported):
    """The requested device is not usable in this process; the message says why."""


def skip_message(spec: RunSpec, exc: Unsupported) -> str:
    """The `skipped` reason recorded for an Unsupported case."""
    return f"{spec.device} unavailable: {exc}" if isinstance(exc, DeviceUnavailable) else str(exc)


class Backend(Protocol):
    """One framework driving one model on one device inside one worker process."""

    def setup(self, spec: RunSpec) -> dict[str, Any]:
        """Set threads, seeds and the device before any framework op; return what was set."""

    def build(self, spec: RunSpec, weights: list[list[np.ndarray]] | None) -> None:
        """Create model, loss and optimizer; load shared weights (Keras layout) when given."""

    def load_data(self, data: Prepared) -> None:
        """Move every split into framework memory on the device once."""

    def train_epoch(self, order: np.ndarray, train_images: np.ndarray | None = None,
                    on_step: StepHook | None = None) -> tuple[float, float]:
        """Run one epoch over train samples in `order` (optionally replacing the images); return mean loss and accuracy.
        `on_step(i)` is called as step i (0-based) is about to start, without waiting for the device."""

    def outputs(self, split: str, batch_size: int = 1024) -> np.ndarray:
        """Model outputs (logits, or sigmoid probabilities for binary) for `val` or `test`, in eval mode."""

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Model outputs for arbitrary images in eval mode."""

    def step_times_s(self, steps: int) -> tuple[list[float], list[float] | None]:
        """Seconds of single optimizer steps, each ended by a device sync, and the seconds until each step returned
        before that sync (None where a step cannot return before the device is done)."""

    def step_profile(self, steps: int, trace_path: Path | None) -> dict[str, Any]:
        """`steps` steady training steps under the framework's profiler: the RunRecord profile fields (kernel_busy_pct,
        gpu_kernels_per_step, ... or profile_note saying why not), the trace kept at `trace_path` when given."""

    def launch_free_floor(self) -> dict[str, Any]:
        """floor_step_ms, floor_replays and floor_note of this model and batch (empty where there is none)."""

    def batch_sweep(self, batch_sizes: tuple[int, ...]) -> list[dict[str, Any]]:
        """The eager step and the launch-free floor at each batch size, as RunRecord.batch_sweep points (empty where
        there is no floor)."""

    def inference_latencies_s(self, batch_size: int, calls: int, warmup_calls: int) -> list[float]:
        """Seconds per forward call on `batch_size` test images, outputs copied to host."""

    def data_device(self) -> str:
        """Where the training data lives, read from the loaded data itself (e.g. cuda:0, cpu)."""

    def snapshot(self) -> Any:
        """A copy of the current weights."""

    def restore(self, state: Any) -> None:
        """Load weights from a snapshot."""

    def reset_device_memory_peak(self) -> None:
        """Start a new device-memory peak window (no-op on CPU)."""

    def device_memory(self) -> dict[str, int | None]:
        """Framework device-memory peaks since the last reset, keyed by RunRecord field name."""

    def trainable_params(self) -> int:
        """Trainable parameter count as the framework reports it."""

    def sync(self) -> None:
        """Block until queued device work is done."""

    def distribution(self) -> dict[str, Any]:
        """The data-parallel RunRecord fields: world_size, and for several replicas dist_backend, threads_per_rank,
        comm_share_pct (those the framework can give)."""


def open_backend(spec: RunSpec) -> tuple[Backend, dict[str, Any]]:
    """A backend set up for `spec` and what it set; raises Unsupported for combinations that cannot run."""
    if spec.unsupported_reason:
        raise Unsupported(spec.unsupported_reason)
    rank_module = FRAMEWORKS[spec.framework].rank_backend_module
    if spec.devices > 1 and rank_module:
        backend = importlib.import_module(rank_module).make_backend()
    else:
        backend = get_backend(spec.framework)
    return backend, backend.setup(spec)


def get_backend(name: str) -> Backend:
    """Import the framework's backend lazily and return a fresh instance."""
    if name not in FRAMEWORKS:
        raise ValueError(f"unknown framework {name!r}; choose from: {', '.join(FRAMEWORKS)}")
    module = importlib.import_module(FRAMEWORKS[name].backend_module)
    return module.make_backend()
