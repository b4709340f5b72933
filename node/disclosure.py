"""Disclosure control: counts from 1 to threshold − 1 never leave the node.

A share cell whose numerator, denominator or complement (denominator − numerator) is small
is withheld whole, since any one of them would reveal the others. In a histogram only the
small bins are withheld: the bin edges are fixed by the spec and no total is sent, so a
withheld bin cannot be recovered by subtraction. Zero is not a disclosure and is sent.
"""

from __future__ import annotations

from emsbench.wire import Cell, IndicatorResult


def is_small(n: int | None, threshold: int) -> bool:
    return n is not None and 0 < n < threshold


def protect_cell(cell: Cell, threshold: int) -> Cell:
    if cell.counts is not None:
        counts = [None if is_small(c, threshold) else c for c in cell.counts]
        return cell.model_copy(update={"counts": counts,
                                       "suppressed": any(c is None for c in counts)})
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
