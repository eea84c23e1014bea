"""Machine-readable outputs: `show --format markdown|csv|json`, `compare --format markdown`, `report --open`."""

from __future__ import annotations

import io
import json
import webbrowser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.cli import main
from suite.record.machines import record_machine_labels
from suite.report.table import render, runs_table, summary_table
from tests.test_report import STORE_A, fixture_records, setup_of, with_figures, write_all


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `fashionbench ARGS`."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pipe_rows(markdown: str) -> list[list[str]]:
    """Cells of every pipe-table row after the header separator."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert set(lines[1].replace(" ", "")) <= set("|-:"), lines[1]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in [lines[0], *lines[2:]]]


def test_show_markdown_is_one_pipe_row_per_case_with_shared_facts_said_once(capsys: pytest.CaptureFixture[str]):
    code, out, _ = cli(capsys, "show", "--results", str(STORE_A), "--format", "markdown")
    assert code == 0
    (machine,) = record_machine_labels(fixture_records()).values()
    assert out.startswith(f"every row: machine {machine} · device cpu"), out[:200]
    header, *rows = pipe_rows(out)
    assert header[:2] == ["framework", "model"] and "test_accuracy" in header and "machine" not in header
    assert "mfu_peak" not in header and out.count("MFU against peak") == 1, "the probe note is said once, under the table"
    cases = {r.case_key for r in fixture_records()}
    assert len(rows) == len(cases) and all(len(row) == len(header) for row in rows)


def test_show_csv_and_json_carry_medians_as_numbers(capsys: pytest.CaptureFixture[str]):
    records = fixture_records()
    torch_dense = [r.test_accuracy for r in records if setup_of(r) == "torch/dense/cpu"]
    _, out, _ = cli(capsys, "show", "--results", str(STORE_A), "--format", "csv")
    table = pd.read_csv(io.StringIO(out))
    row = table[(table.framework == "torch") & (table.model == "dense") & (table.device == "cpu")].iloc[0]
    assert row["test_accuracy"] == pytest.approx(np.median(torch_dense))
    _, out, _ = cli(capsys, "show", "--results", str(STORE_A), "--format", "json")
    items = json.loads(out)
    assert len(items) == len(table)
    assert all(isinstance(item["test_accuracy"], float) for item in items if item["status"] == "ok")


def test_show_all_json_is_one_item_per_run(capsys: pytest.CaptureFixture[str]):
    _, out, _ = cli(capsys, "show", "--results", str(STORE_A), "--all", "--format", "json")
    assert len(json.loads(out)) == len(fixture_records())


# The columns of CSV/JSON that name a case or a run; every other one is a figure.
WORDS = {"machine", "framework", "model", "device", "variant", "status", "launch", "created_utc", "error", "flags"}


@pytest.mark.parametrize("rows", [[], ["--all"]], ids=["cases", "runs"])
def test_json_and_csv_carry_numbers_or_null_only(capsys: pytest.CaptureFixture[str], rows: list[str]):
    _, out, _ = cli(capsys, "show", "--results", str(STORE_A), *rows, "--format", "json")
    items = json.loads(out)
    for item in items:
        for key, value in item.items():
            if key in WORDS:
                assert value is None or (isinstance(value, str) and value not in ("-", "—", "")), (key, value)
            else:
                assert value is None or isinstance(value, (int, float)), (key, value)
    assert rows or all(item["launch"] is None for item in items), "no launch judgement (CPU) is null, not a dash"
    _, out, _ = cli(capsys, "show", "--results", str(STORE_A), *rows, "--format", "csv")
    table = pd.read_csv(io.StringIO(out))
    figures = [c for c in table.columns if c not in WORDS]
    assert figures and all(pd.api.types.is_numeric_dtype(table[c]) for c in figures), table.dtypes


def test_compare_markdown_gives_verdict_table_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    new = write_all([with_figures(r, test_accuracy=r.test_accuracy * 0.9) if setup_of(r) == "keras/cnn/cpu" else r
                     for r in fixture_records()], tmp_path / "new")
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(new), "--metric", "test_accuracy", "--format", "markdown")
    assert code == 1
    assert out.startswith("**❌ 1 regression(s)")
    header, *rows = pipe_rows(out)
    assert header == ["case", "figure", "base", "new", "change", "noise", "verdict"]
    verdicts = {row[0]: row[-1] for row in rows}
    assert verdicts.pop("keras/cnn/cpu") == "REGRESSED" and set(verdicts.values()) == {"ok"}
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(STORE_A), "--metric", "test_accuracy", "--format", "markdown")
    assert code == 0 and out.startswith("**✅ 0 regression(s)")
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(STORE_A), "--format", "markdown")
    assert code == 3 and out.startswith("**❔ 0 regression(s)")  # timing figures of 1-2 runs a side: inconclusive


def test_report_open_hands_the_page_to_the_browser(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch):
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    code, out, _ = cli(capsys, "report", "--results", str(STORE_A), "--out", str(tmp_path / "r"), "--open")
    page = tmp_path / "r" / "index.html"
    assert code == 0 and f"report: {page}" in out and page.exists()
    assert opened == [page.resolve().as_uri()]
    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    code, _, err = cli(capsys, "report", "--results", str(STORE_A), "--out", str(tmp_path / "r"), "--open")
    assert code == 0 and "no web browser found" in err


def test_terminal_table_fits_its_width_most_useful_columns_first():
    df = summary_table(fixture_records())
    wide = render(df, "table", None)
    for width in (80, 120):
        text = render(df, "table", width)
        assert max(map(len, text.splitlines())) <= width, text
        header = "\n".join(text.splitlines()[:4])
        assert all(word in header for word in ("framework", "model", "accuracy", "train")), header
        assert "left out to fit" in text and "--wide shows them" in text
    assert "left out" not in wide and "RSS MiB" in wide and "synced" in wide, "--wide: every column"
    assert max(map(len, wide.splitlines())) > 120


def test_terminal_table_says_shared_facts_once_and_notes_what_cells_point_to():
    records = fixture_records()
    text = render(summary_table(records), "table", None)
    lines = text.splitlines()
    (machine,) = record_machine_labels(records).values()
    assert lines[0].startswith(f"every row: machine {machine} · device cpu · batch 128"), lines[0]
    assert text.count("MFU against peak") == 1 and " [1]" in text
    assert "no figure in any row:" in text and "scaling_efficiency_pct" in text
    narrow = render(summary_table(records), "table", 80)
    assert "MFU %" not in narrow and "MFU against" not in narrow, "no note for a column that was left out"


def _collapsed_baseline() -> list:
    """A 1-device run at 400 samples/s and the same setup on 2 replicas at 2,112: 264 % efficiency."""
    from tests.test_scaling import _on_devices

    base = next(r for r in fixture_records() if r.spec["framework"] == "torch" and r.spec["model"] == "dense")
    return [_on_devices(base, 1, 400.0), _on_devices(base, 2, 2112.0)]


def test_impossible_efficiency_is_flagged_in_the_table_markdown_and_json():
    records = _collapsed_baseline()
    text = render(summary_table(records), "table", None)
    assert "264 (impossible) [1]" in text and "[1] torch/dense/cpu devices=2" in text and "baseline collapsed" in text
    assert "264 (impossible)" in render(summary_table(records), "markdown")
    assert "264 (impossible)" in render(runs_table(records), "table", None)
    two = next(i for i in json.loads(render(summary_table(records, raw=True), "json")) if i["variant"] == "devices=2")
    assert two["scaling_efficiency_pct"] is None and "scaling_efficiency_pct: scaling efficiency 264 %" in two["flags"]
    sane = [records[0], _collapsed_baseline()[1].model_copy(update={"train_steady_samples_per_s": 600.0})]
    assert "(impossible)" not in render(summary_table(sane), "table", None)
    two = next(i for i in json.loads(render(summary_table(sane, raw=True), "json")) if i["variant"] == "devices=2")
    assert two["scaling_efficiency_pct"] == pytest.approx(75.0) and two.get("flags") is None


def test_impossible_efficiency_is_flagged_in_the_report_scaling_section(tmp_path: Path):
    from suite.report.page import ReportInputs, build_report
    from tests.test_report import parse_html

    page, _ = build_report(ReportInputs(results=[write_all(_collapsed_baseline(), tmp_path / "r")], out=tmp_path / "o"))
    section = parse_html(page.read_text(encoding="utf-8")).find("section", id="scaling")
    rows = {r["devices"]: r for t in section.find_all("table", class_="scaling") for r in t.records()}
    assert rows["2"]["efficiency %"] == "264 (impossible)"
    assert "devices=2: scaling efficiency 264 % is above linear" in section.text
