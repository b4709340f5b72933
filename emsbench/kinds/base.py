"""What every kind of indicator says about itself, and the merge most kinds share.

A *kind* (share, distribution, rate, observed/expected ratio) owns everything that differs
between indicators of different shapes: which spec fields it needs, its aggregate SQL, the
wire cell it fills, how that cell is checked and protected, and how cells of several
countries merge into published figures. Code elsewhere asks the spec's kind
(``emsbench.kinds.kind_of``) and never branches on the type name, so adding a kind is one
new module here, one entry in the registry and a wire minor version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from emsbench.figure import Figure, natural_key, spec_decimals, stratum_label
from emsbench.wire import Cell

if TYPE_CHECKING:
    from emsbench.specs import ExpectedCell, IndicatorSpec

Loc = tuple[str | int, ...]
# What a count of cases counts, for linking margins across indicators (emsbench.margins):
# ("d",) the population, ("n", numerator) and ("c", numerator) its split, ("t", measure,
# bins start) the cases with a value.
MarginKey = tuple[str, ...]
UNKNOWN = "unknown"
# Spec fields that belong to one kind or another; a kind lists those it needs and takes,
# and every other one is refused, so a spec cannot carry a field that means nothing.
KIND_FIELDS = ("numerator", "measure", "bins", "quantile", "adjust_for")


@dataclass(frozen=True)
class Problem:
    """A breach of a rule, with a stable code (see ``emsbench.conformance``)."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def is_small(n: int | None, threshold: int) -> bool:
    """A count disclosure control must never release: 1 … threshold − 1."""
    return n is not None and 0 < n < threshold


@dataclass(frozen=True)
class Context:
    """What a node knows besides its rows: its country, the year and, for rates, its
    official population by (age band, sex)."""

    country: str | None = None
    year: int | None = None
    population: Mapping[tuple[str, str], int] | None = None


def strata_select(spec: IndicatorSpec) -> str:
    """Strata as text columns ``s_0, s_1…``; a missing value is its own stratum."""
    return "".join(f"{key} AS s_{i}, " for i, key in enumerate(strata_keys(spec)))


def group_by(n: int, extra: str = "") -> str:
    keys = [f"s_{i}" for i in range(n)] + ([extra] if extra else [])
    return (" GROUP BY " + ", ".join(keys)) if keys else ""


def population_filter(spec: IndicatorSpec) -> str:
    return f"coalesce(({spec.population}), false)"


@dataclass(frozen=True)
class Partial:
    """One additive aggregate of a spec over the rows (``emsbench.batch``): the count of
    rows where every ``where`` term holds, or with ``value`` the count of each value it
    takes on those rows."""

    where: tuple[str, ...]
    value: str | None = None


def count_partials(spec: IndicatorSpec) -> tuple[Partial, ...]:
    """The population's count and, with a numerator, the count of its cases."""
    pop = population_filter(spec)
    if spec.numerator is None:
        return (Partial((pop,)),)
    return (Partial((pop,)), Partial((pop, f"coalesce(({spec.numerator}), false)")))


def strata_keys(spec: IndicatorSpec) -> tuple[str, ...]:
    """The spec's strata as text; a missing value is its own stratum."""
    return tuple(f"coalesce(CAST({s} AS VARCHAR), '{UNKNOWN}')" for s in spec.strata)


