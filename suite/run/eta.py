"""The plan's time left, from what each case costs rather than a mean of the cases that finished.

A case's cost is counted in work units: each training sample costs the model's per-sample cost, the square root of
its training FLOPs per sample (analytic, suite.core.models), times epochs x training samples; then come forward
passes over the validation and test sets (at the model's forward share of that cost) and the timed single steps;
inference takes its time budget per batch size unless its slowest calls need more; a fixed part covers worker start,
framework import and data. Why the square root: time is not proportional to FLOPs for these small nets. The CNN
has 38x the dense net's FLOPs but trains a few times slower per sample on a 2-core CPU and 1.3x slower on an H200
(launch-bound, the 2026-12-04 records): FLOP-proportional pricing overstates it many times, per-sample pricing
understates it; the square root (6.1x) sits between, and the running case's own pace replaces it within seconds.

Finished cases price the units: seconds per unit (their epochs' training seconds / their training units) and fixed
seconds (what their wall time leaves), each looked up for a case from the most specific setup that has finished: the
same framework, device, model, precision, compile mode, replicas and threads; then framework, device and model; then
framework and device; then device; then any. The running case is refined from its own progress events: once it has
trained for a while, its observed pace prices the rest of its work and, until a case of its setup finishes, that
setup's other cases. Before anything has been priced the ETA is unknown ("?").
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from suite.core.models import forward_flops_per_sample, train_flops_per_sample
from suite.core.spec import TRAIN_SAMPLES, RunSpec
from suite.record.schema import RunRecord
from suite.run.worker import INFERENCE_BUDGET_S, INFERENCE_MIN_CALLS, INFERENCE_WARMUP_CALLS, STEP_TIMING_STEPS

Key = tuple[Any, ...]
TEST_PER_TRAIN = 10_000 / 48_000  # Fashion-MNIST's test images per image of the 80 % training split, every task
VAL_PER_TRAIN = 0.25  # the 20 % validation split against the 80 % training split
# Inference calls per batch size when one call outlasts the budget: 2 probe calls, warm-up, 1 more warm-up, the minimum.
SLOW_INFERENCE_CALLS = 2 + INFERENCE_WARMUP_CALLS + 1 + INFERENCE_MIN_CALLS


def _split(spec: RunSpec) -> tuple[int, int, int]:
    """Training, validation and test samples of the case (--limit caps the first two, never the test set)."""
    train = TRAIN_SAMPLES[spec.task]
    val = int(train * VAL_PER_TRAIN)
    return min(spec.limit or train, train), min(spec.limit or val, val), int(train * TEST_PER_TRAIN)


def sample_cost(spec: RunSpec) -> float:
    """Work units of one training sample: the square root of the model's training FLOPs per sample (why: above)."""
    return math.sqrt(train_flops_per_sample(spec))


def forward_cost(spec: RunSpec) -> float:
    """Work units of one forward-only sample: the forward share of a training sample's FLOPs."""
    return sample_cost(spec) * forward_flops_per_sample(spec) / train_flops_per_sample(spec)


def training_units(spec: RunSpec) -> float:
    """Epochs x training samples x the sample cost."""
    return spec.epochs * _split(spec)[0] * sample_cost(spec)


def after_training_units(spec: RunSpec) -> float:
    """The work around training that grows with the model: validation each epoch, the test set, the timed steps."""
    _, val, test = _split(spec)
    return (spec.epochs * val + test) * forward_cost(spec) + STEP_TIMING_STEPS * spec.batch_size * sample_cost(spec)


def work_s(spec: RunSpec, per_unit_s: float) -> float:
    """Seconds of a case's work at a price: its units, and per inference batch size the time budget or, when one call
    is slower than the budget allows for, the minimum number of calls."""
    inference = sum(max(INFERENCE_BUDGET_S, per_unit_s * SLOW_INFERENCE_CALLS * size * forward_cost(spec))
                    for size in spec.infer_batch_sizes)
    return per_unit_s * (training_units(spec) + after_training_units(spec)) + inference


def setup_keys(spec: RunSpec) -> list[Key]:
    """The setups a case is priced by, most specific first (the last, (), is every case)."""
    framework = (spec.framework, spec.keras_backend if spec.framework == "keras" else "")
    return [(*framework, spec.device, spec.model, spec.precision, spec.compile, spec.devices, spec.threads),
            (*framework, spec.device, spec.model), (*framework, spec.device), (spec.device,), ()]


@dataclass
class Prices:
    """Observed seconds per work unit and fixed seconds per case, by setup key."""

    per_unit_s: dict[Key, list[float]] = field(default_factory=dict)
    fixed_s: dict[Key, list[float]] = field(default_factory=dict)

    def learn(self, record: RunRecord) -> None:
        """Price a finished case's setups from its epochs' training seconds and its wall time."""
        spec, trained_s = record.run_spec, sum(epoch.train_s for epoch in record.history)
        if trained_s <= 0 or not record.wall_s:
            return
        rate = trained_s / training_units(spec)
        fixed = max(0.0, record.wall_s - work_s(spec, rate))
        for key in setup_keys(spec):
            self.per_unit_s.setdefault(key, []).append(rate)
            self.fixed_s.setdefault(key, []).append(fixed)

    def fixed(self, spec: RunSpec) -> float:
        """Fixed seconds of a case like this one (0 before any case was priced)."""
        return next((statistics.median(self.fixed_s[k]) for k in setup_keys(spec) if self.fixed_s.get(k)), 0.0)

    def rate(self, spec: RunSpec, provisional: dict[Key, float]) -> float | None:
        """Seconds per unit of the most specific setup priced by a finished case, or by `provisional` (the running
        case's pace, for its own setups) where none has finished."""
        for key in setup_keys(spec):
            if self.per_unit_s.get(key):
                return statistics.median(self.per_unit_s[key])
            if key in provisional:
                return provisional[key]
        return None

    def estimate_s(self, spec: RunSpec, provisional: dict[Key, float] | None = None) -> float | None:
        """Seconds the case should take, None before anything priced it."""
        rate = self.rate(spec, provisional or {})
        return None if rate is None else self.fixed(spec) + work_s(spec, rate)


