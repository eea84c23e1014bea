"""Built-in plans defined in code, for `fashionbench run --plan NAME` and for the GPU check, which runs them too.

Each is a table of `fashionbench run` flags (keys without --, as in a TOML plan file; suite.cli.planfile reads them
like its TOML built-ins), so the command line and the GPU check run the same cases from one source.

`hardware` is the hardware-selection plan: one recipe per CATALOG model — torch, fp32, eager, batch 500, the full
training split, seed 0, inference at batch 1 and 1024 — trained long enough to reach every model's accuracy target, so
time, cost and energy to target can be read from it. Run it on every box (and device) to choose between; the report
then compares the boxes like for like. The device and the thread count are the box's (`--device`, `--threads`; all
logical cores by default): they belong to the machine, not to the recipe (suite.core.spec.RunSpec.recipe_key).
"""

from __future__ import annotations

from typing import Any, Sequence

from suite.core.models import CATALOG
from suite.core.spec import RunSpec, grid

# 20 epochs: past the first epoch that reached each model's target (CATALOG) in a seed-0 run of this recipe on the
# 2-core CPU VM, 2026-12-06, with margin because another device's numerics move the curve a little: cnn reached 0.90
# at epoch 15 (0.901; 0.900 at 14, 0.905 at 19), dense 0.85 at epoch 4 (0.852), binary 0.80 at epoch 1 (0.809).
# One epoch count for all models keeps the plan one flag table; dense and binary epochs are cheap on any device.
HARDWARE: dict[str, Any] = {
    "description": "the hardware-selection plan: every model to its accuracy target, one recipe (torch fp32 eager, "
                   "batch 500, full split, 20 epochs) comparable across machines",
    "framework": ["torch"], "model": list(CATALOG), "epochs": 20, "batch_size": [500], "precision": ["fp32"],
    "seed": 0, "infer_batch_sizes": [1, 1024],
}

NAMED_PLANS: dict[str, dict[str, Any]] = {"hardware": HARDWARE}


def hardware_plan(devices: Sequence[str], threads: int, repeats: int = 1) -> list[RunSpec]:
    """The hardware plan's cases on these devices at this thread count, in the order `run --plan hardware` makes them."""
    axes = {"framework": HARDWARE["framework"], "model": HARDWARE["model"], "device": list(devices),
            "batch_size": HARDWARE["batch_size"], "threads": [threads], "precision": HARDWARE["precision"]}
    return grid(axes, repeats=repeats, epochs=HARDWARE["epochs"], seed=HARDWARE["seed"],
                infer_batch_sizes=tuple(HARDWARE["infer_batch_sizes"]))
