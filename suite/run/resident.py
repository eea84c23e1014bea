"""A resident case process for timing harnesses: one spec's backend, set up as the worker does it, stepped on request.

asv's time_* and pytest-benchmark time Python callables; the callable here is one request to this process, which
runs a training epoch or an inference pass, synchronises the device and replies. Each spec gets a fresh process
started with the worker's environment (thread counts, GPU visibility, KERAS_BACKEND), so frameworks and devices
never share a process: torch allows set_num_interop_threads once per process and TensorFlow fixes visible devices
at its first op. The timer includes one pipe round trip; `roundtrip_ms` measures it.

Run by the parent as `python -m suite.run.resident`; requests and replies are JSON lines on stdin and stdout.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from suite.core.spec import RunSpec
from suite.record.safe_load import parse_json
from suite.run.runner import STDERR_TAIL_CHARS, case_env


class CaseSkipped(NotImplementedError):
    """The case cannot run here (e.g. no GPU); a NotImplementedError because that is how asv's setup skips."""


class ResidentCase:
    """Parent side: start the process for a spec, then time `train_epoch` / `inference_pass` calls; close when done."""

    def __init__(self, spec: RunSpec, data_dir: str | None = None) -> None:
        """Start the process and hand it the spec without waiting, so start-up can overlap other work."""
        self.spec = spec
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "suite.run.resident"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, env=case_env(spec), text=True,
        )
        self._send({"spec": spec.to_dict(), "data_dir": data_dir})
        self._ready = False

    def __enter__(self) -> ResidentCase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ready(self) -> None:
        """Wait until the case is built; CaseSkipped when its device is unavailable, RuntimeError on other failures."""
        if not self._ready:
            self._receive()
            self._ready = True

    def train_epoch(self) -> dict[str, Any]:
        """One training epoch over the spec's training samples (next epoch's seeded order), device synchronised; the
        reply says which epoch it was and its mean loss and accuracy."""
        return self._call({"do": "train_epoch"})

    def inference_pass(self, batch_size: int) -> dict[str, Any]:
        """One eval-mode forward of `batch_size` test images, outputs copied to host; the reply holds its seconds."""
        return self._call({"do": "inference_pass", "batch_size": batch_size})

    def roundtrip_ms(self, pings: int = 5) -> float:
        """Median time of an empty request: the harness overhead inside every timed call."""
        times = []
        for _ in range(pings):
            t0 = time.perf_counter()
            self._call({"do": "ping"})
            times.append(time.perf_counter() - t0)
        return 1000.0 * statistics.median(times)

    def close(self) -> None:
        """Stop the process; safe to call twice."""
        if self._process.poll() is None:
            self._process.stdin.close()
            self._process.kill()  # nothing in it needs an orderly exit, and a framework's shutdown takes seconds
            self._process.wait()
        self._process.stdout.close()
        self._stderr.close()

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-STDERR_TAIL_CHARS:].decode("utf-8", "replace")

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.ready()
        self._send(request)
        return self._receive()

    def _send(self, request: dict[str, Any]) -> None:
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the process has died; _receive reports how

    def _receive(self) -> dict[str, Any]:
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait()
            tail = self._stderr_tail()
            raise RuntimeError(f"{self.spec.label}: resident case process exited with code {code}:\n{tail}")
        reply = parse_json(line)
        if "skipped" in reply:
            raise CaseSkipped(reply["skipped"])
        if "error" in reply:
            raise RuntimeError(f"{self.spec.label}: {reply['error']}\n{self._stderr_tail()}")
        return reply


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Child side: set the case up as the worker does, then answer requests until stdin ends."""
    from suite.backends import Unsupported, skip_message
    from suite.run.case import CaseSetup

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    first = parse_json(requests.readline())
    spec = RunSpec.from_dict(first["spec"])
    try:
        case = CaseSetup(spec).open(first["data_dir"])
    except Unsupported as exc:
        reply({"skipped": skip_message(spec, exc)})
        return
    except Exception as exc:  # the parent raises it with this process's stderr
        reply({"error": f"setup failed: {type(exc).__name__}: {exc}"})
        return
    reply({"ready": True})
    epoch = 0
    for line in requests:
        request = parse_json(line)
        try:
            answer: dict[str, Any] = {"ok": True}
            if request["do"] == "train_epoch":
                epoch += 1
                loss, accuracy = case.train_epoch(epoch)
                answer.update(epoch=epoch, loss=loss, accuracy=accuracy)
            elif request["do"] == "inference_pass":
                (seconds,) = case.backend.inference_latencies_s(request["batch_size"], calls=1, warmup_calls=0)
                answer.update(batch_size=request["batch_size"], seconds=seconds)
            elif request["do"] != "ping":
                raise ValueError(f"unknown request {request['do']!r}")
            reply(answer)
        except Exception as exc:
            reply({"error": f"{request['do']} failed: {type(exc).__name__}: {exc}"})


def main() -> int:
    """Entry point: replies get stdout's own descriptor; anything else printed to stdout goes to stderr."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    serve(sys.stdin, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
