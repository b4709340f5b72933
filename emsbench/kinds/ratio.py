"""Observed/expected ratio: an outcome compared across countries after adjusting for case
mix by indirect standardisation (e.g. cardiac-arrest survival).

Spec. ``numerator`` (the outcome, an SQL boolean: e.g. ``ca_survived``) and ``adjust_for``
(the case-mix strata: name → a code-set column of ``emsbench.model.ENUMS``, or an SQL
boolean over table ``missions`` whose values are ``true``/``false``/``unknown``);
``population`` as usual; ``strata`` are the *reporting* groups (the survival endpoint),
never pooled with each other. ``adjust_for`` holds one to ``MAX_ADJUST`` entries; a name is
a lower-case identifier, is not one of the strata, and is not a model column other than the
one it names; an entry's column is not one of the strata (that would adjust a reporting
group for itself); a bare column without a code set is refused (no identifier or time can
become a label).

Cell. One numerator/denominator pair (events among cases) per reporting stratum × case-mix
stratum. A cell's ``stratum`` holds both: the result's ``strata`` list is
``spec.cell_strata`` (the strata, then the ``adjust_for`` names), and its full grid
(``emsbench.specs.spec_grid``) is every reporting value × every case-mix value, empty
cells included, so no label says that a stratum holds cases.

Protection. As a share pair: a cell whose events, cases or complement (cases − events)
is small is withheld (``suppressed``, ``numerator`` null). Its ``denominator`` (the cell's
size) is still released when it is not small itself: alone it says nothing about the
events, and it lets the hub state how many cases a figure rests on (``coverage``). A cell
with 1 to threshold − 1 cases is withheld whole.

Merge (hub), per reporting stratum (so each endpoint has its own reference):

* the reference population is every country in the merge with released pairs in that
  stratum (Nordic countries and the US alike; in practice the endpoint separates them);
* which cells count: withholding selects on the outcome (a released cell holds 0 or at
  least threshold events), so a small cell would enter the ratio mostly when it has no
  event and bias a small country's O/E downwards. A cell therefore counts only when its
  size n and a first reference rate p (Σ events / Σ cases of every released pair of its
  case-mix stratum) give n·p and n·(1 − p) of at least ``ELIGIBLE`` × (threshold − 1)
  (threshold: the pool's, the strictest Nordic one); such a cell is seldom withheld, so
  which cells count hardly depends on their outcome. With threshold 1 nothing is withheld
  and every cell counts;
* the reference rate of case-mix stratum s is p_s = Σ events / Σ cases over the released
  pairs that count, of every country;
* a country's observed O = Σ its counted events, its cases N = Σ its counted cases and its
  expected E = Σ counted cases of s × p_s; the figure's value is O/E with the exact
  Poisson interval of O over a fixed E (``emsbench.stats.ratio_interval``);
  ``numerator`` = O, ``denominator`` = N (O/N is the crude share of the same cases, shown
  beside the ratio), ``expected`` = E;
* ``coverage`` = N / the cases of every cell whose size was released (cells withheld
  whole, with fewer than threshold cases each, are counted in neither). A figure with a
  withheld cell names its country in ``omitted`` and is marked ``suppressed`` (partial);
* the pool (NORDIC) figure is its members' O over their E (same reference rates); like a
  share's pool it is withheld (no counts) when O, N or N − O is small under the pool's
  threshold;
* any figure whose E is under ``max(MIN_EXPECTED, pool threshold)`` has no value
  (``suppressed``, counts kept): too few expected events for a ratio.

A country alone in its reference (the US, the only discharge endpoint) has O/E = 1 by
construction. The cells of a ratio add up to the same population's share (SURV): with
one cell of an endpoint withheld, its counts are the difference; no secondary
suppression across indicators is done (as for every stratified indicator here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import duckdb

from emsbench import model
from emsbench.figure import Figure, natural_key, stratum_label
from emsbench.kinds.base import (
    UNKNOWN,
    Context,
    Kind,
    Loc,
    MarginKey,
    Pool,
    Problem,
    is_small,
    population_filter,
    strata_keys,
    strata_select,
)
from emsbench.kinds.share import pair_margin_counts, pair_problems, pair_wire_problem
from emsbench.stats import ratio_interval
from emsbench.wire import Cell

if TYPE_CHECKING:
    from emsbench.specs import IndicatorSpec

MAX_ADJUST = 5  # case-mix strata per spec: more would spread the cases too thin
MAX_CELLS = 10_000  # the wire's cells per result
MAX_KEYS = 10  # the wire's strata per result
MIN_EXPECTED = 5.0  # fewer expected events than this: no ratio is published
# A cell counts when its expected events and non-events are both at least this many times
# the largest count disclosure control withholds (threshold − 1): then the rule seldom
# withholds it, so which cells count hardly depends on their outcome.
ELIGIBLE = 2.5
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DECIMALS = 2


def adjust_column(spec: IndicatorSpec, name: str) -> str | None:
    """The code-set column a case-mix stratum names, or None for a boolean expression."""
    text = (spec.adjust_for or {})[name].strip()
    return text if text in model.ENUMS else None


def adjust_keys(spec: IndicatorSpec) -> tuple[str, ...]:
    """Case-mix strata as text; a missing value is ``unknown``."""
    out = []
    for name, expr in (spec.adjust_for or {}).items():
        column = adjust_column(spec, name)
        if column is not None:
            out.append(f"coalesce(CAST({column} AS VARCHAR), '{UNKNOWN}')")
        else:
            out.append(f"CASE WHEN ({expr}) THEN 'true' WHEN NOT ({expr}) THEN 'false' "
                       f"ELSE '{UNKNOWN}' END")
    return tuple(out)


def adjust_select(spec: IndicatorSpec) -> str:
    """Case-mix strata as text columns ``c_0, c_1…``."""
    return "".join(f"{key} AS c_{i}, " for i, key in enumerate(adjust_keys(spec)))


@lru_cache(maxsize=256)
def expression_type(expr: str) -> str:
    """DuckDB's type of an expression in the closed language, on the empty model table."""
    from emsbench.sandbox import open_sandbox

    con = open_sandbox()
    try:
        return str(con.sql(f"SELECT ({expr}) AS v FROM missions LIMIT 0").types[0])
    finally:
        con.close()


