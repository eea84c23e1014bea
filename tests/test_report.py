"""`fashionbench report`: every section from the real fixture store, escaping, machine merge, prices/energy, recommendations,
asv, Chromium."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suite.cli import main
from suite.core.spec import RunSpec
from suite.measure.probe import PEAK_DTYPE
from suite.record.machines import base_label
from suite.record.metrics import METRIC_BY_KEY
from suite.record.schema import EpochStats, GpuStats, RunRecord
from suite.record.store import read_store, write_record
from suite.report import env
from suite.report.asv_results import build_series, read_asv_results
from suite.report.cases import framework_groups, group_cases
from suite.report.curves import overfit_epochs, run_overfit
from suite.report.hardware import (
    HOST_ENERGY,
    NOT_COMPARABLE,
    NOT_MEASURED,
    case_costs,
    machine_name,
    recipe_label,
    recommend,
)
from suite.report.prices import Price, PriceError, load_prices, price_for, shared_hostnames
from suite.report.sections import Images, hardware_section
from tests.conftest import REPO
from tests.helpers import browser

STORE_A = Path(__file__).resolve().parent / "fixtures" / "store_a"
XSS = "<script>alert(1)</script>"
XSS_AT = f"{XSS} (AMD EPYC, 2 cores)"  # the hostile machine's label: its hostname is the script
COMMIT_XSS = "<b>bold</b> & <script>x</script> drop accuracy"
BOX2 = {"machine_id": "b0x2b0x2b0x2", "hostname": "box-2", "cpu_model": "Test CPU (box-2)"}
VM, BOX = "vm (AMD EPYC, 2 cores)", "box-2 (Test CPU (box-2), 2 cores)"  # the two machines' labels (record.machines)
PRICES_YAML = "# USD per hour\nvm: 0.40\nbox-2/cpu: 1.10\n"
PRICES = {"vm": 0.40, "box-2/cpu": 1.10}
TARGET = 0.7
SECTIONS = ["verdict", "hardware", "frameworks", "summary", "claims", "variants", "scaling", "accuracy-vs-speed",
            "curves", "per-class", "commits", "environment"]


# ------------------------------------------------------------------ record helpers (shared with test_compare)


def fixture_records() -> list[RunRecord]:
    """The real runs committed as the fixture store."""
    records, problems = read_store([STORE_A])
    assert records and not problems, problems
    return records


def with_machine(record: RunRecord, **machine: Any) -> RunRecord:
    """A copy of the run as if made on another machine (new run id, edited machine fields)."""
    return record.model_copy(update={"machine": record.machine.model_copy(update=machine), "run_id": uuid.uuid4().hex})


def with_figures(record: RunRecord, **figures: Any) -> RunRecord:
    """A copy of the run with some top-level fields replaced (new run id)."""
    return record.model_copy(update={**figures, "run_id": uuid.uuid4().hex})


def as_variant(record: RunRecord, **settings: Any) -> RunRecord:
    """A copy of the run with spec settings changed, keyed and MFU-labelled as the worker would record it."""
    spec = RunSpec.from_dict({**record.spec, **settings})
    return with_figures(record, spec=spec.to_dict(), case_key=spec.case_key, case_id=spec.id,
                        peak_flops_dtype=PEAK_DTYPE[spec.precision])


def write_all(records: list[RunRecord], directory: Path) -> Path:
    """Write the records as a results dir."""
    for record in records:
        write_record(record, directory)
    return directory


def setup_of(record: RunRecord) -> str:
    """framework/model/device of a run."""
    return f"{record.spec['framework']}/{record.spec['model']}/{record.spec['device']}"


def tta(record: RunRecord, target: float) -> float:
    """Independent time-to-target: cumulative train seconds at the first epoch reaching it, inf if never."""
    total = 0.0
    for epoch in record.history:
        total += epoch.train_s
        if epoch.val_accuracy is not None and epoch.val_accuracy >= target:
            return total
    return math.inf


# ------------------------------------------------------------------ asv / pytest-benchmark inputs


def git_commits(repo: Path, subjects: list[str]) -> list[tuple[str, int]]:
    """A throwaway git repo with one commit per subject, one day apart; returns (sha, commit date ms)."""
    repo.mkdir(parents=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    out = []
    for day, subject in enumerate(subjects, start=1):
        stamp = f"2026-01-{day:02d}T12:00:00+00:00"
        env = {**os.environ, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", subject], check=True, env=env)
        sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
        out.append((sha, int(datetime.fromisoformat(stamp).timestamp() * 1000)))
    return out


def write_asv_results(root: Path, machine: str, commits: list[tuple[str, int]],
                      benches: dict[str, tuple[str, str, list[list[str]], list[Any]]]) -> Path:
    """A results dir written through asv's own Results API, so the reader (which never imports asv) is checked
    against the real format. benches: name → (type, unit, params, value per commit)."""
    from asv import util
    from asv.results import Results
    from asv.runner import BenchmarkResult

    util.write_json(str(root / machine / "machine.json"), {"machine": machine, "arch": "x86_64", "cpu": "t",
                                                            "num_cpu": "2", "os": "Linux", "ram": "1"}, api_version=1)
    meta = {name: {"name": name, "type": kind, "unit": unit, "params": params, "version": "1",
                   "param_names": [f"p{i}" for i in range(len(params))]}
            for name, (kind, unit, params, _) in benches.items()}
    util.write_json(str(root / "benchmarks.json"), meta, api_version=2)
    for i, (sha, date_ms) in enumerate(commits):
        results = Results({"machine": machine, "python": "3.11"}, {}, sha, date_ms, "3.11", "existing-py", {})
        for name, (_, _, _, values) in benches.items():
            value = values[i] if isinstance(values[i], list) else [values[i]]
            results.add_result(meta[name], BenchmarkResult(result=value, samples=[None] * len(value),
                                                           number=[None] * len(value), errcode=0, stderr="", profile=None),
                               started_at=datetime.fromtimestamp(date_ms / 1000 + 60, timezone.utc), duration=1.0)
        results.save(str(root))
    return root


def write_pytest_benchmark(path: Path, commit: str, stamp: str, median_s: float, extra: dict[str, Any]) -> Path:
    """A pytest-benchmark JSON file in the shape `--benchmark-json` writes (one benchmark)."""
    stats = {"min": median_s, "max": median_s, "mean": median_s, "stddev": 0.0, "rounds": 5, "median": median_s,
             "iqr": median_s / 10, "q1": median_s, "q3": median_s, "iterations": 1, "ops": 1 / median_s}
    bench = {"group": "train-step", "name": "test_train_step[torch-dense]", "params": None, "param": None,
             "fullname": "tests/test_bench.py::test_train_step[torch-dense]", "extra_info": extra, "options": {},
             "stats": stats}
    path.write_text(json.dumps({"machine_info": {"node": "vm"}, "commit_info": {"id": commit}, "datetime": stamp,
                                "version": "5.2.3", "benchmarks": [bench]}), encoding="utf-8")
    return path


# ------------------------------------------------------------------ a small HTML tree (stdlib only)

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    """An element with its attributes and children."""

    tag: str
    attrs: dict[str, str]
    children: list[Any] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All text below, whitespace collapsed."""
        return " ".join(" ".join(c if isinstance(c, str) else c.text for c in self.children).split())

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        """Descendants with the tag and attributes (class matched as one of its words)."""
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and all(_matches(child, k, v) for k, v in attrs.items()):
                    found.append(child)
                found.extend(child.find_all(tag, **attrs))
        return found

    def find(self, tag: str, **attrs: str) -> Node:
        """The first match (fails the test when absent)."""
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}>"
        return found[0]

    def rows(self) -> list[list[str]]:
        """Cell texts row by row, header row included."""
        return [[c.text for c in tr.children if isinstance(c, Node) and c.tag in ("td", "th")] for tr in self.find_all("tr")]

    def records(self) -> list[dict[str, str]]:
        """Body rows as dicts keyed by the header texts."""
        header, *body = self.rows()
        return [dict(zip(header, row)) for row in body]


