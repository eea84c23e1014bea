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


def test_show_markdown_is_one_pipe_row_per_case(capsys: pytest.CaptureFixture[str]):
    code, out, _ = cli(capsys, "show", "--results", str(STORE_A), "--format", "markdown")
    assert code == 0
    header, *rows = pipe_rows(out)
    assert header[:3] == ["machine", "framework", "model"] and "test_accuracy" in header
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


def test_compare_markdown_gives_verdict_table_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    new = write_all([with_figures(r, test_accuracy=r.test_accuracy * 0.9) if setup_of(r) == "keras/cnn/cpu" else r
                     for r in fixture_records()], tmp_path / "new")
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(new), "--metric", "test_accuracy", "--format", "markdown")
    assert code == 1
    assert out.startswith("**❌ 1 regression(s)")
    header, *rows = pipe_rows(out)
    assert header == ["case", "figure", "base", "new", "change", "beyond noise", "verdict"]
    verdicts = {row[0]: row[-1] for row in rows}
    assert verdicts.pop("keras/cnn/cpu") == "REGRESSED" and set(verdicts.values()) == {"ok"}
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(STORE_A), "--format", "markdown")
    assert code == 0 and out.startswith("**✅ 0 regression(s)")


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
