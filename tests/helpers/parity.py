"""Run in a fresh process per framework: build every model variant from the shared init and print facts as JSON.

`python tests/helpers/parity.py torch|keras`. One framework per process: TensorFlow's settings are
process-wide, and torch and TensorFlow in one process have crashed (SIGSEGV) here.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from suite.core import data
from suite.core.models import shared_weights
from suite.core.spec import RunSpec

IMAGES = 16
VARIANTS = [
    {"model": m, **flags}
    for m in ("dense", "cnn", "binary")
    for flags in ({}, {"batchnorm": True}, {"dropout": 0.3}, {"batchnorm": True, "dropout": 0.2})
]


def torch_facts(spec: RunSpec, images: np.ndarray) -> dict[str, object]:
    """Params, eval outputs and FlopCounterMode counts per sample for the torch build."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from suite.backends import torch_backend

    model = torch_backend.build_module(spec)
    torch_backend.load_keras_layout(model, spec, shared_weights(spec))
    model.eval()
    x = torch.from_numpy(images).unsqueeze(1)
    with torch.no_grad(), FlopCounterMode(display=False) as forward:
        out = model(x).numpy()
    with FlopCounterMode(display=False) as train:
        model(x).sum().backward()
    return {
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "outputs": out.tolist(),
        "forward_flops": forward.get_total_flops() // len(images),
        "train_flops": train.get_total_flops() // len(images),
    }


def keras_facts(spec: RunSpec, images: np.ndarray) -> dict[str, object]:
    """Params and eval outputs for the Keras build."""
    from suite.backends import keras_backend

    keras_backend._import_frameworks("tensorflow")
    model = keras_backend.build_model(spec)
    model.set_weights([a for group in shared_weights(spec) for a in group])
    return {
        "params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "outputs": np.asarray(model(images[..., None], training=False)).tolist(),
    }


def main(framework: str) -> None:
    """Print a JSON list, one entry per variant."""
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # here, not at import: the tests import VARIANTS from this module
    images = data.prepare(data.load(), "10-class", seed=0, limit=64).x_test[:IMAGES]
    facts = torch_facts if framework == "torch" else keras_facts
    results = [{"variant": v, **facts(RunSpec(framework=framework, init="shared", **v), images)} for v in VARIANTS]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
