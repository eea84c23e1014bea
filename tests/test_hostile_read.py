"""Issue 21, hostile files and folders on the READ side: a gate that passed a case which timed out beside an ok run,
negative and absurd figures, files that break the JSON/YAML parsers (a 5,000-digit integer, 100,000-deep nesting), odd
asv and pytest-benchmark entries, a folder given twice, a folder name that is not UTF-8. docs/reliability.md, section
"Issue 21: hostile files and folders", tabulates what they prove."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from suite.measure import probe
from suite.record.schema import RunRecord
from suite.record.store import read_store, write_record
from suite.report import page
from tests.conftest import needs_data, run_cli
from tests.test_hostile import SKIPPED_PLAN, cli, one_line
from tests.test_report import STORE_A, fixture_records, setup_of, with_figures, write_pytest_benchmark

MAX_DEPTH = 64  # suite.record.safe_load.MAX_DEPTH, spelled out so these tests import (and fail) on a tree without it
BIG_INT = '{"schema_version": ' + "9" * 5000 + "}"
DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE = {"bigint": (BIG_INT, "holds a 5,000-digit integer (at most 100 digits are read)"),
           "deep": (DEEP, f"nested deeper than {MAX_DEPTH} levels"),
           # Deep enough to need a walk after the parse (the C parser takes it), shallow enough not to hit its guard.
           "deep-500": ("[" * 500 + "]" * 500, f"nested deeper than {MAX_DEPTH} levels"),
           "surrogate": ('{"case_id": "\\ud800"}', "holds a string that is not Unicode text ('\\ud800')")}


def _store_with(tmp_path: Path, name: str, text: str) -> Path:
    """The fixture store plus one file `hostile.json` holding `text`."""
    store = tmp_path / name
    shutil.copytree(STORE_A, store)
    (store / "hostile.json").write_text(text)
    return store


def _one_case_runs(record: RunRecord, *statuses: str) -> list[RunRecord]:
    """Copies of one run with other statuses (each its own run id), as a retry or a repeat would store them."""
    return [with_figures(record, status=s, error="it broke", test_accuracy=None, train_steady_samples_per_s=None)
            for s in statuses]


# ------------------------------------------------------------------ 1. NEW holds an ok and a timeout run of one case


def _keras_cnn() -> list[RunRecord]:
    return [r for r in fixture_records() if setup_of(r) == "keras/cnn/cpu"]


def test_gate_fails_when_new_has_a_timeout_beside_ok_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    ok = _keras_cnn()
    (timeout,) = _one_case_runs(ok[0], "timeout")
    new = tmp_path / "new"
    shutil.copytree(STORE_A, new)
    write_record(timeout, new)
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(new), "--metric", "test_accuracy")
    runs = "; ".join(f"run {r.run_id[:8]} ok" for r in sorted(ok, key=lambda r: r.run_id))
    assert code == 1
    assert (f"FAILED keras/cnn/cpu: ok in BASE, timeout in 1 of 3 NEW runs ({runs}; run {timeout.run_id[:8]} timeout)"
            in out)
    assert out.rstrip().endswith("1 case(s) stopped working or lost a figure")


def test_gate_is_inconclusive_when_both_sides_time_out_now_and_then(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]):
    ok = _keras_cnn()
    sides = []
    for side in ("base", "new"):
        folder = tmp_path / side
        shutil.copytree(STORE_A, folder)
        write_record(_one_case_runs(ok[0], "timeout")[0], folder)
        sides.append(folder)
    code, out, _ = cli(capsys, "compare", *map(str, sides), "--metric", "test_accuracy")
    assert code == 3
    line = next(line for line in out.splitlines() if line.startswith("INCONCLUSIVE keras/cnn/cpu: "))
    assert "timeout in 1 of 3 NEW runs (" in line and ", and timeout in 1 of 3 BASE runs (" in line
    assert line.endswith("it fails now and then on both sides; more --repeats tell whether NEW fails more often")
    assert out.rstrip().endswith("0 case(s) stopped working or lost a figure")


# ------------------------------------------------------------------ 2. negative and absurd figures


def _set_inference(data: dict[str, Any], value: float) -> None:
    data["inference"][0]["samples_per_s"] = value


FIGURES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "first-epoch": (lambda d: d.update(first_epoch_s=-100), "first_epoch_s is -100, must be >= 0"),
    "wall": (lambda d: d.update(wall_s=-0.5), "wall_s is -0.5, must be >= 0"),
    "samples-per-s": (lambda d: d.update(train_steady_samples_per_s=-1234.5),
                      "train_steady_samples_per_s is -1234.5, must be >= 0"),
    "bytes": (lambda d: d.update(host_rss_peak_bytes=-1), "host_rss_peak_bytes is -1, must be >= 0"),
    "inference": (lambda d: _set_inference(d, -3.0), "inference.0.samples_per_s is -3, must be >= 0"),
    "absurd-bytes": (lambda d: d.update(host_rss_peak_bytes=10**30),
                     "host_rss_peak_bytes is 1e+30, beyond any measurement (at most 2**63)"),
    "absurd-count": (lambda d: d.update(train_samples=2**63), "train_samples is 9.22e+18, beyond any measurement "
                                                              "(at most 2**63)"),
}


def _edited(tmp_path: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """The fixture store with one keras/cnn/cpu run edited in place."""
    store = tmp_path / "edited"
    shutil.copytree(STORE_A, store)
    victim = next(p for p in sorted(store.glob("*.json")) if "keras-cnn-cpu" in p.name)
    data = json.loads(victim.read_text())
    edit(data)
    victim.write_text(json.dumps(data))
    return victim


@pytest.mark.parametrize("name", list(FIGURES))
def test_negative_or_absurd_figure_is_refused_on_read(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str):
    edit, reason = FIGURES[name]
    victim = _edited(tmp_path, name, edit)
    store = victim.parent
    code, out, err = cli(capsys, "show", "--results", str(store))
    assert code == 0 and "keras" in out and one_line(err) == f"skipped {victim}: invalid record ({reason})"
    code, out, _ = cli(capsys, "doctor", "--results", str(store))
    assert code == 1 and f"FAIL corrupt: {victim}: invalid record ({reason})" in out
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(store))
    assert code == 1 and f"FAILED NEW file skipped: {victim}: invalid record ({reason})" in out


def test_report_skips_every_negative_or_absurd_figure_by_name(tmp_path: Path):
    store = tmp_path / "odd"
    shutil.copytree(STORE_A, store)
    good = json.loads(next(p for p in sorted(STORE_A.glob("*.json")) if "keras-cnn-cpu" in p.name).read_text())
    for name, (edit, _) in FIGURES.items():
        data = json.loads(json.dumps(good))
        edit(data)
        data["run_id"] = f"{name}-run"
        (store / f"odd-{name}.json").write_text(json.dumps(data))
    _, problems = page.build_report(page.ReportInputs(results=[store], out=tmp_path / "report"))
    assert sorted(problems) == sorted(f"{store / f'odd-{name}.json'}: invalid record ({reason})"
                                      for name, (_, reason) in FIGURES.items())


def test_compare_against_a_folder_of_only_a_negative_figure_names_it(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]):
    victim = _edited(tmp_path, "first-epoch", FIGURES["first-epoch"][0])
    for other in victim.parent.glob("*.json"):
        if other != victim:
            other.unlink()
    code, _, err = cli(capsys, "compare", str(STORE_A), str(victim.parent))
    assert code == 2 and one_line(err) == (
        f"fashionbench: error: NEW {victim.parent} holds no valid records (1 file(s) skipped: {victim}: invalid record "
        f"({FIGURES['first-epoch'][1]})); pass a results dir written by `fashionbench run`")


def test_negative_warm_up_is_a_caveat_not_a_corrupt_record(tmp_path: Path):
    victim = _edited(tmp_path, "warm-up", lambda d: d.update(warmup_s=-0.4))
    records, problems = read_store([victim.parent])
    assert not problems and len(records) == len(fixture_records())
    assert "negative warm-up" in next(r for r in records if r.warmup_s is not None).caveats


# ------------------------------------------------------------------ 3. files that break the parsers


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_json_is_skipped_by_name_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str):
    text, reason = HOSTILE[kind]
    store = _store_with(tmp_path, kind, text)
    line = f"{store / 'hostile.json'}: {reason}"
    code, out, err = cli(capsys, "show", "--results", str(store))
    assert code == 0 and "keras" in out and one_line(err) == f"skipped {line}"
    code, out, _ = cli(capsys, "doctor", "--results", str(store))
    assert code == 1 and f"FAIL corrupt: {line}" in out and f"{len(fixture_records())} readable record(s)" in out
    code, out, err = cli(capsys, "compare", str(STORE_A), str(store), "--metric", "test_accuracy")
    assert code == 1 and f"FAILED NEW file skipped: {line}" in out and one_line(err) == f"skipped {line}"


def test_report_skips_every_hostile_json_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    store = tmp_path / "store"
    shutil.copytree(STORE_A, store)
    for kind, (text, _) in HOSTILE.items():
        (store / f"{kind}.json").write_text(text)
    code, out, err = cli(capsys, "report", "--results", str(store), "--out", str(tmp_path / "report"))
    assert code == 0 and out.startswith("report: ") and "Traceback" not in err
    assert sorted(err.splitlines()) == sorted(f"skipped {store / f'{kind}.json'}: {reason}"
                                              for kind, (_, reason) in HOSTILE.items())


@needs_data
def test_resume_names_a_hostile_file_and_keeps_it(tmp_path: Path):
    results = tmp_path / "r"
    assert run_cli(*SKIPPED_PLAN, "--results", str(results), cache=tmp_path).returncode == 0
    for kind in ("bigint", "deep"):
        (results / f"{kind}.json").write_text(HOSTILE[kind][0])
    again = run_cli(*SKIPPED_PLAN, "--results", str(results), "--resume", cache=tmp_path)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    for kind in ("bigint", "deep"):
        assert f"skipped {results / f'{kind}.json'}: {HOSTILE[kind][1]}" in again.stderr.splitlines()
    assert "--resume: 6 case(s) already finished were not run again" in again.stdout
    assert (results / "deep.json").read_text() == DEEP, "the file is left as it was"


PRICES = {"deep": (DEEP, f"nested deeper than {MAX_DEPTH} levels"),
          "bigint": ("vm: " + "9" * 5000, "holds a 5,000-digit integer (at most 100 digits are read)"),
          "400-digits": ("vm: " + "9" * 400, "holds a 400-digit integer (at most 100 digits are read)")}


@pytest.mark.parametrize("kind", list(PRICES))
def test_hostile_prices_yaml_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str):
    text, reason = PRICES[kind]
    prices = tmp_path / "prices.yaml"
    prices.write_text(text)
    code, _, err = cli(capsys, "report", "--results", str(STORE_A), "--prices", str(prices), "--out", str(tmp_path / "r"))
    assert code == 2 and one_line(err).startswith(f"fashionbench: error: {prices}: {reason}; expected `KEY: USD_PER_HOUR`")
    assert not (tmp_path / "r").exists(), "refused before anything was written"


PLANS = {"deep": ("a = " + DEEP, f"nested deeper than {MAX_DEPTH} levels"),
         "bigint": ("epochs = " + "9" * 5000, "holds an integer of more than 4,300 digits (at most 100 digits are read)"),
         "400-digits": ("epochs = " + "9" * 400, "holds a 400-digit integer (at most 100 digits are read)")}


@pytest.mark.parametrize("kind", list(PLANS))
def test_hostile_plan_file_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str):
    text, reason = PLANS[kind]
    plan = tmp_path / "plan.toml"
    plan.write_text(text)
    code, _, err = cli(capsys, "run", "--plan", str(plan), "--results", str(tmp_path / "r"))
    assert code == 2 and one_line(err) == f"fashionbench: error: plan {plan}: {reason}"


@pytest.mark.parametrize("kind", ["bigint", "deep"])
def test_hostile_probe_cache_is_named_once_and_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch, kind: str):
    monkeypatch.setenv("FASHIONBENCH_CACHE", str(tmp_path))
    (tmp_path / "peak_flops.json").write_text(HOSTILE[kind][0])
    assert probe.cached("m", "cpu", 2) is None and probe.cached("m", "cpu", 4) is None
    assert one_line(capsys.readouterr().err) == (
        f"fashionbench: warning: probe cache {tmp_path / 'peak_flops.json'} is unusable ({HOSTILE[kind][1]}); the peak "
        "is measured again and the cache replaced")
    probe.store("m", "cpu", 2, {"probe_version": probe.PROBE_VERSION, "flops_per_s": {"fp32": 1e11}})
    assert probe.cached("m", "cpu", 2) == {"probe_version": probe.PROBE_VERSION, "flops_per_s": {"fp32": 1e11}}


def test_hostile_calibration_file_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    calibration = tmp_path / "noise.json"
    calibration.write_text(DEEP)
    code, _, err = cli(capsys, "compare", str(STORE_A), str(STORE_A), "--calibration", str(calibration))
    assert code == 2 and one_line(err) == (f"fashionbench: error: --calibration {calibration}: nested deeper than "
                                           f"{MAX_DEPTH} levels; pass one written by `fashionbench noise --save`")


def test_safe_load_keeps_what_a_reader_needs():
    from suite.record import safe_load
    from suite.record.safe_load import LoadProblem, parse_json, parse_yaml

    assert safe_load.MAX_DEPTH == MAX_DEPTH
    assert parse_json('{"a": [1, 2.5, NaN], "b": "h\\u00e9"}')["b"] == "hé"
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(nested) and parse_yaml("vm: 0.40\nbox/cpu: 1.1\n") == {"vm": 0.40, "box/cpu": 1.1}
    assert parse_json("-" + "9" * 100) == -(10**100 - 1)
    with pytest.raises(LoadProblem, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_json("[" + nested + "]")


# ------------------------------------------------------------------ 4. odd asv and pytest-benchmark entries


PYTEST_ENTRIES = {"inf-median": ({"median": float("inf")}, "stats.median is inf, not a time in seconds >= 0"),
                  "nan-iqr": ({"iqr": float("nan")}, "stats.iqr is nan, not a time in seconds >= 0"),
                  "negative-median": ({"median": -1.0}, "stats.median is -1.0, not a time in seconds >= 0"),
                  "rounds-2**63": ({"rounds": 2**63}, "stats.rounds is 9223372036854775808, not a count (0 to 2**63-1)"),
                  "iterations-2**63": ({"iterations": 2**63},
                                       "stats.iterations is 9223372036854775808, not a count (0 to 2**63-1)")}


def test_odd_pytest_benchmark_files_and_entries_are_skipped_by_name(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]):
    entries = write_pytest_benchmark(tmp_path / "bench.json", "abc", "2026-12-01T10:00:00", 0.01, {})
    data = json.loads(entries.read_text())
    good = data["benchmarks"][0]
    for kind, (stats, _) in PYTEST_ENTRIES.items():
        odd = json.loads(json.dumps(good))
        odd.update(name=f"test_{kind}", fullname=f"t.py::test_{kind}")
        odd["stats"].update(stats)
        data["benchmarks"].append(odd)
    entries.write_text(json.dumps(data))
    yesterday = write_pytest_benchmark(tmp_path / "yesterday.json", "abc", "yesterday", 0.01, {})
    hostile = {kind: tmp_path / f"{kind}.json" for kind in ("bigint", "deep")}
    for kind, path in hostile.items():
        path.write_text(HOSTILE[kind][0])
    code, _, err = cli(capsys, "report", "--results", str(STORE_A), "--pytest-benchmark", str(entries), str(yesterday),
                       *map(str, hostile.values()), "--out", str(tmp_path / "r"))
    expected = [f"skipped {entries}: benchmark t.py::test_{kind} ({reason})" for kind, (_, reason) in PYTEST_ENTRIES.items()]
    expected += [f"skipped {yesterday}: datetime 'yesterday' is not an ISO date and time"]
    expected += [f"skipped {path}: {HOSTILE[kind][1]}" for kind, path in hostile.items()]
    assert code == 0 and sorted(err.splitlines()) == sorted(expected)
    table = (tmp_path / "r" / "index.html").read_text(encoding="utf-8").split("pytest-benchmark (1 entries)")[1]
    assert "test_train_step[torch-dense]" in table and "test_inf" not in table


def _asv_file(root: Path, name: str, date: Any, value: Any = 0.9, started: Any = 1_700_000_060_000) -> Path:
    """One asv 0.6 result file (API v2 rows) with one track benchmark."""
    path = root / "vm" / f"{name}-existing-py.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["result", "params", "version", "started_at", "duration"]
    data = {"commit_hash": name * 5, "date": date, "env_name": "existing-py", "params": {"machine": "vm"},
            "python": "3.11", "requirements": {}, "result_columns": columns, "version": 2,
            "results": {"benchmarks.Accuracy.track_test_accuracy": [[value], [], "1", started, 1.0]}}
    path.write_text(json.dumps(data))
    return path


ASV_FILES = {"date-yesterday": ({"date": "yesterday"}, "date 'yesterday' is not a time in ms since 1970"),
             "date-negative": ({"date": -5}, "date -5 is not a time in ms since 1970"),
             "date-1e20": ({"date": 10**20}, "date 100000000000000000000 is not a time in ms since 1970"),
             "date-inf": ({"date": float("inf")}, "date inf is not a time in ms since 1970")}
ASV_ROWS = {"value-inf": ({"value": float("inf")}, "a result is infinite"),
            "started-2**63": ({"started": 2**63}, "started_at 9223372036854775808 is not a time in ms since 1970")}


def test_odd_and_hostile_asv_results_are_skipped_by_name(tmp_path: Path):
    asv = tmp_path / "asv"
    _asv_file(asv, "a", 1_700_000_000_000)
    expected = []
    for i, (kind, (fields, reason)) in enumerate({**ASV_FILES, **ASV_ROWS}.items()):
        bad = _asv_file(asv, "bcdefghijk"[i], **{"date": 1_700_000_100_000, **fields})
        expected.append(f"{bad}: {reason}" if kind in ASV_FILES else
                        f"{bad}: benchmark benchmarks.Accuracy.track_test_accuracy ({reason})")
    for kind in ("bigint", "deep"):
        (asv / "vm" / f"{kind}-existing-py.json").write_text(HOSTILE[kind][0])
        expected.append(f"{asv / 'vm' / f'{kind}-existing-py.json'}: {HOSTILE[kind][1]}")
    _, problems = page.build_report(page.ReportInputs(results=[STORE_A], out=tmp_path / "r", asv_results=asv))
    assert sorted(problems) == sorted(expected)
    commits = (tmp_path / "r" / "index.html").read_text(encoding="utf-8").split('class="asv-commits"')[1].split("</table>")[0]
    assert commits.count("<code>") == 1 and f"<code>{'a' * 5}</code>" in commits, "the good commit alone is shown"


# ------------------------------------------------------------------ 5. the same folder twice


def test_the_same_folder_given_twice_counts_each_run_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    store = tmp_path / "r"
    shutil.copytree(STORE_A, store)
    (tmp_path / "link").symlink_to(store)
    (store / "sub").mkdir()
    shutil.copy(next(store.glob("*.json")), store / "sub" / "copy.json")  # an identical copy: the same run
    runs = len(fixture_records())
    for results in ([store, store], [store, Path(f"{store}/")], [store, tmp_path / "link"], [store / "sub", store]):
        records, problems = read_store(results)
        assert len(records) == runs and not problems, results
    code, out, _ = cli(capsys, "show", "--all", "--format", "csv", "--results", str(store), str(store), str(tmp_path / "link"))
    assert code == 0 and len(out.strip().splitlines()) == 1 + runs


def test_a_copy_of_a_run_with_other_figures_is_named_and_the_first_kept(tmp_path: Path):
    store = tmp_path / "r"
    shutil.copytree(STORE_A, store)
    first = sorted(store.glob("*.json"))[0]
    data = json.loads(first.read_text())
    data["test_accuracy"] = 0.5
    (store / "zz-edited.json").write_text(json.dumps(data))
    records, problems = read_store([store])
    assert len(records) == len(fixture_records())
    assert problems == [f"{store / 'zz-edited.json'}: run {data['run_id'][:8]} again, with other contents than {first}; "
                        f"kept {first}"]


# ------------------------------------------------------------------ 6. a folder name that is not UTF-8


def test_results_folder_named_with_non_utf8_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/nb-\xff"))
    shutil.copytree(STORE_A, folder)
    (folder / "broken.json").write_text("{")
    shown = run_cli("show", "--results", str(folder), timeout_s=300)  # a real terminal's encoder, not pytest's capture
    assert shown.returncode == 0 and one_line(shown.stderr).startswith(f"skipped {tmp_path}/nb-?/broken.json: not JSON")
    for args, expected in ((["doctor", "--results", str(folder)], 1),
                           (["compare", str(folder), str(folder), "--metric", "test_accuracy"], 1),
                           (["report", "--results", str(folder), "--out", str(folder / "report")], 0)):
        code, _, err = cli(capsys, *args)
        assert code == expected and "Traceback" not in err, (args, err)
    html = (folder / "report" / "index.html").read_text(encoding="utf-8")
    assert f"{tmp_path}/nb-\ufffd/broken.json: not JSON" in html and f"<code>{tmp_path}/nb-\ufffd</code>" in html
