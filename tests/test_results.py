"""The results store: atomic round trip, unique names, corrupt and foreign files named and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suite.core.spec import RunSpec
from suite.measure.machine import fingerprint
from suite.record.schema import RecordError, RunRecord
from suite.record.store import ensure_writable, read_record, read_store, write_record


def make_record(**overrides) -> RunRecord:
    spec = RunSpec(framework="torch", model="dense")
    fields = dict(case_id=spec.id, case_key=spec.case_key, machine=fingerprint(), spec=spec.to_dict(), status="ok",
                  test_accuracy=0.875, history=[{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8, "train_s": 1.5}])
    return RunRecord(**{**fields, **overrides})


def test_round_trip_preserves_every_field(tmp_path: Path):
    record = make_record()
    path = write_record(record, tmp_path)
    loaded = read_record(path)
    assert loaded == record
    assert loaded.run_spec == RunSpec(framework="torch", model="dense")
    assert not list(tmp_path.glob(".*.tmp")), "the temp file must be renamed away"


def test_two_records_of_one_case_never_clash(tmp_path: Path):
    a, b = write_record(make_record(), tmp_path), write_record(make_record(), tmp_path)
    assert a != b
    assert a.name.endswith(".json") and fingerprint().hostname[:5] in a.name


@pytest.mark.parametrize("content,reason", [
    ("", "empty file"),
    ('{"case_id": "x", "schema_v', "not JSON"),
    ('{"some": "other tool"}', "foreign JSON"),
    ('[1, 2]', "foreign JSON"),
    ('{"case_id": "x", "schema_version": 99}', "schema_version 99 was written by a newer fashionbench (this one reads 1); "
                                               "upgrade fashionbench"),
    ('{"case_id": "x", "schema_version": 0}', "schema_version 0 is not 1; re-run the case"),
    ('{"case_id": "x", "schema_version": 1}', "invalid record"),
])
def test_bad_files_are_named_and_skipped(tmp_path: Path, content: str, reason: str):
    good = write_record(make_record(), tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    records, problems = read_store([tmp_path])
    assert [r.run_id for r in records] == [read_record(good).run_id]
    assert len(problems) == 1 and str(bad) in problems[0] and reason in problems[0]
    with pytest.raises(RecordError):
        read_record(bad)


def test_unwritable_results_dir_is_one_clear_line(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordError) as err:
        ensure_writable(blocker / "results")
    assert "pass --results DIR" in str(err.value) and "\n" not in str(err.value)


def test_to_row_flattens_figures():
    record = make_record(inference=[{"batch_size": 32, "calls": 10, "samples_per_s": 100.0, "latency_ms_p50": 1.0,
                                     "latency_ms_p95": 2.0, "latency_ms_p99": 3.0}], time_to_accuracy_s={"0.85": None})
    row = record.to_row()
    assert row["infer_bs32_samples_per_s"] == 100.0
    assert row["tta_0.85_s"] is None
    assert row["framework"] == "torch" and row["test_accuracy"] == 0.875
    json.dumps(row)