def _matches(node: Node, key: str, value: str) -> bool:
    key = key.rstrip("_").replace("_", "-")
    return value in node.attrs.get(key, "").split() if key == "class" else node.attrs.get(key) == value


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack = [Node("root", {})]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    """The document as a Node tree."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.stack[0]


# ------------------------------------------------------------------ one rich report shared by the tests


@dataclass
class Built:
    """The report made from: the fixture store, a second machine, a hostile failed run, corrupt files, prices, asv, pytest-benchmark."""

    out: Path
    html: str
    doc: Node
    stdout: str
    stderr: str
    code: int
    ok: list[RunRecord]
    commits: list[tuple[str, int]]
    base_acc: float
    results: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("report")
    results = root / "results"
    shutil.copytree(STORE_A, results / "vm")
    base = fixture_records()
    box2 = [with_machine(r, **BOX2) for r in base if r.spec["model"] == "dense"]
    write_all(box2, results / "box-2")
    hostile_machine = {"machine_id": "bad0bad0bad0", "hostname": XSS, "versions": {"torch": XSS}}
    hostile = with_figures(with_machine(base[0], **hostile_machine), status="error", error=XSS, stderr_tail=XSS)
    write_all([hostile], results / "hostile")
    (results / "vm" / "corrupt.json").write_text("{not json", encoding="utf-8")
    (results / "vm" / "foreign.json").write_text('{"hello": "world"}', encoding="utf-8")
    prices = root / "prices.yaml"
    prices.write_text(PRICES_YAML, encoding="utf-8")

    torch_dense = [r for r in base if setup_of(r) == "torch/dense/cpu"]
    acc = float(np.median([r.test_accuracy for r in torch_dense]))
    epoch_s = torch_dense[0].steady_epoch_s
    speeds = [float(np.median([r.train_steady_samples_per_s for r in base if setup_of(r) == f"{fw}/dense/cpu"]))
              for fw in ("torch", "keras")]
    commits = git_commits(root / "repo", ["initial", "faster loader", COMMIT_XSS, "slow epoch"])
    asv_dir = write_asv_results(root / "asv", "vm-cpu", commits, {
        "training.TrainingSuite.track_test_accuracy": ("track", "accuracy", [], [acc, acc, acc * 0.9, acc * 0.9]),
        "training.TrainingSuite.time_epoch": ("time", "seconds", [], [epoch_s, epoch_s * 1.01, epoch_s, epoch_s * 1.3]),
        "training.TrainingSuite.track_samples_per_s": ("track", "samples/s", [["'torch'", "'keras'"]], [speeds] * 4),
    })
    (asv_dir / "vm-cpu" / "broken-env.json").write_text("[1, 2", encoding="utf-8")
    step_s = torch_dense[0].step_time_ms_p50 / 1000
    extra = {"test_accuracy": acc, "note": "<img src=x onerror=alert(1)>"}
    bench = [write_pytest_benchmark(root / "b1.json", commits[0][0], "2026-01-01T12:00:00", step_s, extra),
             write_pytest_benchmark(root / "b2.json", commits[1][0], "2026-01-02T12:00:00", step_s * 1.2, extra)]

    out = root / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(root / "repo")  # commit messages come from the git repo the report runs in
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["report", "--results", str(results), "--asv-results", str(asv_dir), "--pytest-benchmark",
                         *map(str, bench), "--prices", str(prices), "--target", str(TARGET), "--out", str(out)])
    finally:
        os.chdir(cwd)
    html = (out / "index.html").read_text(encoding="utf-8")
    return Built(out, html, parse_html(html), stdout.getvalue(), stderr.getvalue(), code, base + box2, commits, acc,
                 results)


def section(built: Built, name: str) -> Node:
    """One numbered section of the page."""
    return built.doc.find("section", id=name)


def label_runs(built: Built, label: str) -> list[RunRecord]:
    """The ok runs behind a table label like 'torch/dense/cpu @box-2'."""
    setup, _, host = label.partition(" @")
    runs = [r for r in built.ok if setup_of(r) == setup.split()[0] and base_label(r.machine) == host]
    assert runs, label
    return runs


# ------------------------------------------------------------------ structure, inputs, escaping


def test_cli_writes_page_pngs_and_csv_and_names_skipped_files(built: Built):
    assert built.code == 0
    assert f"report: {built.out / 'index.html'}" in built.stdout
    for name in ("corrupt.json", "foreign.json", "broken-env.json"):
        assert name in built.stderr
        assert name in built.doc.find("div", id="skipped-inputs").text
    pngs = sorted(p.name for p in built.out.glob("*.png"))
    assert {"frameworks.png", "accuracy-vs-speed.png", "training-curves.png", "hardware.png", "over-commits.png"} <= set(pngs)
    assert (built.out / "summary.csv").is_file()


def test_the_answer_then_sections_one_to_eleven_in_order(built: Built):
    assert [s.attrs["id"] for s in built.doc.find_all("section")] == SECTIONS
    headings = [s.find("h2").text for s in built.doc.find_all("section")]
    assert headings[0] == "The answer"
    assert [h.split(".")[0] for h in headings[1:]] == [str(i) for i in range(1, 12)]
    assert "No framework/model/device has runs of more than one variant" in section(built, "variants").text


def test_strings_from_result_files_are_escaped(built: Built):
    assert XSS not in built.html and "<script" not in built.html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in built.html
    failed = section(built, "summary").find("details", id="not-ok")
    table = next(t for t in section(built, "summary").find_all("table") if "error" in t.rows()[0])
    (row,) = table.records()
    assert row["status"] == "error" and row["error"] == XSS and row["host"] == XSS_AT and row["stderr (tail)"] == XSS
    assert "Runs not ok (1)" in failed.find("summary").text and "open" in failed.attrs
    assert XSS_AT in [m["machine"] for m in section(built, "environment").find("table", class_="env-machines").records()]
    assert XSS in section(built, "environment").find("table", class_="versions").text
    assert all(XSS not in t.text for t in section(built, "summary").find_all("table", class_="summary"))
    assert "&lt;img src=x onerror=alert(1)&gt;" in built.html


def test_page_is_offline_and_images_are_embedded_pngs(built: Built):
    imgs = built.doc.find_all("img")
    assert len(imgs) >= 8
    for img in imgs:
        assert img.attrs["src"].startswith("data:image/png;base64,")
        data = base64.b64decode(img.attrs["src"].split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert not built.doc.find_all("link") and not built.doc.find_all("script")
    for node in built.doc.find_all("a"):
        assert node.attrs["href"].startswith("#")


# ------------------------------------------------------------------ 1 summary


def test_summary_cells_are_medians_with_best_marked(built: Built):
    table = section(built, "summary").find("table", data_task="10-class")
    rows = table.records()
    assert {r["case"] for r in rows} == {f"{setup_of(r)} @{base_label(r.machine)}" for r in built.ok
                                         if r.spec["model"] != "binary"}
    for header, field_name, fmt in (("test accuracy", "test_accuracy", ".4f"),
                                    ("train samples/s", "train_steady_samples_per_s", ",.0f")):
        medians = {r["case"]: float(np.median([getattr(x, field_name) for x in label_runs(built, r["case"])])) for r in rows}
        best = max(medians.values())
        for row in rows:
            assert row[header].startswith(format(medians[row["case"]], fmt)), (header, row)
            assert ("★" in row[header]) == math.isclose(medians[row["case"]], best), (header, row)
            runs = label_runs(built, row["case"])
            assert row["ok runs"] == f"{len(runs)}/{len(runs)}"
    # Nothing GPU-side was measured on these CPU-only machines: the columns are named once, not shown empty.
    assert "GPU util %" not in table.rows()[0]
    assert "GPU util %" in next(p.text for p in section(built, "summary").find_all("p") if "Not measured for" in p.text)
    binary = section(built, "summary").find("table", data_task="tshirt-vs-shirt").records()
    assert len(binary) == 2 and all(row["ok runs"] == "1/1" for row in binary)


def test_summary_csv_holds_the_same_medians(built: Built):
    with (built.out / "summary.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["ok_runs"] == "0":
            continue
        runs = [r for r in built.ok if r.case_key == row["case_key"] and r.machine.machine_id == row["machine_id"]]
        assert float(row["test_accuracy_median"]) == pytest.approx(np.median([r.test_accuracy for r in runs]))
        assert int(row["test_accuracy_n"]) == len(runs)


# ------------------------------------------------------------------ 2 claims


def test_course_claims_have_measured_figures_and_verdicts(built: Built):
    rows = section(built, "claims").find("table", class_="claims").records()
    verdict = lambda ok: "holds" if ok else "does not hold"  # noqa: E731
    for framework in ("torch", "keras"):
        mine = {r["claim"]: r for r in rows if r["framework"] == framework}
        acc = {m: float(np.median([r.test_accuracy for r in built.ok if r.spec["framework"] == framework
                                   and r.spec["model"] == m])) for m in ("dense", "cnn")}
        params = {m: next(r.params for r in built.ok if r.spec["model"] == m) for m in ("dense", "cnn")}
        dense, cnn = mine["Dense reaches ~88% test accuracy"], mine["CNN reaches 90%+ test accuracy"]
        assert dense["measured"].startswith(f"{acc['dense']:.4f}")
        assert dense["verdict"] == verdict(abs(acc["dense"] - 0.88) <= 0.015)
        assert dense["margin to the rule"].startswith(f"{100 * (0.015 - abs(acc['dense'] - 0.88)):+.2f} points")
        assert cnn["measured"].startswith(f"{acc['cnn']:.4f}") and cnn["verdict"] == verdict(acc["cnn"] >= 0.895)
        gap = 100 * (acc["cnn"] - acc["dense"])
        assert f"{gap:+.2f} points" in mine["CNNs win by 2–3 points"]["measured"]
        assert mine["CNNs win by 2–3 points"]["verdict"] == verdict(1.5 <= gap <= 3.5)
        fewer = mine["…with fewer parameters"]
        assert f"CNN {params['cnn']:,} vs dense {params['dense']:,}" in fewer["measured"]
        assert fewer["verdict"] == verdict(params["cnn"] < params["dense"])
        assert "reduced run" in dense["setting"]  # the fixture trains 3 epochs on 3,000 samples


# ------------------------------------------------------------------ 3 frameworks, 4 Pareto, 5 curves


def test_frameworks_side_by_side_table(built: Built):
    rows = section(built, "frameworks").find("table", class_="side-by-side").records()
    row = next(r for r in rows if r["recipe and machine"] == f"dense/cpu @{VM}" and r["figure"] == "train samples/s")
    medians = {fw: float(np.median([r.train_steady_samples_per_s for r in label_runs(built, f"{fw}/dense/cpu @{VM}")]))
               for fw in ("torch", "keras")}
    for fw, value in medians.items():
        assert row[fw].startswith(f"{value:,.0f}")
    winner = max(medians, key=medians.get)
    assert row["better"].startswith(f"{winner} by {max(medians.values()) / min(medians.values()):.2f}×")
    assert {r["figure"] for r in rows} >= {"first epoch s", "steady epoch s", "test accuracy"}
    assert section(built, "frameworks").find("img")


def test_pareto_front_lists_undominated_cases(built: Built):
    rows = section(built, "accuracy-vs-speed").find("table", data_task="10-class").records()
    labels = {f"{setup_of(r)} @{base_label(r.machine)}" for r in built.ok if r.spec["model"] != "binary"}
    point = {lab: (np.median([r.train_steady_samples_per_s for r in label_runs(built, lab)]),
                   np.median([r.test_accuracy for r in label_runs(built, lab)])) for lab in labels}
    front = {a for a, (x, y) in point.items()
             if not any(u >= x and v >= y and (u > x or v > y) for b, (u, v) in point.items() if b != a)}
    assert {r["case"] for r in rows if r["Pareto front"] == "yes"} == front
    assert {r["case"] for r in rows} == labels  # every case is listed, the front marked
    accuracies = [float(r["test accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)


def test_overfitting_rule():
    assert overfit_epochs([1.0, 0.8, 0.6], [0.9, 0.8, 0.7]) == []
    assert overfit_epochs([1.0, 0.8, 0.7, 0.6], [1.0, 0.9, 0.95, 1.0]) == [2, 3]
    assert overfit_epochs([1.0, 0.8, 0.6], [1.0, 1.005, 1.009]) == []  # within the 1% tolerance
    assert overfit_epochs([1.0, 1.1, 1.2], [1.0, 1.2, 1.3]) == []  # train loss rising too: not overfitting
    base = fixture_records()[0]

    def run(train: list[float], val: list[float]) -> RunRecord:
        history = [EpochStats(epoch=i + 1, train_loss=t, train_accuracy=0.5, val_loss=v, val_accuracy=0.5, train_s=1.0)
                   for i, (t, v) in enumerate(zip(train, val))]
        return with_figures(base, history=history)

    assert run_overfit(run([1.0, 0.8, 0.7, 0.6], [1.0, 0.9, 0.95, 1.0])).startswith("yes: flagged at epoch 3, 4")
    assert run_overfit(run([1.0, 0.8, 0.6], [1.0, 1.1, 0.9])).startswith("transient: flagged at epoch 2")
    assert run_overfit(run([1.0, 0.8, 0.6], [0.9, 0.8, 0.7])) is None


def test_training_curves_table_has_every_run(built: Built):
    rows = section(built, "curves").find("table", class_="overfit").records()
    assert len(rows) == len([r for r in built.ok if r.history])
    for row in rows:
        runs = [r for r in label_runs(built, row["case"]) if str(r.spec["seed"]) == row["seed"]]
        assert row["overfitting"] in {run_overfit(r) or "no" for r in runs}
        assert row["epochs"] == str(len(runs[0].history))
    assert "validation loss rising while training loss falls" in section(built, "curves").text


# ------------------------------------------------------------------ speed variants

LONG_VARIANT = {"precision": "bf16", "compile": "max-autotune", "channels_last": True}
SKIP_XSS = f"torch.compile unavailable: {XSS}"


@dataclass
class VariantReport:
    """A report over CNN runs in several speed variants: torch with a default, keras without one."""

    doc: Node
    html: str
    out: Path
    torch: list[RunRecord]  # the default torch/cnn/cpu runs the variants were made from
    keras: list[RunRecord]


def scaled(runs: list[RunRecord], speed: float, acc: float, warmups: list[float], **settings: Any) -> list[RunRecord]:
    """Variant runs: throughput times `speed`, test accuracy plus `acc`, the given warm-up seconds."""
    return [with_figures(as_variant(r, **settings), train_steady_samples_per_s=r.train_steady_samples_per_s * speed,
                         test_accuracy=r.test_accuracy + acc, warmup_s=w) for r, w in zip(runs, warmups)]


def skipped(run: RunRecord, reason: str, **settings: Any) -> RunRecord:
    """A variant recorded as skipped with its reason, as the runner records an impossible combination."""
    return with_figures(as_variant(run, **settings), status="skipped", error=reason)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> VariantReport:
    root = tmp_path_factory.mktemp("variants")
    base = fixture_records()
    torch = [with_figures(as_variant(r), warmup_s=w) for r, w in zip(
        [r for r in base if setup_of(r) == "torch/cnn/cpu"], [4.0, 1.0])]
    keras = [r for r in base if setup_of(r) == "keras/cnn/cpu"]
    fp16 = RunSpec(framework="torch", model="cnn", precision="fp16-mixed").unsupported_reason
    runs = [*torch, *scaled(torch, 2.5, -0.02, [0.5, 0.7], precision="bf16"),
            *scaled(torch[:1], 1.3, 0.0, [30.0], compile="default"),
            *scaled(torch[:1], 3.0, -0.05, [60.0], **LONG_VARIANT),
            *scaled(torch[:1], 3.2, -0.06, [61.0], batch_size=512, **LONG_VARIANT),
            skipped(torch[0], fp16, precision="fp16-mixed"), skipped(torch[0], SKIP_XSS, channels_last=True),
            *scaled(keras, 0.5, 0.0, [2.0, 2.0], precision="bf16"), *scaled(keras, 1.2, 0.01, [9.0, 9.0], jit_compile="on")]
    out = root / "out"
    assert main(["report", "--results", str(write_all(runs, root / "results")), "--out", str(out)]) == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    return VariantReport(parse_html(html), html, out, torch, keras)


def variant_rows(report: VariantReport, family: str) -> dict[str, dict[str, str]]:
    """The speed-variants table of one family, variant → row."""
    table = report.doc.find("section", id="variants").find("table", class_="variants", data_family=family)
    return {row["variant"]: row for row in table.records()}


def median(runs: list[RunRecord], name: str, factor: float = 1.0) -> float:
    """Median of one figure over runs, each value scaled as a variant's were."""
    return float(np.median([getattr(r, name) * factor for r in runs]))


