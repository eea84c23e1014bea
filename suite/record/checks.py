"""Checks a record must pass on read beyond its schema: a known spec, finite figures, sane shapes, file-safe ids."""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from typing import Any

from pydantic import TypeAdapter, ValidationError

from suite.core.data import TASK_CLASS_NAMES
from suite.core.models import CATALOG
from suite.core.spec import RunSpec
from suite.record.schema import RunRecord

# Ids end up in file names (records, report PNGs): letters, digits, dot, dash and underscore only.
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SPEC = TypeAdapter(RunSpec)


def spec_problem(spec: dict[str, Any]) -> str | None:
    """Why a stored spec is no RunSpec this version can run (unknown field, wrong type, unknown name), or None."""
    if unknown := sorted(set(spec) - {f.name for f in fields(RunSpec)}):
        return f"spec: unknown field(s) {unknown}"
    try:
        _SPEC.validate_json(json.dumps(spec), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        # RunSpec's own checks speak of flags (--framework); in a stored record they are spec fields.
        message = re.sub(r"^Value error, --([\w-]+)", lambda m: "spec." + m[1].replace("-", "_"), first["msg"])
        return f"spec.{where}: {message}" if where else message
    except ValueError as exc:
        return f"spec: {exc}"
    return None


# The one figure that may be below zero: warm-up is the first epoch minus the steady one, and a first epoch faster than
# the steady epochs does happen (shown with the "negative warm-up" caveat, RunRecord.caveats).
MAY_BE_NEGATIVE = frozenset({"warmup_s"})
# Parts whose numbers are not fashionbench's figures: the spec (RunSpec checks it), what the framework and NVML said.
FREE_FORM = frozenset({"spec", "framework_info", "machine.gpus"})
# No count, size, time or rate measured here comes near 2**63 (int64, what pandas and numpy hold); beyond it a number
# is a hand edit, and arithmetic on it overflows.
ABSURD = 2.0**63


def _shown(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) or abs(value) < 10**15 else f"{float(value):.3g}"


def _number_problem(value: Any, where: str, free: bool = False) -> str | None:
    """The first number in a dumped record that is not finite, beyond ABSURD or (outside FREE_FORM) below zero."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where} is {value}"
        if abs(value) >= ABSURD:
            return f"{where} is {_shown(value)}, beyond any measurement (at most 2**63)"
        if value < 0 and not free and where not in MAY_BE_NEGATIVE:
            return f"{where} is {_shown(value)}, must be >= 0"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        inner = f"{where}.{key}" if where else str(key)
        if found := _number_problem(item, inner, free or inner in FREE_FORM):
            return found
    return None


def _accuracy_problem(record: RunRecord) -> str | None:
    values = {"test_accuracy": record.test_accuracy, **{f"per_class_accuracy.{i}": v for i, v in enumerate(record.per_class_accuracy)}}
    values.update({f"history.{h.epoch}.val_accuracy": h.val_accuracy for h in record.history})
    bad = next((k for k, v in values.items() if v is not None and not 0.0 <= v <= 1.0), None)
    return f"{bad} is {values[bad]}, outside 0..1" if bad else None


def _confusion_problem(record: RunRecord) -> str | None:
    matrix = record.confusion_matrix
    if not matrix:
        return None
    classes = len(record.class_names) or len(TASK_CLASS_NAMES[CATALOG[record.spec["model"]].task])
    if len(matrix) != classes or any(len(row) != classes for row in matrix):
        shape = f"{len(matrix)} rows of {sorted({len(row) for row in matrix})} columns"
        return f"confusion_matrix is not {classes}×{classes} ({shape})"
    if any(count < 0 for row in matrix for count in row):
        return "confusion_matrix holds a negative count"
    return None


def record_problem(record: RunRecord) -> str | None:
    """The first reason a schema-valid record cannot be shown or compared, or None when it is usable."""
    if problem := spec_problem(record.spec):
        return problem
    for name, value in (("machine.machine_id", record.machine.machine_id), ("case_id", record.case_id),
                        ("case_key", record.case_key)):
        if not SAFE_ID.fullmatch(value):
            return f"{name} {value!r} is not a plain id (letters, digits, . _ - only)"
    if problem := _number_problem(record.model_dump(), ""):
        return problem
    return _accuracy_problem(record) or _confusion_problem(record)
