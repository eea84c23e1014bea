"""Machine fingerprint without importing any framework: CPU, RAM, GPUs via NVML, OS, library versions, git commit."""

from __future__ import annotations

import functools
import hashlib
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

from suite.measure.nvml import gpu_inventory
from suite.record.schema import Machine

VERSIONED_PACKAGES = ("torch", "torchvision", "tensorflow", "keras", "jax", "jaxlib", "numpy", "nvidia-ml-py", "pydantic",
                      "fashionbench")


def package_version(package: str) -> str | None:
    """The installed distribution's version, None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def fingerprint() -> Machine:
    """This machine, as recorded in every RunRecord; machine_id is stable for the same host, CPU and GPUs."""
    gpus = gpu_inventory()
    # A hostname that is not UTF-8 arrives with surrogate escapes, which neither hashing nor JSON can encode.
    hostname = socket.gethostname().encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    cpu = cpu_model()
    identity = "|".join([hostname, cpu, *(g.get("name", "") for g in gpus)])
    return Machine(
        machine_id=hashlib.sha256(identity.encode()).hexdigest()[:12],
        hostname=hostname,
        cpu_model=cpu,
        cpu_cores_logical=psutil.cpu_count(logical=True) or 1,
        cpu_cores_physical=psutil.cpu_count(logical=False),
        ram_bytes=psutil.virtual_memory().total,
        gpus=gpus,
        os=platform.platform(),
        python=platform.python_version(),
        versions={p: package_version(p) for p in VERSIONED_PACKAGES},
    )


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout this package runs from, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
