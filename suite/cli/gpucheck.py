"""`fashionbench gpu-check OUTDIR`: the one-shot check a person runs on a fresh GPU box (tools/gpu-check.sh calls it).

It prints what the box has, measures the GEMM probe, runs the gpu-marked tests (with the check's data dir and probes)
and the plan of suite/bench/gpucheck.py within its budget, then writes at most 7 files into OUTDIR: found.json,
gpu-tests.txt, probe.json, records.tar.gz, report.html, summary.csv and summary.md (the one-page verdict).
`--dry-run` prints the plan and its estimate only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from suite.bench import gpucheck
from suite.bench.gpucheck import Planned
from suite.cli.common import add_data_dir_argument, path_arg
from suite.cli.progress import finished_line
from suite.core import data
from suite.record.schema import RunRecord
from suite.record.store import ensure_writable, read_store, write_record

NAME = "gpu-check"
HELP = "one-shot GPU check: what the box has, gpu tests, probe, an 8-minute plan, report and summary into OUTDIR"
REPO = Path(__file__).resolve().parents[2]
TESTS_TIMEOUT_FACTOR = 2.0  # the tests are killed at twice their estimate: slow ones are reported, hung ones cut short
EXIT_CODES = {1: "the GPU sanity verdict is fail, or a gpu-marked test failed or was killed"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The output folder, dry run, data location."""
    parser.add_argument("outdir", type=path_arg, metavar="OUTDIR",
                        help="folder for the 7 files (created; files of an earlier check are replaced)")
    parser.add_argument("--dry-run", action="store_true", help="print what the box has, the plan and its estimated time")
    add_data_dir_argument(parser)


def print_plan(cases: list[Planned]) -> None:
    """The steps and each plan part with its cases and estimates, in run order, and the total against the budget."""
    print(f"plan: {len(cases)} case(s), one process each, {gpucheck.EPOCHS} epochs at batch {gpucheck.BATCH_SIZE} on the full "
          f"training split unless said (cpu: --limit {gpucheck.CPU_LIMIT}), inference at batch "
          f"{' and '.join(map(str, gpucheck.INFER_BATCH_SIZES))}, NVML sampled every 150 ms; estimates fitted to the "
          "walls of the 2026-12-04 H200 run (suite/bench/gpucheck.py)")
    threads = cases[0].spec.threads if cases else None
    for step, seconds in gpucheck.steps_s(threads).items():
        print(f"  {seconds:5.0f} s  [{step}]")
    for part in gpucheck.PLAN_PARTS:
        members = [c for c in cases if c.part == part.name]
        print(f"  {sum(c.estimate_s for c in members):5.0f} s  [{part.name}] {part.why}")
        for case in members:
            epochs = f" epochs={case.spec.epochs}" if case.spec.epochs != gpucheck.EPOCHS else ""
            print(f"  {case.estimate_s:9.0f} s  {case.spec.label}{epochs}")
    total = gpucheck.total_estimate_s(cases, threads)
    print(f"estimated total: {total:.0f} s ({total / 60:.1f} min; budget {gpucheck.BUDGET_S:.0f} s, "
          f"{gpucheck.BUDGET_S - total:.0f} s left for new parts)")


def print_found(found: dict) -> None:
    """The box in a few lines."""
    for gpu in found["gpus"] or [{"name": "no GPU listed by NVML"}]:
        print(f"gpu: {gpu.get('name')} {(gpu.get('memory_total_bytes') or 0) / 2**30:.0f} GiB")
    print(f"driver {found.get('driver', '—')}, NVML {found.get('nvml')}, CUDA driver {found.get('cuda_driver', '—')}, "
          f"{found.get('cpu_count')} CPUs")
    print("packages: " + ", ".join(f"{k} {v}" for k, v in found["packages"].items()))


