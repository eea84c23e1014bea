"""Training curves per case (median over repeats per epoch) and the overfitting rule applied to them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from suite.record.schema import RunRecord
from suite.report.cases import Case

# Val loss must exceed its earlier minimum by this much (relative) to count as rising, so noise is not flagged.
RISE_TOLERANCE = 0.01
RULE = (f"an epoch is flagged when its validation loss is more than {RISE_TOLERANCE:.0%} above the lowest "
        "validation loss of the epochs before it while its training loss is below the training loss at that "
        "lowest-validation-loss epoch (validation loss rising while training loss falls). A run overfits when its "
        "last epoch is flagged; flags followed by recovery are reported as transient")


@dataclass(frozen=True)
class Curves:
    """Per-epoch medians over a case's ok runs (only epochs every run reached)."""

    epochs: list[int]
    train_loss: list[float]
    val_loss: list[float | None]
    train_acc: list[float]
    val_acc: list[float | None]


def overfit_epochs(train_loss: list[float], val_loss: list[float | None]) -> list[int]:
    """0-based indices of flagged epochs under RULE."""
    flagged = []
    for i in range(1, len(val_loss)):
        earlier = [(v, j) for j, v in enumerate(val_loss[:i]) if v is not None]
        if val_loss[i] is None or not earlier:
            continue
        best_val, best_at = min(earlier)
        if val_loss[i] > best_val * (1 + RISE_TOLERANCE) and train_loss[i] < train_loss[best_at]:
            flagged.append(i)
    return flagged


def run_overfit(record: RunRecord) -> str | None:
    """How the run overfits under RULE: 'yes …' when it ends flagged, 'transient …' when it recovered, else None."""
    history = record.history
    flagged = overfit_epochs([e.train_loss for e in history], [e.val_loss for e in history])
    if not flagged:
        return None
    epochs = ", ".join(str(history[i].epoch) for i in flagged)
    if flagged[-1] != len(history) - 1:
        return f"transient: flagged at epoch {epochs}, recovered by the last epoch"
    vals = [e.val_loss for e in history]
    best_val, best_at = min((v, j) for j, v in enumerate(vals) if v is not None)
    rise = 100 * (vals[-1] / best_val - 1)  # type: ignore[operator]
    only_last = " (last epoch only: more epochs would confirm it)" if flagged == [len(history) - 1] else ""
    return (f"yes: flagged at epoch {epochs}; final val loss +{rise:.1f}% over its minimum at epoch "
            f"{history[best_at].epoch}, whose weights are the ones to keep{only_last}")


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def case_curves(case: Case) -> Curves | None:
    """Median curves over the case's ok runs; None when no run has a history."""
    runs = [r.history for r in case.ok if r.history]
    if not runs:
        return None
    n = min(len(h) for h in runs)
    epochs = [runs[0][i].epoch for i in range(n)]
    col = lambda name: [_median([getattr(h[i], name) for h in runs]) for i in range(n)]  # noqa: E731
    return Curves(epochs, col("train_loss"), col("val_loss"), col("train_accuracy"), col("val_accuracy"))
