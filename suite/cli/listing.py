"""`fashionbench list`: frameworks, models, speed settings and the devices this machine really has."""

from __future__ import annotations

import argparse
import os

from suite.core import spec as specs
from suite.core.frameworks import FRAMEWORKS, KERAS_BACKENDS, SETTINGS
from suite.core.models import CATALOG

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


def _setting_usage() -> list[str]:
    """`--compile none default max-autotune (torch)` for each framework-specific setting."""
    usage = []
    for name, (framework, setting) in SETTINGS.items():
        values = " ".join(setting.choices) if setting.choices else ("N" if setting.bounds else "")
        models = "" if setting.model_fact is None else " " + " ".join(setting.models)
        usage.append(f"--{name.replace('_', '-')}{' ' + values if values else ''} ({framework}{models})")
    return usage


def main(args: argparse.Namespace) -> int:
    """Print what can be benchmarked and which devices this machine really has."""
    from suite.core.models import param_count
    from suite.measure.nvml import gpu_inventory
    from suite.run.runner import no_gpu_reason

    print("frameworks:")
    for name in FRAMEWORKS:
        print(f"  {name:<8} {_version(name)}")
    print("keras backends (--keras-backend):")
    for name in KERAS_BACKENDS:
        print(f"  {name:<10} {_version(name)}")
    print(f"speed settings: --precision {' '.join(specs.PRECISIONS)} | {' | '.join(_setting_usage())}")
    print("models:")
    for model, facts in CATALOG.items():
        params = param_count(specs.RunSpec(framework="torch", model=model))
        print(f"  {model:<8} task={facts.task:<16} params={params:,}")
    print("devices:")
    print(f"  cpu      {os.cpu_count()} logical cores")
    for gpu in gpu_inventory():
        print(f"  cuda:{gpu['index']}   {gpu['name']} driver {gpu['driver']}, {gpu['memory_total_bytes'] / 2**30:.1f} GiB")
    if reason := no_gpu_reason():
        print(f"  cuda     not available here ({reason}); cuda cases are recorded as skipped")
    return 0
