"""`fashionbench noise`: the A/A calibration (noise table, --save, compare using it) and --goal, the gate's benchmark,
on small fake pools (a real pool takes ~10 minutes: the command is in docs/reliability.md)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from suite.bench import gate_goal, noise
from suite.cli import main
from suite.record.noise import load_calibrations
from suite.record.schema import RunRecord
from tests.test_compare import runs
from tests.test_report import write_all

FIGURES = {"train_steady_samples_per_s": 5000.0, "first_epoch_s": 2.0, "steady_epoch_s": 1.0, "mfu_pct": 10.0}
SLOWER = {"train_steady_samples_per_s": 1 / 1.1, "first_epoch_s": 1.1, "steady_epoch_s": 1.1, "mfu_pct": 1 / 1.1}


def timed_runs(count: int, seed: int, sd: float = 0.02, slower: bool = False, disturbed: int = 0) -> list[RunRecord]:
    """Fake CNN runs whose every gated timing figure spreads by `sd` (log scale), inference included; `slower`: the
    training figures 10 % worse, as the planted slowdown makes them."""
    rng = np.random.default_rng(seed)
    made = []
    for record in runs(count, seed=seed, sd=0.0, disturbed=disturbed, **FIGURES):
        jitter = {k: getattr(record, k) * (SLOWER[k] if slower else 1.0) * math.exp(rng.normal(0, sd)) for k in FIGURES}
        inference = [i.model_copy(update={name: getattr(i, name) * math.exp(rng.normal(0, sd))
                                          for name in ("samples_per_s", "latency_ms_p50", "latency_ms_p99")})
                     for i in record.inference]
        made.append(record.model_copy(update={**jitter, "inference": inference}))
    return made


def test_figure_noise_leaves_out_disturbed_runs_and_gives_the_gate_figures():
    records = timed_runs(10, seed=1, sd=0.03, disturbed=2)
    figures = {f.metric.key: f for f in noise.figure_noise(records, noise.gated_timing_metrics())}
    steady = figures["steady_epoch_s"]
    assert len(steady.values) == 8 and steady.sd == pytest.approx(np.std(np.log(steady.values), ddof=1))
    # 8 figures, 6 tests (samples/s and MFU share the steady epoch's); energy and device figures: none on CPU
    assert len(figures) == 8 and steady.level == pytest.approx(0.01 / 6)
    assert 1 < steady.cv_pct < 6 and steady.spread_pct > steady.cv_pct
    # One run a side against 8 calibration runs: t(7 dof) at 0.01/6 times sd times sqrt(2).
    from scipy import stats

    assert steady.detectable_pct == pytest.approx(100 * math.expm1(stats.t.isf(0.01 / 6, 7) * steady.sd * math.sqrt(2)))
    assert steady.repeats_for(5.0) > steady.repeats_for(10.0) >= 6
    table = noise.describe(list(figures.values()))
    assert table[0].split()[:2] == ["figure", "median"] and any(line.startswith("steady_epoch_s") for line in table)


def test_calibrate_saves_what_compare_then_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch):
    made = timed_runs(10, seed=2, sd=0.02)
    monkeypatch.setattr(noise, "repeat", lambda spec, n, timeout, results, say: made[:n])
    monkeypatch.setattr("suite.core.data.load", lambda *a, **k: None)
    calibration = tmp_path / "noise.json"
    code = main(["noise", "--runs", "10", "--results", str(tmp_path / "runs"), "--save", "--calibration",
                 str(calibration)])
    out = capsys.readouterr().out
    assert code == 0 and "noise over 10 undisturbed ok runs (0 left out):" in out and f"saved to {calibration}" in out
    stored = load_calibrations(calibration)
    # The 8 figures judged against noise, peak RSS among them.
    assert len(stored) == 8 and all(c.runs == 10 and c.case_key == made[0].case_key for c in stored.values())
    # One run a side, 30 % slower: REGRESSED by the calibration's noise.
    base = write_all(made[:1], tmp_path / "base")
    new = write_all([made[1].model_copy(update={"steady_epoch_s": made[0].steady_epoch_s * 1.3})], tmp_path / "new")
    assert main(["compare", str(base), str(new), "--metric", "steady_epoch_s", "--calibration", str(calibration)]) == 1
    assert "noise of calibration (10 runs," in capsys.readouterr().out


def test_calibrate_with_only_disturbed_runs_says_so_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch):
    made = timed_runs(4, seed=3, disturbed=4)
    monkeypatch.setattr(noise, "repeat", lambda spec, n, timeout, results, say: made)
    monkeypatch.setattr("suite.core.data.load", lambda *a, **k: None)
    assert main(["noise", "--runs", "4", "--results", str(tmp_path / "runs")]) == 1
    assert "only 0 undisturbed ok run(s): nothing to calibrate from (need 3)" in capsys.readouterr().out


def test_goal_on_a_fake_pool_with_a_planted_slowdown_meets_both_goals(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]):
    pool = tmp_path / "pool"
    write_all(timed_runs(20, seed=4), pool / "a")
    write_all(timed_runs(12, seed=5, slower=True), pool / "b")
    code = main(["noise", "--goal", "--pool", str(pool)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pool: 20 A runs, 12 B runs (+10% planted per step); 0 DISTURBED" in out
    aa = next(line for line in out.splitlines() if line.startswith("A/A false alarms:"))
    ab = next(line for line in out.splitlines() if line.startswith("A/B detected:"))
    assert "(meets goal <= 2%)" in aa and "(meets goal >= 90%)" in ab and "6 runs a side" in out


def test_goal_sizes_its_repeats_by_the_plain_runs_noise_and_says_when_the_pool_is_too_small():
    metrics = noise.gated_timing_metrics()
    quiet = gate_goal.Pool(timed_runs(20, seed=10, sd=0.02), timed_runs(12, seed=11, slower=True))
    repeats, why = gate_goal.repeats_for_goal(quiet, metrics)
    assert repeats == 6 and why.startswith("the 20 undisturbed A runs' steady-epoch noise (")  # the rank floor decides
    noisy = gate_goal.Pool(timed_runs(20, seed=12, sd=0.10), timed_runs(12, seed=13, slower=True))
    repeats, why = gate_goal.repeats_for_goal(noisy, metrics)
    needed = int(why.split(" needs ", 1)[1].split()[0])
    assert needed > 10 and repeats == 10 and why.endswith("this pool allows 10 (A/A takes 2 x 10 A runs): judged at 10")


def test_goal_misses_when_nothing_was_planted(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pool = tmp_path / "pool"
    write_all(timed_runs(20, seed=6), pool / "a")
    write_all(timed_runs(12, seed=7), pool / "b")  # B is A again: a gate "detecting" it would be raising false alarms
    assert main(["noise", "--goal", "--pool", str(pool)]) == 1
    assert "(misses goal >= 90%)" in capsys.readouterr().out


def test_draws_are_seeded_disjoint_within_a_comparison_and_counted():
    pool = gate_goal.Pool(timed_runs(12, seed=8), timed_runs(6, seed=9, slower=True))
    seen: list[tuple[set[str], set[str]]] = []

    def gate(base: list[RunRecord], new: list[RunRecord]) -> tuple[int, list[str]]:
        seen.append(({r.run_id for r in base}, {r.run_id for r in new}))
        return (1, ["steady_epoch_s"]) if new[0] in pool.planted else (3, [])

    rates = gate_goal.gate_rates(pool, gate, repeats=6, draws=5, seed=1)
    assert len(seen) == 10 and all(len(b) == 6 and len(n) == 6 and not b & n for b, n in seen)
    assert rates.aa == [3] * 5 and rates.ab == [1] * 5 and rates.detection_rate == 1.0 and rates.false_alarm_rate == 0.0
    assert rates.ab_flagged == {"steady_epoch_s": 5} and rates.met
    again = gate_goal.gate_rates(pool, lambda b, n: (0, []), repeats=6, draws=5, seed=1)
    assert again.aa == [0] * 5  # the same seed draws the same runs
    with pytest.raises(ValueError, match="A/A needs 14 A runs"):
        gate_goal.gate_rates(pool, gate, repeats=7, draws=1)


@pytest.mark.parametrize("args,needle", [
    (["--runs", "2"], "--runs 2 is out of range; valid: 3..10000"),
    (["--epochs", "2"], "--epochs 2: use >= 3"),
    (["--goal", "--pool", "/nonexistent"], "--pool /nonexistent has no a/ folder"),
])
def test_bad_noise_flags_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], needle: str):
    assert main(["noise", *args]) == 2
    assert needle in capsys.readouterr().err
