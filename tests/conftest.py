"""Shared fixtures: the real data set, CLI runs in subprocesses, an isolated probe cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite.bench.gpucheck import PROBE_SEED_ENV
from suite.core import data

REPO = Path(__file__).resolve().parents[1]
FAULTS = REPO / "tests" / "helpers" / "faults"


def real_data_problem() -> str | None:
    """Why the tests that train cannot find Fashion-MNIST, or None. The suite's own lookup decides, so
    $FASHIONBENCH_DATA counts (gpu-check passes its --data-dir that way) as do the download cache and the system package."""
    try:
        data.find_data_dir()
    except data.DataError as exc:
        return str(exc)
    return None


DATA_PROBLEM = real_data_problem()
HAS_REAL_DATA = DATA_PROBLEM is None
needs_data = pytest.mark.skipif(not HAS_REAL_DATA, reason=f"Fashion-MNIST not installed: {DATA_PROBLEM}")


@pytest.fixture(scope="session")
def probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One peak-FLOP/s cache for the session, away from the user's, holding a real probe at the default threads.

    The suite refuses to cache a probe disturbed by other work; tests share a busy machine with each other, so the
    session stores its one probe whatever it says (its `disturbed` note stays in the entry and in every record)
    instead of every CLI process measuring again. Under gpu-check the cache starts from the check's own fresh probes
    ($FASHIONBENCH_PROBE_SEED, its probe.json), so the tests do not spend the check's budget measuring them again."""
    from suite.measure import probe
    from suite.measure.machine import fingerprint
    from suite.run.runner import probe_entry

    cache = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("FASHIONBENCH_CACHE")
    os.environ["FASHIONBENCH_CACHE"] = str(cache)
    try:
        seed_probes(os.environ.get(PROBE_SEED_ENV))
        threads = os.cpu_count() or 1
        entry = probe_entry("cpu", threads, 600)
        if entry is not None and not entry["cached"] and "unavailable" not in entry:
            probe.store(fingerprint().machine_id, "cpu", threads, {k: v for k, v in entry.items() if k != "cached"})
    finally:
        if previous is None:
            del os.environ["FASHIONBENCH_CACHE"]
        else:
            os.environ["FASHIONBENCH_CACHE"] = previous
    return cache


def seed_probes(path: str | None) -> int:
    """Store the steady probes of a gpu-check probe.json ({device: entry}) in the current cache; returns how many."""
    from suite.measure import probe
    from suite.measure.machine import fingerprint

    if not path:
        return 0
    entries = json.loads(Path(path).read_text())
    usable = {device: entry for device, entry in entries.items()
              if isinstance(entry, dict) and entry.get("flops_per_s") and not entry.get("disturbed")
              and "unavailable" not in entry}
    for device, entry in usable.items():
        probe.store(fingerprint().machine_id, device, entry["threads"], {k: v for k, v in entry.items() if k != "cached"})
    return len(usable)


def run_cli(*args: str, cache: Path | None = None, env: dict[str, str] | None = None,
            timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """`python -m suite ARGS` in a subprocess, as a user would run it."""
    full_env = dict(os.environ, **(env or {}))
    if cache is not None:
        full_env["FASHIONBENCH_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "suite", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout_s)


def fault_env(faults: dict[int, str | None], **extra: str) -> dict[str, str]:
    """Environment that gives each seed's worker its fault (see tests/helpers/faults/sitecustomize.py)."""
    path = os.pathsep.join([str(FAULTS), os.environ.get("PYTHONPATH", "")])
    spec = ",".join(f"{seed}={fault}" for seed, fault in faults.items() if fault)
    return {"PYTHONPATH": path, "FASHIONBENCH_FAULTS": spec, **extra}


def pytest_configure(config: pytest.Config) -> None:
    """`--benchmark-only` asks for timing, so it overrides the `--benchmark-disable` in pyproject's addopts."""
    if config.getoption("benchmark_only", default=False):
        config.option.benchmark_disable = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip @pytest.mark.gpu tests, with the reason, where NVML lists no GPU."""
    from suite.run.runner import no_gpu_reason

    reason = no_gpu_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"no CUDA GPU: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