@dataclass
class Running:
    """The case in progress: when it started, and its first and latest training progress (clock, fraction done)."""

    spec: RunSpec
    started: float
    first_progress: tuple[float, float] | None = None
    last_progress: tuple[float, float] | None = None

    def pace_per_unit_s(self) -> float | None:
        """Seconds per training unit between its first and latest progress event, once they are apart."""
        if not self.first_progress or not self.last_progress:
            return None
        (t0, f0), (t1, f1) = self.first_progress, self.last_progress
        return (t1 - t0) / ((f1 - f0) * training_units(self.spec)) if f1 > f0 and t1 > t0 else None


def training_fraction(event: dict[str, Any]) -> float | None:
    """How much of a case's training a worker event says is done (train: in-epoch step; epoch: an epoch ended)."""
    if event.get("phase") == "train" and event.get("steps"):
        return (event["epoch"] - 1 + event["step"] / event["steps"]) / event["epochs"]
    if event.get("phase") == "epoch" and event.get("epochs"):
        return event["epoch"] / event["epochs"]
    return None


class PlanEta:
    """Seconds left in a plan: `planned` the cases to run, then `started` / `progress` / `finished` as they happen.

    An executor that runs cases in parallel and reports only finished ones (Ray) never calls `started`: there the
    plan's elapsed time is shared out over the estimated seconds done and left.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.plan_started = clock()
        self.pending: list[RunSpec] | None = None  # cases not yet finished, the running one included
        self.done: list[RunSpec] = []  # finished cases that ran (skips take no time)
        self.prices = Prices()
        self.running: Running | None = None
        self.one_at_a_time = False  # set by the first `started`: cases run in turn, not in parallel

    def planned(self, specs: list[RunSpec]) -> None:
        """The cases the plan will run (after --resume left out the finished ones)."""
        self.pending = list(specs)
        self.plan_started = self.clock()

    def started(self, spec: RunSpec) -> None:
        """A case starts now."""
        self.running = Running(spec, self.clock())
        self.one_at_a_time = True

    def progress(self, event: dict[str, Any]) -> None:
        """A worker event of the running case."""
        fraction = training_fraction(event)
        if self.running is None or fraction is None:
            return
        point = (self.clock(), fraction)
        self.running.first_progress = self.running.first_progress or point
        self.running.last_progress = point

    def finished(self, record: RunRecord) -> None:
        """A case's record: it leaves the plan, and prices its setup when it trained."""
        spec = record.run_spec
        at = next((i for i, s in enumerate(self.pending or []) if s.id == spec.id), None)
        if self.pending is not None and at is not None:
            ran = self.pending.pop(at)
            if record.status != "skipped":  # a skip takes no time: it would make the cases that ran look fast
                self.done.append(ran)
        if self.running is not None and self.running.spec.id == spec.id:
            self.running = None
        self.prices.learn(record)

    def _provisional(self) -> dict[Key, float]:
        """The running case's pace for each of its setups."""
        pace = self.running.pace_per_unit_s() if self.running else None
        return {key: pace for key in setup_keys(self.running.spec)} if self.running and pace else {}

    def _running_left_s(self, run: Running) -> float | None:
        """Seconds the running case still needs. With a pace of its own: training began when its first progress
        point says, and the rest of its work goes at that pace, plus the fixed seconds not yet spent before training.
        Without one: its estimate less its age."""
        now, pace = self.clock(), run.pace_per_unit_s()
        if pace is None or run.first_progress is None:
            estimate = self.prices.estimate_s(run.spec)
            return None if estimate is None else max(0.0, estimate - (now - run.started))
        t_first, fraction = run.first_progress
        training_began = t_first - fraction * pace * training_units(run.spec)
        fixed_left = max(0.0, self.prices.fixed(run.spec) - (training_began - run.started))
        return max(0.0, training_began + work_s(run.spec, pace) + fixed_left - now)

    def remaining_s(self) -> float | None:
        """Seconds left in the plan, None while there is nothing to price it by."""
        if self.pending is None:
            return None
        running_id = self.running.spec.id if self.running else None
        rest = [self.prices.estimate_s(s, self._provisional()) for s in self.pending if s.id != running_id]
        if any(e is None for e in rest):
            return None
        if not self.one_at_a_time:  # in parallel: the elapsed time shared out by estimated seconds done and left
            done = sum(self.prices.estimate_s(s) or 0.0 for s in self.done)
            return (self.clock() - self.plan_started) * sum(rest) / done if done else None  # type: ignore[arg-type]
        current = self._running_left_s(self.running) if self.running else 0.0
        return None if current is None else current + sum(rest)  # type: ignore[arg-type]

    def text(self) -> str:
        """`ETA 3:05`, `ETA 1:02:30`, or `ETA ?` while nothing has been priced."""
        left = self.remaining_s()
        if left is None:
            return "ETA ?"
        minutes, seconds = divmod(int(round(left)), 60)
        hours, minutes = divmod(minutes, 60)
        return f"ETA {hours}:{minutes:02d}:{seconds:02d}" if hours else f"ETA {minutes}:{seconds:02d}"