def released(cell: Cell | None) -> tuple[int, int] | None:
    """(events, cases) of a cell whose both counts were released."""
    if cell is None or cell.numerator is None or cell.denominator is None:
        return None
    return cell.numerator, cell.denominator


@dataclass
class RatioTally:
    """Counts of one reporting stratum that enter the ratio, summed over one or more
    countries."""

    observed: int = 0
    cases: int = 0
    expected: float = 0.0
    known: int = 0  # cases of every cell whose size was released
    countries: list[str] = field(default_factory=list)
    omitted: list[str] = field(default_factory=list)

    def add(self, country: str, cells: Sequence[Cell], rates: Mapping[tuple[str, ...], float],
            mix: Sequence[str], counts: Callable[[Cell], bool]) -> None:
        """A country's cells of the stratum: the released ones that ``counts`` enter O, N
        and E; every cell of known size enters the coverage's total."""
        observed = cases = 0
        expected, withheld = 0.0, False
        for cell in cells:
            self.known += cell.denominator or 0
            pair = released(cell)
            if pair is None:
                withheld = True
            elif pair[1] and counts(cell):
                observed, cases = observed + pair[0], cases + pair[1]
                expected += pair[1] * rates[tuple(cell.stratum[k] for k in mix)]
        self.observed += observed
        self.cases += cases
        self.expected += expected
        if cases:
            self.countries.append(country)
        if withheld:
            self.omitted.append(country)

    def figure(self, spec: IndicatorSpec, country: str, year: int, stratum: str,
               threshold: int, own: bool, order: Mapping[str, int]) -> Figure:
        o, n, e = self.observed, self.cases, self.expected
        suppressed = bool(self.omitted)
        num: int | None = o
        den: int | None = n
        value = lo = hi = None
        if not own and any(is_small(x, threshold) for x in (o, n, n - o)):
            # A pool may not publish what its strictest member would have withheld.
            num = den = None
            suppressed = True
        elif self.known and (not n or e < max(MIN_EXPECTED, threshold)):
            suppressed = True  # too few expected events for a ratio (or no cell counts)
        elif n:
            value, lo, hi = ratio_interval(o, e)
        known = self.known
        return Figure(
            spec.id, spec.version, spec.unit, country, year, stratum, num, den, value, lo, hi,
            suppressed, len(self.countries),
            tuple(sorted(self.countries, key=order.__getitem__)),
            tuple(sorted(self.omitted, key=order.__getitem__)), DECIMALS,
            expected=e if num is not None and n else None,
            coverage=n / known if num is not None and known else None)


