"""Honesty benchmarks: the suite's training loop vs a bare hand-written loop, and samplers on vs off; prints ratios."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from suite.core.spec import RunSpec
from suite.record.stats import spread_pct
from suite.run.runner import case_env, run_case, run_worker

HARNESS_TARGET = 0.95
OVERHEAD_TARGET_PCT = 1.0


@dataclass(frozen=True)
class Comparison:
    """Steady-state samples/s of two alternated variants of one case, over rounds."""

    label: str
    first: list[float]
    second: list[float]

    @property
    def ratio(self) -> float:
        """median(first) / median(second)."""
        return statistics.median(self.first) / statistics.median(self.second)


def steady_samples_per_s(epoch_s: list[float], samples: int) -> float:
    """Samples / median epoch time with epoch 1 (warm-up) excluded, as RunRecord does."""
    return samples / statistics.median(epoch_s[1:])


def suite_samples_per_s(spec: RunSpec, timeout_s: float, monitoring: bool = True) -> float:
    """One isolated suite case; its steady throughput."""
    record = run_case(spec, timeout_s, monitoring=monitoring)
    if record.status != "ok" or record.train_steady_samples_per_s is None:
        raise RuntimeError(f"{spec.label}: {record.status} {record.error or 'no steady throughput (need epochs >= 2)'}")
    return record.train_steady_samples_per_s


def bare_samples_per_s(spec: RunSpec, timeout_s: float) -> float:
    """The hand-written loop in its own process, same data, batch size, epochs and threads."""
    result = run_worker({"bare": {"spec": spec.to_dict()}}, case_env(spec), timeout_s)
    if result.output is None:
        raise RuntimeError(f"{spec.label}: bare loop failed: {result.stderr_tail[-500:]}")
    return steady_samples_per_s(result.output["epoch_s"], result.output["train_samples"])


def alternate(label: str, rounds: int, first: Callable[[], float], second: Callable[[], float]) -> Comparison:
    """ABAB… so slow drifts of the machine hit both sides alike."""
    a, b = [], []
    for _ in range(rounds):
        a.append(first())
        b.append(second())
    return Comparison(label, a, b)


def harness(spec: RunSpec, rounds: int, timeout_s: float) -> Comparison:
    """suite loop ÷ bare loop throughput."""
    return alternate(spec.label, rounds, lambda: suite_samples_per_s(spec, timeout_s), lambda: bare_samples_per_s(spec, timeout_s))


def sampler_overhead(spec: RunSpec, rounds: int, timeout_s: float) -> Comparison:
    """monitoring on ÷ monitoring off throughput."""
    return alternate(spec.label, rounds, lambda: suite_samples_per_s(spec, timeout_s, True),
                     lambda: suite_samples_per_s(spec, timeout_s, False))


def describe(kind: str, comparison: Comparison) -> str:
    """One result line with the medians, the spread and the verdict against the target."""
    med_a, med_b = statistics.median(comparison.first), statistics.median(comparison.second)
    if kind == "harness":
        verdict = "meets" if comparison.ratio >= HARNESS_TARGET else "misses"
        return (f"harness  {comparison.label:<28} suite {med_a:>10,.0f} vs bare {med_b:>10,.0f} samples/s  "
                f"ratio {comparison.ratio:.3f} ({verdict} target >= {HARNESS_TARGET}); "
                f"spread {spread_pct(comparison.first):.1f}% / {spread_pct(comparison.second):.1f}% over {len(comparison.first)} rounds")
    overhead = (1 - comparison.ratio) * 100
    verdict = "meets" if overhead <= OVERHEAD_TARGET_PCT else "misses"
    return (f"sampling {comparison.label:<28} on {med_a:>10,.0f} vs off {med_b:>10,.0f} samples/s  "
            f"overhead {overhead:+.2f}% ({verdict} target <= {OVERHEAD_TARGET_PCT}%); "
            f"spread {spread_pct(comparison.first):.1f}% / {spread_pct(comparison.second):.1f}% over {len(comparison.first)} rounds")
