"""Hardware section: machines side by side, cost and energy to a target accuracy, and the recommendation table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from suite.record.metrics import METRIC_BY_KEY, time_to_target_s
from suite.record.schema import RunRecord
from suite.report.cases import Case, epochs_to_target, median_with_inf
from suite.report.prices import Price, cost_usd, price_for

NOT_MEASURED = "not measured"


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


def record_energy_to_target_j(record: RunRecord, target: float) -> float | None:
    """GPU energy spent on the training samples seen until the target epoch; inf when never reached."""
    if record.energy_per_1k_train_samples_j is None or record.train_samples is None:
        return None
    epochs = epochs_to_target(record, target)
    if epochs is None:
        return math.inf
    return record.energy_per_1k_train_samples_j * record.train_samples * epochs / 1000.0


def _median_of(case: Case, fn: Callable[[RunRecord], float | None]) -> float | None:
    return median_with_inf(fn(r) for r in case.ok)


def case_costs(case: Case, prices: dict[str, float], target: float) -> CaseCosts:
    """Costs of one case at the hourly price of its machine/device."""
    price = price_for(prices, case.machine, case.spec.device, case.kind)
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
    )


def _cost_or_inf(seconds: float | None, price: Price | None) -> float | None:
    if seconds is None or price is None:
        return None
    return math.inf if math.isinf(seconds) else cost_usd(seconds, price)


@dataclass(frozen=True)
class Recommendation:
    """One row of the recommendation table."""

    question: str
    machine: str
    setup: str
    why: str


def machine_name(case: Case) -> str:
    """How a machine and device are named to a reader: the machine's label (host, GPU or CPU model, cores; Ray kind
    if any) and the device the case ran on."""
    return f"{case.where} on {case.spec.device}"


def _pick(rows: list[CaseCosts], value: Callable[[CaseCosts], float | None]) -> list[tuple[float, CaseCosts]]:
    scored = [(v, row) for row in rows if (v := value(row)) is not None and math.isfinite(v)]
    return sorted(scored, key=lambda item: item[0])


def _runner_up(scored: list[tuple[float, CaseCosts]], fmt: Callable[[float], str]) -> str:
    if len(scored) < 2:
        return "the only candidate with this figure"
    (best, _), (second, row) = scored[0], scored[1]
    where = f"{row.case.setup_label} on {row.case.where} ({row.case.spec.device})"
    if best > 0 and second / best < 1.005:
        return f"tied with {where} at {fmt(second)}"
    ratio = f", {second / best:.2f}× the best" if best > 0 else ""
    return f"next: {where} at {fmt(second)}{ratio}"


@dataclass(frozen=True)
class Question:
    """One row of the recommendation table: the figure to minimise, how to print it, why it wins, why it may be missing."""

    text: str
    value: Callable[[CaseCosts], float | None]
    fmt: Callable[[float], str]
    why: Callable[[str, CaseCosts], str]
    missing: str


def _cheap_why(value: str, row: CaseCosts) -> str:
    price = row.price
    assert price is not None  # only priced rows have a cost
    return f"{value} at ${price.usd_per_hour:g}/h (price key {price.key!r}; reached in {row.reached} runs)"


def _latency_why(value: str, row: CaseCosts) -> str:
    p99 = METRIC_BY_KEY["latency_p99_ms"].format(row.latency_p99_ms)
    return f"p50 {value}, p99 {p99} ms at batch {row.latency_batch}"


def questions(rows: list[CaseCosts], task: str, prices_given: bool) -> list[Question]:
    """The four questions, each with the reason it cannot be answered from these runs."""
    goal = f"{rows[0].target:g} validation accuracy ({task})"
    never = "no case reached the target in a majority of its runs; train longer or pass a lower --target"
    if not prices_given:
        cheap_missing = "no --prices file given (see reports/README.md)"
    elif all(r.price is None for r in rows):
        cheap_missing = "no price in the --prices file matches these machines/devices"
    else:
        cheap_missing = never
    has_energy = any(r.energy_per_1k_train_samples_j is not None for row in rows for r in row.case.ok)
    no_energy = "no GPU energy in any run (CPU-only cases or NVML unavailable; host energy is not measured)"
    return [
        Question(f"Fastest to {goal}", lambda r: r.tta_s, lambda v: f"{v:.2f} s",
                 lambda v, r: f"{v} of training to reach it (median; reached in {r.reached} runs)", never),
        Question(f"Cheapest to {goal}", lambda r: r.cost_to_target_usd, lambda v: f"${v:.6f}", _cheap_why, cheap_missing),
        Question(f"Most energy-efficient to {goal}", lambda r: r.energy_to_target_j, lambda v: f"{v:,.1f} J",
                 lambda v, r: f"{v} of GPU energy to reach it (median; reached in {r.reached} runs)",
                 never if has_energy else no_energy),
        Question(f"Best inference latency ({task})", lambda r: r.latency_p50_ms, lambda v: f"{v:.3f} ms", _latency_why,
                 "no inference latency in any run"),
    ]


def recommend(rows: list[CaseCosts], task: str, prices_given: bool) -> list[Recommendation]:
    """Fastest, cheapest and most energy-efficient to the target, and best latency — from measured figures only."""
    if not rows:
        return []
    out: list[Recommendation] = []
    for question in questions(rows, task, prices_given):
        scored = _pick(rows, question.value)
        if not scored:
            out.append(Recommendation(question.text, NOT_MEASURED, "—", question.missing))
            continue
        best, row = scored[0]
        why = f"{question.why(question.fmt(best), row)}; {_runner_up(scored, question.fmt)}"
        out.append(Recommendation(question.text, machine_name(row.case), row.case.setup_label, why))
    return out
