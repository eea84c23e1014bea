"""Framework imports live only in suite/backends: the framework-neutral modules must not load torch or TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

NEUTRAL = ["suite.data", "suite.models", "suite.results", "suite.spec", "suite.measure", "suite.table",
           "suite.runner", "suite.cli", "suite.machine", "suite.nvml", "suite.probe", "suite.backends",
           "suite.plans", "suite.resident", "suite.calibrate", "suite.report", "suite.compare", "suite.asv_results"]


@pytest.mark.parametrize("module", NEUTRAL)
def test_module_imports_no_framework(module: str):
    code = (f"import sys, {module}; bad = [m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"