def test_speed_variants_against_the_default(variants: VariantReport):
    rows = variant_rows(variants, "torch/cnn/cpu batch_size=128")
    long = " ".join(f"{k}={v}" for k, v in LONG_VARIANT.items())
    assert list(rows) == [long, "precision=bf16", "compile=default", "default"]  # fastest first
    torch, speed = variants.torch, "train_steady_samples_per_s"
    base_speed, base_acc = median(torch, speed), median(torch, "test_accuracy")
    expected = {"default": (base_speed, base_acc), "precision=bf16": (median(torch, speed, 2.5), base_acc - 0.02),
                "compile=default": (1.3 * torch[0].train_steady_samples_per_s, torch[0].test_accuracy),
                long: (3.0 * torch[0].train_steady_samples_per_s, torch[0].test_accuracy - 0.05)}
    for variant, (samples_per_s, accuracy) in expected.items():
        row = rows[variant]
        assert row["train samples/s"].startswith(f"{samples_per_s:,.0f}"), row
        assert row["× vs baseline"] == f"{samples_per_s / base_speed:.2f}×", row
        assert row["test accuracy"].startswith(f"{accuracy:.4f}"), row
        assert row["Δ accuracy vs baseline (points)"] == f"{100 * (accuracy - base_acc):+.2f}", row
    assert rows["precision=bf16"]["× vs baseline"] == "2.50×" and rows[long]["Δ accuracy vs baseline (points)"].startswith("-")
    assert "★" in rows[long]["train samples/s"]  # fastest; and the bf16 pair has the shortest warm-up
    assert rows["default"]["warm-up s"] == "2.50 ±0.75" and rows["precision=bf16"]["warm-up s"] == "0.60 ★ ±0.05"
    assert rows["compile=default"]["warm-up s"] == "30.00"
    assert rows["precision=bf16"]["MFU peak"].endswith("GFLOP/s bf16, provenance not recorded")
    assert rows["default"]["MFU peak"].endswith("GFLOP/s fp32, provenance not recorded")
    assert rows["precision=bf16"]["noise"] == "beyond noise (IQRs apart)"
    assert rows["compile=default"]["noise"] == "one run each: noise unknown" and rows["default"]["noise"] == "baseline"
    assert rows["default"]["ok runs"] == "2/2" and rows["compile=default"]["ok runs"] == "1/1"


