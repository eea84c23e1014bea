"""Progress events from a worker to the runner while a case runs: one JSON object per line on an inherited pipe.

The worker finds the pipe in $FASHIONBENCH_EVENTS_FD as `FD:INODE`. The inode is checked because the variable outlives
the descriptor: torchrun's ranks inherit the environment but not the pipe, and their FD may name another file by then.
No pipe (or not ours): events go nowhere. Events are advisory: a line that does not parse is dropped, and nothing
measured depends on them.
"""

from __future__ import annotations

import json
import os
import selectors
import stat
import subprocess
import time
from typing import Any, Callable

from suite.record.safe_load import parse_json

EVENTS_FD_ENV = "FASHIONBENCH_EVENTS_FD"
POLL_S = 0.2

Event = dict[str, Any]
OnEvent = Callable[[Event], None]


class EventSink:
    """Worker side: writes events to the runner's pipe, or nowhere when there is none."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    @classmethod
    def from_env(cls) -> EventSink:
        """The sink the runner set up for this process, if its pipe is really open here (and this is not a rank > 0)."""
        fd, _, inode = os.environ.get(EVENTS_FD_ENV, "").partition(":")
        try:
            ours = (fd.isdigit() and os.environ.get("RANK", "0") == "0"
                    and stat.S_ISFIFO((st := os.fstat(int(fd))).st_mode) and str(st.st_ino) == inode)
        except OSError:
            ours = False
        return cls(int(fd) if ours else None)

    def emit(self, phase: str, **fields: Any) -> None:
        """One event; a single write of one line, so the runner never sees half of it interleaved with another."""
        if self.fd is None:
            return
        line = json.dumps({"phase": phase, "t": time.time(), **fields}, separators=(",", ":")) + "\n"
        try:
            os.write(self.fd, line.encode())
        except OSError:
            self.fd = None  # the runner has gone (or closed the pipe): stop reporting, keep measuring


def sink_env(write_fd: int) -> dict[str, str]:
    """The environment entry that hands a worker the write end of its events pipe."""
    return {EVENTS_FD_ENV: f"{write_fd}:{os.fstat(write_fd).st_ino}"}


def _deliver(buffer: bytes, on_event: OnEvent | None) -> bytes:
    """Hand every complete line in `buffer` to on_event; return the incomplete rest."""
    *lines, rest = buffer.split(b"\n")
    for line in lines:
        try:
            event = parse_json(line)
        except ValueError:
            continue
        if isinstance(event, dict) and on_event is not None:
            on_event(event)
    return rest


def pump(fd: int, process: subprocess.Popen[bytes], timeout_s: float, on_event: OnEvent | None) -> bool:
    """Deliver the worker's events as they arrive until it exits; False when it is still running after timeout_s.

    The loop ends on the worker's exit, not only on end-of-file: a grandchild that inherited the pipe must not hold it up."""
    deadline = time.monotonic() + timeout_s
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            exited = process.poll() is not None
            if not selector.select(0 if exited else min(remaining, POLL_S)):
                if exited:
                    return True  # exited and the pipe drained
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break  # every writer closed its end; what is left is to wait for the exit
            buffer = _deliver(buffer + chunk, on_event)
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return False
    return True
