"""PyTorch implementation of the Backend protocol: in-memory tensors, explicit training loop, CUDA-aware timing."""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ContextManager

import numpy as np
import torch
from torch import nn

from suite.backends import DeviceUnavailable, StepHook, Unsupported
from suite.backends.cuda import cuda_unavailable_reason, set_cuda_tf32
from suite.backends.step_graph import (
    FLOOR_REPLAYS,
    StepParts,
    WholeStep,
    adam,
    launch_free_floor,
    time_replays,
    train_on,
)
from suite.backends.trace import STEP_LABEL, profile_torch, step_figures, torch_kernels
from suite.core.data import Prepared
from suite.core.models import BN_EPSILON, BN_MOMENTUM_TORCH, Layer, architecture
from suite.core.spec import RunSpec

SWEEP_EAGER_STEPS = 50  # eager steps timed back to back at each batch size of a --batch-sweep


def autocast_dtype(spec: RunSpec) -> torch.dtype | None:
    """The autocast dtype of the spec's precision (None: plain fp32/tf32 arithmetic)."""
    return {"bf16": torch.bfloat16, "fp16-mixed": torch.float16}.get(spec.precision)


def _module_for(layer: Layer) -> nn.Module:
    kind = layer.kind
    if kind == "dense":
        return nn.Linear(layer.in_shape[-1], layer.units)
    if kind == "conv":
        return nn.Conv2d(layer.in_shape[-1], layer.units, layer.kernel)
    if kind == "batchnorm":
        cls = nn.BatchNorm2d if len(layer.out_shape) == 3 else nn.BatchNorm1d
        return cls(layer.out_shape[-1], eps=BN_EPSILON, momentum=BN_MOMENTUM_TORCH)
    if kind == "relu":
        return nn.ReLU()
    if kind == "maxpool":
        return nn.MaxPool2d(layer.kernel)
    if kind == "flatten":
        return nn.Flatten()
    if kind == "dropout":
        return nn.Dropout(layer.rate)
    if kind == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"no torch module for layer kind {kind!r}")


def compiled(module: nn.Module, spec: RunSpec) -> nn.Module:
    """torch.compile's wrapper for --compile modes other than none, else the module itself.

    Compilation happens lazily on the first calls, so its cost lands in epoch 1 (reported apart from steady state)."""
    if spec.compile == "none":
        return module
    return torch.compile(module, mode=None if spec.compile == "default" else spec.compile)


def build_module(spec: RunSpec) -> nn.Sequential:
    """nn.Sequential with exactly the layers of suite.core.models.architecture (input NCHW)."""
    return nn.Sequential(*(_module_for(layer) for layer in architecture(spec)))


def load_keras_layout(model: nn.Sequential, spec: RunSpec, weights: list[list[np.ndarray]]) -> None:
    """Copy Keras-layout weights into the torch modules, converting layouts (HWIO→OIHW, (in,out)→(out,in), HWC→CHW flatten)."""
    layers = architecture(spec)
    flat_from: tuple[int, ...] | None = None
    groups = iter(weights)
    with torch.no_grad():
        for layer, module in zip(layers, model):
            if layer.kind == "flatten":
                flat_from = layer.in_shape
            if layer.kind not in ("dense", "conv", "batchnorm"):
                continue
            arrays = next(groups)
            if layer.kind == "conv":
                module.weight.copy_(torch.from_numpy(arrays[0].transpose(3, 2, 0, 1).copy()))
                module.bias.copy_(torch.from_numpy(arrays[1]))
            elif layer.kind == "dense":
                kernel = arrays[0]
                if flat_from is not None and len(flat_from) == 3:
                    h, w, c = flat_from
                    kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
                module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
                module.bias.copy_(torch.from_numpy(arrays[1]))
                flat_from = None
            else:
                gamma, beta, mean, var = (torch.from_numpy(a) for a in arrays)
                module.weight.copy_(gamma)
                module.bias.copy_(beta)
                module.running_mean.copy_(mean)
                module.running_var.copy_(var)


