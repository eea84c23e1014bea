"""Architectures: the issue's parameter counts, cross-framework parity, shared-init logits, analytic FLOPs vs torch's counter."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from suite.core.models import (
    architecture,
    forward_flops_per_sample,
    param_count,
    shared_weights,
    train_flops_per_sample,
)
from suite.core.spec import RunSpec
from tests.conftest import REPO, needs_data
from tests.helpers.parity import IMAGES, VARIANTS


def test_param_counts_match_the_published_architectures():
    assert param_count(RunSpec(framework="torch", model="dense")) == 101_770
    assert param_count(RunSpec(framework="torch", model="cnn")) == 225_034
    assert param_count(RunSpec(framework="torch", model="binary")) == 784 * 128 + 128 + 128 + 1


def test_cnn_has_the_course_layers_and_default_dropout():
    kinds = [layer.kind for layer in architecture(RunSpec(framework="torch", model="cnn"))]
    assert kinds == ["conv", "relu", "maxpool", "conv", "relu", "maxpool", "flatten", "dense", "relu", "dropout", "dense"]
    dropout = [layer for layer in architecture(RunSpec(framework="torch", model="cnn")) if layer.kind == "dropout"]
    assert dropout[0].rate == 0.5


def test_variants_change_the_layers():
    plain = architecture(RunSpec(framework="torch", model="dense"))
    varied = architecture(RunSpec(framework="torch", model="dense", batchnorm=True, dropout=0.3))
    assert "batchnorm" not in [layer.kind for layer in plain] and "dropout" not in [layer.kind for layer in plain]
    assert [layer.kind for layer in varied].count("batchnorm") == 1
    assert param_count(RunSpec(framework="torch", model="dense", batchnorm=True)) == 101_770 + 2 * 128


def test_shared_weights_are_seeded_and_shaped_like_keras():
    spec = RunSpec(framework="torch", model="cnn", init="shared")
    first, again = shared_weights(spec), shared_weights(spec)
    other_seed = shared_weights(RunSpec(framework="torch", model="cnn", init="shared", seed=1))
    assert all(np.array_equal(a, b) for g, h in zip(first, again) for a, b in zip(g, h))
    assert not np.array_equal(first[0][0], other_seed[0][0])
    assert first[0][0].shape == (3, 3, 1, 32)
    assert sum(a.size for group in first for a in group) == 225_034


def test_train_flops_count_no_input_gradient_for_the_first_layer():
    spec = RunSpec(framework="torch", model="dense")
    forward = forward_flops_per_sample(spec)
    assert forward == 2 * (784 * 128 + 128 * 10)
    assert train_flops_per_sample(spec) == 3 * forward - 2 * 784 * 128


@pytest.fixture(scope="module")
def parity() -> dict[str, list[dict]]:
    """Facts from each framework, each computed in its own process."""
    facts = {}
    for framework in ("torch", "keras"):
        out = subprocess.run([sys.executable, "tests/helpers/parity.py", framework], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        facts[framework] = json.loads(out.stdout)
    return facts


def paired(parity: dict[str, list[dict]]) -> list[tuple[dict, dict]]:
    """torch's and Keras's facts variant by variant; both must cover every variant, in the same order."""
    for framework in ("torch", "keras"):
        assert [f["variant"] for f in parity[framework]] == VARIANTS, framework
    return list(zip(parity["torch"], parity["keras"]))


@needs_data
def test_parameter_parity_per_model_and_variant(parity):
    for t, k in paired(parity):
        expected = param_count(RunSpec(framework="torch", **t["variant"]))
        assert t["params"] == k["params"] == expected, t["variant"]


@needs_data
def test_shared_init_logits_agree_within_1e_4(parity):
    for t, k in paired(parity):
        torch_out, keras_out = np.asarray(t["outputs"]), np.asarray(k["outputs"])
        classes = 1 if t["variant"]["model"] == "binary" else 10
        assert torch_out.shape == keras_out.shape == (IMAGES, classes), t["variant"]
        assert np.abs(torch_out).max() > 1e-3, "outputs all ~0 would make the comparison vacuous"
        np.testing.assert_allclose(torch_out, keras_out, atol=1e-4, err_msg=str(t["variant"]))


@needs_data
def test_analytic_flops_equal_torch_flop_counter(parity):
    for t, _ in paired(parity):
        spec = RunSpec(framework="torch", **t["variant"])
        assert t["forward_flops"] == forward_flops_per_sample(spec), t["variant"]
        assert t["train_flops"] == train_flops_per_sample(spec), t["variant"]
