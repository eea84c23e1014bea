"""Keras 3 implementation of the Backend protocol on the TensorFlow backend: Sequential model, `fit` per epoch."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from suite.backends import DeviceUnavailable
from suite.data import Prepared
from suite.models import BN_EPSILON, BN_MOMENTUM_TORCH, Layer, architecture
from suite.spec import RunSpec

# Modules are bound in setup(): KERAS_BACKEND must be set before keras is first imported.
tf: Any = None
keras: Any = None


def _import_frameworks(keras_backend: str) -> None:
    global tf, keras
    os.environ["KERAS_BACKEND"] = keras_backend
    import tensorflow
    import keras as keras_module

    tf, keras = tensorflow, keras_module


def configure_tensorflow_device(device: str) -> str:
    """Hide GPUs for CPU cases; on CUDA enable memory growth (else TF reserves the whole card). Returns the TF device name."""
    gpus = tf.config.list_physical_devices("GPU")
    if device != "cuda":
        tf.config.set_visible_devices([], "GPU")
        return "/CPU:0"
    if not gpus:
        raise DeviceUnavailable(
            f"TensorFlow {tf.__version__} sees no GPU (built with CUDA: {tf.test.is_built_with_cuda()})"
        )
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return "/GPU:0"


def _keras_layer(layer: Layer) -> Any:
    layers = keras.layers
    kind = layer.kind
    if kind == "dense":
        return layers.Dense(layer.units)
    if kind == "conv":
        return layers.Conv2D(layer.units, layer.kernel)
    if kind == "batchnorm":
        return layers.BatchNormalization(momentum=1 - BN_MOMENTUM_TORCH, epsilon=BN_EPSILON)
    if kind == "relu":
        return layers.ReLU()
    if kind == "maxpool":
        return layers.MaxPooling2D(layer.kernel)
    if kind == "flatten":
        return layers.Flatten()
    if kind == "dropout":
        return layers.Dropout(layer.rate)
    if kind == "sigmoid":
        return layers.Activation("sigmoid")
    raise ValueError(f"no Keras layer for layer kind {kind!r}")


def build_model(spec: RunSpec) -> Any:
    """keras.Sequential with exactly the layers of suite.models.architecture (input NHWC)."""
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), *(_keras_layer(layer) for layer in architecture(spec))])


class KerasBackend:
    """The Backend protocol for Keras 3 (TensorFlow backend)."""

    def __init__(self) -> None:
        self.tf_device = "/CPU:0"
        self.batch_size = 128
        self.model: Any = None
        self.arrays: dict[str, tuple[Any, Any]] = {}

    def setup(self, spec: RunSpec) -> dict[str, Any]:
        """Threads and device visibility must be set before TensorFlow runs its first op."""
        _import_frameworks(spec.keras_backend)
        tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self.tf_device = configure_tensorflow_device(spec.device)
        keras.utils.set_random_seed(spec.seed)
        self.batch_size = spec.batch_size
        return {
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "device_name": self.tf_device,
            "op_determinism": False,
        }

    def build(self, spec: RunSpec, weights: list[list[np.ndarray]] | None) -> None:
        """Sequential model compiled with Adam and the course's losses (logits for 10-class, sigmoid for binary)."""
        with tf.device(self.tf_device):
            self.model = build_model(spec)
            if weights is not None:
                self.model.set_weights([array for group in weights for array in group])
            binary = spec.model == "binary"
            loss = keras.losses.BinaryCrossentropy() if binary else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.model.compile(optimizer=keras.optimizers.Adam(learning_rate=spec.lr), loss=loss, metrics=["accuracy"])

    def _place(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        x = images[..., np.newaxis].astype(np.float32, copy=False)
        if self.tf_device == "/CPU:0":
            return x, labels
        with tf.device(self.tf_device):
            return tf.constant(x), tf.constant(labels)

    def load_data(self, data: Prepared) -> None:
        """Splits as NHWC arrays (device tensors on GPU)."""
        self.arrays = {
            "train": self._place(data.x_train, data.y_train),
            "val": self._place(data.x_val, data.y_val),
            "test": self._place(data.x_test, data.y_test),
        }

    def _take(self, array: Any, order: np.ndarray) -> Any:
        return np.take(array, order, axis=0) if isinstance(array, np.ndarray) else tf.gather(array, order)

    def train_epoch(self, order: np.ndarray, train_images: np.ndarray | None = None) -> tuple[float, float]:
        """One `fit` epoch over samples pre-arranged in the shared order (shuffle off so the order is ours)."""
        x, y = self.arrays["train"]
        if train_images is not None:
            x = self._place(train_images, np.empty(0))[0]
        history = self.model.fit(
            self._take(x, order), self._take(y, order), batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0
        )
        return float(history.history["loss"][-1]), float(history.history["accuracy"][-1])

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Eval-mode outputs for arbitrary images."""
        return np.asarray(self.model.predict_on_batch(images[..., np.newaxis].astype(np.float32)))

    def outputs(self, split: str, batch_size: int = 1024) -> np.ndarray:
        """`predict` over a stored split."""
        return np.asarray(self.model.predict(self.arrays[split][0], batch_size=batch_size, verbose=0))

    def step_times_s(self, steps: int) -> list[float]:
        """`train_on_batch` returns host values, which synchronises each step."""
        x, y = self.arrays["train"]
        times = []
        for i in range(steps):
            start = (i * self.batch_size) % max(1, len(x) - self.batch_size + 1)
            xb, yb = x[start:start + self.batch_size], y[start:start + self.batch_size]
            t0 = time.perf_counter()
            self.model.train_on_batch(xb, yb)
            times.append(time.perf_counter() - t0)
        return times

    def inference_latencies_s(self, batch_size: int, calls: int, warmup_calls: int) -> list[float]:
        """`predict_on_batch` (compiled predict function) returns numpy, so each call ends on the host."""
        x_test = self.arrays["test"][0]
        reps = -(-batch_size // len(x_test))
        xb = (x_test if reps == 1 else np.concatenate([np.asarray(x_test)] * reps))[:batch_size]
        times = []
        for i in range(warmup_calls + calls):
            t0 = time.perf_counter()
            self.model.predict_on_batch(xb)
            elapsed = time.perf_counter() - t0
            if i >= warmup_calls:
                times.append(elapsed)
        return times

    def snapshot(self) -> list[np.ndarray]:
        """Copies of all weights."""
        return [w.copy() for w in self.model.get_weights()]

    def restore(self, state: list[np.ndarray]) -> None:
        """Load a snapshot."""
        self.model.set_weights(state)

    def reset_device_memory_peak(self) -> None:
        """reset_memory_stats raises on CPU, so only GPUs are reset."""
        if self.tf_device != "/CPU:0":
            tf.config.experimental.reset_memory_stats("GPU:0")

    def device_memory(self) -> dict[str, int | None]:
        """TF allocator peak since the last reset (None on CPU)."""
        if self.tf_device == "/CPU:0":
            return {"tf_peak_bytes": None}
        return {"tf_peak_bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"])}

    def trainable_params(self) -> int:
        """Sum of trainable weight sizes (BN moving statistics excluded, as in torch)."""
        return int(sum(np.prod(w.shape) for w in self.model.trainable_weights))

    def sync(self) -> None:
        """TF has no public device barrier; every timed call here ends by fetching a host value instead."""


def make_backend() -> KerasBackend:
    """Entry point used by suite.backends.get_backend."""
    return KerasBackend()
