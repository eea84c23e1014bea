"""Train one Keras epoch through the prebuilt tf.data pipeline and through `fit` on numpy arrays in the same order;
print both results as JSON. `python tests/helpers/keras_order.py` (TensorFlow's settings are process-wide)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

from suite.backends import open_backend
from suite.core import data
from suite.core.models import shared_weights
from suite.core.spec import RunSpec

spec = RunSpec(framework="keras", model="dense", limit=3000, threads=1, init="shared", batch_size=100)
prepared = data.prepare(data.load(None), spec.task, 0, spec.limit)
order = data.batch_order(len(prepared.y_train), 0, 1)
results = {}
for path in ("pipeline", "numpy"):
    backend, _ = open_backend(spec)
    backend.build(spec, shared_weights(spec))
    backend.load_data(prepared)
    if path == "numpy":
        backend.keras_backend = "numpy"  # takes train_epoch's branch for the other Keras backends: fit on np.take arrays
    loss, accuracy = backend.train_epoch(order)
    results[path] = {"loss": loss, "accuracy": accuracy, "weights": [w.tolist() for w in backend.model.get_weights()[-1:]]}
# A different order must change the result, or the pipeline would be ignoring it.
backend, _ = open_backend(spec)
backend.build(spec, shared_weights(spec))
backend.load_data(prepared)
loss, accuracy = backend.train_epoch(np.ascontiguousarray(order[::-1]))
results["reversed"] = {"loss": loss, "accuracy": accuracy}
print(json.dumps(results))
