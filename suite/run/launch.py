"""How a case's worker starts: one process, or for torch --devices N a torchrun launch with one process per rank.

The runner still sees one process (torchrun) per case, with one timeout; rank 0 alone writes the record. torchrun starts
each rank in a session of its own, so the ranks also die with their parent (PR_SET_PDEATHSIG) and the runner kills
every descendant on timeout, not just the process group.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket

from suite.core.spec import RunSpec
from suite.measure.machine import fingerprint

PR_SET_PDEATHSIG = 1
LOOPBACK = "127.0.0.1"
# Set by torchrun (or a cluster's launcher); a one-process case must not inherit them and take itself for a rank.
RANK_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies, so a killed run leaves no orphan training behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def exit_with_parent() -> None:
    """Tie this running process to its parent the way die_with_parent ties a child: SIGKILL when the parent dies, and
    exit now if it already has (its death before the prctl call would otherwise go unnoticed). asv's setup_cache calls
    it: asv runs it in a process group of its own, so a killed asv took none of it down and it kept starting workers."""
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:
        os._exit(1)


def torchrun_ranks(spec: RunSpec) -> bool:
    """True when the case runs as several torch processes (Keras keeps its replicas in one process)."""
    return spec.framework == "torch" and spec.devices > 1


def free_port() -> int:
    """A TCP port free on the loopback interface now, for this launch's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def launcher(spec: RunSpec) -> list[str]:
    """What goes between `python -m` and the worker module: nothing, or torchrun's arguments (single node, loopback)."""
    if not torchrun_ranks(spec):
        return []
    return ["torch.distributed.run", "--nnodes=1", f"--nproc-per-node={spec.devices}", f"--master-addr={LOOPBACK}",
            f"--master-port={free_port()}", "--max-restarts=0", "--module"]


def rank_env(spec: RunSpec, env: dict[str, str]) -> dict[str, str]:
    """The case environment adjusted for torchrun ranks: loopback rendezvous for gloo, and each rank's share of the
    threads set here deliberately (torchrun would otherwise set OMP_NUM_THREADS=1)."""
    if not torchrun_ranks(spec):
        return {k: v for k, v in env.items() if k not in RANK_VARS}
    threads = str(spec.threads_per_rank)
    return {**env, "MASTER_ADDR": LOOPBACK, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}


def devices_missing_reason(spec: RunSpec) -> str | None:
    """Why this machine cannot give the case its --devices replicas (one GPU, or one CPU core, each), or None."""
    if spec.devices == 1:
        return None
    if spec.device == "cuda":
        present, what = len(fingerprint().gpus), "GPUs; NVML lists"
    else:
        present, what = len(os.sched_getaffinity(0)), "CPU cores (one per replica); this process may use"
    if spec.devices > present:
        return f"--devices {spec.devices} needs {spec.devices} {what} {present}"
    return None
