"""Built-in plans run by name (`fashionbench run --plan-name NAME`): fixed recipes whose records compare across machines.

`hardware` is the hardware-selection plan: one recipe per CATALOG model — torch, fp32, eager, batch 500, the full
training split, seed 0, inference at batch 1 and 1024 — trained long enough to reach the model's accuracy target, so
time, cost and energy to target can be read from it. Run it on every box (and device) to choose between; the report
then compares the boxes like for like. The thread count is the box's: all its logical cores, unless --threads says
otherwise (threads belong to the machine, not to the recipe; suite.core.spec.RunSpec.recipe_key leaves them out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from suite.core.models import CATALOG
from suite.core.spec import RunSpec

HARDWARE_BATCH_SIZE = 500
HARDWARE_INFER_BATCH_SIZES = (1, 1024)
# Epochs per model: past the first epoch that reached the model's target (CATALOG) in a seed-0 run of this recipe on the
# 2-core CPU VM, 2026-12-06, with margin because another device's numerics move the curve a little: dense reached 0.85
# at epoch 4 (0.852), binary 0.80 at epoch 1 (0.809), cnn 0.90 at epoch 15 (0.901; 0.900 at 14, 0.905 at 19).
HARDWARE_EPOCHS = {"dense": 8, "binary": 4, "cnn": 20}
DEFAULT_EPOCHS = 10  # a model added to CATALOG after that calibration: the suite's default until someone measures it


def hardware_plan(devices: Sequence[str], threads: int, repeats: int = 1) -> list[RunSpec]:
    """The hardware-selection plan on the given devices: every CATALOG model, one recipe each, `repeats` seeds."""
    return [RunSpec(framework="torch", model=model, device=device, epochs=HARDWARE_EPOCHS.get(model, DEFAULT_EPOCHS),
                    batch_size=HARDWARE_BATCH_SIZE, threads=threads, infer_batch_sizes=HARDWARE_INFER_BATCH_SIZES,
                    seed=repeat, repeat=repeat)
            for model in CATALOG for device in devices for repeat in range(repeats)]


@dataclass(frozen=True)
class NamedPlan:
    """A plan `fashionbench run --plan-name` knows: what it is for, and its cases for some devices, threads and repeats."""

    help: str
    build: Callable[[Sequence[str], int, int], list[RunSpec]]


NAMED_PLANS = {
    "hardware": NamedPlan("every model to its accuracy target, one recipe (torch fp32 eager, batch 500, full split): "
                          "time, cost and energy to target, comparable across machines", hardware_plan),
}