def test_skipped_variants_are_listed_with_their_reason_escaped(variants: VariantReport):
    part = variants.doc.find("section", id="variants")
    table = part.find("table", class_="variants-not-run", data_family="torch/cnn/cpu batch_size=128")
    not_run = {row["variant not measured"]: row for row in table.records()}
    fp16 = RunSpec(framework="torch", model="cnn", precision="fp16-mixed").unsupported_reason
    assert not_run["precision=fp16-mixed"] == {"variant not measured": "precision=fp16-mixed", "status": "skipped",
                                               "reason": fp16}
    assert not_run["channels_last=True"]["reason"] == SKIP_XSS
    assert XSS not in variants.html and "<script" not in variants.html.lower()


def test_speed_variants_without_a_default_compare_to_the_slowest(variants: VariantReport):
    family = "keras/cnn/cpu batch_size=128"
    rows = variant_rows(variants, family)
    assert list(rows) == ["jit_compile=on", "precision=bf16"]
    assert rows["precision=bf16"]["× vs baseline"] == "1.00×" and rows["precision=bf16"]["noise"] == "baseline"
    assert rows["jit_compile=on"]["× vs baseline"] == f"{1.2 / 0.5:.2f}×"
    assert rows["jit_compile=on"]["Δ accuracy vs baseline (points)"] == "+1.00"
    part = variants.doc.find("section", id="variants")
    summaries = [d.find("summary").text for d in part.find_all("details")][1:]  # after "How to read these tables"
    assert [t.split(" (")[0] for t in summaries] == [family, "torch/cnn/cpu batch_size=128"]
    assert summaries[0] == f"{family} (2 variant(s); fastest: jit_compile=on)"
    assert "No default run here: the baseline is the slowest variant, precision=bf16" in part.text
    families = {t.attrs["data-family"] for t in variants.doc.find_all("table", class_="variants")}
    assert families == {"torch/cnn/cpu batch_size=128", family}  # batch 512 has one variant only: no table


