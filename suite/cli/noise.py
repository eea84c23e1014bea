"""`fashionbench noise`: the A/A calibration of one case (its noise, what the gate can detect, repeats needed), and with
--goal the gate's own benchmark (A/A false alarms and a planted slowdown's detection rate against their goals)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from suite.cli.common import UsageError, add_threads_argument, add_timeout_argument, path_arg

if TYPE_CHECKING:  # commands import their layers late (a fast --help); these names are for the annotations only
    from suite.bench.gate_goal import Pool
    from suite.core.spec import RunSpec
    from suite.record.schema import RunRecord

HELP = "A/A calibration: run one case N times, print its noise and what the gate detects; --goal: the gate's benchmark"
EXIT_CODES = {1: "fewer than 3 undisturbed ok runs to calibrate from; with --goal, a goal was missed"}
CALIBRATION_RUNS, GOAL_PLAIN_RUNS, GOAL_PLANTED_RUNS = 10, 20, 12
# 3 epochs give a steady median of 2; the goal's 20 (19 steady epochs of 4,000 samples, ~27 s a run on the 2-vCPU VM)
# made the per-run noise small enough for 10 % to be seen at the repeats a 20-run pool allows (docs/reliability.md).
CALIBRATION_EPOCHS, GOAL_EPOCHS = 3, 20
COUNT_MAX = 10_000  # the upper bound of --runs, --planted-runs, --repeats and --draws


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The case, how many runs, where they go, and the goal benchmark's draws."""
    from suite.bench.gate_goal import DRAWS, PLANTED_PCT
    from suite.core.spec import BATCH_SIZE_MAX, EPOCHS_MAX

    parser.add_argument("--framework", default="torch", help="the case's framework")
    parser.add_argument("--model", default="cnn", help="the case's model")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs per run, 3..{EPOCHS_MAX} (default {CALIBRATION_EPOCHS}; with --goal {GOAL_EPOCHS}: the "
                             "steady epoch is the median of epochs 2..N, and on a VM whose speed swings from second "
                             "to second more epochs make it steadier)")
    parser.add_argument("--limit", type=int, default=4000, help="training samples per run")
    parser.add_argument("--batch-size", type=int, default=128, help=f"samples per step, 1..{BATCH_SIZE_MAX}")
    add_threads_argument(parser)
    parser.add_argument("--runs", type=int, default=None, metavar="N",
                        help=f"runs of the case, one process each, 3..{COUNT_MAX} (default {CALIBRATION_RUNS}; with --goal "
                             f"{GOAL_PLAIN_RUNS} plain runs)")
    parser.add_argument("--results", type=path_arg, default=None, metavar="DIR",
                        help="where the runs are stored (default results/noise, with --goal results/gate-goal/{a,b})")
    parser.add_argument("--save", action="store_true",
                        help="store the calibration for compare (one run a side of this case on this machine)")
    parser.add_argument("--calibration", type=path_arg, default=None, metavar="FILE",
                        help="the calibration file --save writes (default: noise.json in the user cache)")
    parser.add_argument("--goal", action="store_true",
                        help=f"the gate's benchmark: plain runs and runs with a planted {PLANTED_PCT:g}%% slowdown, "
                             f"{DRAWS} A/A and {DRAWS} A/B comparisons drawn from them (they share runs); exit 1 "
                             "when false alarms exceed 1 in 50 or detection falls below 90%%")
    parser.add_argument("--planted-runs", type=int, default=GOAL_PLANTED_RUNS, metavar="N",
                        help=f"--goal: runs with the planted slowdown, 1..{COUNT_MAX}")
    parser.add_argument("--repeats", type=int, default=None, metavar="R",
                        help=f"--goal: runs a side per comparison, 2..{COUNT_MAX} (default: what the plain runs' steady-epoch noise "
                             "needs to see the planted change 9 times in 10 at the gate's level)")
    parser.add_argument("--draws", type=int, default=DRAWS, metavar="N", help=f"--goal: A/A and A/B comparisons each, 1..{COUNT_MAX}")
    parser.add_argument("--pool", type=path_arg, default=None, metavar="DIR",
                        help="--goal: judge the pool stored in DIR/a and DIR/b by an earlier --goal (default: run a new pool)")
    add_timeout_argument(parser)


def _spec(args: argparse.Namespace) -> RunSpec:
    from suite.core.spec import RunSpec

    epochs = args.epochs or (GOAL_EPOCHS if args.goal else CALIBRATION_EPOCHS)
    if epochs < 3:
        raise UsageError(f"--epochs {epochs}: use >= 3, so the steady epoch is a median, not one epoch")
    return RunSpec(framework=args.framework, model=args.model, epochs=epochs, limit=args.limit,
                   batch_size=args.batch_size, threads=args.threads, infer_batch_sizes=(1, 256))


