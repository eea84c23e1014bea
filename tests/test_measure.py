"""Measurement helpers: repeat statistics, time-to-accuracy, host RSS peak, CPU utilisation."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from suite.measure.host import CpuMeter
from suite.record.stats import percentile_ms, summarize, time_to_accuracy_s
from tests.conftest import REPO


def test_summary_of_repeats():
    stats = summarize([3.0, 1.0, 2.0, 4.0, None, float("nan")])
    assert (stats.median, stats.min, stats.max, stats.n) == (2.5, 1.0, 4.0, 4)
    assert stats.q1 == pytest.approx(1.75) and stats.q3 == pytest.approx(3.25)
    assert stats.iqr == pytest.approx(1.5)
    assert summarize([None]) is None
    assert summarize([5.0]).iqr == 0.0


def test_percentile_is_in_milliseconds():
    assert percentile_ms([0.001, 0.002, 0.003], 50) == pytest.approx(2.0)


def test_time_to_accuracy_counts_training_time_until_first_reach():
    epoch_s = [10.0, 5.0, 5.0, 5.0]
    val_acc = [0.80, 0.86, 0.84, 0.91]
    tta = time_to_accuracy_s(epoch_s, val_acc, [0.85, 0.9, 0.95])
    assert tta == {"0.85": 15.0, "0.9": 25.0, "0.95": None}


def test_peak_rss_rises_for_a_real_allocation():
    # A fresh process, so an earlier test's larger peak cannot hide the rise.
    code = ("import numpy as np; from suite.measure.host import peak_rss_bytes, rss_bytes; before = peak_rss_bytes(); "
            "block = np.ones(300 * 2**20 // 8); during = rss_bytes(); del block; "
            "print(before, during, peak_rss_bytes(), rss_bytes())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    before, during, peak, after = map(int, out.stdout.split())
    assert peak - before >= 250 * 2**20
    assert peak >= 0.99 * during  # the kernel updates the high-water mark lazily, by pages
    assert after < during, "current RSS falls after the free while the peak keeps the high-water mark"


def test_cpu_meter_sees_a_busy_loop_and_an_idle_wait():
    with CpuMeter() as busy:
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
    with CpuMeter() as idle:
        time.sleep(0.3)
    assert busy.util_pct > 60
    assert idle.util_pct < 30