class TorchBackend:
    """The Backend protocol for PyTorch."""

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.binary = False
        self.batch_size = 128
        self.model: nn.Sequential | None = None
        self.run_model: nn.Module | None = None  # the module calls go through: torch.compile's wrapper or the model
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.amp_dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.memory_format = torch.contiguous_format
        self.cuda_graphs = False  # torch.compile mode reduce-overhead on a GPU: every call replays a CUDA graph
        self.step_mode = "eager"
        self.whole_step: WholeStep | None = None  # --step graph: the training step captured as one CUDA graph
        self.augment = False
        self.lr = 1e-3

    def setup(self, spec: RunSpec) -> dict[str, Any]:
        """Threads first (before any op), then seeds and device."""
        torch.set_num_threads(spec.threads)
        torch.set_num_interop_threads(1)
        torch.manual_seed(spec.seed)
        if spec.device == "cuda":
            reason = cuda_unavailable_reason()
            if reason:
                raise DeviceUnavailable(reason)
            self.device = torch.device("cuda", 0)
            torch.cuda.manual_seed_all(spec.seed)
            set_cuda_tf32(spec.precision == "tf32")
            if spec.precision == "bf16" and not torch.cuda.is_bf16_supported():
                raise Unsupported(f"bf16 is not supported by {torch.cuda.get_device_name(0)} (needs compute capability 8.0+)")
        self.amp_dtype = autocast_dtype(spec)
        if spec.precision == "fp16-mixed":
            self.scaler = torch.amp.GradScaler(self.device.type)  # fp16 gradients underflow without loss scaling
        if spec.channels_last:
            self.memory_format = torch.channels_last
        self.binary = spec.binary
        self.batch_size = spec.batch_size
        self.step_mode, self.augment = spec.step, spec.augment
        return {
            "precision": spec.precision,
            "autocast_dtype": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else None,
            "loss_scaling": self.scaler is not None,
            "cuda_matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision if self.device.type == "cuda" else None,
            "compile_mode": spec.compile,
            "step_mode": spec.step,
            "memory_format": "channels_last" if spec.channels_last else "contiguous",
            "torch_version": torch.__version__,
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "device_name": torch.cuda.get_device_name(0) if self.device.type == "cuda" else "cpu",
            "cuda_version": torch.version.cuda,
            "cudnn_version": torch.backends.cudnn.version() if self.device.type == "cuda" else None,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        }

    def build(self, spec: RunSpec, weights: list[list[np.ndarray]] | None) -> None:
        """Module, loss and Adam optimizer as in the course (lr from the spec)."""
        model = build_module(spec)
        if weights is not None:
            load_keras_layout(model, spec, weights)
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.run_model = compiled(self.model, spec)
        self.cuda_graphs = spec.compile == "reduce-overhead" and self.device.type == "cuda"
        self.loss_fn = nn.BCELoss() if self.binary else nn.CrossEntropyLoss()
        self.lr = spec.effective_lr
        # Capturable Adam keeps its step count on the device, which capture needs and only a GPU allows.
        self.optimizer = adam(self.model.parameters(), self.lr,
                              capturable=spec.step == "graph" and self.device.type == "cuda")

    def _autocast(self, cache: bool = True) -> ContextManager[Any]:
        """Autocast in the spec's dtype; inside a CUDA graph capture its weight-cast cache must be off."""
        if not self.amp_dtype:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype, cache_enabled=cache)

    def _parts(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> StepParts:
        return StepParts(model, self.loss_fn, optimizer, lambda: self._autocast(cache=False), self._predicted)

    def _images(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1).to(self.device)
        return x.contiguous(memory_format=self.memory_format)

    def _to_device(self, images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._images(images)
        y = torch.from_numpy(labels).to(self.device)
        return x, (y.float().unsqueeze(1) if self.binary else y.long())

    def load_data(self, data: Prepared) -> None:
        """All splits as device tensors, NCHW float32."""
        self.tensors = {
            "train": self._to_device(data.x_train, data.y_train),
            "val": self._to_device(data.x_val, data.y_val),
            "test": self._to_device(data.x_test, data.y_test),
        }
        if self.step_mode == "graph":
            x, y = self.tensors["train"]
            # Augmented epochs are copied into the graph's own image buffer, so the stored split stays as loaded.
            self.whole_step = WholeStep(self._parts(self.run_model, self.optimizer), x.clone() if self.augment else x,
                                        y, self.batch_size)

    def _predicted(self, out: torch.Tensor) -> torch.Tensor:
        return (out.squeeze(1) >= 0.5).long() if self.binary else out.argmax(1)

    def _call(self, x: torch.Tensor, keep: bool = False) -> torch.Tensor:
        """The model on a batch. Under CUDA graphs each call starts a new graph step (train and eval calls interleave,
        which the graph trees cannot infer) and a replay overwrites the previous one's output, so outputs that are
        kept past the next call are cloned."""
        if not self.cuda_graphs:
            return self.run_model(x)
        torch.compiler.cudagraph_mark_step_begin()
        out = self.run_model(x)
        return out.clone() if keep else out

    def _step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self._call(xb)
        # Loss in fp32 outside autocast: BCELoss refuses autocast, and the course's losses are fp32 anyway.
        loss = self.loss_fn(out.float(), yb)
        self._backward(loss)
        return loss.detach(), out.detach()

    def _backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()

    def train_epoch(self, order: np.ndarray, train_images: np.ndarray | None = None,
                    on_step: StepHook | None = None) -> tuple[float, float]:
        """Per step only the loss and the predicted classes are kept (one extra op); they are reduced once per epoch,
        on the device, so the loop never waits for the GPU mid-epoch and the harness costs next to nothing."""
        x, y = self.tensors["train"]
        index = torch.from_numpy(order).to(self.device)
        self.run_model.train()
        if self.whole_step is not None:
            if train_images is not None:
                self.whole_step.x.copy_(self._images(train_images))
            return self.whole_step.epoch(index, on_step)
        if train_images is not None:
            x = self._images(train_images)
        losses, predicted = [], []
        for step, start in enumerate(range(0, len(order), self.batch_size)):
            if on_step is not None:
                on_step(step)
            batch = index[start:start + self.batch_size]
            loss, out = self._step(x[batch], y[batch])
            losses.append(loss)
            predicted.append(self._predicted(out))
        sizes = torch.full((len(losses),), float(self.batch_size), device=self.device)
        sizes[-1] = len(order) - self.batch_size * (len(losses) - 1)
        loss_sum = torch.dot(torch.stack(losses), sizes)
        labels = y[index].view(-1).long()
        correct = (torch.cat(predicted) == labels).sum()
        return loss_sum.item() / len(order), correct.item() / len(order)

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Eval-mode outputs for arbitrary images."""
        x = self._images(images)
        return self._outputs(x, len(x))

    def _outputs(self, x: torch.Tensor, batch_size: int) -> np.ndarray:
        self.run_model.eval()
        with torch.inference_mode(), self._autocast():
            parts = [self._call(x[i:i + batch_size], keep=True) for i in range(0, len(x), batch_size)]
        return torch.cat(parts).float().cpu().numpy()

    def outputs(self, split: str, batch_size: int = 1024) -> np.ndarray:
        """Eval-mode outputs of a stored split."""
        return self._outputs(self.tensors[split][0], batch_size)

    def _steady_steps(self, steps: int) -> Any:
        """A function running steady step i < steps, on consecutive batches of the training split, the way the case
        trains: an eager (or compiled) step, or a replay of the whole-step graph (indices made before any timing)."""
        x, y = self.tensors["train"]
        starts = [(i * self.batch_size) % max(1, len(x) - self.batch_size + 1) for i in range(steps)]
        self.run_model.train()
        if self.whole_step is not None:
            batches = [torch.arange(s, s + self.batch_size, device=self.device) for s in starts]
            return lambda i: self.whole_step.run(batches[i])
        return lambda i: self._step(x[starts[i]:starts[i] + self.batch_size], y[starts[i]:starts[i] + self.batch_size])

    def step_times_s(self, steps: int) -> tuple[list[float], list[float]]:
        """Each step is synchronised so its time is the device's, not the launch queue's; the time until the step
        returns, before the sync, is what the host spends launching it (on CPU the two are equal)."""
        run = self._steady_steps(steps)
        times, launches = [], []
        for i in range(steps):
            self.sync()
            t0 = time.perf_counter()
            run(i)
            launches.append(time.perf_counter() - t0)
            self.sync()
            times.append(time.perf_counter() - t0)
        return times, launches

    def step_profile(self, steps: int, trace_path: Path | None) -> dict[str, Any]:
        """`steps` steady steps under torch.profiler: kernel-busy %, GPU kernels, kernel and graph launches per step."""
        cuda = self.device.type == "cuda"
        events = profile_torch(self._steady_steps(steps), steps, self.sync, cuda, trace_path)
        figures = step_figures(events, torch_kernels(events), STEP_LABEL, steps, count_launches=cuda)
        return figures if cuda else {**figures, "profile_note": "a CPU case runs no GPU kernels"}

    def launch_free_floor(self) -> dict[str, Any]:
        """The floor of this model and batch: a copy of the model with a fresh capturable Adam, its whole step captured
        once and replayed FLOOR_REPLAYS times (CUDA only); the case's own model and optimizer are left alone."""
        if self.device.type != "cuda":
            return {}
        x, y = self.tensors["train"]
        note = ("loss scaling left out: GradScaler's step reads its inf check on the host, which a graph cannot hold"
                if self.scaler is not None else None)
        return {"floor_step_ms": launch_free_floor(self._copied_parts(True), x, y, self.batch_size, self.sync),
                "floor_replays": FLOOR_REPLAYS, "floor_note": note}

    def _copied_parts(self, capturable: bool) -> StepParts:
        """The step's parts on a copy of the model with a fresh Adam: what the floor and the sweep train instead."""
        model = copy.deepcopy(self.model).train()
        return self._parts(model, adam(model.parameters(), self.lr, capturable=capturable))

    def batch_sweep(self, batch_sizes: tuple[int, ...]) -> list[dict[str, Any]]:
        """At each batch size (up to the split's size), on copies of the model: the eager step run back to back and
        the launch-free floor of the same step, each device-synced at both ends (CUDA only; docs/gpu-speed.md)."""
        if self.device.type != "cuda":
            return []
        x, y = self.tensors["train"]
        points = []
        for size in (b for b in batch_sizes if b <= len(x)):
            floor_ms = launch_free_floor(self._copied_parts(True), x, y, size, self.sync)
            points.append({"batch_size": size, "eager_step_ms": self._eager_step_ms(size), "floor_step_ms": floor_ms,
                           "floor_replays": FLOOR_REPLAYS})
        return points

    def _eager_step_ms(self, size: int) -> float:
        """The eager step on the first `size` samples, SWEEP_EAGER_STEPS of them back to back, on a copy of the model."""
        x, y = self.tensors["train"]
        parts = self._copied_parts(False)
        sums = torch.zeros((), device=x.device), torch.zeros((), dtype=torch.int64, device=x.device)
        return time_replays(lambda: train_on(parts, x[:size], y[:size], *sums), self.sync, SWEEP_EAGER_STEPS, 5)

    def inference_latencies_s(self, batch_size: int, calls: int, warmup_calls: int) -> list[float]:
        """Forward on a fixed test batch; .cpu() copies the result to host, which also synchronises."""
        x_test = self.tensors["test"][0]
        xb = x_test[:batch_size] if batch_size <= len(x_test) else x_test.repeat(-(-batch_size // len(x_test)), 1, 1, 1)[:batch_size]
        self.run_model.eval()
        times = []
        with torch.inference_mode(), self._autocast():
            for i in range(warmup_calls + calls):
                self.sync()
                t0 = time.perf_counter()
                self._call(xb).cpu()
                elapsed = time.perf_counter() - t0
                if i >= warmup_calls:
                    times.append(elapsed)
        return times

    def data_device(self) -> str:
        """The device of the training images tensor itself (cuda:0 when the data is resident on the GPU)."""
        return str(self.tensors["train"][0].device)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """Detached copies of the state dict."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        """Load a snapshot."""
        self.model.load_state_dict(state)

    def reset_device_memory_peak(self) -> None:
        """Peak counters restart so the figure covers one phase."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def device_memory(self) -> dict[str, int | None]:
        """max_memory_allocated/reserved since the last reset (None on CPU)."""
        if self.device.type != "cuda":
            return {"torch_peak_allocated_bytes": None, "torch_peak_reserved_bytes": None}
        return {
            "torch_peak_allocated_bytes": torch.cuda.max_memory_allocated(self.device),
            "torch_peak_reserved_bytes": torch.cuda.max_memory_reserved(self.device),
        }

    def trainable_params(self) -> int:
        """Sum of parameters that require grad."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def sync(self) -> None:
        """cuda.synchronize on GPU; CPU ops are already complete when they return."""
        _sync(self.device)

    def distribution(self) -> dict[str, Any]:
        """One process on one device: no replicas to record."""
        return {"world_size": 1}


def make_backend() -> TorchBackend:
    """Entry point used by suite.backends.get_backend."""
    return TorchBackend()


def gemm_round_rates(device: str, dtype: str, threads: int, size: int, rounds: int = 3, calls: int = 10) -> list[float]:
    """FLOP/s of the best n×n matmul in each of `rounds` rounds of `calls`, after a timed warm-up.

    The best of all rounds is the practical peak MFU divides by; the spread between rounds shows whether something
    else shared the device meanwhile (on a shared 2-vCPU VM best-of-5 ranged 53-178 GFLOP/s between runs)."""
    torch.set_num_threads(threads)
    target = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
    if device == "cuda":
        reason = cuda_unavailable_reason()
        if reason:
            raise DeviceUnavailable(reason)
        set_cuda_tf32(dtype == "tf32")
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype, torch.float32)
    a = torch.randn(size, size, device=target, dtype=torch_dtype)
    b = torch.randn(size, size, device=target, dtype=torch_dtype)
    # Warm-up by time, not count: allocation, kernel selection, thread-pool spin-up and clock ramp-up all end in it.
    warm_until = time.perf_counter() + 1.0
    while time.perf_counter() < warm_until:
        torch.mm(a, b)
    rates = []
    for _ in range(rounds):
        best_s = math.inf
        for _ in range(calls):
            _sync(target)
            t0 = time.perf_counter()
            torch.mm(a, b)
            _sync(target)
            best_s = min(best_s, time.perf_counter() - t0)
        rates.append(2.0 * size**3 / best_s)
    return rates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
