"""The Ray executor: each case is a Ray task that runs the usual worker subprocess (run_case) on a node of the
requested machine kind and returns the record; the driver alone writes the store.

Nodes take part by offering custom resources at `ray start --resources`: `fashionbench-slot` (how many timed cases
at once: 1 keeps timings honest; a case asks 1/--per-node of it) and `kind:NAME` (the machine kind `--on` selects).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterator

from suite.core.spec import RunSpec
from suite.record.schema import RunRecord
from suite.run.executors import FINISHED, Job
from suite.run.runner import failure_record, run_case

SLOT = "fashionbench-slot"
KIND_PREFIX = "kind:"
# What a case asks of its node's kind:NAME resource: the kind is a label to match, never a limit.
KIND_SHARE = 0.001
# How long one wait for a finished case lasts (an interrupt is acted on within it), and how often the driver looks
# for kinds that lost their last node.
WAIT_S = 0.5
POLL_S = 2.0
CONNECT_TIMEOUT_S = 5.0  # for the TCP connection and again for the head's first reply
# The HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (the head's GCS) answers with a frame of its own
# whose header (9 bytes) has the SETTINGS type (4) at byte 3; an ssh server, a web server or a silent socket does not.
HTTP2_GREETING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_FRAME_HEADER, HTTP2_SETTINGS = 9, 4


class ClusterError(ValueError):
    """The cluster cannot run the plan (unreachable, no node of a kind); found before any case runs."""


@dataclass(frozen=True)
class Node:
    """One alive Ray node as fashionbench sees it."""

    node_id: str
    ip: str
    kinds: tuple[str, ...]
    slots: float
    gpus: float


def join_hint(address: str, kind: str = "NAME") -> str:
    """The `ray start` line that adds a node of a kind to the cluster."""
    resources = json.dumps({SLOT: 1, f"{KIND_PREFIX}{kind}": 1})
    return f"ray start --address {address} --resources '{resources}'"


def alive_nodes() -> list[Node]:
    """The cluster's alive nodes with their fashionbench resources."""
    import ray

    nodes = []
    for info in ray.nodes():
        if not info.get("Alive"):
            continue
        resources = info.get("Resources") or {}
        kinds = tuple(sorted(k[len(KIND_PREFIX):] for k in resources if k.startswith(KIND_PREFIX)))
        nodes.append(Node(info["NodeID"], info.get("NodeManagerAddress", "?"), kinds, resources.get(SLOT, 0.0),
                          resources.get("GPU", 0.0)))
    return nodes


def address_problem(address: str) -> str | None:
    """What is wrong with a Ray head address (HOST:PORT, port 1..65535), or None; "auto" is not an address."""
    if address.startswith("ray://"):
        return f"{address}: Ray Client addresses are not supported; pass the head's HOST:6379"
    host, _, port = address.rpartition(":")
    if not host or not (port.isascii() and port.isdigit() and len(port) <= 5) or not 1 <= int(port) <= 65535:
        return f"{address} is not HOST:PORT (port 1..65535) or auto; the head prints its address at `ray start --head`"
    return None


def split_address(address: str) -> tuple[str, int]:
    """HOST and PORT of a Ray head address, or a ClusterError saying what a valid one looks like."""
    if problem := address_problem(address):
        raise ClusterError(f"--ray-address {problem}")
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)  # [::1]:6379 names an IPv6 host


