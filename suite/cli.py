"""`fashionbench` command line: list, run, show, probe, data."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from suite import data, probe, spec as specs
from suite.results import RecordError, RunRecord, ensure_writable
from suite.spec import SpecError

DEFAULT_RESULTS = Path("results")
TARGET_PARTS = ("harness", "variants", "quick", "noise")


class UsageError(Exception):
    """Bad input found before any case ran; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"fashionbench: error: {message}; see `{self.prog} --help`\n")


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not > 0")
    return value


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r} is not on or off")
    return text == "on"


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for all subcommands."""
    parser = _Parser(prog="fashionbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="frameworks, models, tasks and the devices this machine really has")

    run = sub.add_parser("run", help="train and evaluate a matrix of cases, one process each")
    run.add_argument("--framework", nargs="+", default=["torch", "keras"], metavar="NAME")
    run.add_argument("--model", nargs="+", default=["dense", "cnn"], metavar="NAME")
    run.add_argument("--device", nargs="+", default=None, metavar="NAME",
                     help="default cpu cuda; cuda cases are recorded as skipped, with the reason, where no GPU is usable")
    run.add_argument("--epochs", type=int, default=None, help="default 10 (1 with --quick)")
    run.add_argument("--quick", action="store_true",
                     help="the quick matrix: cpu only and 1 epoch unless --device/--epochs say otherwise")
    run.add_argument("--batch-size", type=int, nargs="+", default=[128])
    run.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1],
                     help="intra-op threads, the same for every framework (default: all logical cores)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--repeats", type=int, default=1, help="independent processes per case, seeds seed+i")
    run.add_argument("--limit", type=int, default=None, help="train on the first N samples of the seeded split")
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--dropout", type=float, default=None)
    run.add_argument("--batchnorm", action="store_true")
    run.add_argument("--augment", action="store_true", help="random flips and ±2 px shifts, same in both frameworks")
    run.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    run.add_argument("--init", choices=specs.INITS, default="framework")
    run.add_argument("--keras-backend", nargs="+", default=["tensorflow"], metavar="NAME",
                     help="Keras 3 backend for keras cases: tensorflow, jax, torch (each case in its own process)")
    speed = run.add_argument_group("speed settings (each accepts several values and becomes an axis of the plan)")
    speed.add_argument("--precision", nargs="+", default=["fp32"], metavar="NAME",
                       help="fp32, bf16, fp16-mixed, tf32; combinations a device cannot run are recorded as skipped")
    speed.add_argument("--compile", nargs="+", default=["none"], metavar="MODE",
                       help="torch.compile mode for torch cases: none, default, max-autotune")
    speed.add_argument("--jit-compile", nargs="+", default=["auto"], metavar="MODE",
                       help="Keras compile(jit_compile=...) for keras cases: auto (Keras decides), on, off")
    speed.add_argument("--channels-last", nargs="*", type=_on_off, default=[False], metavar="off|on",
                       help="channels-last memory format for the torch cnn (no value: on)")
    speed.add_argument("--steps-per-execution", nargs="+", type=int, default=[1], metavar="N",
                       help="Keras steps_per_execution for keras cases")
    run.add_argument("--targets", type=float, nargs="+", default=[], help="validation accuracies for time-to-accuracy")
    run.add_argument("--infer-batch-sizes", type=int, nargs="+", default=[1, 32, 256, 1024])
    run.add_argument("--timeout", type=_positive_float, default=3600.0, help="seconds per case before it is killed")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    run.add_argument("--data-dir", default=None)
    run.add_argument("--strict", action="store_true", help="exit non-zero if any case is skipped or fails")
    run.add_argument("--resume", action="store_true", help="run only cases not yet finished in --results")

    show = sub.add_parser("show", help="one table of what is recorded")
    show.add_argument("--results", type=Path, nargs="+", default=[DEFAULT_RESULTS])
    show.add_argument("--all", action="store_true", help="one row per run instead of medians per case")

    probe_cmd = sub.add_parser("probe", help="measure (or show the cached) peak GEMM FLOP/s used for MFU")
    probe_cmd.add_argument("--device", nargs="+", default=["cpu"])
    probe_cmd.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    probe_cmd.add_argument("--force", action="store_true", help="measure again even if cached")

    cal = sub.add_parser("calibrate", help="benchmark the harness: suite loop vs a bare loop, samplers on vs off")
    cal.add_argument("--framework", nargs="+", default=["torch", "keras"])
    cal.add_argument("--model", nargs="+", default=["dense"])
    cal.add_argument("--epochs", type=int, default=4)
    cal.add_argument("--batch-size", type=int, default=128)
    cal.add_argument("--limit", type=int, default=None)
    cal.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    cal.add_argument("--rounds", type=int, default=3, help="alternated repeats of each side")
    cal.add_argument("--only", choices=["harness", "sampling"], default=None)
    cal.add_argument("--timeout", type=_positive_float, default=3600.0)

    tgt = sub.add_parser("targets", help="the speed-targets benchmark: ratios, best-variant MFU, quick-matrix wall, "
                                         "repeat noise, each printed against its goal (takes ~15 min)")
    tgt.add_argument("--only", nargs="+", choices=TARGET_PARTS, default=list(TARGET_PARTS))
    tgt.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    tgt.add_argument("--rounds", type=int, default=3, help="alternated repeats of each side of a ratio")
    tgt.add_argument("--results", type=Path, default=Path("results/targets"),
                     help="where the screening and repeat cases are stored (for show/report)")
    tgt.add_argument("--timeout", type=_positive_float, default=3600.0)

    doctor = sub.add_parser("doctor", help="check the data set, frameworks, GPU access and results folders")
    doctor.add_argument("--results", type=Path, nargs="+", default=[DEFAULT_RESULTS])
    doctor.add_argument("--data-dir", default=None)

    data_cmd = sub.add_parser("data", help="find and verify Fashion-MNIST (or download it into the cache)")
    data_cmd.add_argument("--data-dir", default=None)
    data_cmd.add_argument("--download", action="store_true", help="fetch from the upstream mirrors into the cache")

    report = sub.add_parser("report", help="one self-contained HTML report (plots embedded) + PNGs + summary.csv")
    report.add_argument("--results", type=Path, nargs="+", default=[DEFAULT_RESULTS], metavar="DIR",
                        help="result dirs/files; merge machines by copying their result folders under one dir")
    report.add_argument("--asv-results", type=Path, default=None, metavar="DIR", help="asv results_dir, e.g. .asv/results")
    report.add_argument("--pytest-benchmark", type=Path, nargs="+", default=[], metavar="FILE",
                        help="JSON from pytest --benchmark-json (or .benchmarks/*/*.json)")
    report.add_argument("--prices", type=Path, default=None, metavar="FILE", help="USD/hour per machine or device (YAML or CSV)")
    report.add_argument("--target", nargs="+", default=[], metavar="ACC",
                        help="validation accuracy for time/cost/energy to target: ACC (10-class) or TASK=ACC")
    report.add_argument("--regression-threshold", type=_positive_float, default=5.0, metavar="PCT",
                        help="percent worse than the previous commits that marks an asv regression")
    report.add_argument("--out", type=Path, default=None, help="output dir (default reports/<date>-<host>/)")

    compare = sub.add_parser("compare", help="compare two result sets case by case; exit 1 on a regression (CI gate)")
    compare.add_argument("base", type=Path, metavar="BASE", help="results dir or file (the reference)")
    compare.add_argument("new", type=Path, metavar="NEW", help="results dir or file (the candidate)")
    compare.add_argument("--metric", nargs="+", default=None, metavar="NAME",
                         help="figures to compare and gate on (default: all but GPU util and time to target): "
                              "test_accuracy train_samples_per_s first_epoch_s steady_epoch_s infer_samples_per_s "
                              "latency_p50_ms latency_p99_ms peak_rss_mib peak_device_mib gpu_util_pct "
                              "energy_per_1k_j mfu_pct recorded_tta_s warmup_s")
    compare.add_argument("--threshold", nargs="+", default=["5%"], metavar="PCT",
                         help="allowed relative change: 5%% for all, METRIC=2%% for one")
    return parser


def plan_from_args(args: argparse.Namespace) -> list[specs.RunSpec]:
    """Expand the run flags into specs, rejecting bad values before anything starts."""
    devices = args.device or (["cpu"] if args.quick else ["cpu", "cuda"])
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 10)
    axes = {
        "framework": args.framework, "model": args.model, "device": devices,
        "batch_size": args.batch_size, "threads": args.threads, "keras_backend": args.keras_backend,
        "precision": args.precision, "compile": args.compile, "jit_compile": args.jit_compile,
        "channels_last": args.channels_last or [True], "steps_per_execution": args.steps_per_execution,
    }
    for name, values in axes.items():
        if len(set(values)) != len(values):
            raise UsageError(f"--{name.replace('_', '-')} lists a value twice: {' '.join(map(str, values))}")
    return specs.grid(
        axes, repeats=args.repeats, epochs=epochs, seed=args.seed, limit=args.limit, lr=args.lr,
        dropout=args.dropout, batchnorm=args.batchnorm, augment=args.augment, early_stopping=args.early_stopping,
        init=args.init, targets=tuple(args.targets),
        infer_batch_sizes=tuple(args.infer_batch_sizes),
    )


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def progress_line(index: int, total: int, record: RunRecord) -> str:
    """One line per finished case."""
    spec = record.run_spec
    head = f"[{index}/{total}] {spec.label} seed={spec.seed}: {record.status}"
    if record.status != "ok":
        return f"{head} — {record.error}"
    return (f"{head}  test_acc={_fmt(record.test_accuracy, '.4f')}  train={_fmt(record.train_steady_samples_per_s)} "
            f"samples/s  first_epoch={_fmt(record.first_epoch_s, '.1f')} s  wall={_fmt(record.wall_s, '.1f')} s")


def cmd_run(args: argparse.Namespace) -> int:
    """Run the plan; a bad case never stops the others."""
    from suite.runner import run_plan
    from suite.table import summary_table

    plan = plan_from_args(args)
    data.load(args.data_dir)  # a missing or corrupt data set fails here, once, not in every case
    ensure_writable(args.results)
    print(f"running {len(plan)} case(s), one process each; results → {args.results}/", flush=True)

    def report(index: int, total: int, record: RunRecord, path: Path) -> None:
        print(progress_line(index, total, record), flush=True)

    outcome = run_plan(plan, args.results, args.timeout, args.data_dir, resume=args.resume, on_record=report)
    if outcome.skipped_as_done:
        print(f"--resume: {outcome.skipped_as_done} case(s) already finished were not run again")
    if outcome.interrupted:
        print(f"interrupted: {len(outcome.records)} finished case(s) kept in {args.results}/; "
              f"run the same command with --resume to finish the rest", file=sys.stderr)
        return 130
    if outcome.records:
        print(summary_table(outcome.records).to_string(index=False))
    bad = [r for r in outcome.records if r.status != "ok"]
    if args.strict and bad:
        print(f"--strict: {len(bad)} case(s) not ok", file=sys.stderr)
        return 1
    return 1 if any(r.status in ("error", "timeout") for r in outcome.records) else 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print the store as a table; unreadable files are named on stderr and skipped."""
    from suite.results import read_store
    from suite.table import runs_table, summary_table

    records, problems = read_store(args.results)
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    if not records:
        print(f"no records in {' '.join(map(str, args.results))}; run `fashionbench run` first", file=sys.stderr)
        return 1
    table = runs_table(records) if args.all else summary_table(records)
    print(table.to_string(index=False))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print what can be benchmarked and which devices this machine really has."""
    from importlib import metadata

    from suite.models import param_count
    from suite.nvml import gpu_inventory
    from suite.runner import no_gpu_reason

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "NOT INSTALLED"

    print("frameworks:")
    for name in ("torch", "keras"):
        print(f"  {name:<8} {version(name)}")
    print("keras backends (--keras-backend):")
    for name in specs.KERAS_BACKENDS:
        print(f"  {name:<10} {version(name)}")
    print(f"speed settings: --precision {' '.join(specs.PRECISIONS)} | --compile {' '.join(specs.TORCH_COMPILE_MODES)} "
          f"(torch) | --jit-compile {' '.join(specs.JIT_COMPILE)} (keras) | --channels-last (torch cnn) | "
          f"--steps-per-execution N (keras)")
    print("models:")
    for model in specs.MODELS:
        params = param_count(specs.RunSpec(framework="torch", model=model))
        print(f"  {model:<8} task={specs.TASK_OF_MODEL[model]:<16} params={params:,}")
    print("devices:")
    print(f"  cpu      {os.cpu_count()} logical cores")
    for gpu in gpu_inventory():
        print(f"  cuda:{gpu['index']}   {gpu['name']} driver {gpu['driver']}, {gpu['memory_total_bytes'] / 2**30:.1f} GiB")
    if reason := no_gpu_reason():
        print(f"  cuda     not available here ({reason}); cuda cases are recorded as skipped")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    """Show the peak FLOP/s per device, measuring it first when not cached (or --force)."""
    from suite.machine import fingerprint
    from suite.runner import case_env, run_worker

    machine = fingerprint()
    for device in args.device:
        specs._check_choice("device", device, specs.DEVICES)
        entry = None if args.force else probe.cached(machine.machine_id, device, args.threads)
        if entry is None:
            env = case_env(specs.RunSpec(framework="torch", model="dense", device=device, threads=args.threads))
            result = run_worker({"probe": {"device": device, "threads": args.threads}}, env, 600)
            if result.output is None:
                print(f"{device}: probe failed — {result.stderr_tail.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            entry = result.output
            if "unavailable" not in entry:
                probe.store(machine.machine_id, device, args.threads, entry)
        if "unavailable" in entry:
            print(f"{device}: unavailable — {entry['unavailable']}")
            continue
        emulated = entry.get("emulated") or {}
        rates = ", ".join(f"{k}={v / 1e9:,.1f} GFLOP/s" if v else f"{k}={'emulated' if k in emulated else 'unsupported'}"
                          for k, v in entry["flops_per_s"].items())
        print(f"{device} ({args.threads} threads, {entry['size']}×{entry['size']} GEMM): {rates}")
        for dtype, reason in emulated.items():
            print(f"  {dtype}: {reason}")
    print(f"cache: {probe.cache_file()}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Locate (or download) the data set and verify its checksums."""
    if args.download:
        data.download()
    dataset = data.load(args.data_dir)
    print(f"Fashion-MNIST verified (sha256 of decompressed IDX) in {dataset.source_dir}: "
          f"{len(dataset.train_labels):,} train / {len(dataset.test_labels):,} test images")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report; skipped input files are named on stderr."""
    from suite import report

    try:
        inputs = report.ReportInputs(
            results=args.results, out=args.out or report.default_out_dir(), asv_results=args.asv_results,
            pytest_benchmark=args.pytest_benchmark, prices=args.prices, targets=report.parse_targets(args.target),
            regression_pct=args.regression_threshold)
        page, problems = report.build_report(inputs)
    except report.ReportError as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"report: {page}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the comparison table; exit 0 ok, 1 regression, 2 bad input."""
    from suite import compare

    try:
        table, problems, code = compare.run(args.base, args.new, args.metric, args.threshold)
    except compare.CompareError as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return compare.EXIT_BAD_INPUT
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(table)
    return code


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Print the harness ratio and the sampling overhead per framework and model."""
    from suite import calibrate

    data.load()
    if args.rounds < 1:
        raise UsageError(f"--rounds {args.rounds} is out of range; valid: >= 1")
    for framework in args.framework:
        for model in args.model:
            spec = specs.RunSpec(framework=framework, model=model, epochs=args.epochs, batch_size=args.batch_size,
                                 limit=args.limit, threads=args.threads)
            if spec.epochs < 2:
                raise UsageError("--epochs must be >= 2: steady-state throughput excludes epoch 1")
            if args.only in (None, "harness"):
                print(calibrate.describe("harness", calibrate.harness(spec, args.rounds, args.timeout)), flush=True)
            if args.only in (None, "sampling"):
                print(calibrate.describe("sampling", calibrate.sampler_overhead(spec, args.rounds, args.timeout)), flush=True)
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    """Run the speed-targets benchmark; exit 1 when any target is missed."""
    from suite import targets

    if args.rounds < 1:
        raise UsageError(f"--rounds {args.rounds} is out of range; valid: >= 1")
    data.load()
    ensure_writable(args.results)
    verdicts = targets.run_targets(args.results, args.threads, args.rounds, args.timeout, set(args.only),
                                   lambda line: print(line, flush=True))
    missed = [v for v in verdicts if not v.met]
    print(f"{len(verdicts) - len(missed)}/{len(verdicts)} targets met; cases stored in {args.results}/")
    return 1 if missed else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """List every problem found (one line each); exit 1 if there is any."""
    from suite.results import read_store
    from suite.runner import no_gpu_reason

    problems: list[str] = []
    try:
        found = data.load(args.data_dir)
        print(f"ok   data set verified in {found.source_dir}")
    except data.DataError as exc:
        problems.append(f"data: {exc}")
    gpu = no_gpu_reason()
    print(f"info cuda: {'usable GPU listed by NVML' if gpu is None else 'unavailable — ' + gpu}")
    for directory in args.results:
        if not directory.exists():
            print(f"info {directory}: no results yet")
            continue
        records, bad = read_store([directory])
        problems += [f"corrupt: {line}" for line in bad]
        leftovers = sorted(directory.rglob(".*.tmp"))
        problems += [f"leftover temp file {p} (an interrupted write; safe to delete)" for p in leftovers]
        statuses = ", ".join(f"{s}={sum(r.status == s for r in records)}" for s in sorted({r.status for r in records}))
        print(f"ok   {directory}: {len(records)} readable record(s) {statuses}")
    for line in problems:
        print(f"FAIL {line}")
    return 1 if problems else 0


COMMANDS = {"run": cmd_run, "show": cmd_show, "list": cmd_list, "probe": cmd_probe, "data": cmd_data, "calibrate": cmd_calibrate, "doctor": cmd_doctor,
            "targets": cmd_targets,
            "report": cmd_report, "compare": cmd_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; expected failures print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (SpecError, UsageError, data.DataError, RecordError) as exc:
        print(f"fashionbench: error: {exc}", file=sys.stderr)
        return 2
