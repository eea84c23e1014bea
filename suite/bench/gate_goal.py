"""The gate's goal benchmark: on this machine, A/A comparisons (identical code) must raise at most 1 false alarm in 50
while a planted 10 % slowdown of the CNN (each training step really waits 10 % longer) is detected at least 9 times in
10, both at the repeats the gate needs.

A pool of real runs is made once, A (plain) and B (planted) interleaved ABAB… so slow drifts of the machine hit both.
Comparisons are then drawn from it, seeded: an A/A draw shuffles the A runs and takes the first `repeats` as BASE and
the next `repeats` as NEW; an A/B draw takes `repeats` A runs as BASE and `repeats` B runs as NEW. Draws share runs
(50 draws of 2 x 6 from a pool of 20 reuse every run many times), so the rates are not 50 independent trials: a pool
with one odd run moves many of them together. The rates are estimates for this pool, not a proof.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from suite.bench.noise import run_line, run_once
from suite.core.spec import RunSpec
from suite.record.metrics import METRIC_BY_KEY, Metric
from suite.record.noise import GATE_ALPHA, log_sd, rank_repeats, repeats_needed
from suite.record.schema import RunRecord

PLANTED_PCT = 10.0
FALSE_ALARM_GOAL = 1 / 50
DETECTION_GOAL = 0.9
DRAWS = 50
REGRESSION, INCONCLUSIVE = 1, 3  # compare's exit codes
# What the gate is handed: BASE and NEW runs; it answers compare's exit code and the figures it found REGRESSED.
Gate = Callable[[list[RunRecord], list[RunRecord]], tuple[int, list[str]]]


@dataclass(frozen=True)
class Pool:
    """The runs comparisons are drawn from: plain (A) and with the planted slowdown (B)."""

    plain: list[RunRecord]
    planted: list[RunRecord]


def goal_spec(limit: int, epochs: int, threads: int) -> RunSpec:
    """The CNN case the goal is stated for, small enough for a pool of ~30 runs in ~10 minutes on 2 cores."""
    return RunSpec(framework="torch", model="cnn", epochs=epochs, limit=limit, threads=threads, infer_batch_sizes=(1, 256))


def build_pool(spec: RunSpec, plain: int, planted: int, timeout_s: float, results: Path | None,
               say: Callable[[str], None] = lambda line: None) -> Pool:
    """Real runs, A and B interleaved, each in its own process; stored under results/a and results/b when given."""
    pool = Pool([], [])
    for i in range(max(plain, planted)):
        for runs, count, pct, side in ((pool.plain, plain, None, "a"), (pool.planted, planted, PLANTED_PCT, "b")):
            if i < count:
                record = run_once(spec, timeout_s, results / side if results else None, pct)
                runs.append(record)
                say(run_line(f"{'A' if side == 'a' else f'B (+{PLANTED_PCT:g}%)'} {i + 1}/{count}", record))
    return pool


@dataclass
class GateRates:
    """The exit codes of the A/A and A/B comparisons, and which figures the gate flagged in each kind."""

    repeats: int
    aa: list[int] = field(default_factory=list)
    ab: list[int] = field(default_factory=list)
    aa_flagged: Counter[str] = field(default_factory=Counter)
    ab_flagged: Counter[str] = field(default_factory=Counter)

    @property
    def false_alarm_rate(self) -> float:
        """A/A comparisons that exited 1."""
        return self.aa.count(REGRESSION) / len(self.aa)

    @property
    def detection_rate(self) -> float:
        """A/B comparisons that exited 1."""
        return self.ab.count(REGRESSION) / len(self.ab)

    @property
    def met(self) -> bool:
        """Both goals met."""
        return self.false_alarm_rate <= FALSE_ALARM_GOAL and self.detection_rate >= DETECTION_GOAL


def repeats_for_goal(pool: Pool, metrics: list[Metric]) -> tuple[int, str]:
    """The runs a side the gate needs to see the planted change 9 times in 10, from the A runs' own steady-epoch noise
    at the level compare tests each measurement at, and the sentence saying so."""
    level = GATE_ALPHA / max(len({m.test_key for m in metrics}), 1)
    steady = METRIC_BY_KEY["steady_epoch_s"]
    values = [v for r in pool.plain if r.status == "ok" and not r.disturbed and (v := steady.get(r)) is not None]
    sd = log_sd(values)
    if sd is None:
        return rank_repeats(level), f"the fewest with which Mann–Whitney reaches {level:.2g} (no A noise to size by)"
    needed = repeats_needed(sd, PLANTED_PCT, level)
    why = (f"the {len(values)} undisturbed A runs' steady-epoch noise ({100 * sd:.1f}% sd) needs {needed} to see "
           f"{PLANTED_PCT:g}% 9 times in 10 at {level:.2g} per test")
    room = min(len(pool.plain) // 2, len(pool.planted))
    if needed > room:  # judge at what the pool allows and say so: the rates then show what those repeats give
        return max(room, 2), f"{why}; this pool allows {room} (A/A takes 2 x {room} A runs): judged at {room}"
    return needed, why


def gate_rates(pool: Pool, gate: Gate, repeats: int, draws: int = DRAWS, seed: int = 0) -> GateRates:
    """`draws` A/A and `draws` A/B comparisons of `repeats` runs a side drawn from the pool (see the module doc)."""
    if len(pool.plain) < 2 * repeats or len(pool.planted) < repeats:
        raise ValueError(f"a pool of {len(pool.plain)} A and {len(pool.planted)} B runs cannot give {repeats} runs a "
                         f"side: A/A needs {2 * repeats} A runs, A/B {repeats} B runs")
    rng = np.random.default_rng(seed)
    rates = GateRates(repeats)
    for _ in range(draws):
        order = rng.permutation(len(pool.plain))
        code, flagged = gate([pool.plain[i] for i in order[:repeats]], [pool.plain[i] for i in order[repeats:2 * repeats]])
        rates.aa.append(code)
        rates.aa_flagged.update(flagged)
        base = [pool.plain[i] for i in rng.choice(len(pool.plain), repeats, replace=False)]
        code, flagged = gate(base, [pool.planted[i] for i in rng.choice(len(pool.planted), repeats, replace=False)])
        rates.ab.append(code)
        rates.ab_flagged.update(flagged)
    return rates


def describe(rates: GateRates, pool: Pool) -> list[str]:
    """The rates against the goals, what was inconclusive, which figures were flagged, and the pool's disturbance."""
    def flagged(counter: Counter[str]) -> str:
        return ", ".join(f"{key} {n}" for key, n in counter.most_common()) or "none"

    runs = pool.plain + pool.planted
    disturbed, failed = sum(1 for r in runs if r.disturbed), sum(1 for r in runs if r.status != "ok")
    aa, ab = len(rates.aa), len(rates.ab)
    return [
        f"pool: {len(pool.plain)} A runs, {len(pool.planted)} B runs (+{PLANTED_PCT:g}% planted per step); "
        f"{disturbed} DISTURBED (left out of timing figures by the gate), {failed} not ok (a gate failure where drawn)",
        f"A/A false alarms: {rates.aa.count(REGRESSION)}/{aa} = {rates.false_alarm_rate:.1%} "
        f"({'meets' if rates.false_alarm_rate <= FALSE_ALARM_GOAL else 'misses'} goal <= {FALSE_ALARM_GOAL:.0%}); "
        f"inconclusive {rates.aa.count(INCONCLUSIVE)}/{aa}; figures flagged: {flagged(rates.aa_flagged)}",
        f"A/B detected: {rates.ab.count(REGRESSION)}/{ab} = {rates.detection_rate:.1%} "
        f"({'meets' if rates.detection_rate >= DETECTION_GOAL else 'misses'} goal >= {DETECTION_GOAL:.0%}); "
        f"inconclusive {rates.ab.count(INCONCLUSIVE)}/{ab}; passed as no change (exit 0) {rates.ab.count(0)}/{ab}; "
        f"figures flagged: {flagged(rates.ab_flagged)}",
        f"{rates.repeats} runs a side per comparison; draws share runs (see `fashionbench noise --help`)",
    ]