class Kind(ABC):
    """One kind of indicator. Instances are stateless singletons (``emsbench.kinds.KINDS``)."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()  # spec fields the kind requires
    takes: ClassVar[tuple[str, ...]] = ()  # optional spec fields it accepts besides
    expect_fields: ClassVar[tuple[str, ...]] = ()  # what a test-case expectation must give
    units: ClassVar[tuple[str, ...]]  # the units its value can be published in
    summary: ClassVar[str]  # what the kind publishes, for docs and help text
    reference: ClassVar[float | None] = None  # a value charts always show (O/E: 1)

    # --- the spec ---------------------------------------------------------------------

    def spec_problems(self, spec: IndicatorSpec) -> list[tuple[Loc, str]]:
        """Semantic rules of the kind (the schema stage has passed)."""
        out: list[tuple[Loc, str]] = []
        if spec.unit not in self.units:
            out.append((("unit",), f"a {self.name} is published in {' or '.join(self.units)}, "
                        f"not {spec.unit!r}"))
        for need in self.needs:
            if getattr(spec, need) is None:
                out.append((("type",), f"a {self.name} spec needs {need!r}"))
        for extra in KIND_FIELDS:
            if extra not in self.needs and extra not in self.takes \
                    and getattr(spec, extra) is not None:
                out.append(((extra,), f"a {self.name} spec takes no {extra!r}"))
        return out

    def expect_problem(self, spec: IndicatorSpec, cell: ExpectedCell) -> str | None:
        missing = [f for f in self.expect_fields if getattr(cell, f) is None]
        if missing:
            return f"a {self.name} expectation needs {' and '.join(self.expect_fields)}"
        return None

    # --- computing at the node ----------------------------------------------------------

    @abstractmethod
    def aggregate_sql(self, spec: IndicatorSpec, table: str) -> str:
        """The spec's meaning as one plain aggregate query: strata columns ``s_i`` first,
        then the kind's counts. The node computes the same rows for the whole catalogue in
        one scan (``emsbench.batch``); tests hold the two equal."""

    def population(self, spec: IndicatorSpec) -> str:
        """The term a row must satisfy to count at all."""
        return population_filter(spec)

    def keys(self, spec: IndicatorSpec) -> tuple[str, ...]:
        """What the spec's rows are grouped by, as SQL: its strata."""
        return strata_keys(spec)

    def partials(self, spec: IndicatorSpec) -> tuple[Partial, ...]:
        """The additive aggregates its figures come from, the population's count first."""
        return count_partials(spec)

    def rows(self, spec: IndicatorSpec, merged: Mapping[tuple[str, ...], Sequence[Any]],
             con: Any) -> list[tuple[Any, ...]]:
        """Rows shaped as ``aggregate_sql``'s, from the partials added up per stratum
        (``con``: the sandbox, for a kind that needs DuckDB's arithmetic)."""
        return [(*key, *values) for key, values in merged.items()]

    @abstractmethod
    def cells(self, spec: IndicatorSpec, rows: Sequence[tuple[Any, ...]],
              ctx: Context) -> list[Cell]:
        """Cells from the query's rows (any order; the engine sorts them)."""

    @abstractmethod
    def empty_cell(self, spec: IndicatorSpec, stratum: dict[str, str], ctx: Context) -> Cell:
        """The cell of a stratum no row fell in (zero is not a disclosure)."""

    @abstractmethod
    def protect(self, spec: IndicatorSpec, cell: Cell, threshold: int) -> Cell:
        """The cell as it may leave the node: no count from 1 to threshold − 1."""

    def summary_of(self, spec: IndicatorSpec, cell: Cell) -> dict[str, Any]:
        """The cell in the shape spec test cases expect (``ExpectedCell`` fields)."""
        return {"stratum": cell.stratum, "numerator": cell.numerator,
                "denominator": cell.denominator, "bins": None}

    def describe(self, spec: IndicatorSpec, summary: Mapping[str, Any]) -> str:
        return ", ".join(f"{f} {summary[f]}" for f in self.expect_fields)

    def differences(self, spec: IndicatorSpec, label: str, want: Mapping[str, Any],
                    got: Mapping[str, Any]) -> list[str]:
        return [f"{label}: {f} expected {want[f]}, got {got[f]}"
                for f in self.expect_fields if want[f] != got[f]]

    def local_value(self, spec: IndicatorSpec, cell: Cell) -> float | None:
        """The cell's figure in the spec's unit, as ``specs run`` prints it at the node."""
        return None

    def local_columns(self, spec: IndicatorSpec) -> tuple[list[str], str]:
        """Headers of ``specs run``: the cell's counts, then its value."""
        return ["numerator", "denominator"], spec.unit

    def local_counts(self, spec: IndicatorSpec, cell: Cell) -> list[int | None]:
        return [cell.numerator, cell.denominator]

    def margin_counts(self, spec: IndicatorSpec, cell: Cell
                      ) -> list[tuple[str, MarginKey, int | None]]:
        """(name, what it counts, value) of every count of cases the cell carries, for
        secondary suppression across margins; value None: withheld."""
        return []

    def withhold(self, spec: IndicatorSpec, cell: Cell, count: str) -> Cell:
        """The cell withheld by secondary suppression because its ``count`` is at risk:
        whole, by default."""
        return cell.model_copy(update={"numerator": None, "denominator": None, "bins": None,
                                       "quantiles": None, "suppressed": True})

    # --- checking what arrives ----------------------------------------------------------

    def wire_problem(self, cell: Cell) -> str | None:
        """A shape breach the wire model refuses outright (fields of another kind)."""
        return None

    @abstractmethod
    def cell_problems(self, spec: IndicatorSpec, cell: Cell, where: str, threshold: int,
                      max_count: int) -> list[Problem]:
        """Every way a received cell breaks the kind's rules (counts, disclosure)."""

    # --- merging at the hub ------------------------------------------------------------

    @abstractmethod
    def merge(self, spec: IndicatorSpec, results: Mapping[str, Sequence[Cell]], year: int,
              pool: Pool) -> list[Figure]:
        """Figures of one spec: each country in ``results`` (in the order given) × stratum,
        plus the pool's figure."""

    def measure_text(self, spec: IndicatorSpec, unit_text: str) -> str:
        """What the value is, in words, for report tables."""
        return unit_text

    def basis(self, figure: Figure, count: Callable[[int | None], str]) -> str:
        """What a figure is based on, in words (``count`` formats a number)."""
        return f"n = {count(figure.denominator)}"


