"""`fashionbench run`: expand the flags into a plan and run it, one process per case."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from suite.cli.common import (
    DEFAULT_RESULTS,
    UsageError,
    add_data_dir_argument,
    add_threads_argument,
    add_timeout_argument,
    finite_float,
    nothing_run_yet,
    on_off,
    path_arg,
    warn_threads_above_cores,
)
from suite.cli.planfile import builtin_plans
from suite.core import data
from suite.core import spec as specs
from suite.core.frameworks import SETTINGS
from suite.record.store import TRACE_FOLDER, ensure_writable

if TYPE_CHECKING:
    from suite.cli.progress import PlanView
    from suite.run.executors import Executor
    from suite.run.runner import PlanOutcome

HELP = "train and evaluate a matrix of cases, one process each"


EXIT_CODES = {1: "a case failed or timed out; with --strict also when one was skipped; or a record could not be written",
              130: "interrupted (Ctrl-C, SIGTERM): the finished cases are kept, `--resume` runs the rest"}


def add_arguments(run: argparse.ArgumentParser) -> None:
    """The run flags: plan axes, training settings, speed settings, where results go."""
    run.add_argument("--plan", default=None, metavar="NAME|FILE",
                     help=f"read flags from a TOML plan file (keys are these flags without --) or a built-in plan: "
                          f"{', '.join(builtin_plans())}; flags given on the command line win (default: none)")
    run.add_argument("--framework", nargs="+", default=["torch", "keras"], metavar="NAME",
                     help=f"frameworks, an axis of the plan: {', '.join(specs.FRAMEWORKS)}")
    run.add_argument("--model", nargs="+", default=["dense", "cnn"], metavar="NAME",
                     help=f"models, an axis of the plan: {', '.join(specs.MODELS)} (`fashionbench list`)")
    run.add_argument("--device", nargs="+", default=None, metavar="NAME",
                     help="cpu, cuda or auto (default: auto, which is cpu, and cuda where NVML lists a GPU); an explicit "
                          "cuda where no GPU is usable is recorded as skipped, with the reason")
    run.add_argument("--epochs", type=int, default=None,
                     help=f"training epochs per case, 1..{specs.EPOCHS_MAX} (default: 10, 1 with --quick)")
    run.add_argument("--quick", action="store_true",
                     help="the quick matrix: cpu only and 1 epoch unless --device/--epochs say otherwise")
    run.add_argument("--batch-size", type=int, nargs="+", default=[128], metavar="N",
                     help=f"training batch size per device, 1..{specs.BATCH_SIZE_MAX}, an axis of the plan")
    add_threads_argument(run, several=True)
    run.add_argument("--seed", type=int, default=0, help="seed of the split, batch order and weights")
    run.add_argument("--repeats", type=int, default=1,
                     help=f"independent processes per case, seeds seed+i, 1..{specs.REPEATS_MAX}")
    run.add_argument("--limit", type=int, default=None, metavar="N",
                     help="train (and validate) on the first N samples of the seeded split (default: all of it)")
    run.add_argument("--lr", type=finite_float, default=1e-3, help="Adam learning rate, 0 < LR <= 100")
    run.add_argument("--dropout", type=finite_float, default=None, metavar="RATE",
                     help="dropout rate before the output layer, 0..0.95 (default: the model's own, `fashionbench list`)")
    run.add_argument("--batchnorm", action="store_true", help="batch normalisation after every hidden layer")
    run.add_argument("--augment", action="store_true", help="random flips and ±2 px shifts, same in both frameworks")
    run.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                     help="stop after PATIENCE epochs without a better validation loss (default: train every epoch)")
    run.add_argument("--init", choices=specs.INITS, default="framework",
                     help="weights: framework (each framework's own initialiser) or shared (the same numbers in all)")
    add_speed_arguments(run.add_argument_group(
        "speed and framework settings (each accepts several values and becomes an axis of the plan; a framework's own "
        "settings are dropped from the other frameworks' cases)"))
    add_scaling_arguments(run.add_argument_group("data-parallel scaling (docs/scaling.md)"))
    run.add_argument("--targets", type=finite_float, nargs="+", default=[], metavar="ACC",
                     help="validation accuracies for time-to-accuracy, each 0..1 (default: the model's own, "
                          "`fashionbench list`)")
    run.add_argument("--infer-batch-sizes", type=int, nargs="+", default=[1, 32, 256, 1024], metavar="N",
                     help=f"batch sizes of the inference throughput and latency measurements, each 1..{specs.INFER_BATCH_MAX}")
    add_timeout_argument(run)
    run.add_argument("--results", type=path_arg, default=DEFAULT_RESULTS, metavar="DIR",
                     help="folder the records are written to, one JSON file per run")
    add_data_dir_argument(run)
    add_profile_arguments(run.add_argument_group("GPU profiling (docs/gpu-speed.md)"))
    run.add_argument("--strict", action="store_true", help="exit non-zero if any case is skipped or fails")
    run.add_argument("--resume", action="store_true", help="run only cases not yet finished in --results")
    run.add_argument("--quiet", action="store_true", help="no progress and no per-case lines: only the final table and errors")
    add_executor_arguments(run.add_argument_group("where cases run (docs/scaling.md)"))


def add_scaling_arguments(scaling: argparse._ArgumentGroup) -> None:
    """--devices and --lr-scaling: data-parallel replicas per case."""
    scaling.add_argument("--devices", type=int, nargs="+", default=[1], metavar="N",
                         help=f"data-parallel replicas per case, 1..{specs.MAX_DEVICES} (an axis): torch via torchrun + DDP, Keras via "
                              "MirroredStrategy (TensorFlow) or keras.distribution.DataParallel (JAX); on cpu each "
                              "replica gets --threads/N cores. --batch-size is per replica")
    scaling.add_argument("--lr-scaling", choices=specs.LR_SCALING, default="none",
                         help="learning rate at N replicas: none (--lr) or linear (N x --lr)")


def add_profile_arguments(profile: argparse._ArgumentGroup) -> None:
    """--trace and --batch-sweep: what a CUDA case profiles beyond its own figures."""
    profile.add_argument("--trace", action="store_true",
                         help="write a Chrome/Perfetto trace of each case's profiled steady steps into RESULTS/traces/, "
                              "named in the record (open in ui.perfetto.dev or chrome://tracing); local executor only")
    profile.add_argument("--batch-sweep", type=int, nargs="+", default=[], metavar="N",
                         help="torch CUDA cases also time their eager step and its launch-free floor at these batch sizes "
                              "(e.g. 500 2048 8192: where the model stops being launch-bound); local executor only; "
                              "default: no sweep")


def add_speed_arguments(speed: argparse._ArgumentGroup) -> None:
    """--precision and one flag per framework-specific setting of the framework registry."""
    speed.add_argument("--precision", nargs="+", default=["fp32"], metavar="NAME",
                       help="fp32, bf16, fp16-mixed, tf32; combinations a device cannot run are recorded as skipped")
    for name, (_, setting) in SETTINGS.items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(setting.default, bool):
            speed.add_argument(flag, nargs="*", type=on_off, default=[setting.default], metavar="off|on",
                               help=f"{setting.help} (no value: on) (default: {'on' if setting.default else 'off'})")
        else:
            speed.add_argument(flag, nargs="+", type=type(setting.default), default=[setting.default],
                               metavar=setting.metavar, help=setting.help)


def add_executor_arguments(where: argparse._ArgumentGroup) -> None:
    """The executor flags: here, or as Ray tasks on a cluster."""
    where.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: one case after another here; ray: each case a Ray task on a cluster node")
    where.add_argument("--ray-address", type=ray_address, default=None, metavar="ADDR",
                       help="the Ray head's HOST:PORT or auto (default: $RAY_ADDRESS, else auto)")
    where.add_argument("--on", nargs="+", default=None, metavar="KIND",
                       help="run the plan on nodes of each machine kind (Ray resource kind:KIND) (default: any node)")
    where.add_argument("--every-kind", action="store_true", help="run the plan once on every machine kind in the cluster")
    where.add_argument("--per-node", type=int, default=1, metavar="N",
                       help="timed cases a node runs at once (1: no case times another's load)")
    where.add_argument("--retries", type=int, default=1, metavar="N",
                       help="times a case is retried on another node of its kind when its node dies")


def ray_address(text: str) -> str:
    """argparse type of --ray-address: auto or HOST:PORT with a port in 1..65535, refused before anything starts."""
    from suite.run.ray_cluster import address_problem

    if text != "auto" and (problem := address_problem(text)):
        raise argparse.ArgumentTypeError(problem)
    return text


def plan_from_args(args: argparse.Namespace) -> list[specs.RunSpec]:
    """Expand the run flags into specs, rejecting bad values before anything starts."""
    devices = resolve_devices(args.device or (["cpu"] if args.quick else ["auto"]))
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 10)
    axes = {
        "framework": args.framework, "model": args.model, "device": devices,
        "batch_size": args.batch_size, "threads": args.threads, "precision": args.precision,
        # A bare off|on flag (`--channels-last`) gives no values: it means on.
        **{name: getattr(args, name) or [True] for name in SETTINGS},
        "devices": args.devices,
    }
    for name, values in axes.items():
        if len(set(values)) != len(values):
            raise UsageError(f"--{name.replace('_', '-')} lists a value twice: {' '.join(map(str, values))}")
    return specs.grid(
        axes, repeats=args.repeats, epochs=epochs, seed=args.seed, limit=args.limit, lr=args.lr,
        dropout=args.dropout, batchnorm=args.batchnorm, augment=args.augment, early_stopping=args.early_stopping,
        init=args.init, targets=tuple(args.targets), lr_scaling=args.lr_scaling,
        infer_batch_sizes=tuple(args.infer_batch_sizes),
    )


def resolve_devices(names: list[str]) -> list[str]:
    """`auto` stands for the devices this machine really has; explicit names are kept as given."""
    if unknown := [name for name in names if name not in (*specs.DEVICES, "auto")]:
        raise UsageError(f"--device {unknown[0]!r} is not known; choose from: {', '.join(specs.DEVICES)}, auto")
    if "auto" not in names:
        return names
    from suite.run.runner import present_devices

    present = present_devices()
    return list(dict.fromkeys(d for name in names for d in (present if name == "auto" else [name])))


def cap_limit(plan: list[specs.RunSpec], dataset: data.FashionMNIST) -> list[specs.RunSpec]:
    """A --limit above what a model's training split holds means all of it: recorded as no limit, said once."""
    notes: dict[str, str] = {}
    capped = []
    for spec in plan:
        available = data.train_size(dataset, spec.task)
        if spec.limit is not None and spec.limit > available:
            notes[spec.model] = (f"fashionbench: note: --limit {spec.limit:,} is more than the {available:,} training "
                                 f"samples of the {spec.model} split; using all {available:,} (recorded as no limit)")
            spec = replace(spec, limit=None)
        capped.append(spec)
    for note in notes.values():
        print(note, file=sys.stderr)
    return capped