def test_variant_cases_in_the_other_sections(variants: VariantReport):
    summary = variants.doc.find("table", class_="summary", data_task="10-class").records()
    labels = [r["case"] for r in summary]
    assert len(labels) == len(set(labels)) == 7 and "torch/cnn/cpu precision=bf16 batch_size=128" in labels
    side = variants.doc.find("table", class_="side-by-side").records()
    row = next(r for r in side if r["recipe and machine"] == "cnn/cpu precision=bf16 batch_size=128"
               and r["figure"] == "train samples/s")
    assert row["torch"].startswith(f"{median(variants.torch, 'train_steady_samples_per_s', 2.5):,.0f}")
    assert row["keras"].startswith(f"{median(variants.keras, 'train_steady_samples_per_s', 0.5):,.0f}")
    # Keras's own settings make contenders within the torch default's recipe, not recipes of their own.
    contenders = next(t for t in variants.doc.find_all("table", class_="side-by-side")).rows()[0]
    assert "keras jit_compile=on" in contenders
    # One confusion figure per task; its torch cnn panel stands for the default variant, the other variants are listed.
    assert [p.name for p in variants.out.glob("confusion-*.png")] == ["confusion-10-class.png"]
    confused = variants.doc.find("table", class_="confusions").records()
    assert len(confused) == len(summary)


# ------------------------------------------------------------------ 6 per class


def test_per_class_table_and_confusion_matrices(built: Built):
    part = section(built, "per-class")
    table = part.find("table", data_task="10-class")
    header, *body = table.rows()
    names = fixture_records()[0].class_names
    assert [row[0] for row in body] == names
    for col, label in enumerate(header[1:], start=1):
        runs = label_runs(built, label)
        for i, row in enumerate(body):
            assert row[col] == f"{np.median([r.per_class_accuracy[i] for r in runs]):.3f}"
    confused = {r["case"]: r for r in part.find("table", class_="confusions", data_task="10-class").records()}
    assert len(confused) == len({(r.case_key, r.machine.machine_id) for r in built.ok if r.spec["model"] != "binary"})
    runs = label_runs(built, f"torch/dense/cpu @{VM}")
    counts = np.sum([np.asarray(r.confusion_matrix) for r in runs], axis=0)
    off = counts / counts.sum(axis=1, keepdims=True)
    np.fill_diagonal(off, -1)
    i, j = np.unravel_index(np.argmax(off), off.shape)
    row = confused[f"torch/dense/cpu @{VM}"]
    assert row["runs"] == str(len(runs)) and row["test predictions"] == str(counts.sum())
    assert row["most confused (share of the true class)"].startswith(f"{names[i]} → {names[j]}: {100 * off[i, j]:.1f}% of {names[i]}")
    # Small multiples: one confusion figure per task, one panel per model × framework, named in the note above it.
    assert sorted(p.name for p in built.out.glob("confusion-*.png")) == ["confusion-10-class.png",
                                                                          "confusion-tshirt-vs-shirt.png"]
    note = next(p.text for p in part.find_all("p", class_="note") if p.text.startswith("The figures show"))
    shown = [c.split(" = ") for c in note.split(": ", 1)[1].split(" (the most training")[0].split("; ")]
    assert [title for title, _ in shown] == ["keras dense", "torch dense", "keras cnn", "torch cnn"]
    assert all(label.startswith(title.replace(" ", "/") + "/cpu") for title, label in shown)


# ------------------------------------------------------------------ 7 hardware, prices, recommendations


def test_price_files_yaml_csv_and_lookup_order(tmp_path: Path):
    machine = fixture_records()[0].machine.model_copy(update={"gpus": [{"name": "NVIDIA A10G"}]})
    (tmp_path / "p.yaml").write_text("usd_per_hour:\n  cuda: 2.0\n  NVIDIA A10G: 1.5\n  VM/cuda: 1.2\n")
    prices = load_prices(tmp_path / "p.yaml")
    assert price_for(prices, machine, "cuda").key == "VM/cuda"  # host/device beats GPU name beats device; any case
    assert price_for({"cuda": 2.0, "NVIDIA A10G": 1.5}, machine, "cuda").usd_per_hour == 1.5
    assert price_for(prices, machine, "cpu") is None
    assert price_for({machine.machine_id: 0.3, "vm": 0.9}, machine, "cpu").usd_per_hour == 0.3
    (tmp_path / "p.csv").write_text("key,usd_per_hour\nvm,0.25\ncpu,0.1\n")
    assert load_prices(tmp_path / "p.csv") == {"vm": 0.25, "cpu": 0.1}
    for name, text, needle in (("bad.yaml", "vm: cheap\n", "not a number"), ("neg.yaml", "vm: -1\n", ">= 0"),
                               ("bad.csv", "host,price\nvm,1\n", "key,usd_per_hour"), ("list.yaml", "- 1\n", "KEY")):
        (tmp_path / name).write_text(text)
        with pytest.raises(PriceError, match=needle) as info:
            load_prices(tmp_path / name)
        assert name in str(info.value)


def test_cost_and_energy_arithmetic():
    runs = [with_figures(r, host_energy_per_1k_train_samples_j=2.5) for r in fixture_records()
            if setup_of(r) == "torch/dense/cpu"]
    (case,) = group_cases(runs)
    row = case_costs(case, {"vm": 0.40}, TARGET)
    price_s = 0.40 / 3600
    assert row.price.key == "vm"
    assert row.cost_per_epoch_usd == pytest.approx(np.median([r.steady_epoch_s for r in runs]) * price_s)
    assert row.cost_per_1m_samples_usd == pytest.approx(1e6 / np.median([r.train_steady_samples_per_s for r in runs]) * price_s)
    times = [tta(r, TARGET) for r in runs]
    assert row.tta_s == pytest.approx(np.median(times))
    assert row.cost_to_target_usd == pytest.approx(np.median([t * price_s for t in times]))
    epochs = [next(e.epoch for e in r.history if e.val_accuracy >= TARGET) for r in runs]
    assert row.energy_to_target_j == pytest.approx(np.median([2.5 * r.train_samples * e / 1000 for r, e in zip(runs, epochs)]))
    assert row.energy_source == HOST_ENERGY  # a CPU case is judged by its packages' energy, not a GPU's
    assert case_costs(case, {}, TARGET).cost_to_target_usd is None



