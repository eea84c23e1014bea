"""Fault injection for the fault tests: Python loads this at start-up when this folder is on PYTHONPATH.

It does nothing unless FASHIONBENCH_FAULTS is set: `SEED=FAULT,...` gives each worker the fault of its case's
seed, so one run holds healthy and faulty cases side by side. Faults: raise, exit, sigkill, hang, sleep (once),
oom (a real MemoryError under an address-space rlimit), nan (inf pixels, so the loss diverges).
FASHIONBENCH_FAULT_ENOSPC_DIR=D with FASHIONBENCH_FAULT_ENOSPC_AFTER=N: a full disk below D after N files were
synced there (fsync fails with ENOSPC, as it does where blocks are allocated late), for machines without tmpfs.
"""

import json
import os
import signal
import subprocess
import sys
import time

FAULTS = dict(item.split("=") for item in os.environ.get("FASHIONBENCH_FAULTS", "").split(",") if item)


def _fault() -> str | None:
    """The fault for this process: only a case worker whose seed is in the map gets one."""
    if len(sys.argv) < 2 or not sys.argv[0].endswith("worker.py"):
        return None
    try:
        job = json.load(open(sys.argv[1]))
    except (OSError, ValueError):
        return None
    return FAULTS.get(str(job["spec"]["seed"])) if "spec" in job else None


def _inject(fault: str) -> None:
    if fault == "raise":
        raise RuntimeError("injected fault")
    if fault == "exit":
        sys.stderr.write("injected: exiting with 3\n")
        sys.stderr.flush()
        os._exit(3)
    if fault == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "hang":
        # A grandchild too, to prove the whole process group is killed on timeout.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["FASHIONBENCH_FAULT_PIDFILE"], "w") as handle:
            handle.write(str(child.pid))
        time.sleep(600)
    if fault == "sleep":
        # Once: the first worker to get here writes its pid and sleeps, for a test to kill its node or interrupt the
        # run; a retry of the case (on another node) finds the file taken and runs normally.
        try:
            fd = os.open(os.environ["FASHIONBENCH_FAULT_PIDFILE"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        time.sleep(600)
    if fault == "oom":
        import resource

        import numpy as np

        with open("/proc/self/status") as status:
            vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize"))
        limit = (vm_kib + 512 * 1024) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        np.ones(8 * 2**30 // 8)


if FAULTS:
    import suite.core.data as _data

    _original_order, _original_prepare = _data.batch_order, _data.prepare

    def _faulty_order(n, seed, epoch):
        fault = _fault()
        if fault and fault != "nan" and epoch == 1:
            _inject(fault)
        return _original_order(n, seed, epoch)

    def _faulty_prepare(*args, **kwargs):
        prepared = _original_prepare(*args, **kwargs)
        if _fault() == "nan":
            prepared.x_train[:] = float("inf")
        return prepared

    _data.batch_order, _data.prepare = _faulty_order, _faulty_prepare


ENOSPC_DIR = os.environ.get("FASHIONBENCH_FAULT_ENOSPC_DIR")
if ENOSPC_DIR:
    import errno

    _original_fsync, _synced = os.fsync, []

    def _full_fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(ENOSPC_DIR):
            if len(_synced) >= int(os.environ["FASHIONBENCH_FAULT_ENOSPC_AFTER"]):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            _synced.append(fd)
        _original_fsync(fd)

    os.fsync = _full_fsync