@dataclass(frozen=True)
class Pool:
    """Who is pooled and under which threshold (federation policy, from the hub)."""

    name: str
    members: tuple[str, ...]  # the countries of ``results`` that the pool adds up
    threshold: int  # the strictest disclosure threshold among the members


@dataclass
class Tally(ABC):
    """Released counts of one stratum, summed over one or more countries."""

    suppressed: bool = False
    countries: list[str] = field(default_factory=list)  # released with at least one case
    omitted: list[str] = field(default_factory=list)  # withheld by their node

    @abstractmethod
    def add(self, spec: IndicatorSpec, cell: Cell, country: str) -> None: ...

    @abstractmethod
    def values(self, spec: IndicatorSpec, threshold: int, own: bool
               ) -> tuple[int | None, int | None, float | None, float | None, float | None]:
        """(numerator, denominator, value, low, high); ``threshold`` applies to a pool,
        ``own`` marks one country's own cell (its node protected it already)."""

    def figure(self, spec: IndicatorSpec, country: str, year: int, stratum: str,
               threshold: int, own: bool, order: Callable[[str], Any]) -> Figure:
        num, den, value, lo, hi = self.values(spec, threshold, own)
        return Figure(spec.id, spec.version, spec.unit, country, year, stratum, num, den,
                      value, lo, hi, self.suppressed, len(self.countries),
                      tuple(sorted(self.countries, key=order)),
                      tuple(sorted(self.omitted, key=order)), spec_decimals(spec))


def merge_by_stratum(spec: IndicatorSpec, results: Mapping[str, Sequence[Cell]], year: int,
                     pool: Pool, tally: Callable[[], Tally],
                     finish: Callable[[Figure, dict[str, Cell]], Figure] | None = None
                     ) -> list[Figure]:
    """The merge of additive kinds: per stratum, each country's own figure, then the pool's
    (its members' released counts added). ``finish`` may add to a member's figure (a
    share's difference from the rest of the pool)."""
    order = {c: i for i, c in enumerate(results)}
    cells = {country: {stratum_label(c.stratum, spec.strata): c for c in found}
             for country, found in results.items()}
    strata = sorted({s for by_stratum in cells.values() for s in by_stratum}, key=natural_key)
    figures: list[Figure] = []
    for stratum in strata:
        here = {c: cell for c in cells if (cell := cells[c].get(stratum)) is not None}
        for country in results:
            t = tally()
            if (cell := here.get(country)) is not None:
                t.add(spec, cell, country)
            figure = t.figure(spec, country, year, stratum, 1, True, order.__getitem__)
            if finish is not None and country in pool.members:
                figure = finish(figure, here)
            figures.append(figure)
        if pool.members:
            t = tally()
            for country in pool.members:
                if (cell := here.get(country)) is not None:
                    t.add(spec, cell, country)
            figures.append(t.figure(spec, pool.name, year, stratum, pool.threshold, False,
                                    order.__getitem__))
    return figures
