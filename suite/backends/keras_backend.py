"""Keras 3 implementation of the Backend protocol on its TensorFlow, JAX or PyTorch backend: Sequential model, `fit` per epoch.

TensorFlow-, JAX- and torch-specific calls (threads, device visibility, TF32, device memory) sit in small functions
keyed by the Keras backend; everything else is Keras API and identical across backends.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from suite.backends import DeviceUnavailable, StepHook, Unsupported
from suite.backends.cuda import cuda_unavailable_reason, set_cuda_tf32
from suite.backends.trace import STEPS_LABEL, jax_kernels, profile_jax, profile_torch, step_figures, torch_kernels
from suite.core.data import Prepared
from suite.core.models import BN_EPSILON, BN_MOMENTUM_TORCH, Layer, architecture
from suite.core.spec import RunSpec

# Modules are bound in setup(): KERAS_BACKEND must be set before keras is first imported.
tf: Any = None
keras: Any = None

KERAS_POLICY = {"fp32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16", "fp16-mixed": "mixed_float16"}
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
INSTALL_HINT = {"jax": "pip install jax", "torch": "pip install torch", "tensorflow": "pip install tensorflow"}


def _import_frameworks(keras_backend: str, device: str = "cpu", replicas: int = 1) -> None:
    global tf, keras
    os.environ["KERAS_BACKEND"] = keras_backend
    if keras_backend == "jax" and device == "cpu" and replicas > 1:
        # JAX shows the host as one CPU device unless told, before it starts, to present it as N.
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={replicas}".strip()
    if keras_backend == "jax":
        import importlib.util

        if importlib.util.find_spec("jax") is None:
            raise Unsupported(f"Keras backend jax needs JAX, which is not installed; {INSTALL_HINT['jax']}")
    if keras_backend == "tensorflow":
        try:
            import tensorflow
        except ImportError as exc:  # GPU images often ship torch and JAX but not TensorFlow: the other backends still run
            raise Unsupported(f"Keras backend tensorflow needs TensorFlow, which cannot be imported here ({exc}); "
                              f"use --keras-backend torch or jax, or {INSTALL_HINT['tensorflow']}") from exc
        tf = tensorflow
    try:
        import keras as keras_module
    except ImportError as exc:
        raise Unsupported(f"Keras cannot be imported here ({exc}); pip install keras "
                          "(docs/gpu.md: Carrying the suite to a GPU box)") from exc
    keras = keras_module


def configure_jax(device: str, precision: str) -> str:
    """JAX platform and matmul precision; both must be set before JAX initialises its backends on first use."""
    import jax

    jax.config.update("jax_platforms", "cuda" if device == "cuda" else "cpu")
    # JAX's default matmul precision on NVIDIA GPUs is TF32; fp32 cases ask for full fp32 explicitly.
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if precision == "tf32" else "float32")
    try:
        return str(jax.devices()[0])
    except RuntimeError as exc:
        raise DeviceUnavailable(f"JAX {jax.__version__} has no {device} backend: {str(exc).splitlines()[0]}") from exc


def configure_keras_torch(device: str, precision: str, threads: int) -> str:
    """Threads, GPU check and TF32 for Keras on PyTorch; Keras places tensors on cuda whenever torch sees a GPU."""
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    if device == "cuda":
        if reason := cuda_unavailable_reason():
            raise DeviceUnavailable(reason)
        set_cuda_tf32(precision == "tf32")
        return "cuda:0"
    return "cpu"


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
    """keras.Sequential with exactly the layers of suite.core.models.architecture (input NHWC), in the global dtype policy.

    Under a mixed policy a float32 linear activation ends the model, as the Keras mixed-precision guide says:
    outputs and loss in fp32, like torch autocast whose outputs the torch backend casts to fp32.
    """
    layers = [keras.Input(shape=(28, 28, 1)), *(_keras_layer(layer) for layer in architecture(spec))]
    if spec.precision in ("bf16", "fp16-mixed"):
        layers.append(keras.layers.Activation("linear", dtype="float32"))
    return keras.Sequential(layers)


def configure_tensorflow(device: str, precision: str, threads: int) -> str:
    """Threads, device visibility and TF32 must be set before TensorFlow runs its first op."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf_device = configure_tensorflow_device(device)
    if device == "cuda":
        # TensorFlow enables TF32 by default on Ampere+; fp32 cases switch it off so they measure fp32.
        tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
    return tf_device


