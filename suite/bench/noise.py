"""The A/A calibration: one case run N times (one process each), the noise of each timing figure, the smallest change
the gate detects with one run a side, the repeats a 5 % / 10 % change needs; and the pool of runs the gate's goal
benchmark draws from (some with a planted slowdown)."""

from __future__ import annotations

import math
import os
import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from suite.core.spec import RunSpec
from suite.record.metrics import METRICS, Metric
from suite.record.noise import GATE_ALPHA, Calibration, Evidence, log_sd, now_utc, repeats_needed
from suite.record.schema import PLANT_SLOWDOWN_ENV, RunRecord
from suite.record.stats import cv_pct, spread_pct
from suite.record.store import write_record
from suite.run.runner import run_case

MIN_CALIBRATION_RUNS = 3  # fewer undisturbed runs give no usable spread


def gated_timing_metrics() -> list[Metric]:
    """The figures compare tests against noise by default."""
    return [m for m in METRICS if m.gate and m.against_noise]


@contextmanager
def planted_slowdown(pct: float | None) -> Iterator[None]:
    """The worker environment with a planted slowdown of `pct` % (None: none), restored afterwards."""
    before = os.environ.get(PLANT_SLOWDOWN_ENV)
    if pct:
        os.environ[PLANT_SLOWDOWN_ENV] = f"{pct:g}"
    else:
        os.environ.pop(PLANT_SLOWDOWN_ENV, None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PLANT_SLOWDOWN_ENV, None)
        else:
            os.environ[PLANT_SLOWDOWN_ENV] = before


def run_once(spec: RunSpec, timeout_s: float, results: Path | None, slowdown_pct: float | None = None) -> RunRecord:
    """One run of the case in its own process (stored in `results` when given)."""
    with planted_slowdown(slowdown_pct):
        record = run_case(spec, timeout_s)
    if results is not None:
        write_record(record, results)
    return record


def repeat(spec: RunSpec, runs: int, timeout_s: float, results: Path | None,
           say: Callable[[str], None] = lambda line: None) -> list[RunRecord]:
    """The case `runs` times, one process each, a line per run."""
    records = []
    for i in range(1, runs + 1):
        record = run_once(spec, timeout_s, results)
        say(run_line(f"run {i}/{runs}", record))
        records.append(record)
    return records


def run_line(title: str, record: RunRecord) -> str:
    """One progress line: status, steady epoch, and the disturbance of the run."""
    steady = f"steady epoch {record.steady_epoch_s:.3f} s" if record.steady_epoch_s else "no steady epoch"
    contention = record.contention_train
    busy = f"others {contention.others_busy_cores:.2f} cores" if contention else "contention not measured"
    return f"{title}: {record.status}, {steady}, {busy}" + (" — DISTURBED" if record.disturbed else "")


@dataclass(frozen=True)
class FigureNoise:
    """The A/A noise of one figure over the undisturbed runs."""

    metric: Metric
    values: list[float]
    sd: float  # of ln(figure)
    level: float  # the per-figure level the gate tests at (Bonferroni over the case's figures)

    @property
    def cv_pct(self) -> float:
        """Standard deviation / mean, percent."""
        return cv_pct(self.values)

    @property
    def spread_pct(self) -> float:
        """(max - min) / median, percent."""
        return spread_pct(self.values)

    @property
    def detectable_pct(self) -> float:
        """The smallest worse change the gate flags with one run a side and this calibration."""
        found = Evidence("calibration", 1.0, 1.0, self.sd, len(self.values) - 1, 1, 1).detectable_pct(self.level)
        return math.inf if found is None else found

    def repeats_for(self, change_pct: float) -> int:
        """Runs per side to detect `change_pct` with the gate's power goal."""
        return repeats_needed(self.sd, change_pct, self.level)


def figure_noise(records: list[RunRecord], metrics: list[Metric], alpha: float = GATE_ALPHA) -> list[FigureNoise]:
    """Each figure's noise over the ok, undisturbed runs that have it (at least MIN_CALIBRATION_RUNS)."""
    usable = [r for r in records if r.status == "ok" and not r.disturbed]
    found = []
    for metric in metrics:
        values = [v for r in usable if (v := metric.get(r)) is not None and math.isfinite(v)]
        sd = log_sd(values) if len(values) >= MIN_CALIBRATION_RUNS else None
        if sd is not None:
            found.append((metric, values, sd))
    level = alpha / max(len({metric.test_key for metric, _, _ in found}), 1)  # as compare: one test per measurement
    return [FigureNoise(metric, values, sd, level) for metric, values, sd in found]


def calibrations(records: list[RunRecord], figures: list[FigureNoise]) -> list[Calibration]:
    """What `--save` stores for compare: per figure, the noise on this machine for this case."""
    first = records[0]
    return [Calibration(first.machine.machine_id, first.case_key, f.metric.key, f.sd, len(f.values), f.cv_pct,
                        f.spread_pct, now_utc()) for f in figures]


def describe(figures: list[FigureNoise]) -> list[str]:
    """The calibration table: median, cv, spread, what one run a side detects, repeats for 5 % and 10 %."""
    header = f"{'figure':<22}{'median':>12}{'cv':>8}{'spread':>9}{'1 run a side sees':>19}{'runs for 5%':>13}{'for 10%':>9}"
    lines = [header]
    for f in figures:
        sees = "nothing" if f.detectable_pct == math.inf else f"≥{f.detectable_pct:.1f}%"
        lines.append(f"{f.metric.key:<22}{f.metric.format(statistics.median(f.values)):>12}{f.cv_pct:>7.1f}%"
                     f"{f.spread_pct:>8.1f}%{sees:>19}{f.repeats_for(5.0):>13}{f.repeats_for(10.0):>9}")
    return lines
