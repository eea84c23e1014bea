"""The framework registry: each framework's backend module and the settings only it accepts, with their defaults.

A new framework is one backend module (suite/backends/, with `make_backend()`) plus one FRAMEWORKS entry here; a
setting it adds is also a RunSpec field (suite/core/spec.py). `fashionbench run` makes a flag of every setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from suite.core.models import CATALOG

# reduce-overhead is torch.compile with CUDA graphs (one replay per step instead of one launch per kernel); on CPU
# inductor skips the graphs, so there it is torch.compile's default code. Whether graphs replayed is measured on CUDA
# (framework_info cuda_graphs and graph_launches_per_step, from the profiled steps), never read from the flag.
TORCH_COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
# graph: forward, loss, backward and Adam captured once as one CUDA graph (torch.cuda.graph) and replayed every step,
# the batch gathered on the device inside the graph (suite/backends/step_graph.py; docs/gpu-speed.md).
TORCH_STEP_MODES = ("eager", "graph")
JIT_COMPILE = ("auto", "on", "off")
KERAS_BACKENDS = ("tensorflow", "jax", "torch")


@dataclass(frozen=True)
class Setting:
    """A RunSpec field that one framework accepts; on other cases it must stay at its default."""

    default: Any
    # Completes "--flag applies to <scope>, not torch/dense"; {models} is filled with the models that fit `model_fact`.
    scope: str
    help: str  # the `fashionbench run` flag's help; a bool setting is an off|on flag, any other takes values of its type
    metavar: str = "VALUE"
    choices: tuple[str, ...] | None = None
    bounds: tuple[int, int] | None = None
    # A boolean ModelFacts field the case's model must have (channels-last needs convolutions); None: every model.
    model_fact: str | None = None
    # Part of the very first stored specs, so its default stays in the id digest (every later field is left out).
    in_first_records: bool = False

    @property
    def models(self) -> tuple[str, ...]:
        """The models this setting fits."""
        return tuple(m for m, facts in CATALOG.items() if self.model_fact is None or getattr(facts, self.model_fact))

    @property
    def scope_text(self) -> str:
        """Where the setting applies, for error messages."""
        return self.scope.format(models=" and ".join(self.models))


@dataclass(frozen=True)
class Framework:
    """One framework: its backend module (which has `make_backend()`) and the settings only it accepts."""

    backend_module: str
    settings: dict[str, Setting] = field(default_factory=dict)
    # The backend of one rank when --devices N runs N processes (torchrun); None: the backend keeps its replicas itself.
    rank_backend_module: str | None = None


FRAMEWORKS: dict[str, Framework] = {
    "torch": Framework("suite.backends.torch_backend", {
        "compile": Setting("none", "torch (torch.compile); for keras use --jit-compile", choices=TORCH_COMPILE_MODES,
                           help=f"torch.compile mode for torch cases: {', '.join(TORCH_COMPILE_MODES)}", metavar="MODE"),
        "step": Setting("eager", "torch (the whole-step CUDA graph)", choices=TORCH_STEP_MODES, metavar="MODE",
                        help="torch training step: eager (one launch per kernel) or graph (the whole step as one CUDA "
                             "graph, replayed; CUDA only)"),
        "channels_last": Setting(False, "the torch {models} only", model_fact="channels_last",
                                 help="channels-last memory format for torch cases of models with convolutions"),
    }, rank_backend_module="suite.backends.torch_ddp"),
    "keras": Framework("suite.backends.keras_backend", {
        "jit_compile": Setting("auto", "keras; for torch use --compile", choices=JIT_COMPILE,
                               help="Keras compile(jit_compile=...) for keras cases: auto (Keras decides), on, off",
                               metavar="MODE"),
        "steps_per_execution": Setting(1, "keras only", bounds=(1, 100_000), help="Keras steps_per_execution for keras cases",
                                       metavar="N"),
        "keras_backend": Setting("tensorflow", "--framework keras only", choices=KERAS_BACKENDS, in_first_records=True,
                                 help="Keras 3 backend for keras cases: tensorflow, jax, torch (each case in its own process)",
                                 metavar="NAME"),
    }),
}

# Every framework-specific setting, with the framework that owns it.
SETTINGS: dict[str, tuple[str, Setting]] = {
    name: (framework, setting) for framework, entry in FRAMEWORKS.items() for name, setting in entry.settings.items()
}


def applies(name: str, framework: str, model: str) -> bool:
    """Whether a framework-specific setting fits a case of this framework and model."""
    owner, setting = SETTINGS[name]
    return framework == owner and model in setting.models