def test_a_host_name_two_machines_answer_to_prices_neither(tmp_path: Path):
    one = next(r for r in fixture_records() if setup_of(r) == "torch/dense/cpu")
    twin = with_machine(one, machine_id="7w1n7w1n7w1n", cpu_model="Other CPU", cpu_cores_logical=16)
    cases = group_cases([one, twin])
    shared = shared_hostnames([c.machine for c in cases])
    assert shared == {"vm"} and len({c.machine_label for c in cases}) == 2
    by_id = {c.machine.machine_id: c for c in cases}
    assert case_costs(by_id[one.machine.machine_id], {"vm": 0.4}, TARGET, shared).price is None
    assert case_costs(by_id[one.machine.machine_id], {"vm": 0.4}, TARGET).price.key == "vm"  # alone, the host name is fine
    label = by_id["7w1n7w1n7w1n"].machine_label
    assert label == "vm (Other CPU, 16 cores)"
    costs = case_costs(by_id["7w1n7w1n7w1n"], {"vm": 0.4, label.upper(): 3.0}, TARGET, shared)
    assert costs.price == Price(3.0, label.upper())  # a machine label is a key, case-insensitive
    part = hardware_section(cases, {"vm": 0.4}, Path("p.yaml"), {"10-class": TARGET}, Images(tmp_path))
    assert part["shared_host_keys"] == ["vm"] and all(r.price is None for r in part["costs"])

def picked(cases: list, rec) -> Any:
    """The case a recommendation names (its recipe's setup on the machine and device it names)."""
    (case,) = [c for c in cases if rec.setup == recipe_label(c.spec) and rec.machine == f"{c.where} on {c.spec.device}"]
    return case


def test_recommendations_compare_one_recipe_across_machines_from_measured_figures():
    vm = [r for r in fixture_records() if r.spec["model"] != "binary"]
    box2 = [with_machine(r, **BOX2) for r in vm if r.spec["model"] == "dense"]
    cases = group_cases(vm + box2)
    rows = [case_costs(c, PRICES, TARGET) for c in cases]
    recs = recommend(rows, "10-class", prices_given=True)
    dense = {c.spec.recipe_key: recipe_label(c.spec) for c in cases if c.spec.model == "dense"}
    assert [r.setup for r in recs[:-1]] == [label for label in dense.values() for _ in range(4)]  # 4 questions each
    assert recs[-1].verdict == "not comparable" and recs[-1].machine == NOT_COMPARABLE  # the CNNs ran on vm only
    assert recs[-1].why.startswith(f"ran on one machine/device only, so not compared: {VM} on cpu ran keras/cnn")
    assert "torch/cnn batch 128, 3 epochs, 3,000 samples" in recs[-1].why and "--plan hardware" in recs[-1].why
    for fastest, cheapest, energy, latency in (recs[i:i + 4] for i in range(0, len(recs) - 1, 4)):
        group = [c for c in cases if recipe_label(c.spec) == fastest.setup]
        times = {c.label: np.median([tta(r, TARGET) for r in c.ok]) for c in group}
        assert fastest.why.startswith(f"{min(times.values()):.2f} s") and "tied with" in fastest.why  # box-2 is a copy
        assert math.isclose(times[picked(cases, fastest).label], min(times.values()))
        assert cheapest.machine == f"{VM} on cpu" and f"next: {BOX} on cpu" in cheapest.why  # same speed, dearer
        assert energy.machine == NOT_MEASURED and "no CPU package energy" in energy.why and energy.verdict == "not measured"
        p50 = {c.label: np.median([min(r.inference, key=lambda i: i.batch_size).latency_ms_p50 for r in c.ok]) for c in group}
        assert math.isclose(p50[picked(cases, latency).label], min(p50.values()))
    # Host energy on both places of one recipe makes an energy verdict; without prices, cheapest is "not measured".
    powered = [with_figures(r, host_energy_per_1k_train_samples_j=1.0 if r.machine.hostname == "vm" else 3.0)
               if setup_of(r) == "keras/dense/cpu" else r for r in vm + box2]
    recs = recommend([case_costs(c, {}, TARGET) for c in group_cases(powered)], "10-class", prices_given=False)
    energy = next(r for r in recs if r.question.startswith("Most energy") and r.setup.startswith("keras/dense"))
    cheapest = next(r for r in recs if r.question.startswith("Cheapest"))
    assert cheapest.machine == NOT_MEASURED and "--prices" in cheapest.why
    if energy.verdict == "winner":
        assert energy.machine == f"{VM} on cpu" and "CPU package energy (RAPL)" in energy.why
    else:
        assert "reached" in energy.why


def test_a_ray_machine_kind_is_a_place_of_its_own_priced_and_named_by_kind():
    one = next(r for r in fixture_records() if r.spec["device"] == "cpu" and r.status == "ok")
    runs = [one.model_copy(update={"executor": "ray", "node_kind": kind, "run_id": kind}) for kind in ("kindA", "kindB")]
    cases = group_cases(runs)  # two kinds on one host (a local cluster): two cases, one per kind
    assert [c.label.rsplit("@", 1)[1] for c in cases] == [f"{base_label(one.machine)}/kindA", f"{base_label(one.machine)}/kindB"]
    case = cases[1]
    prices = {"cpu": 0.1, "kind:kindB": 0.7, "kind:kindA": 9.0}
    assert price_for(prices, case.machine, "cpu", "kindB").key == "kind:kindB"  # kind beats device
    assert price_for({**prices, case.machine.hostname: 0.2}, case.machine, "cpu", "kindB").usd_per_hour == 0.2
    assert case_costs(case, prices, 0.5).price.key == "kind:kindB"
    assert machine_name(case) == f"{base_label(one.machine)}/kindB on cpu"


def test_hardware_section_merges_machines_and_prices_them(built: Built):
    part = section(built, "hardware")
    assert {m["machine"] for m in part.find("table", class_="machines").records()} == {VM, BOX, XSS_AT}
    costs = {r["case"]: r for r in part.find("table", class_="costs").records()}
    for label, key, usd in ((f"torch/dense/cpu @{VM}", "vm", 0.40), (f"torch/dense/cpu @{BOX}", "box-2/cpu", 1.10)):
        runs = label_runs(built, label)
        assert costs[label]["price key"] == key and float(costs[label]["$/h"]) == usd
        assert costs[label]["$ / epoch"] == f"{np.median([r.steady_epoch_s for r in runs]) * usd / 3600:.6f}"
    recs = {r["question"].split(" to ")[0].split(" (")[0]: r
            for r in part.find("table", data_task="10-class").records()}
    assert recs["Cheapest"]["machine"] == f"{VM} on cpu"
    assert recs["Most energy-efficient"]["machine"] == NOT_MEASURED


# ------------------------------------------------------------------ 8 over commits


def test_asv_series_and_regressions(built: Built):
    part = section(built, "commits")
    rows = part.find("table", class_="regressions").records()
    shas = [sha for sha, _ in built.commits]
    assert {(r["figure"], r["commit"]) for r in rows} == {("training.TrainingSuite.track_test_accuracy", shas[2][:10]),
                                                         ("training.TrainingSuite.time_epoch", shas[3][:10])}
    acc_row = next(r for r in rows if "accuracy" in r["figure"])
    assert acc_row["message"] == COMMIT_XSS and acc_row["change"] == "-10.0%"
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt;" in built.html
    assert [r["commit"] for r in part.find("table", class_="asv-commits").records()] == [s[:10] for s in shas]
    bench = part.find("table", class_="pytest-benchmark").records()
    assert [r["vs previous"] for r in bench] == ["—", "+20.0%"]


