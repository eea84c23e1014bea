"""Hardware section: machines side by side, cost and energy to a target accuracy, and the like-for-like verdict.

A verdict compares only cases of one recipe (RunSpec.recipe_key: every spec field but the device and the thread count,
which belong to the machine) run on two or more places (machine, Ray kind, device). Where no recipe ran on two places
the verdict says "not comparable" and which recipes each place ran, never a winner; a DISTURBED case (other work took
its cores) never wins. `recommend` is the API the page renders: one Recommendation per row, `verdict` saying which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

from suite.core.spec import RunSpec
from suite.record.metrics import METRIC_BY_KEY, time_to_target_s
from suite.record.schema import RunRecord
from suite.report.cases import Case, epochs_to_target, median_with_inf
from suite.report.prices import Price, cost_usd, price_for

NOT_MEASURED = "not measured"
NOT_COMPARABLE = "not comparable"
GPU_ENERGY = "GPU board energy (NVML)"
HOST_ENERGY = "CPU package energy (RAPL)"


@dataclass(frozen=True)
class CaseCosts:
    """Time, money and energy figures of one case (medians over its ok runs)."""

    case: Case
    price: Price | None
    target: float
    steady_epoch_s: float | None
    epoch_samples: int | None
    cost_per_epoch_usd: float | None
    cost_per_1m_samples_usd: float | None
    tta_s: float | None
    reached: str
    cost_to_target_usd: float | None
    energy_to_target_j: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_batch: int | None
    energy_source: str | None = None  # GPU_ENERGY on CUDA, HOST_ENERGY on a CPU: what energy_to_target_j counts


def energy_per_1k_j(record: RunRecord) -> tuple[float | None, str]:
    """The training energy per 1k samples a case is judged by and its source: the GPU board's on CUDA (the host's
    share is not in it), the CPU packages' on a CPU."""
    if record.spec["device"] == "cuda":
        return record.energy_per_1k_train_samples_j, GPU_ENERGY
    return record.host_energy_per_1k_train_samples_j, HOST_ENERGY


def record_energy_to_target_j(record: RunRecord, target: float) -> float | None:
    """Energy spent on the training samples seen until the target epoch (energy_per_1k_j); inf when never reached."""
    per_1k, _ = energy_per_1k_j(record)
    if per_1k is None or record.train_samples is None:
        return None
    epochs = epochs_to_target(record, target)
    if epochs is None:
        return math.inf
    return per_1k * record.train_samples * epochs / 1000.0


def _median_of(case: Case, fn: Callable[[RunRecord], float | None]) -> float | None:
    return median_with_inf(fn(r) for r in case.ok)


def case_costs(case: Case, prices: dict[str, float], target: float,
               shared_hosts: frozenset[str] = frozenset()) -> CaseCosts:
    """Costs of one case at the hourly price of its machine/device (`shared_hosts`: host names no price may key)."""
    price = price_for(prices, case.machine, case.spec.device, case.kind, case.machine_label or None, shared_hosts)
    epoch_s = _median_of(case, lambda r: r.steady_epoch_s)
    samples_per_s = _median_of(case, lambda r: r.train_steady_samples_per_s)
    tta = _median_of(case, lambda r: time_to_target_s(r, target))
    reached = sum(1 for r in case.ok if (time_to_target_s(r, target) or math.inf) < math.inf)
    latency_runs = [r for r in case.ok if r.inference]
    return CaseCosts(
        case=case, price=price, target=target,
        steady_epoch_s=epoch_s,
        epoch_samples=case.ok[0].train_samples if case.ok else None,
        cost_per_epoch_usd=cost_usd(epoch_s, price),
        cost_per_1m_samples_usd=cost_usd(1e6 / samples_per_s, price) if samples_per_s else None,
        tta_s=tta,
        reached=f"{reached}/{len(case.ok)}",
        cost_to_target_usd=_median_of(case, lambda r: _cost_or_inf(time_to_target_s(r, target), price)),
        energy_to_target_j=_median_of(case, lambda r: record_energy_to_target_j(r, target)),
        latency_p50_ms=_median_of(case, METRIC_BY_KEY["latency_p50_ms"].get),
        latency_p99_ms=_median_of(case, METRIC_BY_KEY["latency_p99_ms"].get),
        latency_batch=min(i.batch_size for i in latency_runs[0].inference) if latency_runs else None,
        energy_source=energy_per_1k_j(case.ok[0])[1] if case.ok else None,
    )