def run_gpu_tests(out: Path, data_dir: Path, threads: int) -> str:
    """The gpu-marked tests of the checkout, output kept in gpu-tests.txt; returns pytest's last line. They find the data
    where the check found it, and start their probe cache from the check's fresh probe.json."""
    files = [f for f in gpucheck.GPU_TEST_FILES if (REPO / f).is_file()]
    if not files:
        (out / "gpu-tests.txt").write_text(f"no tests/ folder under {REPO}: run from a checkout\n")
        return "not run (no tests/ in this checkout)"
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files]
    env = {**os.environ, gpucheck.DATA_ENV: str(data_dir), gpucheck.PROBE_SEED_ENV: str(out / "probe.json")}
    timeout_s = TESTS_TIMEOUT_FACTOR * gpucheck.gpu_tests_estimate_s(threads)
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
        text, last = done.stdout + done.stderr, (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    except subprocess.TimeoutExpired as exc:
        text, last = f"{exc.stdout or ''}", f"killed after {timeout_s:.0f} s"
    (out / "gpu-tests.txt").write_text(f"$ {' '.join(command)}\n{text}")
    return last.strip("= ")


def run_probes(out: Path, threads: int) -> dict:
    """The GEMM peaks MFU divides by, measured afresh on cuda and cpu."""
    from suite.run.runner import probe_entry

    probes = {device: probe_entry(device, threads, 300, force=True) for device in ("cuda", "cpu")}
    (out / "probe.json").write_text(json.dumps(probes, indent=1))
    return probes


def run_cases(cases: list[Planned], results: Path, data_dir: Path, deadline: float) -> list[RunRecord]:
    """Each case in its own process while the budget lasts; cases that would overrun it are recorded as skipped."""
    from suite.run.executors import LocalExecutor
    from suite.run.runner import failure_record, run_plan

    records: list[RunRecord] = []
    for index, case in enumerate(cases, 1):
        if time.monotonic() + case.estimate_s > deadline:
            record = failure_record(case.spec, "skipped", f"not run: the check's {gpucheck.BUDGET_S:.0f} s budget "
                                    "would be exceeded", None)
            write_record(record, results)
        else:
            executor = LocalExecutor(gpucheck.case_timeout_s(case), str(data_dir), batch_sweep=case.batch_sweep)
            outcome = run_plan([case.spec], results, executor)
            if outcome.interrupted or not outcome.records:
                break
            record = outcome.records[0]
        records.append(record)
        print(f"{finished_line(index, len(cases), record)}  (estimated {case.estimate_s:.0f} s)", flush=True)
    return records


def write_outputs(out: Path, results: Path, run_info: dict) -> str:
    """records.tar.gz, report.html, summary.csv and summary.md; returns the sanity verdict."""
    from suite.report.gpu_summary import CheckRun, summary_markdown
    from suite.report.page import ReportInputs, build_report
    from suite.report.sanity import gpu_checks, overall

    with tarfile.open(out / "records.tar.gz", "w:gz") as archive:
        archive.add(results, arcname="results")
    records, _ = read_store([results])
    with tempfile.TemporaryDirectory(prefix="fashionbench-report-") as tmp:
        page, _ = build_report(ReportInputs(results=[results], out=Path(tmp)))
        shutil.copy(page, out / "report.html")
        shutil.copy(Path(tmp) / "summary.csv", out / "summary.csv")
    checks = gpu_checks(records)
    run = CheckRun(records=records, checks=checks, **run_info)
    (out / "summary.md").write_text(summary_markdown(run), encoding="utf-8")
    return overall(checks)


def main(args: argparse.Namespace) -> int:
    """Dry run: the box and the plan. Otherwise the whole check; exit 1 when a sanity rule or a gpu test failed."""
    t0 = time.monotonic()
    cases = gpucheck.planned()
    found = gpucheck.environment()
    print_found(found)
    print_plan(cases)
    if args.dry_run:
        return 0
    # A missing data set fails here, once, before anything runs; absolute, because the tests run from the checkout.
    data_dir = data.load(args.data_dir).source_dir.resolve()
    out = ensure_writable(args.outdir, "OUTDIR", usage="`fashionbench gpu-check DIR`")  # a positional, no --results
    (out / "found.json").write_text(json.dumps(found, indent=1))
    probes = run_probes(out, cases[0].spec.threads)
    tests_line = run_gpu_tests(out, data_dir, cases[0].spec.threads)
    print(f"gpu-marked tests: {tests_line}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fashionbench-gpu-check-") as tmp:
        results = Path(tmp) / "results"
        deadline = t0 + gpucheck.BUDGET_S - gpucheck.STEPS_S["report"]
        run_cases(cases, results, data_dir, deadline)
        info = {"found": found, "tests_line": tests_line, "probes": probes, "cases": cases,
                "wall_s": time.monotonic() - t0}
        verdict = write_outputs(out, results, info)
    print(f"GPU sanity: {verdict}; gpu-marked tests: {tests_line}; {time.monotonic() - t0:.0f} s; see {out}/summary.md")
    return 1 if verdict == "fail" or " failed" in tests_line or "killed" in tests_line else 0
