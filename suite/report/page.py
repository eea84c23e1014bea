"""`fashionbench report`: one self-contained HTML file (plots embedded) plus PNGs and summary.csv from result stores."""

from __future__ import annotations

import csv
import errno
import math
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from suite.record.metrics import METRIC_BY_KEY, METRICS
from suite.record.scaling import with_scaling_efficiency
from suite.record.schema import RunRecord
from suite.record.store import folder_problem, missing_results, printable, read_store, safe_name, staged_folder
from suite.report import plots, sanity, scaling, sections
from suite.report.cases import Case, default_targets, group_cases, pareto_front
from suite.report.claims import REFERENCE, RULES, check_claims, overall
from suite.report.curves import RULE as OVERFIT_RULE
from suite.report.prices import PriceError, load_prices

DEFAULT_REGRESSION_PCT = 5.0


class ReportError(ValueError):
    """Bad input to the report (missing dir, no records, bad prices); one line naming the fix."""


class ReportWriteError(Exception):
    """The report could not be written (disk full); nothing of it was left in --out. One line, exit 1."""


@dataclass
class ReportInputs:
    """What the report reads and where it writes."""

    results: list[Path]
    out: Path
    asv_results: Path | None = None
    pytest_benchmark: list[Path] = field(default_factory=list)
    prices: Path | None = None
    targets: dict[str, float] = field(default_factory=dict)  # task → validation accuracy; defaults per task
    regression_pct: float = DEFAULT_REGRESSION_PCT
    repo: Path = Path(".")  # git checkout that knows the asv commits (for their messages)


def default_out_dir(root: Path = Path("reports")) -> Path:
    """reports/<date>-<host>/ for the machine making the report."""
    # A hostname is any bytes; the folder name printed and typed back must be plain text.
    return root / f"{datetime.now().strftime('%Y-%m-%d')}-{safe_name(socket.gethostname(), limit=64)}"


def parse_targets(items: list[str]) -> dict[str, float]:
    """`0.85` (10-class) or `TASK=ACC` items into task → target; bad values raise ReportError."""
    targets: dict[str, float] = {}
    known = sorted(default_targets())
    for item in items:
        task, _, value = item.rpartition("=")
        task = task or "10-class"
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if task not in known or not 0 < number <= 1:
            raise ReportError(f"--target {item!r}: use ACC in (0, 1] or TASK=ACC with TASK one of {', '.join(known)}")
        targets[task] = number
    return targets


def check_inputs(inputs: ReportInputs) -> dict[str, float]:
    """Fail early, before anything is written, on paths that do not exist or a bad prices file; return the prices."""
    if problem := missing_results(inputs.results) or folder_problem(inputs.out, "--out"):
        raise ReportError(problem)
    if inputs.asv_results and not inputs.asv_results.is_dir():
        raise ReportError(f"--asv-results {inputs.asv_results} is not a directory; pass asv's results_dir (.asv/results)")
    for path in inputs.pytest_benchmark:
        if not path.is_file():
            raise ReportError(f"--pytest-benchmark {path} is not a file; pass the JSON from pytest --benchmark-json FILE")
    if inputs.prices is None:
        return {}
    if not inputs.prices.is_file():
        raise ReportError(f"--prices {inputs.prices} is not a file; see reports/README.md for the format")
    try:
        return load_prices(inputs.prices)
    except PriceError as exc:
        raise ReportError(str(exc)) from None


def write_summary_csv(path: Path, cases: list[Case]) -> None:
    """Medians, quartiles, min, max and n of every registry metric per case and machine."""
    metrics = METRICS
    header = ["task", "label", "framework", "model", "device", "machine", "hostname", "machine_id", "case_key", "runs", "ok_runs"]
    header += [f"{m.key}_{s}" for m in metrics for s in ("median", "q1", "q3", "min", "max", "n")]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for c in cases:
            row: list[Any] = [c.task, c.label, c.spec.framework, c.spec.model, c.spec.device, c.where, c.machine.hostname,
                              c.machine.machine_id, c.case_key, len(c.records), len(c.ok)]
            for m in metrics:
                s = c.stats(m)
                row += [s.median, s.q1, s.q3, s.min, s.max, s.n] if s else ["", "", "", "", "", 0]
            writer.writerow(row)