def _cost_or_inf(seconds: float | None, price: Price | None) -> float | None:
    if seconds is None or price is None:
        return None
    return math.inf if math.isinf(seconds) else cost_usd(seconds, price)


Verdict = Literal["winner", "not comparable", "not measured"]


@dataclass(frozen=True)
class Recommendation:
    """One row of the verdict: a question answered among the places that ran one recipe, or why it is not."""

    question: str
    machine: str  # the winner's machine and device, or NOT_MEASURED / NOT_COMPARABLE
    setup: str  # the recipe every candidate ran ("—" on a not-comparable row)
    why: str
    verdict: Verdict = "winner"


def machine_name(case: Case) -> str:
    """How a machine and device are named to a reader: the machine's label (host, GPU or CPU model, cores; Ray kind
    if any) and the device the case ran on."""
    return f"{case.where} on {case.spec.device}"


def recipe_label(spec: RunSpec) -> str:
    """What a recipe trains, without where (nor seed: repeats share a recipe): framework/model, its non-default settings,
    batch, epochs and data."""
    flags = " ".join(f"{k}={v}" for k, v in spec.variant_flags().items())
    data = f"{spec.limit:,} samples" if spec.limit else "full split"
    return " ".join(p for p in (f"{spec.framework}/{spec.model}", flags, f"batch {spec.batch_size}, {spec.epochs} epochs, "
                                                                          f"{data}") if p)


def _place(row: CaseCosts) -> tuple[str, str | None, str]:
    return (*row.case.place, row.case.spec.device)


def _disturbed(row: CaseCosts) -> str | None:
    """Why the case may not win: a run that other work disturbed (RunRecord.disturbed), else None."""
    return next((why for r in row.case.ok if (why := r.disturbed)), None)


def _runner_up(scored: list[tuple[float, CaseCosts]], fmt: Callable[[float], str]) -> str:
    (best, _), (second, row) = scored[0], scored[1]
    where = machine_name(row.case)
    if best > 0 and second / best < 1.005:
        return f"tied with {where} at {fmt(second)}"
    ratio = f", {second / best:.2f}× the best" if best > 0 else ""
    return f"next: {where} at {fmt(second)}{ratio}"


@dataclass(frozen=True)
class Question:
    """One question of the verdict: the figure to minimise, how to print it, why it wins, why it may be missing."""

    text: str
    value: Callable[[CaseCosts], float | None]
    fmt: Callable[[float], str]
    why: Callable[[str, CaseCosts], str]
    missing: Callable[[CaseCosts], str]


def _cheap_why(value: str, row: CaseCosts) -> str:
    price = row.price
    assert price is not None  # only priced rows have a cost
    return f"{value} at ${price.usd_per_hour:g}/h (price key {price.key!r}; reached in {row.reached} runs)"


def _latency_why(value: str, row: CaseCosts) -> str:
    p99 = METRIC_BY_KEY["latency_p99_ms"].format(row.latency_p99_ms)
    return f"p50 {value}, p99 {p99} ms at batch {row.latency_batch}"


def _energy_missing(row: CaseCosts) -> str:
    if row.case.spec.device == "cuda":
        return "no GPU energy (NVML unavailable or the sampler off)"
    reasons = sorted({r.host_energy_train.reason for r in row.case.ok if r.host_energy_train and r.host_energy_train.reason})
    return f"no CPU package energy ({'; '.join(reasons) or 'not recorded by the worker that made these runs'})"


def questions(task: str, target: float, prices_given: bool) -> list[Question]:
    """The four questions, each with why a candidate lacks its figure."""
    goal = f"{target:g} validation accuracy ({task})"
    return [
        Question(f"Fastest to {goal}", lambda r: r.tta_s, lambda v: f"{v:.2f} s",
                 lambda v, r: f"{v} of training to reach it (median; reached in {r.reached} runs)",
                 lambda r: "no validation accuracy in its history"),
        Question(f"Cheapest to {goal}", lambda r: r.cost_to_target_usd, lambda v: f"${v:.6f}", _cheap_why,
                 lambda r: "no price in the --prices file matches it" if prices_given else
                 "no --prices file given (see reports/README.md)"),
        Question(f"Most energy-efficient to {goal}", lambda r: r.energy_to_target_j, lambda v: f"{v:,.1f} J",
                 lambda v, r: f"{v} of {r.energy_source} to reach it (median; reached in {r.reached} runs)",
                 _energy_missing),
        Question(f"Best inference latency ({task})", lambda r: r.latency_p50_ms, lambda v: f"{v:.3f} ms", _latency_why,
                 lambda r: "no inference latency"),
    ]


