"""A GPU image as it comes, for the GPU-readiness tests: Python loads this at start-up when this folder is on PYTHONPATH.

Modules named in FASHIONBENCH_BLOCK (default: tensorflow, asv, ray) cannot be imported, exactly as if they were not
installed; FASHIONBENCH_FAKE_TORCH_VERSION makes torch report another version than the pinned one. Worker processes
inherit PYTHONPATH and the environment, so they see the same image.
"""

import importlib.abc
import importlib.machinery
import os
import sys

BLOCKED = tuple(m for m in os.environ.get("FASHIONBENCH_BLOCK", "tensorflow,asv,ray").split(",") if m)
FAKE_TORCH_VERSION = os.environ.get("FASHIONBENCH_FAKE_TORCH_VERSION")


class _OtherTorch(importlib.abc.MetaPathFinder):
    """Re-labels torch's version once torch has loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            original = spec.loader.exec_module

            def exec_module(module):
                original(module)
                module.__version__ = module.torch_version.TorchVersion(FAKE_TORCH_VERSION)

            spec.loader.exec_module = exec_module
        return spec


# None in sys.modules is Python's own "not installed": import raises ModuleNotFoundError and importlib.util.find_spec
# returns None, which is what libraries probing for TensorFlow (torch._dynamo, Keras) check.
for _name in BLOCKED:
    sys.modules[_name] = None
if FAKE_TORCH_VERSION:
    sys.meta_path.insert(0, _OtherTorch())
