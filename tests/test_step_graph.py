"""The whole-step CUDA graph (--step graph) and the launch-free floor: the setting, the capture logic with a stand-in
graph on CPU, the floor maths, and real-GPU tests marked `gpu`."""

from __future__ import annotations

import pytest

from suite.core.spec import RunSpec, SpecError, grid
from suite.run.runner import run_case
from tests.conftest import needs_data


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


# ---------------------------------------------------------------- capture logic, with a stand-in graph on CPU

class StandInGraphs:
    """CudaGraphs on CPU: warm-up runs the body, capture records it without running it (as a capture launches nothing),
    replay runs the recorded body, which reads the tensors it closed over, as a graph reads their addresses."""

    def __init__(self) -> None:
        self.warmed, self.captured, self.replayed = 0, 0, 0

    def warm_up(self, body, iterations: int) -> None:
        for _ in range(iterations):
            body()
        self.warmed += iterations

    def capture(self, body):
        self.captured += 1

        def replay() -> None:
            self.replayed += 1
            body()

        return replay


@pytest.fixture
def cpu_graphs(monkeypatch):
    """The torch backend on CPU with the stand-in graph API, and one backend per call (threads set once per process)."""
    torch = pytest.importorskip("torch")
    from suite.backends import step_graph, torch_backend

    made: list[StandInGraphs] = []
    monkeypatch.setattr(step_graph, "new_graphs", lambda: made.append(StandInGraphs()) or made[-1])
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: None)
    return torch_backend, made


def _trained(torch_backend, step: str, model: str, epochs: int = 2):
    from suite.core import data
    from suite.core.models import shared_weights

    spec = RunSpec(framework="torch", model=model, limit=1000, batch_size=64, init="shared", threads=1, step=step)
    prepared = data.prepare(data.load(None), spec.task, 0, spec.limit)
    backend = torch_backend.TorchBackend()
    backend.setup(spec)
    backend.build(spec, shared_weights(spec))
    backend.load_data(prepared)
    results = [backend.train_epoch(data.batch_order(len(prepared.y_train), 0, e)) for e in range(1, epochs + 1)]
    return backend, results


@needs_data
@pytest.mark.parametrize("model", ["dense", "cnn", "binary"])
def test_the_whole_step_trains_exactly_like_the_eager_loop(cpu_graphs, model: str):
    """1,000 samples at batch 64: 15 replays and one short eager batch per epoch; the CNN's dropout draws from the RNG,
    which the warm-up must leave as it found it."""
    torch_backend, made = cpu_graphs
    eager, eager_results = _trained(torch_backend, "eager", model)
    graph, graph_results = _trained(torch_backend, "graph", model)
    for (loss_e, acc_e), (loss_g, acc_g) in zip(eager_results, graph_results):
        assert acc_g == acc_e and loss_g == pytest.approx(loss_e, rel=1e-6)
    for name, weight in eager.model.state_dict().items():
        assert torch_backend.torch.equal(weight, graph.model.state_dict()[name]), name
    (graphs,) = made
    assert graphs.warmed == 3 and graphs.captured == 1 and graphs.replayed == graph.whole_step.replays == 2 * 15


@needs_data
def test_a_step_refills_the_static_buffers_in_place(cpu_graphs):
    torch_backend, _ = cpu_graphs
    backend, _ = _trained(torch_backend, "graph", "dense", epochs=1)
    whole = backend.whole_step
    index, loss_sum, x = whole.index, whole.loss_sum, whole.x
    batch = torch_backend.torch.arange(100, 164)
    whole.run(batch)
    assert whole.index is index and torch_backend.torch.equal(index, batch)  # copied into, never rebound
    assert whole.loss_sum is loss_sum and whole.x is x and x is backend.tensors["train"][0]
    times, launches = backend.step_times_s(3)  # the timed steps replay the graph too
    assert len(times) == len(launches) == 3 and whole.replays == 15 + 1 + 3


@needs_data
def test_augmented_epochs_feed_the_graph_through_its_own_image_buffer(cpu_graphs):
    from suite.core import data

    torch_backend, _ = cpu_graphs
    spec = RunSpec(framework="torch", model="dense", limit=640, batch_size=64, threads=1, step="graph", augment=True)
    prepared = data.prepare(data.load(None), spec.task, 0, spec.limit)
    backend = torch_backend.TorchBackend()
    backend.setup(spec)
    backend.build(spec, None)
    backend.load_data(prepared)
    stored = backend.tensors["train"][0].clone()
    images = data.augment(prepared.x_train, 0, 1)
    backend.train_epoch(data.batch_order(len(prepared.y_train), 0, 1), images)
    assert backend.whole_step.x is not backend.tensors["train"][0]
    assert torch_backend.torch.equal(backend.tensors["train"][0], stored)  # the split stays as loaded
    assert torch_backend.torch.equal(backend.whole_step.x, backend._images(images))


# ---------------------------------------------------------------- the floor's maths

def test_time_replays_syncs_before_each_clock_and_divides_by_the_replays():
    from suite.backends.step_graph import time_replays

    log: list[str] = []
    clock = iter([10.0, 10.5])
    ms = time_replays(lambda: log.append("replay"), lambda: log.append("sync"), replays=200, warmup=20,
                      clock=lambda: log.append("clock") or next(clock))
    assert ms == pytest.approx(1000 * 0.5 / 200)
    assert log == ["replay"] * 20 + ["sync", "clock"] + ["replay"] * 200 + ["sync", "clock"]


