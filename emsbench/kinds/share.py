"""Share: cases of the numerator among the population, per stratum (a percentage).

Cell: ``numerator`` and ``denominator``. Protection: a cell whose numerator, denominator or
complement (denominator − numerator) is small is withheld whole, since any one of them
would reveal the others. Merge: pairs add; the hub divides and gives a Wilson interval, and
for a pool member its difference from the rest of the pool with Newcombe's interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from emsbench.figure import Figure
from emsbench.kinds.base import (
    Context,
    Kind,
    MarginKey,
    Pool,
    Problem,
    Tally,
    group_by,
    is_small,
    merge_by_stratum,
    population_filter,
    strata_select,
)
from emsbench.spec_language import normal_form
from emsbench.stats import newcombe_difference, wilson_interval
from emsbench.wire import Cell

if TYPE_CHECKING:
    from emsbench.specs import IndicatorSpec

# A share becomes a value in the spec's unit by this factor.
SCALE = {"percent": 100.0}


def scale(spec: IndicatorSpec) -> float:
    return SCALE.get(spec.unit, 100.0)


def released(cell: Cell | None) -> tuple[int, int] | None:
    """(numerator, denominator) of a cell whose both halves were released."""
    if cell is None or cell.numerator is None or cell.denominator is None:
        return None
    return cell.numerator, cell.denominator


def pair_problems(cell: Cell, where: str, threshold: int, max_count: int,
                  what: str = "share") -> list[Problem]:
    """The rules of a numerator/denominator pair (shares and the strata of O/E ratios)."""
    num, den = cell.numerator, cell.denominator
    if cell.suppressed != (num is None and den is None) or (num is None) != (den is None):
        return [Problem("suppression_inconsistent", f"{where}: a {what} cell is either "
                        "withheld (suppressed, both counts null) or has both counts")]
    if num is None or den is None:
        return []
    p: list[Problem] = []
    if max(num, den) > max_count:
        p.append(Problem("count_out_of_range", f"{where}: count {max(num, den)} exceeds "
                         f"the plausible maximum {max_count}"))
    if num > den:
        p.append(Problem("numerator_exceeds_denominator",
                         f"{where}: numerator {num} > denominator {den}"))
    elif any(is_small(n, threshold) for n in (num, den, den - num)):
        p.append(Problem("disclosure_violation", f"{where}: {num}/{den} releases a count "
                         f"from 1 to {threshold - 1} (numerator, denominator or complement)"))
    return p


def pair_margin_counts(spec: IndicatorSpec, cell: Cell
                       ) -> list[tuple[str, MarginKey, int | None]]:
    """The counts of a numerator/denominator pair: the population, its numerator and the
    complement (shares and the case-mix cells of O/E ratios)."""
    assert spec.numerator is not None
    q = normal_form(spec.numerator)
    n, d = cell.numerator, cell.denominator
    return [("numerator", ("n", q), n), ("denominator", ("d",), d),
            ("complement", ("c", q), None if n is None or d is None else d - n)]


def pair_wire_problem(cell: Cell, what: str) -> str | None:
    """A numerator/denominator cell carrying another kind's fields (shares, rates, ratios)."""
    if cell.bins is not None or cell.quantiles is not None:
        return f"a {what} cell carries numerator and denominator only"
    return None


def protect_pair(cell: Cell, threshold: int) -> Cell:
    num, den = cell.numerator, cell.denominator
    rest = None if num is None or den is None else den - num
    if any(is_small(n, threshold) for n in (num, den, rest)):
        return cell.model_copy(update={"numerator": None, "denominator": None,
                                       "suppressed": True})
    return cell


