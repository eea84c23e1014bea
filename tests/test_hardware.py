"""Hardware selection: the named hardware plan, like-for-like recommendations (one recipe, several machines), host energy."""

from __future__ import annotations

import pytest

from suite.bench.named_plans import HARDWARE_EPOCHS, hardware_plan
from suite.cli import build_parser
from suite.cli.common import UsageError
from suite.cli.run import plan_from_args
from suite.core.models import CATALOG


def plan_of(*flags: str) -> list:
    return plan_from_args(build_parser().parse_args(["run", *flags]))


def test_the_hardware_plan_is_one_recipe_per_model_on_each_device_given():
    plan = plan_of("--plan-name", "hardware", "--device", "cpu", "cuda", "--threads", "4", "--repeats", "2")
    assert plan == hardware_plan(["cpu", "cuda"], 4, repeats=2)
    assert {s.model for s in plan} == set(CATALOG) and {s.device for s in plan} == {"cpu", "cuda"}
    assert all(s.framework == "torch" and s.precision == "fp32" and s.compile == "none" and s.batch_size == 500
               and s.limit is None and s.epochs == HARDWARE_EPOCHS[s.model] for s in plan)
    # One recipe per model whatever the device, thread count or seed: what a like-for-like verdict needs.
    assert len({s.recipe_key for s in plan}) == len(CATALOG)
    assert len({s.recipe_key for s in plan + hardware_plan(["cpu"], 192)}) == len(CATALOG)
    assert sorted({s.seed for s in plan}) == [0, 1]


@pytest.mark.parametrize("flag", [["--epochs", "3"], ["--model", "cnn"], ["--batch-size", "64"], ["--quick"],
                                  ["--precision", "bf16"], ["--seed", "3"]])
def test_the_hardware_plan_refuses_a_recipe_flag(flag: list[str]):
    with pytest.raises(UsageError, match=f"--plan-name hardware fixes the recipe; drop {flag[0]} "):
        plan_of("--plan-name", "hardware", *flag)
