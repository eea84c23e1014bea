"""Robust statistics over repeats and the figures derived from an epoch history."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The q-th percentile of durations, in milliseconds."""
    return float(np.percentile(np.asarray(seconds), q) * 1000.0)


@dataclass(frozen=True)
class Summary:
    """Robust statistics of one figure over repeats."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int

    @property
    def iqr(self) -> float:
        """Inter-quartile range."""
        return self.q3 - self.q1


def cv_pct(values: Sequence[float]) -> float:
    """Coefficient of variation: sample standard deviation / mean, percent (the repeat-noise goal's figure)."""
    return statistics.stdev(values) / statistics.mean(values) * 100


def spread_pct(values: Sequence[float]) -> float:
    """(max - min) / median, percent: how far apart alternated rounds of one side were (calibrate, harness goals)."""
    return (max(values) - min(values)) / statistics.median(values) * 100


def summarize(values: Iterable[float | None]) -> Summary | None:
    """Median, quartiles, min, max and n of the finite values; None when there are none."""
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return None
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    return Summary(float(median), float(q1), float(q3), float(finite.min()), float(finite.max()), int(finite.size))


def time_to_accuracy_s(
    epoch_train_s: Sequence[float], val_accuracy: Sequence[float | None], targets: Iterable[float]
) -> dict[str, float | None]:
    """Cumulative training seconds at the end of the first epoch whose validation accuracy reaches each target."""
    cumulative = np.cumsum(np.asarray(epoch_train_s, dtype=float))
    result: dict[str, float | None] = {}
    for target in targets:
        reached = [i for i, acc in enumerate(val_accuracy) if acc is not None and acc >= target]
        result[f"{target:g}"] = float(cumulative[reached[0]]) if reached else None
    return result
