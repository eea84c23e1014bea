"""The metric registry: every metric reaches every reader (table, report, summary.csv, compare, asv), keys follow one
vocabulary, renamed keys stay accepted, and the figures that had drifted (device peak, time to target) read one way."""

from __future__ import annotations

import csv
import importlib
import inspect
import math
import re
from pathlib import Path

import pytest

from suite.record.metrics import (
    ALIASES,
    METRIC_BY_ASV,
    METRICS,
    device_peak_bytes,
    find_metric,
    shown_in,
    time_to_target_s,
)
from suite.report import env, page, plots, sections
from suite.report.asv_results import higher_is_better
from suite.report.cases import default_targets, group_cases
from suite.report.compare import metrics_help, parse_thresholds, select_metrics
from suite.report.table import summary_table
from tests.test_report import fixture_records, tta, with_figures

UNIT_SUFFIX = {"": "", "s": "_s", "ms": "_ms", "%": "_pct", "MiB": "_mib", "J": "_j", "samples/s": "_samples_per_s"}
BENCHMARK_MODULES = ("benchmarks.training", "benchmarks.inference", "benchmarks.memory", "benchmarks.sweeps",
                     "benchmarks.scaling")


def test_keys_end_in_their_unit_and_labels_and_aliases_are_unique():
    for metric in METRICS:
        assert metric.unit in UNIT_SUFFIX, f"{metric.key}: add unit {metric.unit!r} to the vocabulary"
        suffix = UNIT_SUFFIX[metric.unit]
        assert metric.key.endswith(suffix) and re.fullmatch(r"[a-z0-9_]+", metric.key), metric.key
    assert len({m.key for m in METRICS}) == len({m.label for m in METRICS}) == len(METRICS)
    assert not set(ALIASES) & {m.key for m in METRICS}


def test_compare_accepts_every_key_and_every_earlier_name():
    text = " ".join(metrics_help().split())
    for metric in METRICS:
        assert metric.key in text and select_metrics([metric.key]) == [metric]
        for alias in metric.aliases:
            assert alias in text and select_metrics([alias]) == [metric]
            assert parse_thresholds([f"{alias}=2%"]).pct(metric) == 2.0
    assert select_metrics(None) == [m for m in METRICS if m.gate]


def test_every_metric_reaches_the_terminal_table_and_summary_csv(tmp_path: Path):
    records = fixture_records()
    columns = set(summary_table(records).columns)
    assert {m.key for m in shown_in("table")} <= columns
    cases = group_cases(records)
    page.write_summary_csv(tmp_path / "summary.csv", cases)
    with (tmp_path / "summary.csv").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert all(f"{m.key}_{stat}" in header for m in METRICS for stat in ("median", "n"))


def test_every_report_view_shows_its_metrics():
    cases = group_cases(fixture_records())
    for table in sections.summary_section(cases, default_targets()):
        # A metric nobody measured (GPU figures on this CPU store) is named once under the table instead.
        assert {m.label for m in shown_in("summary")} == set(table["headers"][:-1]) | set(table["unmeasured"])
    side = sections.side_by_side_rows(cases)
    for group in {r["group"] for r in side}:
        assert [r["figure"] for r in side if r["group"] == group] == [m.label for m in shown_in("frameworks")]
    fig = plots.frameworks_figure(cases)
    assert fig is not None
    assert [ax.get_title().split(" (")[0] for ax in fig.axes if ax.get_visible()] == [m.label for m in shown_in("frameworks")]
    # The speed-variants table takes its figure columns from the registry: every metric of the view has one.
    headers = [h["text"] for h in sections.variant_headers()]
    assert {m.label for m in shown_in("variants")} <= set(headers)


def test_cuda_only_metrics_say_why_a_cpu_case_lacks_them():
    cases = group_cases(fixture_records())
    cuda_only = [m for m in METRICS if m.applies_to == "cuda"]
    missing = {m.figure: m.reason for m in env.not_measured(cases, cuda_only)}
    assert set(missing) == {m.label for m in cuda_only}
    assert all("ran on the CPU" in reason for reason in missing.values())


def test_every_asv_track_reads_a_registry_metric():
    tracks = {}
    for name in BENCHMARK_MODULES:
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            tracks |= {attr: getattr(cls, attr) for attr in dir(cls) if attr.startswith("track_")}
    assert set(tracks) == set(METRIC_BY_ASV), "a track_* method outside the registry, or a registry name without one"
    for name, track in tracks.items():
        assert track.unit and track.__doc__, name
        assert higher_is_better(f"x.Y.{name}", track.unit) is METRIC_BY_ASV[name].higher_is_better


def test_device_peak_counts_every_allocator_before_nvml():
    record = fixture_records()[0]
    assert device_peak_bytes(record) is None  # a CPU run
    assert device_peak_bytes(with_figures(record, jax_peak_bytes=3 * 2**20, nvml_used_peak_bytes=9 * 2**20)) == 3 * 2**20
    assert find_metric("device_peak_mib").get(with_figures(record, nvml_used_peak_bytes=9 * 2**20)) == 9.0


def test_time_to_target_is_read_from_the_history_like_the_worker_recorded_it():
    records = [r for r in fixture_records() if r.time_to_accuracy_s]
    assert records
    for record in records:
        for key, recorded in record.time_to_accuracy_s.items():
            expected = math.inf if recorded is None else recorded
            assert time_to_target_s(record, float(key)) == pytest.approx(expected)
            assert time_to_target_s(record, float(key)) == pytest.approx(tta(record, float(key)))
        first = next(iter(record.time_to_accuracy_s))
        assert find_metric("time_to_target_s").get(record) == time_to_target_s(record, float(first))
    blind = with_figures(records[0], history=[e.model_copy(update={"val_accuracy": None}) for e in records[0].history])
    assert time_to_target_s(blind, 0.5) is None and time_to_target_s(with_figures(records[0], time_to_accuracy_s={})) is None
