"""A new model is one CATALOG entry: its facts drive spec validation, task, binary-ness, targets, settings, goals, runs."""

from __future__ import annotations

import numpy as np
import pytest

from suite.core import data
from suite.core.models import CATALOG, ModelFacts, architecture, param_count
from suite.core.spec import RunSpec, SpecError, grid
from tests.conftest import needs_data


def _wide(b, batchnorm: bool, dropout: float) -> None:
    """A hidden layer the built-in models do not have, so nothing can pass by reusing theirs."""
    b.flatten()
    b.dense(64, batchnorm)
    b.add("relu")


@pytest.fixture
def wide(monkeypatch) -> str:
    """A binary-task model named unlike `binary`, with channels-last allowed and its own target and MFU goal."""
    facts = ModelFacts(task="tshirt-vs-shirt", targets=(0.7,), dropout=0.0, channels_last=True, mfu_goal_pct=33.0,
                       hidden=_wide)
    monkeypatch.setitem(CATALOG, "wide", facts)
    return "wide"


def test_unknown_model_is_rejected_naming_the_catalog():
    with pytest.raises(SpecError, match="--model 'wide' is not known; choose from: dense, cnn, binary"):
        RunSpec(framework="torch", model="wide")


def test_one_entry_gives_task_binary_head_and_targets(wide):
    spec = RunSpec(framework="keras", model=wide)
    assert spec.task == "tshirt-vs-shirt" and spec.binary
    assert spec.effective_targets == (0.7,)
    assert [layer.kind for layer in architecture(spec)] == ["flatten", "dense", "relu", "dense", "sigmoid"]
    assert param_count(spec) == 784 * 64 + 64 + 64 + 1
    assert not RunSpec(framework="keras", model="dense").binary and RunSpec(framework="keras", model="binary").binary


def test_ten_class_entry_gets_the_ten_way_head(monkeypatch):
    monkeypatch.setitem(CATALOG, "wide10", ModelFacts("10-class", (0.8,), 0.0, False, None, _wide))
    spec = RunSpec(framework="torch", model="wide10")
    assert not spec.binary and architecture(spec)[-1].units == len(data.CLASS_NAMES)


def test_channels_last_follows_the_fact(wide):
    assert RunSpec(framework="torch", model=wide, channels_last=True).channels_last
    with pytest.raises(SpecError, match=r"--channels-last applies to the torch cnn and wide only, not torch/dense"):
        RunSpec(framework="torch", model="dense", channels_last=True)
    specs = grid({"framework": ["torch"], "model": ["dense", wide], "channels_last": [True]})
    assert [(s.model, s.channels_last) for s in specs] == [("dense", False), (wide, True)]


def test_report_targets_and_speed_goal_read_the_entry(wide):
    from suite.bench.goals import mfu_goals
    from suite.report.cases import default_targets
    from tests.test_goals import record

    assert default_targets() == {"10-class": 0.85, "tshirt-vs-shirt": 0.7}
    new, binary = RunSpec(framework="torch", model=wide), RunSpec(framework="torch", model="binary")
    [verdict] = mfu_goals([(record(new, mfu=30.0), record(new, mfu=34.0)), (record(binary), record(binary))])
    assert verdict.goal == ">= 33%" and verdict.met and "torch/wide" in verdict.name


@needs_data
def test_a_case_of_the_new_model_runs_as_a_binary_classifier(wide, monkeypatch):
    """In this process (a worker could not see the patched catalog): the torch backend trains one sigmoid output."""
    torch = pytest.importorskip("torch")
    from suite.measure.machine import fingerprint
    from suite.run.worker import run_job

    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: None)  # allowed once per process; pytest shares it
    spec = RunSpec(framework="torch", model=wide, epochs=1, limit=256, batch_size=64, infer_batch_sizes=(8,))
    record = run_job({"spec": spec.to_dict(), "machine": fingerprint().model_dump()})
    assert record.status == "ok", record.error
    assert record.class_names == list(data.BINARY_CLASS_NAMES)
    assert record.params == param_count(spec) and len(record.confusion_matrix) == 2
    # Every T-shirt and Shirt test image (1,000 each) was scored, and the accuracy is the matrix's diagonal share.
    matrix = np.asarray(record.confusion_matrix)
    assert matrix.sum(axis=1).tolist() == [1000, 1000]
    assert record.test_accuracy == pytest.approx(np.trace(matrix) / matrix.sum()) and record.history[0].val_loss > 0


def test_a_framework_is_its_registration(monkeypatch):
    """Validation, setting scope and the backend lookup all read suite.core.frameworks.FRAMEWORKS."""
    from suite.backends import get_backend
    from suite.core.frameworks import FRAMEWORKS, Framework

    with pytest.raises(SpecError, match="--framework 'torch2' is not known; choose from: torch, keras"):
        RunSpec(framework="torch2", model="dense")
    monkeypatch.setitem(FRAMEWORKS, "torch2", Framework(FRAMEWORKS["torch"].backend_module))
    assert RunSpec(framework="torch2", model="cnn").framework == "torch2"
    with pytest.raises(SpecError, match=r"--compile default applies to torch \(torch.compile\).*not torch2/dense"):
        RunSpec(framework="torch2", model="dense", compile="default")
    pytest.importorskip("torch")
    assert type(get_backend("torch2")).__name__ == "TorchBackend"
