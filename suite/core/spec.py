"""What one benchmark case is: a frozen RunSpec with a stable id, and the grid that expands CLI axes."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterable

from suite.core import data, frameworks
from suite.core.frameworks import SETTINGS, applies
from suite.core.models import CATALOG

FRAMEWORKS = tuple(frameworks.FRAMEWORKS)
MODELS = tuple(CATALOG)
DEVICES = ("cpu", "cuda")
INITS = ("framework", "shared")
PRECISIONS = ("fp32", "bf16", "fp16-mixed", "tf32")
LR_SCALING = ("none", "linear")
MAX_DEVICES = 1024
# Count flags' valid ranges, named in their --help and in the refusal (--repeats 10**9 would expand 10**9 specs).
EPOCHS_MAX, BATCH_SIZE_MAX, THREADS_MAX, REPEATS_MAX, INFER_BATCH_MAX = 10_000, 60_000, 1024, 1000, 65_536

# Speed settings: precision for every framework, then the framework-specific ones (grid() resets those to their
# defaults on the other frameworks' cases).
SPEED_DEFAULTS = {"precision": "fp32", **{name: setting.default for name, (_, setting) in SETTINGS.items()}}
_IN_FIRST_RECORDS = {name for name, (_, setting) in SETTINGS.items() if setting.in_first_records}
# Data-parallel axes: --devices N replicas, each with --batch-size samples per step, and the learning-rate rule.
SCALING_DEFAULTS = {"devices": 1, "lr_scaling": "none"}
# Fields added after the first records were stored: left out of the id digest at their defaults so old ids stay valid.
_ADDED_LATER = {**{k: v for k, v in SPEED_DEFAULTS.items() if k not in _IN_FIRST_RECORDS}, **SCALING_DEFAULTS}


# Training samples of each task's seeded 80 % split (suite.core.data.prepare): a plan's batches cannot be larger.
TRAIN_SAMPLES = {"10-class": 48_000, "tshirt-vs-shirt": 9_600}


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
    precision: str = "fp32"
    compile: str = "none"
    step: str = "eager"
    jit_compile: str = "auto"
    channels_last: bool = False
    steps_per_execution: int = 1
    targets: tuple[float, ...] = ()
    infer_batch_sizes: tuple[int, ...] = (1, 32, 256, 1024)
    repeat: int = 0
    devices: int = 1
    lr_scaling: str = "none"

    def __post_init__(self) -> None:
        validate(self)

    @property
    def task(self) -> str:
        """The classification task the model is trained on."""
        return CATALOG[self.model].task

    @property
    def binary(self) -> bool:
        """Whether the task is binary (one sigmoid output), whichever model learns it."""
        return data.is_binary(self.task)

    @property
    def effective_targets(self) -> tuple[float, ...]:
        """Validation-accuracy targets for time-to-accuracy (model defaults when none given)."""
        return self.targets or CATALOG[self.model].targets

    @property
    def case_key(self) -> str:
        """Id of the case without seed and repeat: repeats of one case share it."""
        return _digest({k: v for k, v in self._identity().items() if k not in ("seed", "repeat")})

    @property
    def scaling_key(self) -> str:
        """Id shared by the 1-, 2-, ... N-device cases of one setup (devices, seed and repeat left out)."""
        return _digest({k: v for k, v in self._identity().items() if k not in ("seed", "repeat", "devices")})

    @property
    def recipe_key(self) -> str:
        """Id of what is trained, whatever hardware trains it: the case key without device and threads, which belong to the
        machine (a box uses its own cores), so one recipe on two machines or devices is a like-for-like comparison."""
        return _digest({k: v for k, v in self._identity().items() if k not in ("seed", "repeat", "device", "threads")})

    @property
    def global_batch_size(self) -> int:
        """Samples per optimizer step over all replicas: --batch-size is per device."""
        return self.batch_size * self.devices

    @property
    def threads_per_rank(self) -> int:
        """Intra-op threads of each torch rank: the --threads budget shared out between the --devices processes."""
        return max(1, self.threads // self.devices)

    @property
    def effective_lr(self) -> float:
        """The learning rate the optimizer gets: --lr, times the replica count under --lr-scaling linear."""
        return self.lr * self.devices if self.lr_scaling == "linear" else self.lr

    @property
    def id(self) -> str:
        """Stable, readable id of this exact spec (repeat and seed included)."""
        return f"{self.framework}-{self.model}-{self.device}-{_digest(self._identity())}"

    def _identity(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if _ADDED_LATER.get(k, _NO_DEFAULT) != v}

    @property
    def unsupported_reason(self) -> str | None:
        """Why this combination cannot run on any machine (the case is then recorded as skipped), or None."""
        if self.device == "cpu" and self.precision == "fp16-mixed":
            return "fp16-mixed needs a CUDA GPU: fp16 autocast/loss scaling on CPU is emulated and not a setting anyone deploys"
        if self.device == "cpu" and self.precision == "tf32":
            return "tf32 is an NVIDIA tensor-core format (Ampere or newer); CPUs have no TF32 mode"
        if reason := self._step_graph_reason():
            return reason
        if self.devices > 1 and self.compile == "reduce-overhead":
            return ("--compile reduce-overhead with --devices > 1: CUDA-graph replay and DDP's gradient all-reduce "
                    "hooks are not combined here; use --compile default or none for data-parallel cases")
        if self.devices > 1 and self.framework == "keras" and self.keras_backend == "torch":
            return ("--devices > 1 on Keras's torch backend: Keras 3 distributes only on JAX (keras.distribution) and "
                    "TensorFlow (tf.distribute); use --keras-backend jax or tensorflow, or --framework torch (DDP)")
        return None

    def _step_graph_reason(self) -> str | None:
        """Why --step graph cannot run with the other settings of this case, or None."""
        if self.step != "graph":
            return None
        if self.device == "cpu":
            return "--step graph captures a CUDA graph: it needs a CUDA GPU (on a CPU every op is a function call)"
        if self.compile != "none":
            return ("--step graph captures eager kernels with torch.cuda.graph; with torch.compile use --compile "
                    "reduce-overhead (its own CUDA graphs) instead")
        if self.precision == "fp16-mixed":
            return ("--step graph with fp16-mixed: GradScaler's step reads its inf check on the host, which a CUDA graph "
                    "cannot hold; use bf16 (no loss scaling)")
        if self.devices > 1:
            return "--step graph with --devices > 1: DDP's gradient all-reduce is not captured here; use --devices 1"
        return None

    @property
    def label(self) -> str:
        """Short human label: framework/model/device plus non-default variant flags."""
        extras = [f"{k}={v}" for k, v in self.variant_flags().items()]
        return " ".join([f"{self.framework}/{self.model}/{self.device}", *extras])

    def variant_flags(self) -> dict[str, Any]:
        """The variant fields that differ from their defaults."""
        defaults = RunSpec(framework=self.framework, model=self.model)
        variant_names = ("dropout", "batchnorm", "augment", "early_stopping", "init", "lr", *SPEED_DEFAULTS, *SCALING_DEFAULTS)
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


_NO_DEFAULT = object()


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise SpecError(f"--{name} {value!r} is not known; choose from: {', '.join(choices)}")


def _check_range(name: str, value: float | None, low: float, high: float | None = None) -> None:
    if value is None:
        return
    # nan fails no comparison, so it is refused by name (a stored record or a plan from code skips argparse); an int
    # is never checked so, as one too large for a float would raise.
    if (isinstance(value, float) and not math.isfinite(value)) or value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise SpecError(f"--{name.replace('_', '-')} {value} is out of range; valid: {bound}")


def validate(spec: RunSpec) -> None:
    """Reject impossible values before any case starts, naming the valid range."""
    check_choice("framework", spec.framework, frameworks.FRAMEWORKS)
    check_choice("model", spec.model, CATALOG)
    check_choice("device", spec.device, DEVICES)
    check_choice("init", spec.init, INITS)
    check_choice("precision", spec.precision, PRECISIONS)
    check_choice("lr-scaling", spec.lr_scaling, LR_SCALING)
    _check_range("devices", spec.devices, 1, MAX_DEVICES)
    _check_framework_settings(spec)
    _check_range("epochs", spec.epochs, 1, EPOCHS_MAX)
    _check_range("batch_size", spec.batch_size, 1, BATCH_SIZE_MAX)
    _check_range("threads", spec.threads, 1, THREADS_MAX)
    _check_range("limit", spec.limit, 1)
    _check_range("seed", spec.seed, 0, 2**32 - 1)
    _check_range("dropout", spec.dropout, 0.0, 0.95)
    _check_range("early_stopping", spec.early_stopping, 1)
    if not (0 < spec.lr <= 100):  # nan fails this too
        raise SpecError(f"--lr {spec.lr} is out of range; valid: 0 < lr <= 100")
    for target in spec.targets:
        _check_range("targets", target, 0.0, 1.0)
    for size in spec.infer_batch_sizes:
        _check_range("infer_batch_sizes", size, 1, INFER_BATCH_MAX)
    if spec.limit is not None and spec.batch_size > spec.limit:
        raise SpecError(
            f"--batch-size {spec.batch_size} is larger than --limit {spec.limit}; use a batch size <= {spec.limit}"
        )
    if spec.limit is not None and spec.global_batch_size > spec.limit:
        raise SpecError(f"global batch {spec.global_batch_size} (--batch-size {spec.batch_size} x --devices {spec.devices}) "
                        f"is larger than --limit {spec.limit}; raise --limit or lower --batch-size")


def _check_framework_settings(spec: RunSpec) -> None:
    """Each framework-specific setting: a known value first, then whether it fits this case."""
    for name, (_, setting) in SETTINGS.items():
        value = getattr(spec, name)
        if setting.choices is not None:
            check_choice(name.replace("_", "-"), value, setting.choices)
        if setting.bounds is not None:
            _check_range(name, value, *setting.bounds)
    for name, (_, setting) in SETTINGS.items():
        value = getattr(spec, name)
        if value != setting.default and not applies(name, spec.framework, spec.model):
            shown = "" if isinstance(value, bool) else f" {value}"
            raise SpecError(f"--{name.replace('_', '-')}{shown} applies to {setting.scope_text}, not {spec.framework}/{spec.model}")


def _check_setting_value(name: str, value: Any) -> None:
    """A bad value (--compile fast) is reported as such, before the question of which cases it fits."""
    framework, setting = SETTINGS[name]
    RunSpec(framework=framework, model=setting.models[0], **{name: value})


def _scoped(values: dict[str, Any]) -> dict[str, Any]:
    """Reset framework-specific settings on cases they do not apply to, so one plan can mix frameworks."""
    framework, model = values.get("framework"), values.get("model")
    return {k: (SPEED_DEFAULTS[k] if k in SETTINGS and not applies(k, framework, model) else v)
            for k, v in values.items()}


def _check_fits_split(spec: RunSpec) -> None:
    """Plan time only (stored records keep loading): a batch larger than the training split would be one short batch."""
    if spec.batch_size > (train := TRAIN_SAMPLES[spec.task]):
        raise SpecError(f"--batch-size {spec.batch_size} is larger than the {train} training samples of --model "
                        f"{spec.model}; use a batch size <= {train}")


def grid(axes: dict[str, Iterable[Any]], repeats: int = 1, **fixed: Any) -> list[RunSpec]:
    """Expand list-valued axes into specs; repeat i uses seed + i so repeats are independent runs.

    A framework-specific setting (e.g. --compile) is applied to the cases it fits and dropped from the others;
    a setting that fits no case in the plan is an error rather than silently ignored.
    """
    if not 1 <= repeats <= REPEATS_MAX:
        raise SpecError(f"--repeats {repeats} is out of range; valid: 1..{REPEATS_MAX}")
    names = list(axes)
    bases: dict[str, RunSpec] = {}
    requested: dict[str, set[Any]] = {}
    for combo in itertools.product(*(list(axes[n]) for n in names)):
        values = {**dict(zip(names, combo)), **fixed}
        for name in SETTINGS:
            if name in values and values[name] != SPEED_DEFAULTS[name]:
                _check_setting_value(name, values[name])
                requested.setdefault(name, set()).add(values[name])
        base = RunSpec(**_scoped(values))
        _check_fits_split(base)
        bases.setdefault(base.id, base)
    for name, wanted in requested.items():
        used = {getattr(b, name) for b in bases.values()}
        if not wanted & used:
            raise SpecError(f"--{name.replace('_', '-')} applies to {SETTINGS[name][1].scope_text}, and no case in this plan is one")
    return [replace(b, seed=b.seed + i, repeat=i) for b in bases.values() for i in range(repeats)]
