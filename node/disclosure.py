"""Disclosure control: counts from 1 to threshold − 1 never leave the node.

A share cell whose numerator, denominator or complement (denominator − numerator) is small
is withheld whole, since any one of them would reveal the others. A histogram is coarsened
instead of punched full of holes: neighbouring non-empty bins are joined into runs until
each run holds at least ``threshold`` cases (a short tail joins the run before it), so
every released count is large, the total stays exact and the hub can still pool and
interpolate. Only a cell with fewer cases than the threshold in all is withheld. Zero is
not a disclosure and is sent.
"""

from __future__ import annotations

from emsbench.conformance import is_small
from emsbench.wire import BinRun, Cell, IndicatorResult

__all__ = ["coarsen", "is_small", "protect", "protect_cell", "protect_counts"]


def coarsen(runs: list[BinRun], threshold: int) -> list[BinRun] | None:
    """Join ascending runs until each holds ``threshold`` or more; None if the total is less."""
    out: list[BinRun] = []
    first = last = total = 0
    for f, la, count in runs:
        if count == 0:
            continue
        if total == 0:
            first = f
        total, last = total + count, la
        if total >= threshold:
            out.append((first, last, total))
            total = 0
    if total:  # a tail under the threshold joins the run before it
        if not out:
            return None
        f, _, count = out[-1]
        out[-1] = (f, last, count + total)
    return out


def protect_cell(cell: Cell, threshold: int) -> Cell:
    if cell.bins is not None:
        runs = coarsen(cell.bins, threshold)
        return cell.model_copy(update={"bins": runs, "suppressed": runs is None})
    num, den = cell.numerator, cell.denominator
    rest = None if num is None or den is None else den - num
    if any(is_small(n, threshold) for n in (num, den, rest)):
        return cell.model_copy(update={"numerator": None, "denominator": None,
                                       "suppressed": True})
    return cell


def protect(result: IndicatorResult, threshold: int) -> IndicatorResult:
    """The result with every small count withheld."""
    return result.model_copy(update={"cells": [protect_cell(c, threshold) for c in result.cells]})


def protect_counts(counts: dict[str, int], threshold: int) -> dict[str, int | None]:
    """Rejected-row counts by reason, small ones withheld."""
    return {k: (None if is_small(v, threshold) else v) for k, v in counts.items()}