def test_step_over_floor_reads_the_loop_step_against_the_floor():
    from suite.measure.machine import fingerprint
    from suite.record.schema import RunRecord
    from suite.run.worker import step_over_floor

    spec = RunSpec(framework="torch", model="dense", device="cuda", batch_size=500)
    base = RunRecord(case_id=spec.id, case_key=spec.case_key, machine=fingerprint(), spec=spec.to_dict(), status="ok")
    assert step_over_floor(base.model_copy(update={"sync_free_step_ms": 1.644, "floor_step_ms": 0.411})) == \
        pytest.approx(4.0)
    one_epoch = base.model_copy(update={"in_epoch_steady_s": 0.3, "in_epoch_timed_steps": 90, "floor_step_ms": 1.0})
    assert step_over_floor(one_epoch) == pytest.approx(1000 * 0.3 / 90)
    assert step_over_floor(base.model_copy(update={"sync_free_step_ms": 1.6})) is None  # no floor: nothing to divide by


@needs_data
def test_the_floor_is_measured_on_a_copy_and_leaves_the_case_model_alone(cpu_graphs, monkeypatch):
    torch_backend, made = cpu_graphs
    backend, _ = _trained(torch_backend, "eager", "dense", epochs=1)
    before = {k: v.clone() for k, v in backend.model.state_dict().items()}
    assert backend.launch_free_floor() == {}  # a CPU case has no floor
    backend.device = torch_backend.torch.device("cuda", 0)  # what the CUDA path does, run on CPU tensors
    monkeypatch.setattr(backend, "sync", lambda: None)
    monkeypatch.setattr(torch_backend, "adam", lambda params, lr, capturable: torch_backend.torch.optim.Adam(params, lr))
    floor = backend.launch_free_floor()
    assert floor["floor_step_ms"] > 0 and floor["floor_replays"] == 200 and floor["floor_note"] is None
    assert made[-1].captured == 1 and made[-1].replayed == 200 + 20
    for name, weight in backend.model.state_dict().items():
        assert torch_backend.torch.equal(weight, before[name]), name


# ---------------------------------------------------------------- real GPU

@pytest.mark.gpu
@needs_data
def test_real_gpu_step_graph_replays_and_the_floor_is_below_eager(tmp_path, probe_cache):
    from suite.record.store import read_store
    from tests.conftest import run_cli

    out = run_cli("run", "--framework", "torch", "--model", "dense", "cnn", "--device", "cuda", "--step", "eager",
                  "graph", "--epochs", "2", "--limit", "6000", "--batch-size", "500", "--infer-batch-sizes", "1",
                  "--trace", "--batch-sweep", "500", "4000", "--results", str(tmp_path), cache=probe_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    records = read_store([tmp_path])[0]
    assert len(records) == 4
    for record in records:
        assert record.status == "ok", (record.error, record.stderr_tail)
        assert record.floor_step_ms and record.floor_replays >= 200, record.floor_note
        assert record.floor_step_ms <= record.sync_free_step_ms and record.step_over_floor >= 1.0
        assert record.kernel_busy_pct is not None and 0 < record.kernel_busy_pct <= 100, record.profile_note
        assert record.gpu_kernels_per_step > 0 and (tmp_path / record.trace_file).is_file()
        assert [p.batch_size for p in record.batch_sweep] == [500, 4000]
        assert all(p.floor_step_ms <= 1.05 * p.eager_step_ms for p in record.batch_sweep)  # equal at most, within noise
        graph = record.spec["step"] == "graph"
        assert record.framework_info["cuda_graphs"] is graph
        assert record.graph_launches_per_step == pytest.approx(1.0) if graph else record.graph_launches_per_step == 0
        if graph:  # one graph launch and no kernel launch of its own per step (the index copy is a memcpy)
            assert record.kernel_launches_per_step < 1 and record.test_accuracy > 0.7


@needs_data
def test_the_batch_sweep_times_eager_and_floor_at_each_size_that_fits(cpu_graphs, monkeypatch):
    torch_backend, made = cpu_graphs
    backend, _ = _trained(torch_backend, "eager", "dense", epochs=1)
    assert backend.batch_sweep((64, 128)) == []  # a CPU case has no floor to sweep
    backend.device = torch_backend.torch.device("cuda", 0)
    monkeypatch.setattr(backend, "sync", lambda: None)
    monkeypatch.setattr(torch_backend, "adam", lambda params, lr, capturable: torch_backend.torch.optim.Adam(params, lr))
    points = backend.batch_sweep((64, 256, 100_000))  # 100,000 is more than the 800 training samples: left out
    assert [p["batch_size"] for p in points] == [64, 256] and all(p["floor_replays"] == 200 for p in points)
    assert all(p["eager_step_ms"] > 0 and p["floor_step_ms"] > 0 for p in points)
    assert [g.captured for g in made] == [1, 1] and [g.replayed for g in made] == [220, 220]


def test_batch_sweep_flag_is_checked_before_anything_runs(tmp_path):
    from tests.conftest import run_cli

    done = run_cli("run", "--framework", "torch", "--batch-sweep", "500", "0", "--results", str(tmp_path / "r"))
    assert done.returncode == 2 and "--batch-sweep 0 is out of range; valid: 1..48000" in done.stderr
    assert not (tmp_path / "r").exists()