class Ratio(Kind):
    name = "ratio"
    needs = ("numerator", "adjust_for")
    units = ("ratio",)
    expect_fields = ("numerator", "denominator")
    summary = ("observed / expected events after indirect standardisation for case mix, "
               "with an exact Poisson interval")

    def spec_problems(self, spec: IndicatorSpec) -> list[tuple[Loc, str]]:
        from emsbench.spec_language import expression_problems
        from emsbench.specs import key_values

        out = super().spec_problems(spec)
        adjust = spec.adjust_for or {}
        if spec.adjust_for is not None and not adjust:
            out.append((("adjust_for",), "adjust_for names no case-mix stratum"))
        if len(adjust) > MAX_ADJUST:
            out.append((("adjust_for",), f"at most {MAX_ADJUST} case-mix strata, not "
                        f"{len(adjust)}: each one multiplies the cells the cases spread over"))
        columns = set(model.columns())
        usable = True
        for name, expr in adjust.items():
            at: Loc = ("adjust_for", name)
            text = expr.strip()
            if not NAME.match(name):
                out.append((at, f"case-mix name {name!r} must be a lower-case identifier "
                            "(letters, digits, '_')"))
                usable = False
            elif name in spec.strata:
                out.append((at, f"case-mix name {name!r} is also a stratum"))
                usable = False
            elif name in columns and name != text:
                out.append((at, f"case-mix name {name!r} is a column of the model but names "
                            f"{text!r}; name it after what it holds"))
            if text in spec.strata:
                out.append((at, f"{text!r} is a reporting stratum; a reporting group cannot "
                            "also be adjusted for"))
            elif text in model.ENUMS:
                continue
            elif text in columns:
                out.append((at, f"{text!r} has no closed code set; adjust for a code-set "
                            f"column ({', '.join(sorted(model.ENUMS))}) or a boolean "
                            "expression"))
                usable = False
            elif not expression_problems(expr):  # those the semantic stage reports
                try:
                    kind = expression_type(expr)
                except duckdb.Error:  # the semantic stage's dry run reports it
                    continue
                if kind != "BOOLEAN":
                    out.append((at, f"adjust_for.{name} is {kind}, not a boolean: a case-mix "
                                "stratum is a code-set column or a true/false expression"))
                    usable = False
        if len(spec.cell_strata) > MAX_KEYS:
            out.append((("adjust_for",), f"strata and case-mix strata are "
                        f"{len(spec.cell_strata)}; a result holds at most {MAX_KEYS}"))
        elif usable and adjust and all(s in model.ENUMS for s in spec.strata):
            cells = 1
            for key in spec.cell_strata:
                cells *= len(key_values(spec, key))
            if cells > MAX_CELLS:
                out.append((("adjust_for",), f"the grid of strata × case-mix strata has "
                            f"{cells:,} cells; a result holds at most {MAX_CELLS:,}"))
        return out

    def keys(self, spec: IndicatorSpec) -> tuple[str, ...]:
        return strata_keys(spec) + adjust_keys(spec)

    def aggregate_sql(self, spec: IndicatorSpec, table: str) -> str:
        keys = [f"s_{i}" for i in range(len(spec.strata))]
        keys += [f"c_{i}" for i in range(len(spec.adjust_for or {}))]
        return (f"SELECT {strata_select(spec)}{adjust_select(spec)}count(*) AS denominator, "
                f"count(*) FILTER (WHERE coalesce(({spec.numerator}), false)) AS numerator "
                f"FROM {table} WHERE {population_filter(spec)}"
                + (" GROUP BY " + ", ".join(keys) if keys else ""))

    def cells(self, spec: IndicatorSpec, rows: Sequence[tuple[Any, ...]],
              ctx: Context) -> list[Cell]:
        keys = spec.cell_strata
        k = len(keys)
        return [Cell(stratum=dict(zip(keys, map(str, r[:k]), strict=True)),
                     denominator=int(r[k]), numerator=int(r[k + 1])) for r in rows]

    def empty_cell(self, spec: IndicatorSpec, stratum: dict[str, str], ctx: Context) -> Cell:
        return Cell(stratum=stratum, numerator=0, denominator=0)

    def protect(self, spec: IndicatorSpec, cell: Cell, threshold: int) -> Cell:
        num, den = cell.numerator, cell.denominator
        if num is None or den is None:
            return cell
        if is_small(den, threshold):
            return cell.model_copy(update={"numerator": None, "denominator": None,
                                           "suppressed": True})
        if is_small(num, threshold) or is_small(den - num, threshold):
            return cell.model_copy(update={"numerator": None, "suppressed": True})
        return cell

    reference = 1.0  # observed = expected

    def margin_counts(self, spec: IndicatorSpec, cell: Cell
                      ) -> list[tuple[str, MarginKey, int | None]]:
        return pair_margin_counts(spec, cell)

    def withhold(self, spec: IndicatorSpec, cell: Cell, count: str) -> Cell:
        # A cell whose numerator or complement is at risk keeps its size (for coverage).
        if count in ("numerator", "complement") and cell.numerator is not None:
            return cell.model_copy(update={"numerator": None, "suppressed": True})
        return super().withhold(spec, cell, count)

    def local_value(self, spec: IndicatorSpec, cell: Cell) -> float | None:
        pair = released(cell)
        return 100.0 * pair[0] / pair[1] if pair and pair[1] else None

    def local_columns(self, spec: IndicatorSpec) -> tuple[list[str], str]:
        # O/E needs the other countries' rates: a node alone sees only its crude share
        return ["numerator", "denominator"], "crude percent"

    def wire_problem(self, cell: Cell) -> str | None:
        return pair_wire_problem(cell, "ratio")

    def cell_problems(self, spec: IndicatorSpec, cell: Cell, where: str, threshold: int,
                      max_count: int) -> list[Problem]:
        num, den = cell.numerator, cell.denominator
        released_pair = not cell.suppressed and num is not None and den is not None
        if not released_pair and not (cell.suppressed and num is None):
            return [Problem("suppression_inconsistent", f"{where}: a ratio cell is released "
                            "(both counts), withheld (suppressed, both null) or withheld but "
                            "for its size (suppressed, numerator null)")]
        if den is None or num is not None:
            return pair_problems(cell, where, threshold, max_count, "ratio")
        # withheld events of a cell whose size was released
        if den > max_count:
            return [Problem("count_out_of_range", f"{where}: count {den} exceeds the "
                            f"plausible maximum {max_count}")]
        if den == 0:
            return [Problem("suppression_inconsistent", f"{where}: an empty ratio cell is "
                            "not withheld")]
        if is_small(den, threshold):
            return [Problem("disclosure_violation", f"{where}: a ratio cell withheld but for "
                            f"its size releases {den} cases; a size from 1 to "
                            f"{threshold - 1} is withheld too")]
        return []

    def merge(self, spec: IndicatorSpec, results: Mapping[str, Sequence[Cell]], year: int,
              pool: Pool) -> list[Figure]:
        order = {c: i for i, c in enumerate(results)}
        mix = list(spec.adjust_for or {})
        floor = ELIGIBLE * (pool.threshold - 1)
        cells: dict[str, dict[str, list[Cell]]] = {}
        for country, found in results.items():
            for cell in found:
                label = stratum_label(cell.stratum, spec.strata)
                cells.setdefault(label, {}).setdefault(country, []).append(cell)
        figures: list[Figure] = []
        for label in sorted(cells, key=natural_key):
            here = cells[label]
            counts = counting(reference_rates(here.values(), mix), mix, floor)
            rates = reference_rates(([c for c in found if counts(c)] for found in here.values()),
                                    mix)
            for country in results:
                t = RatioTally()
                t.add(country, here.get(country, []), rates, mix, counts)
                figures.append(t.figure(spec, country, year, label, pool.threshold, True,
                                        order))
            if pool.members:
                t = RatioTally()
                for country in pool.members:
                    t.add(country, here.get(country, []), rates, mix, counts)
                figures.append(t.figure(spec, pool.name, year, label, pool.threshold, False,
                                        order))
        return figures

    def measure_text(self, spec: IndicatorSpec, unit_text: str) -> str:
        return "Observed / expected (case-mix adjusted)"


def reference_rates(countries: Iterable[Sequence[Cell]], mix: Sequence[str]
                    ) -> dict[tuple[str, ...], float]:
    """Events per case of each case-mix stratum over every released pair given."""
    events: dict[tuple[str, ...], int] = {}
    cases: dict[tuple[str, ...], int] = {}
    for found in countries:
        for cell in found:
            pair = released(cell)
            if pair is None or not pair[1]:
                continue
            key = tuple(cell.stratum[k] for k in mix)
            events[key] = events.get(key, 0) + pair[0]
            cases[key] = cases.get(key, 0) + pair[1]
    return {key: events[key] / n for key, n in cases.items()}


def counting(rates: Mapping[tuple[str, ...], float], mix: Sequence[str], floor: float
             ) -> Callable[[Cell], bool]:
    """Whether a cell counts: its size and the rate of its case-mix stratum give at least
    ``floor`` expected events and as many non-events."""
    def counts(cell: Cell) -> bool:
        p = rates.get(tuple(cell.stratum[k] for k in mix))
        n = cell.denominator or 0
        return p is not None and n > 0 and n * p >= floor and n * (1 - p) >= floor
    return counts


RATIO = Ratio()
