"""What one benchmark case is: a frozen RunSpec with a stable id, and the grid that expands CLI axes."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterable

FRAMEWORKS = ("torch", "keras")
MODELS = ("dense", "cnn", "binary")
DEVICES = ("cpu", "cuda")
INITS = ("framework", "shared")
KERAS_BACKENDS = ("tensorflow",)

# The task each model answers; `binary` is the course's sigmoid classifier on T-shirt/top vs Shirt.
TASK_OF_MODEL = {"dense": "10-class", "cnn": "10-class", "binary": "tshirt-vs-shirt"}
DEFAULT_TARGETS = {"dense": (0.85,), "cnn": (0.90,), "binary": (0.80,)}


class SpecError(ValueError):
    """A spec value outside its valid range; the message names the flag and the range."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one case; two equal specs measure the same thing."""

    framework: str
    model: str
    device: str = "cpu"
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    threads: int = 2
    limit: int | None = None
    lr: float = 1e-3
    dropout: float | None = None
    batchnorm: bool = False
    augment: bool = False
    early_stopping: int | None = None
    init: str = "framework"
    keras_backend: str = "tensorflow"
    targets: tuple[float, ...] = ()
    infer_batch_sizes: tuple[int, ...] = (1, 32, 256, 1024)
    repeat: int = 0

    def __post_init__(self) -> None:
        validate(self)

    @property
    def task(self) -> str:
        """The classification task the model is trained on."""
        return TASK_OF_MODEL[self.model]

    @property
    def effective_targets(self) -> tuple[float, ...]:
        """Validation-accuracy targets for time-to-accuracy (model defaults when none given)."""
        return self.targets or DEFAULT_TARGETS[self.model]

    @property
    def case_key(self) -> str:
        """Id of the case without seed and repeat: repeats of one case share it."""
        return _digest({k: v for k, v in self.to_dict().items() if k not in ("seed", "repeat")})

    @property
    def id(self) -> str:
        """Stable, readable id of this exact spec (repeat and seed included)."""
        return f"{self.framework}-{self.model}-{self.device}-{_digest(self.to_dict())}"

    @property
    def label(self) -> str:
        """Short human label: framework/model/device plus non-default variant flags."""
        extras = [f"{k}={v}" for k, v in self.variant_flags().items()]
        return " ".join([f"{self.framework}/{self.model}/{self.device}", *extras])

    def variant_flags(self) -> dict[str, Any]:
        """The variant fields that differ from their defaults."""
        defaults = RunSpec(framework=self.framework, model=self.model)
        variant_names = ("dropout", "batchnorm", "augment", "early_stopping", "init", "lr")
        return {n: getattr(self, n) for n in variant_names if getattr(self, n) != getattr(defaults, n)}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        d = asdict(self)
        d["targets"] = list(self.targets)
        d["infer_batch_sizes"] = list(self.infer_batch_sizes)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Inverse of to_dict; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise SpecError(f"unknown spec field(s) {sorted(unknown)}; valid: {sorted(names)}")
        data = dict(data)
        data["targets"] = tuple(data.get("targets") or ())
        if "infer_batch_sizes" in data:
            data["infer_batch_sizes"] = tuple(data["infer_batch_sizes"])
        return cls(**data)


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def _check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise SpecError(f"--{name} {value!r} is not known; choose from: {', '.join(choices)}")


def _check_range(name: str, value: float | None, low: float, high: float | None = None) -> None:
    if value is None:
        return
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise SpecError(f"--{name.replace('_', '-')} {value} is out of range; valid: {bound}")


def validate(spec: RunSpec) -> None:
    """Reject impossible values before any case starts, naming the valid range."""
    _check_choice("framework", spec.framework, FRAMEWORKS)
    _check_choice("model", spec.model, MODELS)
    _check_choice("device", spec.device, DEVICES)
    _check_choice("init", spec.init, INITS)
    _check_choice("keras-backend", spec.keras_backend, KERAS_BACKENDS)
    _check_range("epochs", spec.epochs, 1, 10_000)
    _check_range("batch_size", spec.batch_size, 1, 60_000)
    _check_range("threads", spec.threads, 1, 1024)
    _check_range("limit", spec.limit, 1)
    _check_range("seed", spec.seed, 0, 2**32 - 1)
    _check_range("dropout", spec.dropout, 0.0, 0.95)
    _check_range("early_stopping", spec.early_stopping, 1)
    if not (0 < spec.lr <= 100):
        raise SpecError(f"--lr {spec.lr} is out of range; valid: 0 < lr <= 100")
    for target in spec.targets:
        _check_range("targets", target, 0.0, 1.0)
    for size in spec.infer_batch_sizes:
        _check_range("infer_batch_sizes", size, 1, 65_536)
    if spec.limit is not None and spec.batch_size > spec.limit:
        raise SpecError(
            f"--batch-size {spec.batch_size} is larger than --limit {spec.limit}; use a batch size <= {spec.limit}"
        )


def grid(axes: dict[str, Iterable[Any]], repeats: int = 1, **fixed: Any) -> list[RunSpec]:
    """Expand list-valued axes into specs; repeat i uses seed + i so repeats are independent runs."""
    if repeats < 1:
        raise SpecError(f"--repeats {repeats} is out of range; valid: >= 1")
    names = list(axes)
    specs: list[RunSpec] = []
    for combo in itertools.product(*(list(axes[n]) for n in names)):
        base = RunSpec(**dict(zip(names, combo)), **fixed)
        specs.extend(replace(base, seed=base.seed + i, repeat=i) for i in range(repeats))
    return specs