def test_asv_reader_is_generic(built: Built, tmp_path: Path):
    asv_dir = Path(section(built, "commits").find("p").find("code").text)
    points, meta, problems = read_asv_results(asv_dir)
    assert len(problems) == 1 and "broken-env.json" in problems[0]
    series = {(s.benchmark.rsplit(".", 1)[1], s.params): s for s in build_series(points, meta, 5.0)}
    assert set(series) == {("track_test_accuracy", ()), ("time_epoch", ()), ("track_samples_per_s", ("'torch'",)),
                           ("track_samples_per_s", ("'keras'",))}
    assert series[("track_test_accuracy", ())].higher_is_better and not series[("time_epoch", ())].higher_is_better
    assert [p.commit for p in series[("time_epoch", ())].points] == [sha for sha, _ in built.commits]


# ------------------------------------------------------------------ 9 environment


def test_environment_lists_versions_threads_and_not_measured(built: Built):
    part = section(built, "environment")
    header = part.find("table", class_="versions").rows()[0]
    assert header[0] == "package" and set(header[1:]) == {VM, BOX, XSS_AT}
    threads = part.find("table", class_="threads").records()
    assert all(t["requested"] == str(label_runs(built, t["case"])[0].spec["threads"])
               for t in threads if t["host"] != XSS_AT)
    missing = part.find("table", class_="not-measured").records()
    gpu = [m for m in missing if m["figure"] == "GPU util %"]
    assert {m["host"] for m in gpu} == {VM, BOX} and all("ran on the CPU" in m["why"] for m in gpu)
    assert "first_epoch_s" in part.find("table", class_="time-scopes").text


def test_not_measured_reasons_on_a_gpu_without_counters():
    reason = "nvmlDeviceGetUtilizationRates: Not Supported"
    runs = [with_figures(r, spec={**r.spec, "device": "cuda"}, gpu_train=GpuStats(available=False, reason=reason))
            for r in fixture_records() if setup_of(r) == "torch/dense/cpu"]
    missing = {m.figure: m.reason for m in env.not_measured(group_cases(runs), [METRIC_BY_KEY["gpu_util_mean_pct"],
                                                                                METRIC_BY_KEY["mfu_pct"]])}
    assert missing["GPU util %"] == reason
    assert "MFU %" not in missing  # the fixture runs have a peak-FLOP/s probe


# ------------------------------------------------------------------ bad input, boundary, browser


