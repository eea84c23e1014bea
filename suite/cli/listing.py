"""`fashionbench list`: frameworks, models, speed settings and the devices this machine really has."""

from __future__ import annotations

import argparse
import os

from suite.core import spec as specs

NAME = "list"
HELP = "frameworks, models, tasks and the devices this machine really has"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags."""


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "NOT INSTALLED"


def main(args: argparse.Namespace) -> int:
    """Print what can be benchmarked and which devices this machine really has."""
    from suite.core.models import param_count
    from suite.measure.nvml import gpu_inventory
    from suite.run.runner import no_gpu_reason

    print("frameworks:")
    for name in ("torch", "keras"):
        print(f"  {name:<8} {_version(name)}")
    print("keras backends (--keras-backend):")
    for name in specs.KERAS_BACKENDS:
        print(f"  {name:<10} {_version(name)}")
    print(f"speed settings: --precision {' '.join(specs.PRECISIONS)} | --compile {' '.join(specs.TORCH_COMPILE_MODES)} "
          f"(torch) | --jit-compile {' '.join(specs.JIT_COMPILE)} (keras) | --channels-last (torch cnn) | "
          f"--steps-per-execution N (keras)")
    print("models:")
    for model in specs.MODELS:
        params = param_count(specs.RunSpec(framework="torch", model=model))
        print(f"  {model:<8} task={specs.TASK_OF_MODEL[model]:<16} params={params:,}")
    print("devices:")
    print(f"  cpu      {os.cpu_count()} logical cores")
    for gpu in gpu_inventory():
        print(f"  cuda:{gpu['index']}   {gpu['name']} driver {gpu['driver']}, {gpu['memory_total_bytes'] / 2**30:.1f} GiB")
    if reason := no_gpu_reason():
        print(f"  cuda     not available here ({reason}); cuda cases are recorded as skipped")
    return 0
