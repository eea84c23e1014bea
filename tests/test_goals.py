"""The speed-goals benchmark's arithmetic and verdicts (the timed runs themselves are `fashionbench goals`)."""

from __future__ import annotations

import statistics
from dataclasses import replace

import pytest

from suite.bench import goals
from suite.bench.calibrate import Comparison
from suite.core.spec import RunSpec
from suite.measure.machine import fingerprint
from suite.record.schema import RunRecord
from tests.conftest import run_cli


def record(spec: RunSpec, status: str = "ok", mfu: float | None = 40.0, samples_per_s: float = 1000.0) -> RunRecord:
    return RunRecord(case_id=spec.id, case_key=spec.case_key, machine=fingerprint(), spec=spec.to_dict(),
                     status=status, mfu_pct=mfu, train_steady_samples_per_s=samples_per_s, test_accuracy=0.85,
                     peak_flops_dtype="fp32", peak_flops_per_s=1e11)


def test_candidates_start_with_the_default_and_fit_their_framework():
    specs = goals.candidate_specs(threads=2)
    firsts = {}
    for spec in specs:
        firsts.setdefault((spec.framework, spec.model), spec)
    assert all(not s.variant_flags() and s.batch_size == 128 for s in firsts.values())
    assert {(s.framework, s.model) for s in specs} == set(goals.CANDIDATES)
    assert len({s.id for s in specs}) == len(specs)


def test_best_variant_is_the_highest_mfu_and_failed_cases_are_ignored():
    default = RunSpec(framework="torch", model="cnn")
    fast, broken = replace(default, channels_last=True), replace(default, compile="default")
    records = [record(default, mfu=60.0), record(fast, mfu=70.0), record(broken, status="error", mfu=None)]
    [(ref, best)] = goals.best_variants(records)
    assert ref.run_spec == default and best.run_spec == fast
    [verdict] = goals.mfu_goals([(ref, best)])
    assert verdict.met and verdict.measured == "70.0%" and "channels_last=True" in verdict.name


def test_a_group_whose_default_failed_has_no_pair():
    default = RunSpec(framework="keras", model="dense")
    records = [record(default, status="error", mfu=None), record(replace(default, keras_backend="jax"), mfu=45.0)]
    assert goals.best_variants(records) == []


def test_mfu_below_the_goal_misses():
    spec = RunSpec(framework="keras", model="dense")
    [verdict] = goals.mfu_goals([(record(spec, mfu=18.0), record(spec, mfu=18.0))])
    assert not verdict.met and verdict.goal == ">= 40%"


def test_batch_size_shows_as_the_difference_from_the_default():
    default = RunSpec(framework="torch", model="dense")
    lines = goals.variant_table([(record(default), record(replace(default, batch_size=512), mfu=50.0))])
    assert "best: batch_size=512" in lines[2] and "default: default" in lines[1]


@pytest.mark.parametrize("first,second,goal,strictly,met", [
    ([96.0, 95.0, 97.0], [100.0, 100.0, 100.0], 0.95, False, True),
    ([90.0, 94.0, 93.0], [100.0, 100.0, 100.0], 0.95, False, False),
    ([100.0, 100.0], [100.0, 100.0], 1.0, False, True),
    ([100.0, 100.0], [100.0, 100.0], 1.0, True, False),
])
def test_ratio_verdict_uses_medians(first, second, goal, strictly, met):
    verdict = goals.ratio_verdict("x", Comparison("x", first, second), goal, strictly)
    assert verdict.met is met
    assert verdict.measured == f"{statistics.median(first) / statistics.median(second):.3f}"


def test_cv_is_sample_stdev_over_mean_and_judged_against_three_percent():
    assert goals.cv_pct([100.0, 102.0, 98.0]) == pytest.approx(2.0)
    spec = RunSpec(framework="torch", model="cnn", limit=12_000, epochs=3)
    steady = goals.repeat_noise_goal([record(spec, samples_per_s=v) for v in (1000, 1010, 990, 1005, 995)])
    noisy = goals.repeat_noise_goal([record(spec, samples_per_s=v) for v in (1000, 1200, 800, 1100, 900)])
    assert steady.met and not noisy.met
    assert not goals.repeat_noise_goal([record(spec), record(spec, status="error")]).met


def test_goals_rejects_bad_input_in_one_line(tmp_path):
    result = run_cli("goals", "--only", "everything", "--results", str(tmp_path / "r"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = run_cli("goals", "--rounds", "0", "--results", str(tmp_path / "r"))
    assert result.returncode == 2 and "--rounds 0 is out of range" in result.stderr


def test_targets_is_the_old_name_of_goals_and_says_so(tmp_path):
    result = run_cli("targets", "--rounds", "0", "--results", str(tmp_path / "r"))
    assert result.returncode == 2 and "--rounds 0 is out of range" in result.stderr
    assert "`targets` was renamed to `goals`" in result.stderr
