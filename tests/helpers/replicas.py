"""Train one epoch of plain SGD (no dropout) through the suite's own backend on N replicas, and save the weights.

`python -m tests.helpers.replicas FRAMEWORK KERAS_BACKEND DEVICES BATCH LIMIT OUT_DIR`; torch with DEVICES > 1 runs
under torchrun (one process per rank, each saving its own copy). Each setting runs in a fresh process: TensorFlow's
logical devices and JAX's host device count are fixed at start-up. Writes OUT_DIR/rank{R}.npz with the flattened
weights and the replica count the framework reports.
"""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

from suite.backends import open_backend
from suite.core import data
from suite.core.models import shared_weights
from suite.core.spec import RunSpec

SGD_LR = 0.1


def use_plain_sgd(backend: object, framework: str) -> None:
    """Swap the suite's Adam for SGD: averaged gradients then map to weights linearly, so a missing or wrong
    all-reduce shows in the weights rather than being normalised away."""
    if framework == "torch":
        import torch

        backend.optimizer = torch.optim.SGD(backend.model.parameters(), lr=SGD_LR)
        return
    import keras

    with backend.strategy.scope() if backend.strategy is not None else nullcontext():
        backend.model.compile(optimizer=keras.optimizers.SGD(SGD_LR), loss=backend.model.loss, metrics=["accuracy"])


def flat_weights(backend: object, framework: str) -> np.ndarray:
    """Every trainable weight of the backend's model, in the framework's own order and layout, as one float64 vector."""
    if framework == "torch":
        weights = [p.detach().numpy() for p in backend.model.parameters()]
    else:
        weights = backend.model.get_weights()
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])


def main(framework: str, keras_backend: str, devices: int, batch_size: int, limit: int, out: Path) -> None:
    spec = RunSpec(framework=framework, model="dense", keras_backend=keras_backend, devices=devices,
                   batch_size=batch_size, limit=limit, threads=devices, init="shared")
    backend, _ = open_backend(spec)
    backend.build(spec, shared_weights(spec))
    prepared = data.prepare(data.load(None), spec.task, spec.seed, spec.limit)
    backend.load_data(prepared)
    use_plain_sgd(backend, framework)
    initial = flat_weights(backend, framework)
    backend.train_epoch(data.batch_order(len(prepared.y_train), spec.seed, 1))
    strategy = getattr(backend, "strategy", None)
    replicas = strategy.num_replicas_in_sync if strategy is not None else backend.distribution()["world_size"]
    np.savez(out / f"rank{os.environ.get('RANK', '0')}.npz", weights=flat_weights(backend, framework), initial=initial,
             replicas=replicas)

if __name__ == "__main__":
    fw, kb, n, batch, lim, folder = sys.argv[1:7]
    main(fw, kb, int(n), int(batch), int(lim), Path(folder))