def _jinja() -> jinja2.Environment:
    # Autoescape everything: hostnames, errors and commit messages come from files anyone can write.
    environment = jinja2.Environment(loader=jinja2.PackageLoader("suite", "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.globals["inf"] = math.inf
    environment.filters["utc"] = _utc
    return environment


def _utc(ms: int | None) -> str:
    # asv stores commit dates as JavaScript timestamps (ms since the epoch).
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M") if ms else "—"


def _pareto(cases: list[Case], images: sections.Images) -> dict[str, Any]:
    """The accuracy-vs-speed figure and, per task, every case with both figures (most accurate first), front marked."""
    acc, speed = METRIC_BY_KEY["test_accuracy"], METRIC_BY_KEY["train_samples_per_s"]
    fronts = {t: pareto_front([c for c in cases if c.task == t], speed, acc) for t in sorted({c.task for c in cases})}
    points: dict[str, list[dict[str, Any]]] = {}
    for task, front in fronts.items():
        measured = [(c, a, s) for c in cases if c.task == task and (a := c.stats(acc)) and (s := c.stats(speed))]
        points[task] = [{"label": c.label, "acc": acc.format(a.median), "speed": speed.format(s.median),
                         "front": c in front} for c, a, s in sorted(measured, key=lambda item: -item[1].median)]
    return {"pareto_img": images.add("accuracy-vs-speed", plots.pareto_figure(cases, fronts)), "pareto_points": points}


def _write_pages(out: Path, inputs: ReportInputs, records: list[RunRecord], problems: list[str], prices: dict[str, float],
                 targets: dict[str, float]) -> None:
    """index.html, its PNGs and summary.csv, into `out`."""
    images = sections.Images(out)
    cases = group_cases(records)
    ok_cases = [c for c in cases if c.ok]
    hardware = sections.hardware_section(cases, prices, inputs.prices, targets, images)
    gpu_sanity = sanity.gpu_checks(records) if any(r.spec["device"] == "cuda" for r in records) else None
    claims = check_claims(records)
    context = {
        "title": "fashionbench report",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sources": [printable(p) for p in inputs.results],  # a folder name need not be UTF-8; the page is
        "n_records": len(records), "n_ok": sum(r.status == "ok" for r in records),
        "n_cases": len(cases), "n_machines": len({c.machine.machine_id for c in cases}),
        "answer": sections.verdict_section(cases, hardware, gpu_sanity),
        "summary": sections.summary_section(cases, targets), "best_mark": sections.BEST_MARK,
        "failed": sections.failed_runs(cases),
        "claims": claims, "claims_overall": overall(claims), "claim_rules": RULES, "reference": REFERENCE,
        "side_by_side": sections.side_by_side_rows(ok_cases),
        "variants": sections.variants_section(cases), "variant_headers": sections.variant_headers(),
        "scaling": scaling.scaling_section(cases), "scaling_img": images.add("scaling", scaling.scaling_figure(ok_cases)),
        "frameworks_img": images.add("frameworks", plots.frameworks_figure(ok_cases)),
        **_pareto(ok_cases, images),
        "curves_img": images.add("training-curves", plots.curves_figure(ok_cases)),
        "curve_runs": sections.overfit_runs(ok_cases), "overfit_rule": OVERFIT_RULE,
        "per_class": sections.per_class_section(ok_cases, images),
        "hardware": hardware, "gpu_sanity": gpu_sanity,
        "commits": sections.commits_section(inputs.asv_results, inputs.pytest_benchmark, inputs.regression_pct,
                                            inputs.repo, images, problems),
        "environment": sections.environment_section(cases, targets),
        "problems": [printable(line) for line in problems],
    }
    write_summary_csv(out / "summary.csv", cases)
    (out / "index.html").write_text(_jinja().get_template("report.html.j2").render(**context), encoding="utf-8")


def build_report(inputs: ReportInputs) -> tuple[Path, list[str]]:
    """Read everything, write index.html, the PNGs and summary.csv; return the page and the skipped-input lines."""
    prices = check_inputs(inputs)
    records, problems = read_store(inputs.results)
    records = with_scaling_efficiency(records)
    if not records:
        detail = f" ({len(problems)} file(s) skipped: {problems[0]})" if problems else ""
        raise ReportError(f"no valid records in {' '.join(map(str, inputs.results))}{detail}; "
                          "run `fashionbench run` first")
    targets = {**default_targets(), **inputs.targets}
    existed = inputs.out.is_dir()
    try:
        # Written beside --out and renamed into place when complete: a full disk leaves no half report behind.
        with staged_folder(inputs.out) as out:
            _write_pages(out, inputs, records, problems, prices, targets)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise ReportError(f"--out {inputs.out} is not writable ({exc.strerror}); pass --out DIR with a writable "
                              "folder") from None
        kept = f"{inputs.out}/ is as it was" if existed else f"no {inputs.out}/ was made"
        raise ReportWriteError(f"cannot write the report into {inputs.out}/ ({exc.strerror or exc}); {kept} — free "
                               "space, or pass --out DIR on another disk") from None
    return inputs.out / "index.html", problems
