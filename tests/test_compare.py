"""`fashionbench compare`: matching, medians, noise, direction, thresholds, missing cases and exit codes 0 / 1 / 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from suite.cli import main
from suite.record.metrics import METRIC_BY_KEY
from suite.record.noise import GATE_ALPHA, Calibration, holm, rank_floor, repeats_needed, save_calibrations
from suite.record.schema import RunRecord
from suite.report.compare import (
    EXIT_INCONCLUSIVE,
    INCONCLUSIVE,
    REGRESSED,
    Thresholds,
    compare,
    parse_thresholds,
    select_metrics,
    verdict,
)
from tests.test_report import BOX2, STORE_A, fixture_records, setup_of, with_figures, with_machine, write_all


def runs(count: int, seed: int = 0, sd: float = 0.02, disturbed: int = 0, **medians: float) -> list[RunRecord]:
    """`count` runs of the fixture's torch/cnn case whose figures spread like real timings: each run's `medians` times
    exp(N(0, sd)); the first `disturbed` runs carry contention past the DISTURBED limit."""
    from tests.test_disturbance import contention

    template = next(r for r in fixture_records() if setup_of(r) == "torch/cnn/cpu")
    rng = np.random.default_rng(seed)
    made = []
    for i in range(count):
        figures = {name: value * float(np.exp(rng.normal(0.0, sd))) for name, value in medians.items()}
        busy = {"contention_train": contention(1.0)} if i < disturbed else {}
        made.append(with_figures(template, spec={**template.spec, "seed": 100 + i}, **figures, **busy))
    return made


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `fashionbench compare ARGS`."""
    code = main(["compare", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_rows(out: str) -> list[list[str]]:
    """Rows of the printed table split on its column gaps."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("case "))
    return [[c.strip() for c in line.split("  ") if c.strip()] for line in lines[start + 2:]
            if line and not line.startswith(("only in", "0 regression", "1 regression", "2 regression", "note:", "FAILED"))
            and "regression(s)" not in line and "stopped working" not in line]


def test_same_store_is_not_a_regression(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, str(STORE_A), str(STORE_A))
    # Two runs a side cannot show a 5 % change in a timing figure at 1 %: inconclusive (3), never a regression (1).
    assert code == EXIT_INCONCLUSIVE
    assert "0 regression(s)" in out
    records = fixture_records()
    rows = table_rows(out)
    row = next(r for r in rows if r[0] == "torch/dense/cpu" and r[1] == "test_accuracy")
    median = np.median([r.test_accuracy for r in records if setup_of(r) == "torch/dense/cpu"])
    assert row[2].startswith(f"{median:.4f}") and row[4] == "+0.0%" and row[-1] == "ok"
    speed = next(r for r in rows if r[0] == "torch/dense/cpu" and r[1] == "train_samples_per_s")
    assert speed[5] == "Mann–Whitney 2+2: p(worse)=0.67, sees no change at these repeats" and speed[-1] == INCONCLUSIVE


def test_accuracy_drop_beyond_threshold_and_noise_fails_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    records = fixture_records()
    new = write_all([with_figures(r, test_accuracy=r.test_accuracy * 0.9) if setup_of(r) == "keras/cnn/cpu" else r
                     for r in records], tmp_path / "new")
    code, out, _ = run(capsys, str(STORE_A), str(new), "--metric", "test_accuracy")
    assert code == 1
    rows = {r[0]: r for r in table_rows(out)}
    assert rows["keras/cnn/cpu"][-1] == REGRESSED and rows["keras/cnn/cpu"][4] == "-10.0%"
    assert all(r[-1] == "ok" for name, r in rows.items() if name != "keras/cnn/cpu")
    assert "1 regression(s)" in out and "keras/cnn/cpu test_accuracy -10.0%" in out
    # A looser threshold for this one metric lets it pass.
    code, out, _ = run(capsys, str(STORE_A), str(new), "--metric", "test_accuracy", "--threshold", "5%",
                       "test_accuracy=12%")
    assert code == 0 and "0 regression(s)" in out


def test_direction_lower_is_better_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    base = write_all(runs(6, first_epoch_s=2.0), tmp_path / "base")
    slower = write_all(runs(6, first_epoch_s=4.0, seed=1), tmp_path / "slower")
    faster = write_all(runs(6, first_epoch_s=1.0, seed=2), tmp_path / "faster")
    code, out, _ = run(capsys, str(base), str(slower), "--metric", "first_epoch_s")
    assert code == 1 and table_rows(out)[0][-1] == REGRESSED
    code, out, _ = run(capsys, str(base), str(faster), "--metric", "first_epoch_s")
    assert code == 0 and table_rows(out)[0][-1] == "improved"


def test_verdict_rules():
    acc, latency = METRIC_BY_KEY["test_accuracy"], METRIC_BY_KEY["latency_p50_ms"]
    assert verdict(acc, -10.0, None, 5.0) == REGRESSED  # no repeats: the threshold alone decides
    assert verdict(acc, -10.0, True, 5.0) == REGRESSED
    assert verdict(acc, -10.0, False, 5.0) == "worse, within noise"  # IQRs overlap: not a gate failure
    assert verdict(acc, -4.0, True, 5.0) == "ok"
    assert verdict(latency, +10.0, None, 5.0) == REGRESSED and verdict(latency, -10.0, None, 5.0) == "improved"
    assert verdict(acc, None, None, 5.0) == "n/a"


def test_a_memory_peak_is_judged_against_its_noise_with_disturbed_runs_kept():
    # Peak RSS of one CPU CNN case took two levels, ~1,000 and ~1,080 MiB, over 20 identical runs on the VM
    # (2026-12-07): a random split of them can move the median 8 % with the IQRs apart, so a threshold alone would
    # raise an A/A false alarm. It is tested like a timing figure; disturbance does not move memory, so no run is
    # left out for it.
    mib = 2**20
    base = [with_figures(r, host_rss_peak_bytes=v * mib) for r, v in zip(runs(6, disturbed=2), (1000,) * 5 + (1080,))]
    new = [with_figures(r, host_rss_peak_bytes=v * mib) for r, v in zip(runs(6, seed=1), (1080,) * 5 + (1000,))]
    (row,) = compare(base, new, select_metrics(["rss_peak_mib"]), Thresholds()).rows
    assert row.change_pct == pytest.approx(8.0) and row.evidence is not None  # IQRs apart: a threshold would fail it
    assert row.verdict != REGRESSED and row.evidence_text.startswith("Mann–Whitney 6+6")  # none of the 6+6 left out
    grown = [with_figures(r, host_rss_peak_bytes=1300 * mib) for r in runs(6, seed=2)]
    (row,) = compare(base, grown, select_metrics(["rss_peak_mib"]), Thresholds()).rows
    assert row.verdict == REGRESSED  # a real growth past the threshold and the noise still fails


def test_figures_read_from_one_measurement_share_one_test():
    # Samples/s and MFU are fixed transforms of the steady epoch: 3 figures, 1 test. 6+6 runs with one pair out of
    # order give Mann–Whitney p = 2/924 = 0.0022: over 5 separate tests (Holm's first step 0.01/5 = 0.002) that would
    # not fail; over the 3 tests there are (0.0033) it does.
    epochs = [1.00, 1.01, 1.02, 1.03, 1.04, 1.205]  # 1.205 beats one NEW run (1.20): one pair out of order
    slower = [1.20, 1.21, 1.22, 1.23, 1.24, 1.26]
    base = [with_figures(r, steady_epoch_s=e) for r, e in zip(runs(6, first_epoch_s=2.0), epochs)]
    new = [with_figures(r, steady_epoch_s=e) for r, e in zip(runs(6, seed=1, first_epoch_s=2.0), slower)]
    base = [with_figures(r, train_steady_samples_per_s=3000 / r.steady_epoch_s, mfu_pct=30 / r.steady_epoch_s) for r in base]
    new = [with_figures(r, train_steady_samples_per_s=3000 / r.steady_epoch_s, mfu_pct=30 / r.steady_epoch_s) for r in new]
    metrics = select_metrics(["steady_epoch_s", "train_samples_per_s", "mfu_pct", "first_epoch_s", "latency_p50_ms"])
    result = compare(base, new, metrics, Thresholds())
    assert result.tested == 3
    verdicts = {r.metric.key: r.verdict for r in result.rows}
    assert verdicts["steady_epoch_s"] == verdicts["train_samples_per_s"] == verdicts["mfu_pct"] == REGRESSED
    assert all(r.evidence.p_worse == pytest.approx(2 / 924) for r in result.rows if r.metric.test_key == "steady_epoch_s")


def test_missing_and_failed_cases_fail_the_gate_and_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    records = fixture_records()
    new = write_all([r for r in records if r.spec["model"] != "cnn" and setup_of(r) != "keras/binary/cpu"],
                    tmp_path / "new")
    failed = [with_figures(r, status="error", error="boom") for r in records if setup_of(r) == "keras/binary/cpu"]
    write_all(failed, tmp_path / "new")
    code, out, _ = run(capsys, str(STORE_A), str(new))
    assert code == 1
    assert "FAILED keras/binary/cpu: ok in BASE, error in NEW" in out
    assert "FAILED torch/cnn/cpu: ok in BASE, absent from NEW (pass --allow-missing" in out
    assert "3 case(s) stopped working or lost a figure" in out
    # Cases dropped on purpose pass with --allow-missing; the one that broke still fails the gate.
    code, out, _ = run(capsys, str(STORE_A), str(new), "--allow-missing")
    assert code == 1 and "1 case(s) stopped working" in out and "FAILED keras/binary/cpu" in out
    only_base = next(line for line in out.splitlines() if line.startswith("only in BASE"))
    assert "keras/cnn/cpu" in only_base and "torch/cnn/cpu" in only_base
    assert "keras/binary/cpu (other side: error)" in only_base
    assert not any(r[0].endswith("cnn/cpu") for r in table_rows(out))



def test_case_failed_on_both_sides_is_listed_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    records = [with_figures(r, status="skipped", error="no GPU") if setup_of(r) == "torch/binary/cpu" else r
               for r in fixture_records()]
    store = write_all(records, tmp_path / "store")
    code, out, _ = run(capsys, str(store), str(store), "--metric", "test_accuracy")
    assert code == 0
    assert "no ok run on either side (1): torch/binary/cpu (BASE: skipped; NEW: skipped)" in out
    assert "only in" not in out


def test_other_machine_falls_back_to_case_key_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    new = write_all([with_machine(r, **BOX2) for r in fixture_records()], tmp_path / "box2")
    code, out, _ = run(capsys, str(STORE_A), str(new), "--metric", "test_accuracy")
    assert code == 0
    assert out.startswith("note: BASE (vm (AMD EPYC, 2 cores)) and NEW (box-2 (Test CPU (box-2), 2 cores)) share no machine")
    assert {r[0] for r in table_rows(out)} == {setup_of(r) for r in fixture_records()}


def test_machines_are_matched_when_shared(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    both = tmp_path / "both"
    shutil.copytree(STORE_A, both / "vm")
    write_all([with_machine(r, **BOX2) for r in fixture_records() if r.spec["model"] == "dense"], both / "box-2")
    code, out, _ = run(capsys, str(both), str(STORE_A), "--metric", "test_accuracy", "--allow-missing")
    assert code == 0 and "note:" not in out
    only_base = next(line for line in out.splitlines() if line.startswith("only in BASE"))
    assert "torch/dense/cpu @box-2" in only_base and "keras/dense/cpu @box-2" in only_base


@pytest.mark.parametrize("args,needle", [
    (["/nonexistent/base", str(STORE_A)], "BASE /nonexistent/base does not exist"),
    ([str(STORE_A), "/nonexistent/new"], "NEW /nonexistent/new does not exist"),
    ([str(STORE_A), str(STORE_A), "--metric", "speed"], "--metric 'speed' is not known"),
    ([str(STORE_A), str(STORE_A), "--threshold", "lots"], "--threshold 'lots'"),
    ([str(STORE_A), str(STORE_A), "--threshold", "nope=5%"], "unknown metric 'nope'"),
])
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_no_shared_case_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    new = write_all([r for r in fixture_records() if r.spec["model"] == "binary"], tmp_path / "binary")
    base = write_all([r for r in fixture_records() if r.spec["model"] == "dense"], tmp_path / "dense")
    code, out, err = run(capsys, str(base), str(new))
    assert code == 2 and out == ""
    assert "share no case with ok runs (2 only in BASE, 2 only in NEW)" in err


def test_store_without_records_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "junk.json").write_text("[]")
    code, _, err = run(capsys, str(tmp_path / "empty"), str(STORE_A))
    assert code == 2 and "holds no valid records" in err


def test_corrupt_file_beside_records_is_named_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    shutil.copytree(STORE_A, tmp_path / "a")
    (tmp_path / "a" / "broken.json").write_text("{")
    code, out, err = run(capsys, str(tmp_path / "a"), str(STORE_A), "--metric", "test_accuracy")
    assert code == 0 and "broken.json" in err and "0 regression(s)" in out


def test_thresholds_parse():
    parsed = parse_thresholds(["3%", "test_accuracy=1%", "mfu_pct=10"])
    assert parsed.default_pct == 3.0 and parsed.per_metric == {"test_accuracy": 1.0, "mfu_pct": 10.0}
    assert parsed.pct(METRIC_BY_KEY["first_epoch_s"]) == 3.0


def test_help_lists_every_metric(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(key in text for key in METRIC_BY_KEY)


# ------------------------------------------------------------------ the gate's error rate (timing figures)


def test_back_to_back_single_runs_never_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # The case: one run a side of identical code, epoch 1 of NEW 19x slower (a busy machine), noise unknown.
    (base_run,) = runs(1, first_epoch_s=0.6)
    base = write_all([base_run], tmp_path / "base")
    new = write_all([with_figures(base_run, first_epoch_s=base_run.first_epoch_s * 19.388)], tmp_path / "new")
    code, out, _ = run(capsys, str(base), str(new))
    assert code == EXIT_INCONCLUSIVE, out
    row = next(r for r in table_rows(out) if r[1] == "first_epoch_s")
    assert row[4] == "+1838.8%" and row[-1] == INCONCLUSIVE
    assert row[5] == "noise unknown (1 run a side: --repeats, or `fashionbench noise --save`)"
    assert "0 regression(s)" in out and "inconclusive" in out.splitlines()[-2]


def test_repeats_detect_a_real_slowdown_with_mann_whitney(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    base = write_all(runs(6, steady_epoch_s=1.0), tmp_path / "base")
    slower = write_all(runs(6, seed=1, steady_epoch_s=1.1), tmp_path / "slower")
    same = write_all(runs(6, seed=2, steady_epoch_s=1.0), tmp_path / "same")
    code, out, _ = run(capsys, str(base), str(slower), "--metric", "steady_epoch_s")
    (row,) = table_rows(out)
    assert code == 1 and row[-1] == REGRESSED
    assert row[5].startswith("Mann–Whitney 6+6: p(worse)=0.0011, sees ≥") and "over the 1 test(s) of figures against their noise" in out
    code, out, _ = run(capsys, str(base), str(same), "--metric", "steady_epoch_s")
    (row,) = table_rows(out)
    assert code == 0 and row[-1] == "ok", out  # 2 % noise, 6 runs a side: a 5 % change would have been seen


def test_a_calibration_gives_one_run_a_side_its_detectable_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (base_run,) = runs(1, steady_epoch_s=1.0)
    machine, key = base_run.machine.machine_id, base_run.case_key
    calibration = save_calibrations([Calibration(machine, key, "steady_epoch_s", 0.02, 10, 2.0, 6.0,
                                                 "2026-12-06T10:00:00+00:00")], tmp_path / "noise.json")
    base = write_all([base_run], tmp_path / "base")
    for factor, expected, code_expected in ((1.30, REGRESSED, 1), (1.04, INCONCLUSIVE, 3)):
        new = write_all([with_figures(base_run, steady_epoch_s=factor)], tmp_path / f"new{factor}")
        code, out, _ = run(capsys, str(base), str(new), "--metric", "steady_epoch_s", "--calibration", str(calibration))
        (row,) = table_rows(out)
        assert code == code_expected and row[-1] == expected, out
        # t with 9 dof at 1 %: 2.821 x 0.02 x sqrt(2) -> exp(0.0798) - 1 = 8.3 %
        assert row[5].startswith("noise of calibration (10 runs, 2026-12-06): p(worse)=") and row[5].endswith("sees ≥8.3%")


def test_one_new_run_is_judged_by_the_noise_of_the_base_repeats(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    base = write_all(runs(8, steady_epoch_s=1.0, sd=0.01), tmp_path / "base")
    (one,) = runs(1, seed=3, steady_epoch_s=1.25, sd=0.0)
    new = write_all([one], tmp_path / "new")
    code, out, _ = run(capsys, str(base), str(new), "--metric", "steady_epoch_s")
    (row,) = table_rows(out)
    assert code == 1 and row[-1] == REGRESSED and row[5].startswith("noise of the 8 BASE runs: p(worse)=")


def test_disturbed_runs_are_left_out_and_a_side_of_only_disturbed_runs_is_inconclusive(tmp_path: Path,
                                                                                      capsys: pytest.CaptureFixture[str]):
    base = write_all(runs(7, steady_epoch_s=1.0, disturbed=1), tmp_path / "base")
    slower = write_all(runs(6, seed=1, steady_epoch_s=1.2), tmp_path / "slower")
    code, out, _ = run(capsys, str(base), str(slower), "--metric", "steady_epoch_s", "test_accuracy")
    row = next(r for r in table_rows(out) if r[1] == "steady_epoch_s")
    assert code == 1 and row[-1] == REGRESSED and "(n=6)" in row[2]
    assert row[5].startswith("1 DISTURBED BASE run(s) left out; Mann–Whitney 6+6")
    busy = write_all(runs(6, seed=1, steady_epoch_s=1.2, disturbed=6), tmp_path / "busy")
    code, out, _ = run(capsys, str(base), str(busy), "--metric", "steady_epoch_s", "test_accuracy")
    rows = {r[1]: r for r in table_rows(out)}
    assert code == EXIT_INCONCLUSIVE and rows["steady_epoch_s"][-1] == INCONCLUSIVE
    assert rows["steady_epoch_s"][5] == ("1 DISTURBED BASE run(s) left out; 6 DISTURBED NEW run(s) left out: "
                                         "nothing left to judge")
    assert rows["test_accuracy"][-1] == "ok"  # accuracy does not care how busy the machine was


def test_a_v_a_false_alarms_stay_under_the_stated_rate():
    """400 simulated A/A comparisons of 6 runs a side over 7 timing figures with independent 5 % noise (seeded): the
    share that would exit 1 stays under GATE_ALPHA, as Holm promises (a gate testing each figure at 1 % would raise
    about 7 %)."""
    metrics = select_metrics(["train_samples_per_s", "first_epoch_s", "steady_epoch_s", "infer_samples_per_s",
                              "latency_p50_ms", "step_time_p50_ms", "sync_free_step_ms"])
    figures = {"train_steady_samples_per_s": 5000.0, "first_epoch_s": 2.0, "steady_epoch_s": 1.0,
               "step_time_ms_p50": 20.0, "sync_free_step_ms": 19.0}
    template = runs(1)[0]
    rng = np.random.default_rng(7)
    alarms = 0
    for _ in range(400):
        sides = [[template.model_copy(update={k: v * float(np.exp(rng.normal(0, 0.05))) for k, v in figures.items()}
                                     | {"inference": [i.model_copy(update={
                                         "samples_per_s": i.samples_per_s * float(np.exp(rng.normal(0, 0.05))),
                                         "latency_ms_p50": i.latency_ms_p50 * float(np.exp(rng.normal(0, 0.05)))})
                                         for i in template.inference]})
                  for _ in range(6)] for _ in range(2)]
        alarms += bool(compare(sides[0], sides[1], metrics, Thresholds(default_pct=0.0)).regressions)
    assert alarms / 400 <= GATE_ALPHA, alarms


def test_holm_rejects_step_down():
    assert holm([0.001, 0.02, 0.004], 0.01) == [True, False, True]  # 0.001 <= 0.01/3, 0.004 <= 0.01/2, 0.02 > 0.01
    assert holm([0.004, 0.004, 0.004], 0.01) == [False, False, False]  # 0.004 > 0.01/3: nothing after the first stop
    assert holm([], 0.01) == []


def test_repeats_needed_and_the_rank_floor():
    assert rank_floor(2, 2) == pytest.approx(1 / 6) and rank_floor(6, 6) == pytest.approx(1 / 924)
    # 3 % noise, 10 %: 2 (2.326 + 1.282)^2 (0.03 / ln 1.1)^2 / 0.955 = 2.7 runs, but Mann-Whitney needs 5 to reach 1 %.
    assert repeats_needed(0.03, 10.0, 0.01) == 5
    # 10 % noise, 5 %: 2 x 13.02 x (0.1 / 0.04879)^2 / 0.955 = 114.5 -> 115.
    assert repeats_needed(0.10, 5.0, 0.01) == 115


@pytest.mark.parametrize("args,needle", [
    (["--alpha", "0"], "--alpha 0: use a false-alarm rate between 0 and 1"),
    (["--alpha", "nan"], "argument --alpha: nan is not a finite number"),
    (["--calibration", "/nonexistent/noise.json"], "--calibration /nonexistent/noise.json is not a file"),
])
def test_bad_gate_settings_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], needle: str):
    try:
        code, out, err = run(capsys, str(STORE_A), str(STORE_A), *args)
    except SystemExit as exc:  # argparse refuses a value its type rejects (nan) before main() runs
        code, (out, err) = exc.code, capsys.readouterr()
    assert code == 2 and out == "" and needle in err