def _answer(question: Question, rows: list[CaseCosts], recipe: str) -> Recommendation:
    """The winner among one recipe's places, or why there is none: a place without the figure blocks the verdict."""
    lacking = [f"{machine_name(r.case)}: {question.missing(r)}" for r in rows if question.value(r) is None]
    if lacking:
        return Recommendation(question.text, NOT_MEASURED, recipe, "; ".join(lacking), "not measured")
    values = [(question.value(r), r) for r in rows]
    scored = sorted(((v, r) for v, r in values if v is not None and math.isfinite(v)), key=lambda s: s[0])
    if not scored:
        return Recommendation(question.text, NOT_MEASURED, recipe, "no place reached the target in a majority of its "
                              "runs; train longer (`fashionbench run --plan hardware`) or pass a lower --target",
                              "not measured")
    if len(scored) == 1:
        others = ", ".join(machine_name(r.case) for r in rows if r is not scored[0][1])
        runner = f"{others} never reached it (in a majority of runs)"
    else:
        runner = _runner_up(scored, question.fmt)
    best, row = scored[0]
    return Recommendation(question.text, machine_name(row.case), recipe, f"{question.why(question.fmt(best), row)}; {runner}")


def _recipe_groups(rows: list[CaseCosts]) -> list[list[CaseCosts]]:
    groups: dict[str, list[CaseCosts]] = {}
    for row in rows:
        groups.setdefault(row.case.spec.recipe_key, []).append(row)
    return list(groups.values())


def _group_verdict(rows: list[CaseCosts], task: str, prices_given: bool) -> list[Recommendation]:
    recipe = recipe_label(rows[0].case.spec)
    fair = [r for r in rows if not _disturbed(r)]
    excluded = [f"{machine_name(r.case)} (DISTURBED: {_disturbed(r)})" for r in rows if _disturbed(r)]
    if len({_place(r) for r in fair}) < 2:
        why = f"only one place ran it undisturbed; left out: {'; '.join(excluded)}"
        return [Recommendation(f"Hardware verdict ({task})", NOT_COMPARABLE, recipe, why, "not comparable")]
    out = [_answer(q, fair, recipe) for q in questions(task, rows[0].target, prices_given)]
    if excluded:
        out = [Recommendation(r.question, r.machine, r.setup, f"{r.why}; left out: {'; '.join(excluded)}", r.verdict)
               for r in out]
    return out


def _not_comparable(single: list[list[CaseCosts]], places: int, compared: bool, task: str) -> Recommendation:
    """Why the recipes that ran on one place only give no verdict: which recipes each place ran."""
    by_place: dict[str, list[str]] = {}
    for group in single:
        by_place.setdefault(machine_name(group[0].case), []).append(recipe_label(group[0].case.spec))
    shown = [f"{where} ran {'; '.join(recipes[:3])}" + (f" and {len(recipes) - 3} more" if len(recipes) > 3 else "")
             for where, recipes in by_place.items()]
    head = ("ran on one machine/device only, so not compared" if compared else
            "no recipe ran on more than one machine/device" if places > 1 else "one machine/device only")
    why = (f"{head}: {' | '.join(shown)}; run one recipe everywhere (`fashionbench run --plan hardware` on each box) "
           "for a like-for-like verdict")
    return Recommendation(f"Hardware verdict ({task})", NOT_COMPARABLE, "—", why, "not comparable")


def recommend(rows: list[CaseCosts], task: str, prices_given: bool) -> list[Recommendation]:
    """Per recipe run on two or more places: fastest, cheapest and most energy-efficient to the target and best
    latency, from measured figures only; then one not-comparable row for the recipes that ran on one place only."""
    if not rows:
        return []
    groups = _recipe_groups(rows)
    comparable = [g for g in groups if len({_place(r) for r in g}) > 1]
    out = [rec for group in comparable for rec in _group_verdict(group, task, prices_given)]
    single = [g for g in groups if len({_place(r) for r in g}) == 1]
    if single:
        out.append(_not_comparable(single, len({_place(r) for r in rows}), bool(comparable), task))
    return out
