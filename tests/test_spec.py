"""RunSpec validation, ids and grid expansion."""

from __future__ import annotations

import pytest

from suite.core.spec import RunSpec, SpecError, grid


@pytest.mark.parametrize("field,value,needle", [
    ("epochs", 0, "--epochs 0 is out of range; valid: 1..10000"),
    ("epochs", -3, "--epochs -3"),
    ("threads", 0, "--threads 0 is out of range"),
    ("limit", 0, "--limit 0 is out of range; valid: >= 1"),
    ("batch_size", 0, "--batch-size 0"),
    ("dropout", 1.5, "--dropout 1.5"),
    ("lr", 0.0, "--lr 0.0"),
    ("framework", "jax", "--framework 'jax' is not known; choose from: torch, keras"),
    ("model", "resnet", "choose from: dense, cnn, binary"),
    ("device", "tpu", "choose from: cpu, cuda"),
])
def test_bad_values_are_rejected_with_the_valid_range(field, value, needle):
    kwargs = {"framework": "torch", "model": "dense", field: value}
    with pytest.raises(SpecError) as err:
        RunSpec(**kwargs)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_batch_larger_than_limit_is_rejected():
    with pytest.raises(SpecError, match="--batch-size 256 is larger than --limit 100"):
        RunSpec(framework="torch", model="dense", batch_size=256, limit=100)


def test_id_is_stable_and_changes_with_any_field():
    a = RunSpec(framework="torch", model="cnn")
    assert a.id == RunSpec(framework="torch", model="cnn").id
    assert a.id.startswith("torch-cnn-cpu-")
    assert a.id != RunSpec(framework="torch", model="cnn", batchnorm=True).id
    assert a.case_key == RunSpec(framework="torch", model="cnn", seed=5, repeat=5).case_key


def test_round_trip_and_unknown_fields():
    spec = RunSpec(framework="keras", model="binary", targets=(0.8, 0.9), dropout=0.2)
    assert RunSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match="unknown spec field"):
        RunSpec.from_dict({**spec.to_dict(), "bogus": 1})


def test_grid_expands_axes_and_repeats_with_distinct_seeds():
    specs = grid({"framework": ["torch", "keras"], "model": ["dense", "cnn"], "device": ["cpu"]}, repeats=3, seed=10)
    assert len(specs) == 12
    assert len({s.id for s in specs}) == 12
    repeats = [s for s in specs if s.framework == "torch" and s.model == "cnn"]
    assert [(s.seed, s.repeat) for s in repeats] == [(10, 0), (11, 1), (12, 2)]
    assert len({s.case_key for s in repeats}) == 1


def test_label_names_non_default_variants():
    assert RunSpec(framework="torch", model="cnn", batchnorm=True).label == "torch/cnn/cpu batchnorm=True"
    assert RunSpec(framework="torch", model="cnn").effective_targets == (0.90,)