def executor_from_args(args: argparse.Namespace, view: PlanView | None = None) -> Executor:
    """The executor the flags ask for, reporting progress to `view`; cluster flags without --executor ray are refused,
    not ignored."""
    from suite.run.executors import LocalExecutor
    from suite.run.ray_cluster import RayExecutor

    if args.trace and args.executor != "local":
        raise UsageError("--trace writes its files on the machine each case runs on; use --executor local with --trace")
    if args.batch_sweep and args.executor != "local":
        raise UsageError("--batch-sweep is measured by the local executor; use --executor local with --batch-sweep")
    if bad := [n for n in args.batch_sweep if not 1 <= n <= specs.TRAIN_SAMPLES["10-class"]]:
        raise UsageError(f"--batch-sweep {bad[0]} is out of range; valid: 1..{specs.TRAIN_SAMPLES['10-class']}")
    cluster_flags = {"--ray-address": args.ray_address is not None, "--on": args.on is not None,
                     "--every-kind": args.every_kind, "--per-node": args.per_node != 1, "--retries": args.retries != 1}
    if args.executor == "local":
        if used := [flag for flag, given in cluster_flags.items() if given]:
            raise UsageError(f"{used[0]} needs --executor ray")
        return LocalExecutor(args.timeout, args.data_dir, on_start=view and view.start, on_event=view and view.event,
                             trace_dir=args.results / TRACE_FOLDER if args.trace else None,
                             batch_sweep=tuple(args.batch_sweep))
    if args.on and args.every_kind:
        raise UsageError("--on and --every-kind both choose the kinds; pass one of them")
    if args.per_node < 1 or args.retries < 0:
        raise UsageError(f"--per-node {args.per_node} / --retries {args.retries} out of range; valid: --per-node >= 1, "
                         f"--retries >= 0")
    address = args.ray_address or os.environ.get("RAY_ADDRESS") or "auto"
    return RayExecutor(address, args.timeout, args.data_dir, kinds=args.on, every_kind=args.every_kind,
                       per_node=args.per_node, retries=args.retries)


