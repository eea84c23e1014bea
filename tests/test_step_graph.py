"""The whole-step CUDA graph (--step graph) and the launch-free floor: the setting, the capture logic with a stand-in
graph on CPU, the floor maths, and real-GPU tests marked `gpu`."""

from __future__ import annotations

import pytest

from suite.core.spec import RunSpec, SpecError, grid
from suite.run.runner import run_case


def test_step_graph_is_a_torch_setting_left_out_of_old_case_ids():
    eager = RunSpec(framework="torch", model="dense", device="cuda")
    assert RunSpec(framework="torch", model="dense", device="cuda", step="eager").id == eager.id
    graph = RunSpec(framework="torch", model="dense", device="cuda", step="graph")
    assert graph.id != eager.id and graph.label == "torch/dense/cuda step=graph" and graph.unsupported_reason is None
    with pytest.raises(SpecError, match="--step graph applies to torch"):
        RunSpec(framework="keras", model="dense", step="graph")
    with pytest.raises(SpecError, match="--step 'fast' is not known; choose from: eager, graph"):
        RunSpec(framework="torch", model="dense", step="fast")
    plan = grid({"framework": ["torch", "keras"], "model": ["cnn"], "device": ["cuda"], "step": ["eager", "graph"]})
    assert sorted((s.framework, s.step) for s in plan) == [("keras", "eager"), ("torch", "eager"), ("torch", "graph")]


@pytest.mark.parametrize(("settings", "reason"), [
    ({"device": "cpu"}, "it needs a CUDA GPU"),
    ({"compile": "default"}, "use --compile reduce-overhead"),
    ({"precision": "fp16-mixed"}, "GradScaler's step reads its inf check on the host"),
    ({"devices": 2}, "DDP's gradient all-reduce is not captured"),
])
def test_step_graph_is_skipped_with_the_reason_before_a_worker_starts(settings: dict, reason: str):
    spec = RunSpec(framework="torch", model="dense", **{"device": "cuda", **settings}, step="graph")
    assert reason in spec.unsupported_reason
    record = run_case(spec, timeout_s=1.0)  # a worker would need far more than 1 s: none is started
    assert record.status == "skipped" and reason in record.error and record.worker_pid is None