@pytest.mark.parametrize("args,needle", [
    (["--results", "/nonexistent/results"], "does not exist"),
    (["--prices", "/nonexistent/prices.yaml"], "--prices"),
    (["--target", "1.5"], "--target"),
    (["--asv-results", "/nonexistent/asv"], "--asv-results"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str):
    base = ["report", "--results", str(STORE_A), "--out", str(tmp_path / "out")]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not (tmp_path / "out" / "index.html").exists()


def test_store_of_only_corrupt_files_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "x.json").write_text("{")
    assert main(["report", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 2
    assert "x.json" in capsys.readouterr().err


def test_store_of_only_failed_runs_still_renders(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    write_all([with_figures(fixture_records()[0], status="timeout", error="killed after 3600 s")], tmp_path / "r")
    assert main(["report", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    doc = parse_html((tmp_path / "o" / "index.html").read_text(encoding="utf-8"))
    (row,) = next(t for t in doc.find("section", id="summary").find_all("table") if "error" in t.rows()[0]).records()
    assert row["status"] == "timeout" and row["error"] == "killed after 3600 s"
    assert not doc.find_all("img")
    claims = doc.find("table", class_="claims").records()
    assert {c["verdict"] for c in claims} == {"not measured"}


def test_report_modules_import_no_framework():
    code = ("import sys, suite.report.page, suite.report.compare, suite.report.asv_results, suite.report.prices; "
            "print(','.join(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


# ------------------------------------------------------------------ the answer first, readable plots, the page in a browser

EXAMPLE = REPO / "reports" / "example"
PAGE_BYTES_LIMIT = 1_500_000  # the budget for the example report (issue 22)


def test_the_answer_names_hardware_and_the_leading_framework(built: Built):
    answer = section(built, "verdict")
    hardware = section(built, "hardware")
    for task in ("10-class", "tshirt-vs-shirt"):
        top = answer.find("table", class_="verdict-hardware", data_task=task).records()
        full = hardware.find("table", class_="recommendations", data_task=task).records()
        assert [r[f"question ({task})"] for r in top] == [r["question"] for r in full]
        for short, long in zip(top, full):
            assert short["answer: machine, setup — and why (measured figures only)"].startswith(long["machine"])
            assert long["why (measured figures only)"] in short["answer: machine, setup — and why (measured figures only)"]
    rows = {r["recipe and machine"]: r for r in answer.find("table", class_="verdict-frameworks").records()}
    speeds = {fw: float(np.median([r.train_steady_samples_per_s for r in label_runs(built, f"{fw}/dense/cpu @{VM}")]))
              for fw in ("torch", "keras")}
    fast, slow = sorted(speeds, key=speeds.get, reverse=True)
    cell = rows[f"dense/cpu @{VM}"]["train samples/s"]
    assert cell.startswith(f"{fast} {speeds[fast]:,.0f} vs {slow} {speeds[slow]:,.0f} ({speeds[fast] / speeds[slow]:.2f}×)")
    assert cell.endswith(("beyond noise", "within noise"))  # two runs each: the IQRs are judged
    # box-2 ran only the dense net, in both frameworks: its recipes are compared on that machine alone.
    assert f"dense/cpu @{BOX}" in rows and f"cnn/cpu @{BOX}" not in rows


def test_a_frameworks_own_setting_makes_a_contender_within_the_recipe():
    base = [r for r in fixture_records() if r.spec["model"] == "dense"]
    jax = [as_variant(r, keras_backend="jax") for r in base if r.spec["framework"] == "keras"]
    bf16 = [as_variant(r, precision="bf16") for r in base if r.spec["framework"] == "torch"]
    groups = framework_groups(group_cases(base + jax + bf16))
    assert {g: sorted(by) for g, by in groups.items()} == {"dense/cpu": ["keras", "keras keras_backend=jax", "torch"]}
    # A shared setting (precision) is part of the recipe: torch bf16 alone has no other framework to meet.


def test_the_variants_table_shows_every_registry_metric_of_its_view(monkeypatch: pytest.MonkeyPatch):
    from suite.record import metrics
    from suite.report import sections

    extra = metrics.Metric("made_up_ratio", "made-up ratio", "", False, ".3f", lambda r: 1.25,
                           views=frozenset({"variants"}))
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, extra))
    headers = [h["text"] for h in sections.variant_headers()]
    assert headers[0] == "train samples/s" and "made-up ratio" in headers
    torch = [r for r in fixture_records() if setup_of(r) == "torch/cnn/cpu"]
    (table,) = sections.variants_section(group_cases(torch + [as_variant(r, precision="bf16") for r in torch]))
    for row in table["rows"]:
        assert len(row["cells"]) == len(headers)
        assert row["cells"][headers.index("made-up ratio")]["text"].startswith("1.250")


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store like the merged H200 + CPU one: two machines sharing a hostname, speed variants, two Keras backends."""
    base = fixture_records()
    gpu = {"machine_id": "9a9a9a9a9a9a", "gpus": [{"name": "NVIDIA H200"}], "cpu_model": "Intel(R) Xeon(R) Platinum",
           "cpu_cores_logical": 16}
    runs = list(base)
    for r in (r for r in base if r.spec["model"] != "binary"):
        on_gpu = with_machine(as_variant(r, device="cuda", epochs=2, batch_size=500), **gpu)
        if r.spec["framework"] == "torch":
            for settings in ({}, {"precision": "bf16"}, {"precision": "tf32"}, {"compile": "reduce-overhead"},
                             {"precision": "fp16-mixed", "compile": "reduce-overhead"}):
                runs.append(with_figures(as_variant(on_gpu, **settings), test_accuracy=r.test_accuracy - 0.01,
                                         train_steady_samples_per_s=r.train_steady_samples_per_s * 40))
        else:
            for backend, factor in (("jax", 30), ("torch", 8)):
                runs.append(with_figures(as_variant(on_gpu, keras_backend=backend),
                                         train_steady_samples_per_s=r.train_steady_samples_per_s * factor))
    return write_all(runs, tmp_path_factory.mktemp("wide") / "results")


def _texts(fig) -> list:
    """Every text the figure draws: titles, axis labels, annotations, legend entries, and the tick labels inside
    their axis's view (matplotlib keeps invisible ones beyond it)."""
    from matplotlib.text import Text

    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    others = [t for t in fig.findobj(Text) if id(t) not in ticks and t.get_visible() and t.get_text().strip()]
    return others + [t for ax in fig.axes if ax.get_visible() for axis in (ax.xaxis, ax.yaxis)
                     for t in _drawn_ticklabels(axis)]


def _drawn_ticklabels(axis) -> list:
    low, high = sorted(axis.get_view_interval())
    return [t for tick in axis.get_major_ticks() if low <= tick.get_loc() <= high
            for t in (tick.label1, tick.label2) if t.get_visible() and t.get_text().strip()]


def figures(cases: list) -> dict[str, Any]:
    """Every report figure made from the cases, by name (what Images.add would save)."""
    from suite.report import plots, sections
    from suite.report.cases import default_targets, pareto_front

    ok = [c for c in cases if c.ok]
    acc, speed = METRIC_BY_KEY["test_accuracy"], METRIC_BY_KEY["train_samples_per_s"]
    fronts = {t: pareto_front([c for c in ok if c.task == t], speed, acc) for t in sorted({c.task for c in ok})}
    targets = default_targets()
    made = {"frameworks": plots.frameworks_figure(ok), "pareto": plots.pareto_figure(ok, fronts),
            "curves": plots.curves_figure(ok), "hardware": plots.hardware_figure(
                [case_costs(c, PRICES, targets[c.task]) for c in ok])}

    class Keep(sections.Images):
        def add(self, name, fig):
            made[name] = fig
            return None if fig is None else {"file": name, "uri": ""}

    sections.per_class_section(ok, Keep(Path(tempfile.mkdtemp())))
    return made


@pytest.mark.parametrize("store", ["fixture", "wide"])
def test_every_label_of_every_figure_lies_inside_it_and_none_overprint(store: str, wide: Path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    records, _ = read_store([STORE_A if store == "fixture" else wide])
    made = figures(group_cases(records))
    assert {"frameworks", "pareto", "curves", "hardware", "per-class-10-class", "confusion-10-class"} <= set(made)
    for name, fig in made.items():
        assert fig is not None, name
        canvas = FigureCanvasAgg(fig)
        canvas.draw()  # runs constrained layout: its "not applied" warning is an error in this suite (pyproject)
        renderer = canvas.get_renderer()
        frame = fig.bbox
        for text in _texts(fig):
            box = text.get_window_extent(renderer)
            assert box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1 and box.y0 >= frame.y0 - 1 and \
                box.y1 <= frame.y1 + 1, f"{name}: {text.get_text()!r} leaves the figure ({box} vs {frame})"
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                boxes = [t.get_window_extent(renderer) for t in _drawn_ticklabels(axis)]
                overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
                assert not overlaps, f"{name}: tick labels overprint on {ax.get_title()!r}"
        if name == "pareto":
            numbers = [t.get_window_extent(renderer) for ax in fig.axes for t in ax.texts]
            assert numbers and not [(a, b) for i, a in enumerate(numbers) for b in numbers[i + 1:] if a.overlaps(b)]


def test_a_collapsed_constrained_layout_fails_the_suite():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.0, 1.0), layout="constrained")
    fig.subplots().set_yticks([0, 1], ["a tick label far too long", "for a figure this small"])
    with pytest.raises(UserWarning, match="constrained_layout not applied"):
        fig.savefig(io.BytesIO(), format="png")


needs_chromium = pytest.mark.skipif(not browser.CHROMIUM.exists(),
                                    reason="/usr/bin/chromium missing: apt-get install -y chromium (.ci/install does)")


def _browser_checks(page: Path, work: Path) -> dict[str, Any]:
    """Layout checks every report page must pass in Chromium; returns the layout for page-specific checks."""
    boxes, stderr = browser.layout(page, work)
    assert [s["id"] for s in boxes["sections"]] == SECTIONS
    assert boxes["sections"][0]["top"] < 250  # the answer comes first, under the title
    for image in boxes["images"]:
        assert image["loaded"], image["alt"]
        inner, frame = image["img"], image["frame"]
        assert frame["left"] - 1 <= inner["left"] and inner["right"] <= frame["right"] + 1, image["alt"]
        assert inner["right"] <= boxes["viewport"], f"{image['alt']}: cut off by the window"
        # Readable at its size: the page never shrinks a figure to under 3/4 of the pixels it was drawn at.
        assert inner["width"] >= 0.75 * image["natural"], image["alt"]
    console = [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line
               or "Failed to load resource" in line or "net::ERR" in line]
    assert not console, console
    return boxes


@needs_chromium
def test_the_built_report_lays_out_in_headless_chromium(built: Built, tmp_path: Path):
    boxes = _browser_checks(built.out / "index.html", tmp_path)
    assert len(boxes["images"]) == len(built.doc.find_all("img")) >= 8


@needs_chromium
def test_the_example_report_answers_on_one_screen_in_headless_chromium(tmp_path: Path):
    out = tmp_path / "example"
    assert main(["report", "--results", str(EXAMPLE / "results"), "--prices", str(EXAMPLE / "prices.yaml"),
                 "--out", str(out)]) == 0
    page = out / "index.html"
    assert page.stat().st_size <= PAGE_BYTES_LIMIT
    boxes = _browser_checks(page, tmp_path)
    # Both verdicts, whole, above the fold of a 1400 × 900 window.
    assert boxes["ids"]["verdict"]["bottom"] <= browser.WINDOW[1]
    assert boxes["ids"]["hardware-verdict"]["top"] < boxes["ids"]["frameworks-verdict"]["top"]
    # Its not-ok runs are CUDA cases skipped on a machine without a GPU: listed, but folded away.
    not_ok = parse_html(page.read_text(encoding="utf-8")).find("details", id="not-ok")
    assert "Runs not ok (6)" in not_ok.find("summary").text and "open" not in not_ok.attrs
    # The committed example is a page of this layout too (re-render it with the command in reports/README.md).
    committed = EXAMPLE / "index.html"
    assert committed.stat().st_size <= PAGE_BYTES_LIMIT
    assert [s.attrs["id"] for s in parse_html(committed.read_text(encoding="utf-8")).find_all("section")] == SECTIONS