def check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, at a HOST:PORT where no Ray head listens: nothing accepts the connection (ray.init
    would retry for minutes) or what accepts it does not answer as the head's GCS, a gRPC (HTTP/2) server, does to an
    HTTP/2 greeting (ray.init would wait for ever on a port that accepts and says nothing)."""
    host, port = split_address(address)
    unreachable = f"cannot reach the Ray cluster at {address}"
    fix = "start its head with `ray start --head` or pass the right --ray-address"
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as connection:
            connection.sendall(HTTP2_GREETING)
            reply = _first_bytes(connection, HTTP2_FRAME_HEADER)
    except TimeoutError:
        raise ClusterError(f"{unreachable}: nothing answered within {CONNECT_TIMEOUT_S:g} s, so it is no Ray head; "
                           f"{fix}") from None
    except OSError as exc:
        raise ClusterError(f"{unreachable} ({exc.strerror or exc}); {fix}") from None
    if len(reply) < HTTP2_FRAME_HEADER or reply[3] != HTTP2_SETTINGS:
        said = f"it answered {reply[:16]!r}" if reply else "it closed the connection"
        raise ClusterError(f"{unreachable}: {said}, not as a Ray head (a gRPC server) would; {fix}")


def _first_bytes(connection: socket.socket, count: int) -> bytes:
    """The first `count` bytes the peer sends (fewer if it closes first); its timeout bounds each wait."""
    data = b""
    while len(data) < count and (chunk := connection.recv(count - len(data))):
        data += chunk
    return data


def connect(address: str) -> None:
    """ray.init against an existing cluster, quietly; any failure becomes one ClusterError line."""
    try:
        import ray
    except ImportError:  # GPU images often come without it
        raise ClusterError("--executor ray needs Ray here and on every node: pip install 'ray>=2.40' (core only)") from None
    if address != "auto":
        check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {first}; start one with `ray start --head` "
                           f"or pass --ray-address HOST:PORT") from None


def run_on_node(spec_dict: dict[str, Any], timeout_s: float, data_dir: str | None) -> dict[str, Any]:
    """The Ray task: one case in a fresh worker subprocess on this node (probe cached here too); its record as JSON."""
    import ray

    spec = RunSpec.from_dict(spec_dict)
    # Ray reuses its worker processes; the case's GPU visibility is set from this task's own assignment each time
    # (case_env hides every GPU from CPU cases), never inherited from an earlier task.
    gpus = ",".join(str(i) for i in ray.get_gpu_ids()) if spec.device == "cuda" else None
    with _environ(CUDA_VISIBLE_DEVICES=gpus):
        record = run_case(spec, timeout_s, data_dir)
    record.node_id = ray.get_runtime_context().get_node_id()
    record.node_ip = ray.util.get_node_ip_address()
    return record.model_dump(mode="json")


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while Ray's core waits (an exception raised from a handler inside it surfaces as a
    SystemError) and raise them again right after, where the usual handler (run_plan's) can act."""
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