def main(args: argparse.Namespace) -> int:
    """Calibrate, or with --goal benchmark the gate."""
    for flag, value, low in (("--runs", args.runs, 3), ("--planted-runs", args.planted_runs, 1),
                             ("--repeats", args.repeats, 2), ("--draws", args.draws, 1)):
        if value is not None and not low <= value <= COUNT_MAX:
            raise UsageError(f"{flag} {value} is out of range; valid: {low}..{COUNT_MAX}")
    return goal(args) if args.goal else calibrate(args)


def calibrate(args: argparse.Namespace) -> int:
    """The case N times; its noise table; the calibration stored with --save."""
    from suite.bench import noise
    from suite.core import data
    from suite.record.noise import save_calibrations
    from suite.record.store import ensure_writable

    spec = _spec(args)
    data.load()
    results = ensure_writable(args.results or Path("results/noise"))
    runs = args.runs or CALIBRATION_RUNS
    print(f"{spec.label}: {runs} runs, one process each, stored in {results}/", flush=True)
    records = noise.repeat(spec, runs, args.timeout, results, lambda line: print(line, flush=True))
    figures = noise.figure_noise(records, noise.gated_timing_metrics())
    usable = sum(1 for r in records if r.status == "ok" and not r.disturbed)
    if not figures:
        print(f"only {usable} undisturbed ok run(s): nothing to calibrate from (need {noise.MIN_CALIBRATION_RUNS}); "
              "run again on a quieter machine or with more --runs")
        return 1
    print(f"noise over {usable} undisturbed ok runs ({runs - usable} left out):")
    print("\n".join(noise.describe(figures)))
    print(f"the gate tests each figure at {figures[0].level:.2g} (false-alarm rate 1% over the {len(figures)} "
          "figures; 'sees' is the smallest worse change it flags; runs for x% detect it 9 times in 10)")
    if args.save:
        path = save_calibrations(noise.calibrations(records, figures), args.calibration)
        print(f"saved to {path}: compare now judges one run a side of this case on this machine by it")
    return 0


def goal(args: argparse.Namespace) -> int:
    """The pool (run or read), the drawn comparisons through compare's own gate, the rates against the goals."""
    from suite.bench import gate_goal
    from suite.bench.noise import gated_timing_metrics

    pool = _read_pool(args.pool) if args.pool else _run_pool(args)
    metrics = [m for m in gated_timing_metrics() if any(m.get(r) is not None for r in pool.plain)]
    repeats, why = (args.repeats, "--repeats") if args.repeats else gate_goal.repeats_for_goal(pool, metrics)
    print(f"{repeats} runs a side: {why}")
    try:
        rates = gate_goal.gate_rates(pool, _gate, repeats, args.draws)
    except ValueError as exc:
        raise UsageError(f"{exc}; pass more --runs/--planted-runs or fewer --repeats") from exc
    print("\n".join(gate_goal.describe(rates, pool)))
    return 0 if rates.met else 1


def _run_pool(args: argparse.Namespace) -> Pool:
    from suite.bench import gate_goal
    from suite.core import data
    from suite.record.store import ensure_writable

    spec = _spec(args)
    data.load()
    results = args.results or Path("results/gate-goal")
    for side in ("a", "b"):
        ensure_writable(results / side)
    plain = args.runs or GOAL_PLAIN_RUNS
    print(f"{spec.label}: {plain} plain and {args.planted_runs} planted runs, interleaved, stored in {results}/",
          flush=True)
    return gate_goal.build_pool(spec, plain, args.planted_runs, args.timeout, results, lambda line: print(line, flush=True))


def _read_pool(folder: Path) -> Pool:
    from suite.bench.gate_goal import Pool
    from suite.record.store import read_store

    sides = []
    for side in ("a", "b"):
        if not (folder / side).is_dir():
            raise UsageError(f"--pool {folder} has no {side}/ folder; pass the --results of an earlier `noise --goal`")
        sides.append(read_store([folder / side])[0])
    return Pool(*sides)


def _gate(base: list[RunRecord], new: list[RunRecord]) -> tuple[int, list[str]]:
    """compare's own gate on two sets of runs: its exit code and the figures it found REGRESSED."""
    from suite.report import compare
    from suite.report.gate import gate_failures

    comparison = compare.compare(base, new, compare.select_metrics(None), compare.Thresholds())
    return compare.exit_code(comparison, gate_failures(comparison, [])), [r.metric.key for r in comparison.regressions]
