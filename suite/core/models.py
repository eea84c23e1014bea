"""The model catalog (every fact about each model, one entry per model) and the framework-neutral architectures both
backends build from: layer lists, analytic parameter and FLOP counts, shared init."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from suite.core import data

if TYPE_CHECKING:  # spec validates against the catalog below, so it imports this module, not the other way round
    from suite.core.spec import RunSpec

INPUT_HW = (28, 28)
BN_EPSILON = 1e-5  # torch's default; Keras is told the same so both normalise identically
BN_MOMENTUM_TORCH = 0.1  # Keras's momentum is 1 - this


@dataclass(frozen=True)
class Layer:
    """One layer with the shapes it sees; `kind` is dense, conv, batchnorm, relu, maxpool, flatten, dropout or sigmoid."""

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    units: int = 0
    kernel: int = 0
    rate: float = 0.0

    @property
    def params(self) -> int:
        """Trainable parameters (batch-norm running statistics are not trainable)."""
        if self.kind == "dense":
            return self.in_shape[-1] * self.units + self.units
        if self.kind == "conv":
            return self.kernel * self.kernel * self.in_shape[-1] * self.units + self.units
        if self.kind == "batchnorm":
            return 2 * self.out_shape[-1]
        return 0

    @property
    def forward_flops(self) -> int:
        """Multiply-adds ×2 per sample; bias, activation, pooling and batch norm are ignored, as counters do."""
        if self.kind == "dense":
            return 2 * self.in_shape[-1] * self.units
        if self.kind == "conv":
            h, w, _ = self.out_shape
            return 2 * h * w * self.kernel * self.kernel * self.in_shape[-1] * self.units
        return 0


class _Builder:
    """Appends layers while tracking the running (H, W, C) or (features,) shape."""

    def __init__(self) -> None:
        self.shape: tuple[int, ...] = (*INPUT_HW, 1)
        self.layers: list[Layer] = []

    def add(self, kind: str, out_shape: tuple[int, ...] | None = None, **kw: float) -> None:
        out = out_shape or self.shape
        self.layers.append(Layer(kind, self.shape, out, **kw))  # type: ignore[arg-type]
        self.shape = out

    def dense(self, units: int, batchnorm: bool) -> None:
        self.add("dense", (units,), units=units)
        if batchnorm:
            self.add("batchnorm")

    def conv(self, filters: int, batchnorm: bool) -> None:
        h, w, _ = self.shape
        self.add("conv", (h - 2, w - 2, filters), units=filters, kernel=3)
        if batchnorm:
            self.add("batchnorm")
        self.add("relu")
        self.add("maxpool", (self.shape[0] // 2, self.shape[1] // 2, filters), kernel=2)

    def flatten(self) -> None:
        self.add("flatten", (int(np.prod(self.shape)),))


def _mlp(b: _Builder, batchnorm: bool, dropout: float) -> None:
    """The course's hidden layer: 128 ReLU units (batch norm before the ReLU), then dropout."""
    b.flatten()
    b.dense(128, batchnorm)
    b.add("relu")
    if dropout > 0:
        b.add("dropout", rate=dropout)


def _cnn(b: _Builder, batchnorm: bool, dropout: float) -> None:
    """Two 3×3 conv blocks (32, 64 filters, 2×2 max-pool) in front of the dense hidden layer."""
    b.conv(32, batchnorm)
    b.conv(64, batchnorm)
    _mlp(b, batchnorm, dropout)


@dataclass(frozen=True)
class ModelFacts:
    """Everything the suite knows about one model: a new model is one CATALOG entry plus its layer function."""

    task: str  # a suite.core.data task; it decides the output head and whether the model is binary
    targets: tuple[float, ...]  # default validation accuracies for time-to-accuracy
    dropout: float  # dropout rate before the output layer unless --dropout is given
    channels_last: bool  # has convolutions, so torch's channels-last memory format applies
    mfu_goal_pct: float | None  # MFU the speed-goals benchmark expects of its best CPU variant (None: no goal)
    hidden: Callable[[_Builder, bool, float], None]  # the layers before the output head: (builder, batchnorm, dropout)


CATALOG: dict[str, ModelFacts] = {
    "dense": ModelFacts(task="10-class", targets=(0.85,), dropout=0.0, channels_last=False, mfu_goal_pct=40.0, hidden=_mlp),
    "cnn": ModelFacts(task="10-class", targets=(0.90,), dropout=0.5, channels_last=True, mfu_goal_pct=50.0, hidden=_cnn),
    # The course's sigmoid classifier on T-shirt/top vs Shirt.
    "binary": ModelFacts(task="tshirt-vs-shirt", targets=(0.80,), dropout=0.0, channels_last=False, mfu_goal_pct=None,
                         hidden=_mlp),
}


def architecture(spec: RunSpec) -> list[Layer]:
    """The layers of the spec's model with its variant flags applied (batch norm after the affine layer, before ReLU)."""
    facts = CATALOG[spec.model]
    b = _Builder()
    facts.hidden(b, spec.batchnorm, spec.dropout if spec.dropout is not None else facts.dropout)
    if data.is_binary(facts.task):
        b.dense(1, batchnorm=False)
        b.add("sigmoid")
    else:
        b.dense(len(data.TASK_CLASS_NAMES[facts.task]), batchnorm=False)
    return b.layers


def param_count(spec: RunSpec) -> int:
    """Trainable parameters of the spec's model."""
    return sum(layer.params for layer in architecture(spec))


def forward_flops_per_sample(spec: RunSpec) -> int:
    """Analytic forward FLOPs for one sample."""
    return sum(layer.forward_flops for layer in architecture(spec))


def train_flops_per_sample(spec: RunSpec) -> int:
    """Forward + weight gradients + input gradients (none for the first weighted layer, whose input needs no grad)."""
    weighted = [layer for layer in architecture(spec) if layer.forward_flops]
    forward = sum(layer.forward_flops for layer in weighted)
    input_grads = sum(layer.forward_flops for layer in weighted[1:])
    return 2 * forward + input_grads


def shared_weights(spec: RunSpec) -> list[list[np.ndarray]]:
    """Seeded Glorot-uniform kernels and zero biases per weighted layer, in Keras layout (dense (in,out), conv HWIO)."""
    rng = np.random.default_rng([spec.seed, 1234])
    weights: list[list[np.ndarray]] = []
    for layer in architecture(spec):
        if layer.kind == "dense":
            fan_in, fan_out, shape = layer.in_shape[-1], layer.units, (layer.in_shape[-1], layer.units)
        elif layer.kind == "conv":
            receptive = layer.kernel * layer.kernel
            fan_in, fan_out = receptive * layer.in_shape[-1], receptive * layer.units
            shape = (layer.kernel, layer.kernel, layer.in_shape[-1], layer.units)
        elif layer.kind == "batchnorm":
            c = layer.out_shape[-1]
            weights.append([np.ones(c, np.float32), np.zeros(c, np.float32), np.zeros(c, np.float32), np.ones(c, np.float32)])
            continue
        else:
            continue
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        kernel = rng.uniform(-limit, limit, size=shape).astype(np.float32)
        weights.append([kernel, np.zeros(layer.units, np.float32)])
    return weights
