"""Keras on TensorFlow trains through a prebuilt tf.data pipeline; it must follow the shared batch order exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.conftest import REPO, needs_data


@needs_data
def test_prebuilt_pipeline_trains_exactly_like_fit_on_arrays_in_the_shared_order():
    out = subprocess.run([sys.executable, "tests/helpers/keras_order.py"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    pipeline, numpy_path, reversed_order = results["pipeline"], results["numpy"], results["reversed"]
    assert pipeline["loss"] == numpy_path["loss"] and pipeline["accuracy"] == numpy_path["accuracy"]
    np.testing.assert_allclose(pipeline["weights"][0], numpy_path["weights"][0], rtol=0, atol=1e-6)
    assert reversed_order["loss"] != pipeline["loss"]
