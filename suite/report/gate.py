"""The status half of the regression gate: a case that worked in BASE must still work in NEW, with every figure."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # compare.run calls this module, so it imports compare only for the type
    from suite.report.compare import Comparison

ABSENT = "absent"


def gate_failures(comparison: Comparison, new_problems: list[str], allow_missing: bool = False) -> list[str]:
    """One line per reason NEW cannot pass whatever its figures say: a case ok in BASE is not ok (or gone) in NEW, a
    figure BASE measured is missing in NEW, or a NEW file could not be read. `allow_missing` lets cases go on purpose."""
    failures = []
    for case, statuses in comparison.lost:
        if statuses != ABSENT:
            failures.append(f"{case}: ok in BASE, {statuses} in NEW")
        elif not allow_missing:
            failures.append(f"{case}: ok in BASE, absent from NEW (pass --allow-missing if it was dropped on purpose)")
    failures += [f"{r.case}: {r.metric.key} measured in BASE, missing in NEW" for r in comparison.rows
                 if r.base is not None and r.new is None]
    # An unreadable NEW file may be the very case that broke (a NaN accuracy is refused on read).
    failures += [f"NEW file skipped: {problem}" for problem in new_problems]
    return failures


def format_failures(failures: list[str]) -> str:
    """The lines printed under the comparison table."""
    if not failures:
        return "0 case(s) stopped working or lost a figure"
    return "\n".join([*(f"FAILED {f}" for f in failures), f"{len(failures)} case(s) stopped working or lost a figure"])