@dataclass
class ShareTally(Tally):
    numerator: int = 0
    denominator: int = 0

    def add(self, spec: IndicatorSpec, cell: Cell, country: str) -> None:
        pair = released(cell)
        self.suppressed |= cell.suppressed or pair is None
        # Add a pair only when both halves were released: adding a denominator without
        # its numerator would bias the pooled share downwards.
        if pair is None:
            self.omitted.append(country)
            return
        self.numerator += pair[0]
        self.denominator += pair[1]
        if pair[1] > 0:
            self.countries.append(country)

    def values(self, spec: IndicatorSpec, threshold: int, own: bool
               ) -> tuple[int | None, int | None, float | None, float | None, float | None]:
        k, n = self.numerator, self.denominator
        withheld = own and bool(self.omitted)  # shown as withheld, not as 0 of 0
        if any(is_small(x, threshold) for x in (k, n, n - k)):
            # A pool may not publish what its strictest member would have withheld.
            withheld, self.suppressed = True, True
        if withheld or not n:
            return (None, None, None, None, None) if withheld else (k, n, None, None, None)
        lo, hi = wilson_interval(k, n)
        s = scale(spec)
        return k, n, s * k / n, s * lo, s * hi


class Share(Kind):
    name = "share"
    needs = ("numerator",)
    units = ("percent",)
    expect_fields = ("numerator", "denominator")
    summary = "share of cases (numerator / denominator) with a Wilson interval"

    def aggregate_sql(self, spec: IndicatorSpec, table: str) -> str:
        return (f"SELECT {strata_select(spec)}count(*) AS denominator, "
                f"count(*) FILTER (WHERE coalesce(({spec.numerator}), false)) AS numerator "
                f"FROM {table} WHERE {population_filter(spec)}{group_by(len(spec.strata))}")

    def cells(self, spec: IndicatorSpec, rows: Sequence[tuple[Any, ...]],
              ctx: Context) -> list[Cell]:
        k = len(spec.strata)
        return [Cell(stratum=dict(zip(spec.strata, map(str, r[:k]), strict=True)),
                     denominator=int(r[k]), numerator=int(r[k + 1])) for r in rows]

    def empty_cell(self, spec: IndicatorSpec, stratum: dict[str, str], ctx: Context) -> Cell:
        return Cell(stratum=stratum, numerator=0, denominator=0)

    def protect(self, spec: IndicatorSpec, cell: Cell, threshold: int) -> Cell:
        return protect_pair(cell, threshold)

    def margin_counts(self, spec: IndicatorSpec, cell: Cell
                      ) -> list[tuple[str, MarginKey, int | None]]:
        return pair_margin_counts(spec, cell)

    def local_value(self, spec: IndicatorSpec, cell: Cell) -> float | None:
        pair = released(cell)
        return scale(spec) * pair[0] / pair[1] if pair and pair[1] else None

    def wire_problem(self, cell: Cell) -> str | None:
        return pair_wire_problem(cell, "share")

    def cell_problems(self, spec: IndicatorSpec, cell: Cell, where: str, threshold: int,
                      max_count: int) -> list[Problem]:
        return pair_problems(cell, where, threshold, max_count)

    def merge(self, spec: IndicatorSpec, results: Mapping[str, Sequence[Cell]], year: int,
              pool: Pool) -> list[Figure]:
        def finish(figure: Figure, here: dict[str, Cell]) -> Figure:
            return difference(figure, spec, here, pool)

        return merge_by_stratum(spec, results, year, pool, ShareTally, finish)

    def measure_text(self, spec: IndicatorSpec, unit_text: str) -> str:
        return f"Share of cases ({unit_text})"


def difference(figure: Figure, spec: IndicatorSpec, here: dict[str, Cell], pool: Pool
               ) -> Figure:
    """A pool member's share figure with its difference from the rest of the pool (not
    the pool with itself in it, which would shrink the difference) and Newcombe's interval;
    unchanged unless both are released and the rest is not small under the pool's
    threshold."""
    mine = released(here.get(figure.country))
    rest = [r for c in pool.members if c != figure.country
            if (r := released(here.get(c))) is not None]
    k2, n2 = sum(k for k, _ in rest), sum(n for _, n in rest)
    if mine is None or not mine[1] or not n2 or any(
            is_small(v, pool.threshold) for v in (k2, n2, n2 - k2)):
        return figure
    s = scale(spec)
    d, lo, hi = newcombe_difference(mine[0], mine[1], k2, n2)
    return replace(figure, diff=s * d, diff_low=s * lo, diff_high=s * hi)


SHARE = Share()
