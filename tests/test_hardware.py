"""Hardware selection: the named hardware plan, like-for-like recommendations (one recipe, several machines), host energy."""

from __future__ import annotations

from suite.bench.named_plans import HARDWARE, hardware_plan
from suite.cli import build_parser, parse
from suite.cli.run import plan_from_args
from suite.core.models import CATALOG


def plan_of(*flags: str) -> list:
    return plan_from_args(parse(build_parser(), ["run", *flags]))


def test_the_hardware_plan_is_one_recipe_per_model_on_each_device_given():
    plan = plan_of("--plan", "hardware", "--device", "cpu", "cuda", "--threads", "4", "--repeats", "2")
    assert plan == hardware_plan(["cpu", "cuda"], 4, repeats=2)  # the command line and the GPU check agree
    assert {s.model for s in plan} == set(CATALOG) and {s.device for s in plan} == {"cpu", "cuda"}
    assert all(s.framework == "torch" and s.precision == "fp32" and s.compile == "none" and s.batch_size == 500
               and s.limit is None and s.epochs == HARDWARE["epochs"] for s in plan)
    # One recipe per model whatever the device, thread count or seed: what a like-for-like verdict needs.
    assert len({s.recipe_key for s in plan}) == len(CATALOG)
    assert len({s.recipe_key for s in plan + hardware_plan(["cpu"], 192)}) == len(CATALOG)
    assert sorted({s.seed for s in plan}) == [0, 1]
    # A flag typed after --plan wins, and makes another recipe: the report will not compare it with this one.
    (other,) = {s.recipe_key for s in plan_of("--plan", "hardware", "--device", "cpu", "--epochs", "3", "--model", "cnn")}
    assert other not in {s.recipe_key for s in plan}
