"""Fault injection for the fault tests: Python loads this at start-up when this folder is on PYTHONPATH.

It does nothing unless FASHIONBENCH_FAULT is set, and then only inside a worker whose case's model equals
FASHIONBENCH_FAULT_MODEL (default: every model), so the other cases of the same run stay healthy.
Faults: raise, exit, sigkill, hang, oom (a real MemoryError under an address-space rlimit), nan (inf pixels).
"""

import json
import os
import signal
import subprocess
import sys
import time

FAULT = os.environ.get("FASHIONBENCH_FAULT")


def _targeted() -> bool:
    if len(sys.argv) < 2 or not sys.argv[0].endswith("worker.py"):
        return False
    try:
        job = json.load(open(sys.argv[1]))
    except (OSError, ValueError):
        return False
    wanted = os.environ.get("FASHIONBENCH_FAULT_MODEL")
    return "spec" in job and (wanted is None or job["spec"]["model"] == wanted)


def _inject() -> None:
    if FAULT == "raise":
        raise RuntimeError("injected fault")
    if FAULT == "exit":
        sys.stderr.write("injected: exiting with 3\n")
        sys.stderr.flush()
        os._exit(3)
    if FAULT == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if FAULT == "hang":
        # A grandchild too, to prove the whole process group is killed on timeout.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["FASHIONBENCH_FAULT_PIDFILE"], "w") as handle:
            handle.write(str(child.pid))
        time.sleep(600)
    if FAULT == "oom":
        import resource

        import numpy as np

        with open("/proc/self/status") as status:
            vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize"))
        limit = (vm_kib + 512 * 1024) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        np.ones(8 * 2**30 // 8)


if FAULT:
    import suite.data as _data

    _original_order, _original_prepare = _data.batch_order, _data.prepare

    def _faulty_order(n, seed, epoch):
        if FAULT != "nan" and epoch == int(os.environ.get("FASHIONBENCH_FAULT_EPOCH", "1")) and _targeted():
            _inject()
        return _original_order(n, seed, epoch)

    def _faulty_prepare(*args, **kwargs):
        prepared = _original_prepare(*args, **kwargs)
        if FAULT == "nan" and _targeted():
            prepared.x_train[:] = float("inf")
        return prepared

    _data.batch_order, _data.prepare = _faulty_order, _faulty_prepare