def main(args: argparse.Namespace) -> int:
    """Run the plan; a bad case never stops the others."""
    from suite.cli.progress import PlanView, make_view
    from suite.run.ray_cluster import ClusterError

    view = PlanView()  # the real view is made below; whichever it is, it is closed at the end
    try:
        with contextlib.ExitStack() as stack:
            # Ctrl-C from here until run_plan takes it over (it keeps what finished and says so) is one line, exit 130.
            with nothing_run_yet():
                plan = plan_from_args(args)  # `--device auto` asks NVML what is here
                view = make_view(args.quiet)
                executor = executor_from_args(args, view)
                warn_threads_above_cores(args.threads)
                dataset = data.load(args.data_dir)  # a missing or corrupt data set fails here, once, not in every case
                plan = cap_limit(plan, dataset)
                stack.enter_context(executor)  # a cluster that cannot run the plan fails here, before the results dir is made
                ensure_writable(args.results)
                outcome = start(executor, plan, args, view)
            return summarise(outcome, args)
    except ClusterError as exc:
        raise UsageError(str(exc)) from None
    finally:
        view.close()


def start(executor: Executor, plan: list[specs.RunSpec], args: argparse.Namespace, view: PlanView) -> PlanOutcome:
    """Run the plan through a ready executor, showing its progress in `view`."""
    from suite.run.runner import run_plan

    if not args.quiet:
        if line := getattr(args, "plan_line", None):
            print(line, flush=True)
        devices = " ".join(dict.fromkeys(spec.device for spec in plan))
        print(f"running {len(executor.jobs(plan))} case(s) on {devices}, {executor.describe()}; results → {args.results}/",
              flush=True)
    try:
        return run_plan(plan, args.results, executor, resume=args.resume, on_plan=view.planned,
                        on_record=lambda index, total, record, path: view.finished(index, total, record))
    finally:
        view.close()  # the live rows end before the summary (or the interruption notice) is printed



def summarise(outcome: PlanOutcome, args: argparse.Namespace) -> int:
    """What the plan did: the summary table, an interruption or a refused write, and the exit code."""
    from suite.cli.show import print_table

    for problem in outcome.unreadable:  # left where it is; a case it held counts as not finished and runs again
        print(f"skipped {problem}", file=sys.stderr)
    if outcome.skipped_as_done:
        print(f"--resume: {outcome.skipped_as_done} case(s) already finished were not run again")
    if outcome.interrupted:
        print(f"interrupted: {len(outcome.records)} finished case(s) kept in {args.results}/; "
              f"run the same command with --resume to finish the rest", file=sys.stderr)
        return 130
    if outcome.already_done or outcome.records:
        print_table(outcome.already_done + outcome.records)
    if outcome.write_failure:
        for record in outcome.unsaved:
            print(record.model_dump_json())
        print(f"fashionbench: error: {outcome.write_failure}", file=sys.stderr)
        return 1
    bad = [r for r in outcome.records if r.status != "ok"]
    if args.strict and bad:
        print(f"--strict: {len(bad)} case(s) not ok", file=sys.stderr)
        return 1
    return 1 if any(r.status in ("error", "timeout") for r in outcome.records) else 0
