"""`fashionbench compare`: matching, medians, noise, direction, thresholds, missing cases and exit codes 0 / 1 / 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from suite.cli import main
from suite.record.metrics import METRIC_BY_KEY
from suite.record.stats import summarize
from suite.report.compare import REGRESSED, Thresholds, compare, parse_thresholds, select_metrics, verdict
from tests.test_report import BOX2, STORE_A, fixture_records, setup_of, with_figures, with_machine, write_all


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
    assert code == 0
    assert "0 regression(s)" in out
    records = fixture_records()
    row = next(r for r in table_rows(out) if r[0] == "torch/dense/cpu" and r[1] == "test_accuracy")
    median = np.median([r.test_accuracy for r in records if setup_of(r) == "torch/dense/cpu"])
    assert row[2].startswith(f"{median:.4f}") and row[4] == "+0.0%" and row[-1] == "ok"


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
    records = [r for r in fixture_records() if setup_of(r) == "torch/binary/cpu"]
    slower = write_all([with_figures(r, first_epoch_s=r.first_epoch_s * 2) for r in records], tmp_path / "slower")
    faster = write_all([with_figures(r, first_epoch_s=r.first_epoch_s / 2) for r in records], tmp_path / "faster")
    base = write_all(records, tmp_path / "base")
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


def test_noise_is_judged_by_iqr_overlap():
    records = [r for r in fixture_records() if setup_of(r) == "torch/dense/cpu"]
    assert len(records) == 2
    metric = select_metrics(["train_samples_per_s"])
    values = sorted(r.train_steady_samples_per_s for r in records)
    # Shift one run so the median moves by more than 5% but the two IQRs still overlap.
    shifted = [with_figures(r, train_steady_samples_per_s=values[0] * 0.8 if r.train_steady_samples_per_s == values[0]
                            else r.train_steady_samples_per_s) for r in records]
    (row,) = compare(records, shifted, metric, Thresholds()).rows
    base, new = summarize(values), summarize(r.train_steady_samples_per_s for r in shifted)
    overlap = not (base.q3 < new.q1 or new.q3 < base.q1)
    assert row.change_pct == pytest.approx(100 * (new.median - base.median) / base.median)
    assert row.noise is (not overlap)
    assert row.change_pct < -5 and overlap, "the fixture's two torch/dense runs must spread enough for this test"
    assert row.verdict == "worse, within noise"


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
    code, out, _ = run(capsys, str(store), str(store))
    assert code == 0
    assert "no ok run on either side (1): torch/binary/cpu (BASE: skipped; NEW: skipped)" in out
    assert "only in" not in out


def test_other_machine_falls_back_to_case_key_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    new = write_all([with_machine(r, **BOX2) for r in fixture_records()], tmp_path / "box2")
    code, out, _ = run(capsys, str(STORE_A), str(new))
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
    code, out, err = run(capsys, str(tmp_path / "a"), str(STORE_A))
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
