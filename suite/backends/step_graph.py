"""The whole training step as one CUDA graph (--step graph), and the launch-free floor every torch CUDA record gets.

Forward, loss, backward and Adam(capturable=True) are captured once with torch.cuda.graph after a warm-up on a side
stream, as the torch CUDA-graphs notes describe whole-network capture. The batch is gathered inside the graph: an
index_select from the device-resident training tensors through a static index buffer, so a training step is one
index copy and one replay. The epoch's loss and correct count are summed inside the graph too, so nothing waits for
the device until the epoch ends.

The graph calls are behind `CudaGraphs` (made by `new_graphs`); tests put a stand-in there and run the same step
body, static buffers and replay loop on CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol

import torch
from torch import nn

from suite.backends import StepHook

WARMUP_ITERATIONS = 3  # the torch notes warm up a few iterations on the side stream before capture
FLOOR_REPLAYS = 200
FLOOR_WARMUP_REPLAYS = 20
Body = Callable[[], None]


class GraphApi(Protocol):
    """How a step body is warmed up, captured and replayed."""

    def warm_up(self, body: Body, iterations: int) -> None:
        """Run the body eagerly `iterations` times, as capture requires."""

    def capture(self, body: Body) -> Body:
        """Record the body's device work once (it does not run); returns what replays it."""


class CudaGraphs:
    """torch.cuda's graphs: warm-up and capture on one side stream (the capture stream must be the warmed-up one)."""

    def __init__(self) -> None:
        self.stream = torch.cuda.Stream()
        self.graph: torch.cuda.CUDAGraph | None = None

    def warm_up(self, body: Body, iterations: int) -> None:
        """Eager iterations on the side stream, then the current stream waits for them."""
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            for _ in range(iterations):
                body()
        torch.cuda.current_stream().wait_stream(self.stream)

    def capture(self, body: Body) -> Body:
        """torch.cuda.graph capture of the body; the graph's replay."""
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=self.stream):
            body()
        return self.graph.replay


def new_graphs() -> GraphApi:
    """The graph API a capture uses (tests replace it with a CPU stand-in)."""
    return CudaGraphs()


@dataclass(frozen=True)
class StepParts:
    """What one training step uses: model, loss, optimizer, the autocast context and how outputs become classes."""

    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    autocast: Callable[[], ContextManager[Any]]
    predicted: Callable[[torch.Tensor], torch.Tensor]


def adam(params: Any, lr: float, capturable: bool) -> torch.optim.Adam:
    """Adam as the course has it; capturable keeps its step count on the device, which graph capture needs."""
    return torch.optim.Adam(params, lr=lr, capturable=capturable)


def train_on(parts: StepParts, xb: torch.Tensor, yb: torch.Tensor, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
    """One optimizer step on a batch, adding its summed loss and correct count to the accumulators on the device.
    Gradients are set to None first, so backward writes them afresh (in a graph: into its own static memory)."""
    parts.optimizer.zero_grad(set_to_none=True)
    with parts.autocast():
        out = parts.model(xb)
    # Loss in fp32 outside autocast, as in the eager step (BCELoss refuses autocast).
    loss = parts.loss_fn(out.float(), yb)
    loss.backward()
    parts.optimizer.step()
    loss_sum.add_(loss.detach() * xb.shape[0])
    correct.add_((parts.predicted(out.detach()) == yb.view(-1).long()).sum())


def step_body(parts: StepParts, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, loss_sum: torch.Tensor,
              correct: torch.Tensor) -> Body:
    """The captured step: gather the batch named by the static index buffer, train on it. The closure holds the
    tensors themselves, as a graph holds their addresses: refilling them in place is the only way to feed it."""
    return lambda: train_on(parts, x.index_select(0, index), y.index_select(0, index), loss_sum, correct)


def _snapshot(parts: StepParts) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    state = {k: v.detach().clone() for k, v in parts.model.state_dict().items()}
    return state, _rng_state(next(parts.model.parameters()).device)


def _rng_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_rng_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


@torch.no_grad()
def _restore_in_place(parts: StepParts, state: dict[str, torch.Tensor]) -> None:
    """Weights, buffers and Adam's moments and step count back to before the warm-up, in place (the graph reads these
    very tensors); zeroed Adam state is exactly a fresh optimizer's."""
    for name, live in parts.model.state_dict().items():
        live.copy_(state[name])
    for slots in parts.optimizer.state.values():
        for value in slots.values():
            if torch.is_tensor(value):
                value.zero_()


class WholeStep:
    """One model's training step captured once and replayed, fed through static index, loss and accuracy buffers."""

    def __init__(self, parts: StepParts, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                 graphs: GraphApi | None = None) -> None:
        self.parts, self.x, self.y, self.batch_size = parts, x, y, batch_size
        self.index = torch.arange(batch_size, device=x.device)
        self.loss_sum = torch.zeros((), device=x.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=x.device)
        self.body = step_body(parts, x, y, self.index, self.loss_sum, self.correct)
        self.graphs = graphs or new_graphs()
        self.replay: Body | None = None
        self.replays = 0

    def capture(self) -> None:
        """Warm up on the first batch, capture, and leave model, optimizer and RNG as they were before the warm-up,
        so the graph trains from the same start as the eager loop."""
        state, rng = _snapshot(self.parts)
        self.graphs.warm_up(self.body, WARMUP_ITERATIONS)
        _set_rng_state(self.x.device, rng)
        self.parts.optimizer.zero_grad(set_to_none=True)  # backward in the capture then allocates grads in its pool
        self.replay = self.graphs.capture(self.body)
        _restore_in_place(self.parts, state)

    def run(self, batch: torch.Tensor) -> None:
        """One training step on these sample indices: a replay for a full batch, an eager step for a short one."""
        if self.replay is None:
            self.capture()
        if len(batch) == self.batch_size:
            self.index.copy_(batch)
            self.replay()
            self.replays += 1
        else:
            train_on(self.parts, self.x[batch], self.y[batch], self.loss_sum, self.correct)

    def epoch(self, order: torch.Tensor, on_step: StepHook | None = None) -> tuple[float, float]:
        """Every batch of `order` (device indices); mean loss and accuracy, read once at the end. The first epoch
        captures first: the warm-up's steps are undone and its sums zeroed with the epoch's."""
        if self.replay is None:
            self.capture()
        self.loss_sum.zero_()
        self.correct.zero_()
        for step, start in enumerate(range(0, len(order), self.batch_size)):
            if on_step is not None:
                on_step(step)
            self.run(order[start:start + self.batch_size])
        return self.loss_sum.item() / len(order), self.correct.item() / len(order)


def time_replays(replay: Body, sync: Callable[[], None], replays: int = FLOOR_REPLAYS,
                 warmup: int = FLOOR_WARMUP_REPLAYS, clock: Callable[[], float] = time.perf_counter) -> float:
    """Milliseconds per replay over `replays` back-to-back replays after `warmup` more, the device synchronised before
    each clock reading, so the figure is the device's time, with no launch between steps but the graph's one."""
    for _ in range(warmup):
        replay()
    sync()
    t0 = clock()
    for _ in range(replays):
        replay()
    sync()
    return 1000.0 * (clock() - t0) / replays


def launch_free_floor(parts: StepParts, x: torch.Tensor, y: torch.Tensor, batch_size: int, sync: Callable[[], None],
                      replays: int = FLOOR_REPLAYS) -> float:
    """The floor: `parts`' whole step captured once on the first `batch_size` samples and timed over `replays` replays."""
    step = WholeStep(parts, x, y, batch_size)
    step.capture()
    return time_replays(step.replay, sync, replays)