@contextlib.contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    """Set (non-None) environment variables for the block, then restore them."""
    saved = {name: os.environ.get(name) for name, value in values.items() if value is not None}
    os.environ.update({name: value for name, value in values.items() if value is not None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class RayExecutor:
    """Jobs as Ray tasks: `kinds` (None: any node with a slot), `every_kind` (once per kind in the cluster),
    `per_node` timed cases per node at once, `retries` on another node of the kind when a node dies mid-case."""

    def __init__(self, address: str, timeout_s: float, data_dir: str | None = None, kinds: list[str] | None = None,
                 every_kind: bool = False, per_node: int = 1, retries: int = 1) -> None:
        self.address, self.timeout_s, self.data_dir = address, timeout_s, data_dir
        self.requested, self.every_kind, self.per_node, self.retries = kinds or [], every_kind, per_node, retries
        self.kinds: list[str | None] = []
        self.nodes: list[Node] = []
        self._pending: dict[Any, Job] = {}

    def __enter__(self) -> RayExecutor:
        """Connect and check the cluster can run the plan: one ClusterError line, before any case, when it cannot."""
        connect(self.address)
        try:
            self._choose_kinds()
        except ClusterError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        ray.shutdown()

    def _choose_kinds(self) -> None:
        self.nodes = [n for n in alive_nodes() if n.slots > 0]
        if not self.nodes:
            raise ClusterError(f"no node of the Ray cluster at {self.address} offers the {SLOT} resource; "
                               f"start or restart each node with `{join_hint(self.address)}`")
        present = sorted({k for n in self.nodes for k in n.kinds})
        missing = [k for k in self.requested if k not in present]
        if missing:
            raise ClusterError(f"no node of kind {missing[0]} in the Ray cluster at {self.address} (kinds there: "
                               f"{', '.join(present) or 'none'}); add one with `{join_hint(self.address, missing[0])}`")
        if self.every_kind and not present:
            raise ClusterError(f"--every-kind: no node of the Ray cluster at {self.address} carries a {KIND_PREFIX}NAME "
                               f"resource; add them with `{join_hint(self.address)}`")
        self.kinds = list(present if self.every_kind else self.requested) or [None]

    def describe(self) -> str:
        """Where and how the cases run."""
        used = [n for n in self.nodes if self.kinds == [None] or set(self.kinds) & set(n.kinds)]
        kinds = ", ".join(f"{k} ×{sum(k in n.kinds for n in used)}" for k in self.kinds if k) or "any kind"
        return (f"as Ray tasks on {len(used)} node(s) ({kinds}), at most {self.per_node} timed case(s) per node "
                f"at once, one process each")

    def jobs(self, specs: list[RunSpec]) -> list[Job]:
        """The whole plan once per chosen kind."""
        return [Job(spec, kind) for kind in self.kinds for spec in specs]

    def finished(self, records: list[RunRecord]) -> set[tuple[str | None, str]]:
        """Cases finished by this executor on a node of the kind (any node when no kind was asked for)."""
        by_kind = self.kinds != [None]
        return {(r.node_kind if by_kind else None, r.case_id) for r in records
                if r.executor == "ray" and r.status in FINISHED}

    def run(self, jobs: list[Job]) -> Iterator[RunRecord]:
        """Submit every job at once (Ray queues them on the slots), then hand back each record as its case ends."""
        import ray

        task = ray.remote(run_on_node)
        for job in jobs:
            if job.spec.device == "cuda" and (reason := self._no_node_reason(job, self.nodes)):
                yield self._placed(failure_record(job.spec, "skipped", f"cuda unavailable: {reason}", None), job)
                continue
            resources = {SLOT: 1 / self.per_node, **({f"{KIND_PREFIX}{job.kind}": KIND_SHARE} if job.kind else {})}
            options = dict(num_cpus=0, num_gpus=1 if job.spec.device == "cuda" else 0, resources=resources,
                           max_retries=self.retries, retry_exceptions=False, name=f"fashionbench {job.spec.id}")
            self._pending[task.options(**options).remote(job.spec.to_dict(), self.timeout_s, self.data_dir)] = job
        checked = time.monotonic()
        while self._pending:
            with deferred_signals():
                ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=WAIT_S)
            for ref in ready:
                yield self._collect(ref)
            if time.monotonic() - checked > POLL_S:
                checked = time.monotonic()
                yield from self._stranded()

    def _no_node_reason(self, job: Job, nodes: list[Node]) -> str | None:
        """Why no node can take the job (no node of its kind, or none with a GPU for a CUDA case), or None."""
        where = f" of kind {job.kind}" if job.kind else ""
        fitting = [n for n in nodes if n.slots > 0 and (job.kind is None or job.kind in n.kinds)]
        if not fitting:
            return f"no alive node{where} with a {SLOT} is left in the Ray cluster"
        if job.spec.device == "cuda" and not any(n.gpus >= 1 for n in fitting):
            return f"no node{where} in the Ray cluster has a GPU (Ray resource GPU)"
        return None

    def _collect(self, ref: Any) -> RunRecord:
        """The record of a finished task; a task that Ray gave up on (node died with no retry left) becomes an error."""
        import ray
        from ray.exceptions import RayError

        job = self._pending.pop(ref)
        try:
            with deferred_signals():
                output = ray.get(ref)
            record = RunRecord.model_validate(output)
        except RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
            record = failure_record(job.spec, "error", f"Ray gave up on the case with --retries {self.retries} used up "
                                    f"({type(exc).__name__}: {first}); raise --retries or add nodes of the kind", None)
        return self._placed(record, job)

    def _stranded(self) -> Iterator[RunRecord]:
        """Errors for the waiting jobs whose kind lost its last node (Ray would keep them pending for ever)."""
        import ray

        nodes = alive_nodes()
        for ref, job in list(self._pending.items()):
            if (reason := self._no_node_reason(job, nodes)) is not None:
                ray.cancel(ref, force=True)
                del self._pending[ref]
                yield self._placed(failure_record(job.spec, "error", f"not run: {reason}", None), job)

    def _placed(self, record: RunRecord, job: Job) -> RunRecord:
        """The record with what the executor used: kind asked for (else the node's kinds) and the per-node limit."""
        record.executor, record.per_node = "ray", self.per_node
        if record.node_id and all(n.node_id != record.node_id for n in self.nodes):
            self.nodes = [n for n in alive_nodes() if n.slots > 0]  # a node that joined after the plan started
        node = next((n for n in self.nodes if n.node_id == record.node_id), None)
        record.node_kind = job.kind or (",".join(node.kinds) if node and node.kinds else None)
        return record

    def cancel(self) -> list[RunRecord]:
        """Keep the records of tasks that already finished, force-cancel the rest (their worker processes die too)."""
        import ray

        pending = list(self._pending)
        ready = ray.wait(pending, num_returns=len(pending), timeout=0)[0] if pending else []
        records = [self._collect(ref) for ref in ready]
        for ref in self._pending:
            ray.cancel(ref, force=True)
        self._pending.clear()
        return records