def step_callback(on_step: StepHook) -> Any:
    """A Keras callback calling `on_step(i)` as step i begins. It has no batch-end hook, which would make `fit` wait for
    (and convert) every step's logs; with steps_per_execution N it is called once per N steps."""

    class StepHookCallback(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            on_step(batch)

    return StepHookCallback()


def tensorflow_strategy(device: str, replicas: int) -> Any:
    """tf.distribute.MirroredStrategy over `replicas` GPUs, or over as many logical CPU devices carved out of the one
    physical CPU (all sharing its intra-op thread pool); must run before TensorFlow's first op."""
    if device == "cuda":
        count = len(tf.config.list_physical_devices("GPU"))
        if count < replicas:
            raise DeviceUnavailable(f"--devices {replicas} needs {replicas} GPUs; TensorFlow sees {count}")
        names = [f"/GPU:{i}" for i in range(replicas)]
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
        names = [f"/CPU:{i}" for i in range(replicas)]
    return tf.distribute.MirroredStrategy(names)


def jax_data_parallel(replicas: int) -> Any:
    """keras.distribution.DataParallel over the first `replicas` JAX devices, set as the global distribution so every
    variable and batch created afterwards is laid out by it."""
    import jax

    devices = jax.devices()
    if len(devices) < replicas:
        raise DeviceUnavailable(f"--devices {replicas} needs {replicas} {devices[0].platform} devices; JAX sees {len(devices)}")
    distribution = keras.distribution.DataParallel(devices=devices[:replicas])
    keras.distribution.set_distribution(distribution)
    return distribution


def device_arrays(keras_backend: str, device: str, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
    """Images (NHWC) and labels as arrays on the case's device: jax.device_put onto JAX's first device, or torch tensors
    on cuda:0 / cpu. fit takes batches of them without a host copy (Keras turns *whole* JAX arrays given to fit into
    numpy, so the batches are handed to it one by one: `in_order_batches`)."""
    x = images[..., np.newaxis].astype(np.float32, copy=False)
    if keras_backend == "jax":
        import jax

        target = jax.devices()[0]
        return jax.device_put(x, target), jax.device_put(labels, target)
    import torch

    target = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
    return torch.from_numpy(x).to(target), torch.from_numpy(labels).to(target)


def take_in_order(keras_backend: str, x: Any, y: Any, order: np.ndarray) -> tuple[Any, Any]:
    """The samples in the epoch's order, gathered on the device the arrays live on (one gather per epoch)."""
    if keras_backend == "jax":
        import jax
        import jax.numpy as jnp

        index = jax.device_put(order, next(iter(x.devices())))
        return jnp.take(x, index, axis=0), jnp.take(y, index, axis=0)
    import torch

    index = torch.from_numpy(order).to(x.device)
    return x.index_select(0, index), y.index_select(0, index)


def in_order_batches(keras_backend: str, x: Any, y: Any, batch_size: int) -> Any:
    """Consecutive batches of device arrays already in the epoch's order, in the form `fit` takes without copying them
    to the host: a generator of jax.Array slices on JAX; on torch a DataLoader of tensor slices (views), because fit
    makes a fresh iterator of it at each epoch's end as it does for arrays, so torch's global RNG (Keras's unseeded
    dropout draws from it) advances exactly as on the numpy path."""
    starts = range(0, x.shape[0], batch_size)
    if keras_backend == "jax":
        return ((x[s:s + batch_size], y[s:s + batch_size]) for s in starts)
    import torch

    class InOrder(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(starts)

        def __getitem__(self, i: int) -> tuple[Any, Any]:
            return x[starts[i]:starts[i] + batch_size], y[starts[i]:starts[i] + batch_size]

    return torch.utils.data.DataLoader(InOrder(), batch_size=None)


def describe_device(array: Any) -> str:
    """Where an array or tensor fit is given lives, read from the object: cuda:0 / cpu, and what kind of array it is."""
    if isinstance(array, np.ndarray):
        return "cpu (numpy arrays)"
    if hasattr(array, "devices"):  # a jax.Array
        placed = next(iter(array.devices()))
        return f"{'cuda' if placed.platform == 'gpu' else placed.platform}:{placed.id} (jax arrays)"
    if hasattr(array, "is_cuda"):  # a torch.Tensor
        return f"{array.device} (torch tensors)"
    where = str(array.device).rsplit("device:", 1)[-1].lower()  # a TensorFlow tensor: /job:.../device:GPU:0
    return f"{where.replace('gpu', 'cuda')} (tf.data: gathered on the host, copied to the device)"


class KerasBackend:
    """The Backend protocol for Keras 3 (TensorFlow, JAX or PyTorch backend)."""

    def __init__(self) -> None:
        self.keras_backend = "tensorflow"
        self.tf_device = "/CPU:0"
        self.device = "cpu"
        self.batch_size = 128
        self.model: Any = None
        self.arrays: dict[str, tuple[Any, Any]] = {}
        self.info: dict[str, Any] = {}
        self.replicas = 1
        self.strategy: Any = None  # tf.distribute.MirroredStrategy when --devices > 1 on TensorFlow
        self.resident = False  # JAX / torch on one device: the training split lives on the device as its arrays

    def setup(self, spec: RunSpec) -> dict[str, Any]:
        """Backend-specific threads/device/TF32 first, then the dtype policy every layer built afterwards takes."""
        _import_frameworks(spec.keras_backend, spec.device, spec.devices)
        # fit and train_on_batch take the global batch; the strategy splits it into --batch-size per replica.
        self.keras_backend, self.device, self.batch_size = spec.keras_backend, spec.device, spec.global_batch_size
        self.replicas = spec.devices
        if spec.keras_backend == "tensorflow":
            self.tf_device = device_name = configure_tensorflow(spec.device, spec.precision, spec.threads)
            if spec.devices > 1:
                self.strategy = tensorflow_strategy(spec.device, spec.devices)
            versions = {"tensorflow_version": tf.__version__,
                        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
        elif spec.keras_backend == "jax":
            device_name = configure_jax(spec.device, spec.precision)
            if spec.devices > 1:
                jax_data_parallel(spec.devices)
            import jax

            versions = {"jax_version": jax.__version__}
        else:
            device_name = configure_keras_torch(spec.device, spec.precision, spec.threads)
            import torch

            versions = {"torch_version": torch.__version__, "intra_op_threads": torch.get_num_threads(),
                        "inter_op_threads": torch.get_num_interop_threads()}
        keras.utils.set_random_seed(spec.seed)
        keras.mixed_precision.set_global_policy(KERAS_POLICY[spec.precision])
        # Filled in further by build(): the worker keeps this dict as the record's framework_info.
        self.info = {
            **versions,
            "keras_version": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "device_name": device_name,
            "precision": spec.precision,
            "dtype_policy": keras.mixed_precision.global_policy().name,
            "op_determinism": False,
        }
        return self.info

    def build(self, spec: RunSpec, weights: list[list[np.ndarray]] | None) -> None:
        """Sequential model compiled with Adam and the course's losses (logits for 10-class, sigmoid for binary)."""
        with self._scope():
            self.model = build_model(spec)
            if weights is not None:
                self.model.set_weights([array for group in weights for array in group])
            loss = keras.losses.BinaryCrossentropy() if spec.binary else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.model.compile(optimizer=keras.optimizers.Adam(learning_rate=spec.effective_lr), loss=loss, metrics=["accuracy"],
                               jit_compile=JIT_COMPILE[spec.jit_compile], steps_per_execution=spec.steps_per_execution)
        self.info.update(jit_compile=bool(self.model.jit_compile), steps_per_execution=spec.steps_per_execution,
                         loss_scaling=type(self.model.optimizer).__name__ == "LossScaleOptimizer")

    def _scope(self) -> Any:
        """Where variables are created: the strategy's scope (mirrored on every replica), else the one TF device."""
        if self.strategy is not None:
            return self.strategy.scope()
        return tf.device(self.tf_device) if tf is not None else nullcontext()

    def _place(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        x = images[..., np.newaxis].astype(np.float32, copy=False)
        if self.keras_backend != "tensorflow" or self.tf_device == "/CPU:0":
            return x, labels
        with tf.device(self.tf_device):
            return tf.constant(x), tf.constant(labels)

    def load_data(self, data: Prepared) -> None:
        """Splits as NHWC arrays (device tensors on a TF GPU); the training split on the device itself for JAX and torch
        on one device; on TensorFlow the training pipeline is built once here."""
        # keras.distribution lays out host batches over the replicas itself; one device takes resident arrays.
        self.resident = self.keras_backend in ("jax", "torch") and self.replicas == 1
        train = (device_arrays(self.keras_backend, self.device, data.x_train, data.y_train) if self.resident
                 else self._place(data.x_train, data.y_train))
        self.arrays = {
            "train": train,
            "val": self._place(data.x_val, data.y_val),
            "test": self._place(data.x_test, data.y_test),
        }
        if self.keras_backend == "tensorflow":
            self.order = tf.Variable(tf.range(len(data.y_train), dtype=tf.int64), trainable=False)
            self.train_dataset = self._ordered_dataset(data.x_train[..., np.newaxis], data.y_train)

    def _ordered_dataset(self, images: np.ndarray, labels: np.ndarray) -> Any:
        """The tf.data pipeline `fit` builds for numpy input (Keras's ArrayDataAdapter: batched indices, a parallel
        gather per batch, prefetch), except that each epoch's permutation is read from `self.order` instead of drawn
        by tf.random.shuffle. Built once, so each epoch's `fit` call costs what a multi-epoch `fit` costs per epoch."""
        n, batch = len(labels), self.batch_size
        full = n // batch

        def batched_indices(_: Any) -> Any:
            indices = tf.identity(self.order)  # read when the epoch's iterator starts, after train_epoch assigned it
            batches = tf.data.Dataset.from_tensor_slices(tf.reshape(indices[:full * batch], [full, batch]))
            if n % batch:
                batches = batches.concatenate(tf.data.Dataset.from_tensors(indices[full * batch:]))
            return batches

        inputs = (tf.convert_to_tensor(images, dtype=tf.float32), tf.convert_to_tensor(labels))
        dataset = tf.data.Dataset.range(1).flat_map(batched_indices)
        # Like Keras: the arrays enter through a repeated from_tensors, so they are not captured into the map function.
        dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.from_tensors(inputs).repeat()))
        dataset = dataset.map(lambda idx, data: (tf.gather(data[0], idx), tf.gather(data[1], idx)),
                              num_parallel_calls=tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.experimental_optimization.apply_default_optimizations = False
        dataset = dataset.with_options(options)
        if self.tf_device != "/CPU:0" and self.strategy is None:
            # The gather runs on the host (tf.data's ops do); each batch is copied to the GPU inside the pipeline and
            # waits there, prefetched, for its step.
            dataset = dataset.apply(tf.data.experimental.copy_to_device(self.tf_device))
            with tf.device(self.tf_device):
                dataset = dataset.prefetch(tf.data.AUTOTUNE)
        else:
            dataset = dataset.prefetch(tf.data.AUTOTUNE)
        # flat_map hides the length; stating it lets fit end the epoch on the count rather than on running dry.
        return dataset.apply(tf.data.experimental.assert_cardinality(-(-n // batch)))

    def train_epoch(self, order: np.ndarray, train_images: np.ndarray | None = None,
                    on_step: StepHook | None = None) -> tuple[float, float]:
        """One `fit` epoch in the shared order: on TensorFlow through the prebuilt pipeline; on JAX and torch from the
        device-resident split gathered into that order, batch by batch; with replicas on numpy arrays pre-arranged in
        that order (shuffle off so the order is ours)."""
        callbacks = [step_callback(on_step)] if on_step is not None else []
        if self.keras_backend == "tensorflow":
            self.order.assign(order)
            dataset = self.train_dataset
            if train_images is not None:
                dataset = self._ordered_dataset(train_images[..., np.newaxis], np.asarray(self.arrays["train"][1]))
            history = self.model.fit(dataset, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
        elif self.resident:
            history = self.model.fit(self._resident_batches(order, train_images), epochs=1, shuffle=False, verbose=0,
                                     steps_per_epoch=-(-len(order) // self.batch_size), callbacks=callbacks)
        else:
            x, y = self.arrays["train"]
            if train_images is not None:
                x = self._place(train_images, np.empty(0))[0]
            history = self.model.fit(np.take(x, order, axis=0), np.take(y, order), batch_size=self.batch_size, epochs=1,
                                     shuffle=False, verbose=0, callbacks=callbacks)
        return float(history.history["loss"][-1]), float(history.history["accuracy"][-1])

    def _resident_batches(self, order: np.ndarray, train_images: np.ndarray | None = None) -> Any:
        """The epoch's batches from the device-resident split (augmented images are put on the device first)."""
        x, y = self.arrays["train"]
        if train_images is not None:
            x = device_arrays(self.keras_backend, self.device, train_images, np.empty(0, dtype=np.int64))[0]
        return in_order_batches(self.keras_backend, *take_in_order(self.keras_backend, x, y, order), self.batch_size)

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Eval-mode outputs for arbitrary images."""
        return np.asarray(self.model.predict_on_batch(images[..., np.newaxis].astype(np.float32)))

    def outputs(self, split: str, batch_size: int = 1024) -> np.ndarray:
        """`predict` over a stored split."""
        return np.asarray(self.model.predict(self.arrays[split][0], batch_size=batch_size, verbose=0))

    def step_times_s(self, steps: int) -> tuple[list[float], None]:
        """`train_on_batch` returns host values, which synchronises each step, so its launch cannot be timed apart."""
        x, y = self.arrays["train"]
        times = []
        for i in range(steps):
            start = (i * self.batch_size) % max(1, len(x) - self.batch_size + 1)
            xb, yb = x[start:start + self.batch_size], y[start:start + self.batch_size]
            t0 = time.perf_counter()
            self.model.train_on_batch(xb, yb)
            times.append(time.perf_counter() - t0)
        return times, None

    def step_profile(self, steps: int, trace_path: Path | None) -> dict[str, Any]:
        """One `fit` over the first `steps` batches under the backend's profiler (torch.profiler on torch, jax.profiler on
        JAX); kernel-busy % over that fit. TensorFlow's profiler writes TensorBoard's xplane format, not read here."""
        if self.keras_backend == "tensorflow":
            return {"profile_note": "not measured on Keras/TensorFlow: its profiler writes TensorBoard's xplane format"}
        order = np.arange(min(steps * self.batch_size, len(self.arrays["train"][1])))
        fed = -(-len(order) // self.batch_size)

        def fit(_: int = 0) -> None:  # the worker profiles one-device cases only: the split is resident
            self.model.fit(self._resident_batches(order), epochs=1, shuffle=False, verbose=0, steps_per_epoch=fed)
            self.sync()

        if self.keras_backend == "torch":
            events = profile_torch(fit, 1, self.sync, self.device == "cuda", trace_path, label=STEPS_LABEL)
            figures = step_figures(events, torch_kernels(events), STEPS_LABEL, fed, count_launches=self.device == "cuda")
        else:
            events = profile_jax(fit, trace_path)
            # XLA may launch through its own command buffers: host launch calls are not counted for JAX.
            figures = step_figures(events, jax_kernels(events), STEPS_LABEL, fed, count_launches=False)
        return figures if self.device == "cuda" else {**figures, "profile_note": "a CPU case runs no GPU kernels"}

    def launch_free_floor(self) -> dict[str, Any]:
        """The floor is the torch framework's (a torch.cuda.graph capture); Keras cases are read against torch's."""
        return {}

    def batch_sweep(self, batch_sizes: tuple[int, ...]) -> list[dict[str, Any]]:
        """No floor, so no sweep (see launch_free_floor)."""
        return []

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

    def data_device(self) -> str:
        """Where the batches `fit` is given live, read from a first batch of the very feed an epoch uses."""
        if self.keras_backend == "tensorflow":
            if self.tf_device == "/CPU:0" or self.strategy is not None:
                return "cpu (tf.data pipeline)"
            return describe_device(next(iter(self.train_dataset))[0])
        if self.resident:
            return describe_device(next(iter(self._resident_batches(np.arange(self.batch_size))))[0])
        return describe_device(self.arrays["train"][0])

    def snapshot(self) -> list[np.ndarray]:
        """Copies of all weights."""
        return [w.copy() for w in self.model.get_weights()]

    def restore(self, state: list[np.ndarray]) -> None:
        """Load a snapshot."""
        self.model.set_weights(state)

    def reset_device_memory_peak(self) -> None:
        """reset_memory_stats raises on CPU, so only GPUs are reset (JAX has no reset: its peak covers the process)."""
        if self.keras_backend == "tensorflow" and self.tf_device != "/CPU:0":
            tf.config.experimental.reset_memory_stats("GPU:0")
        elif self.keras_backend == "torch" and self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()

    def device_memory(self) -> dict[str, int | None]:
        """The backend allocator's device-memory peak since the last reset (None on CPU)."""
        if self.keras_backend == "tensorflow":
            if self.tf_device == "/CPU:0":
                return {"tf_peak_bytes": None}
            return {"tf_peak_bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"])}
        if self.device != "cuda":
            return {}
        if self.keras_backend == "torch":
            import torch

            return {"torch_peak_allocated_bytes": torch.cuda.max_memory_allocated(),
                    "torch_peak_reserved_bytes": torch.cuda.max_memory_reserved()}
        import jax

        return {"jax_peak_bytes": int((jax.local_devices()[0].memory_stats() or {}).get("peak_bytes_in_use", 0)) or None}

    def trainable_params(self) -> int:
        """Sum of trainable weight sizes (BN moving statistics excluded, as in torch)."""
        return int(sum(np.prod(w.shape) for w in self.model.trainable_weights))

    def sync(self) -> None:
        """Keras has no device barrier; the optimizer's step counter is written by the last step, so fetching it to the
        host waits for the queued steps. Mid-`fit` on JAX the trainer holds the state apart until it is written back."""
        if self.keras_backend == "jax":
            self.model.jax_state_sync()
        keras.ops.convert_to_numpy(self.model.optimizer.iterations)

    def distribution(self) -> dict[str, Any]:
        """Replicas and engine; neither tf.distribute nor keras.distribution exposes a communication timing."""
        if self.replicas == 1:
            return {"world_size": 1}
        if self.strategy is not None:
            return {"world_size": self.strategy.num_replicas_in_sync, "dist_backend": "mirrored"}
        mesh = keras.distribution.distribution().device_mesh
        return {"world_size": int(np.prod(mesh.shape)), "dist_backend": "jax-dataparallel"}


def make_backend() -> KerasBackend:
    """Entry point used by suite.backends.get_backend."""
    return KerasBackend()
