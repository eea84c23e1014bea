"""Train two Keras epochs from the device-resident split, or from numpy arrays in the same order (the feed before
the resident one); print the result, the recorded data device and (resident) a profiled fit as JSON.

`python tests/helpers/keras_resident.py jax|torch|tensorflow resident|numpy [STEPS_PER_EXECUTION]`: one feed per
process, as the Keras backend and torch's thread settings are process-wide. On TensorFlow "resident" is the GPU
pipeline (prefetch_to_device), here aimed at the CPU under another name of it, "/device:CPU:0".
"""

from __future__ import annotations

import json
import sys

import numpy as np

from suite.backends import open_backend
from suite.core import data
from suite.core.models import shared_weights
from suite.core.spec import RunSpec

keras_backend, feed = sys.argv[1], sys.argv[2]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 1
# 1000 samples at batch 128: 7 full batches and a short one, so the tail batch is covered too.
spec = RunSpec(framework="keras", model="cnn", limit=1000, threads=1, init="shared", batch_size=128,
               keras_backend=keras_backend, steps_per_execution=steps)
prepared = data.prepare(data.load(None), spec.task, 0, spec.limit)
backend, _ = open_backend(spec)
backend.build(spec, shared_weights(spec))
if keras_backend == "tensorflow" and feed == "resident":
    backend.tf_device = "/device:CPU:0"
backend.load_data(prepared)
if feed == "numpy":  # fit on np.take copies of host arrays
    backend.resident = False
    backend.keras_backend = "numpy"  # past the TensorFlow pipeline, as tests/helpers/keras_order.py does
    backend.arrays["train"] = (prepared.x_train[..., np.newaxis], prepared.y_train)
epochs = [backend.train_epoch(data.batch_order(len(prepared.y_train), 0, epoch)) for epoch in (1, 2)]
result = {"epochs": epochs, "data_device": backend.data_device(),
          "weights": [w.tolist() for w in backend.model.get_weights()[-2:]]}
if feed == "resident":
    result["profile"] = backend.step_profile(5, None)
print(json.dumps(result))
