"""Rate: events per population, per 1,000 or per 100,000 inhabitants a year.

Spec: ``population`` (an SQL boolean selecting the events, e.g. EMS-treated arrests) and
nothing of another kind (no numerator, measure, bins, quantile or adjust_for); unit
``per_1000`` or ``per_100k``. Strata only from the columns the official population is
broken down by (``age_band``, ``patient_sex``), since every stratum needs its own
population to divide by. Each test case of a rate spec gives the population it divides by
(``population``: rows of age band, sex and persons; a cell left out has 0 persons).

Cell: ``numerator`` = events in the stratum (rows of the population), ``denominator`` =
persons in the stratum, from the node's official population (``Context.population``, by age
band and sex, summed over the breakdown the spec does not stratify on). The official
population has no one of unknown age band or sex, so a stratum ``age_band=unknown`` or
``patient_sex=unknown`` has denominator 0: its events are sent (they count in a crude rate
of another spec) but give no rate. A stratum without events still has its persons
(``empty_cell``), so computing a rate needs the population: without it the kind refuses.

Protection: a cell with 1 … threshold − 1 events is withheld whole (numerator and
denominator null, suppressed). The population is public (official statistics), so it is
no disclosure and zero events is released with it; nor is persons − events a count of
anyone in the data, so no complement is checked.

Conformance: withheld cells carry no counts and released ones both; counts within the
plausibility bound; events cannot exceed persons (``numerator_exceeds_denominator``)
except in an unknown stratum, whose persons must be 0; no released event count from 1 to
threshold − 1 (``disclosure_violation``).

Merge: events and persons add across countries; the value is events / persons × 1,000 or
× 100,000, with the exact (Garwood) Poisson interval of the events divided by the persons.
A pool whose events are small under its threshold is withheld, as for shares; a member
whose cell was withheld is left out of the pool (neither its events nor its persons).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emsbench.figure import Figure
from emsbench.kinds.base import (
    UNKNOWN,
    Context,
    Kind,
    Loc,
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
from emsbench.kinds.share import pair_wire_problem, released  # (events, persons) of a cell
from emsbench.stats import poisson_interval
from emsbench.wire import Cell

if TYPE_CHECKING:
    from emsbench.specs import ExpectedCell, IndicatorSpec

# A rate becomes a value in the spec's unit by this factor.
SCALE = {"per_1000": 1_000.0, "per_100k": 100_000.0}
SCALE_TEXT = {"per_1000": "per 1,000", "per_100k": "per 100,000"}
# The columns of the model that the official population is broken down by, and the key of
# each in ``Context.population`` (age band, sex).
POPULATION_STRATA = ("age_band", "patient_sex")


def scale(spec: IndicatorSpec) -> float:
    return SCALE[spec.unit]


def persons_in(spec: IndicatorSpec, stratum: Mapping[str, str],
               population: Mapping[tuple[str, str], int]) -> int:
    """Persons of the official population in ``stratum``: the cells of matching age band
    and sex, summed over what the spec does not stratify on; 0 for an unknown value."""
    band, sex = stratum.get("age_band"), stratum.get("patient_sex")
    return sum(n for (b, s), n in population.items()
               if (band is None or band == b) and (sex is None or sex == s))


class PopulationMissing(ValueError):
    """A rate was computed without the official population to divide by."""


def needs_population(spec: IndicatorSpec, ctx: Context) -> Mapping[tuple[str, str], int]:
    if ctx.population is None:
        raise PopulationMissing(
            f"indicator {spec.id} is a rate: computing it needs the official population by "
            "age band and sex (Context.population; a node takes it from node.toml key "
            "'population' or the shipped reference of its country and year)")
    return ctx.population


def unknown_stratum(cell: Cell) -> bool:
    return any(cell.stratum.get(s) == UNKNOWN for s in POPULATION_STRATA)


@dataclass
class RateTally(Tally):
    events: int = 0
    persons: int = 0

    def add(self, spec: IndicatorSpec, cell: Cell, country: str) -> None:
        pair = released(cell)
        self.suppressed |= cell.suppressed or pair is None
        if pair is None:  # neither its events nor its persons: the pooled rate stays unbiased
            self.omitted.append(country)
            return
        self.events += pair[0]
        self.persons += pair[1]
        if pair[1] > 0:  # a country with persons in the stratum contributes, events or not
            self.countries.append(country)

    def values(self, spec: IndicatorSpec, threshold: int, own: bool
               ) -> tuple[int | None, int | None, float | None, float | None, float | None]:
        k, n = self.events, self.persons
        withheld = own and bool(self.omitted)
        if is_small(k, threshold):
            # A pool may not publish what its strictest member would have withheld.
            withheld, self.suppressed = True, True
        if withheld:
            return None, None, None, None, None
        if not n:
            return k, n, None, None, None
        lo, hi = poisson_interval(k)
        s = scale(spec) / n
        return k, n, s * k, s * lo, s * hi


class Rate(Kind):
    name = "rate"
    units = ("per_1000", "per_100k")
    expect_fields = ("numerator", "denominator")
    summary = ("events per population (per 1,000 or 100,000 inhabitants, official "
               "population by the same strata) with an exact Poisson interval")

    def spec_problems(self, spec: IndicatorSpec) -> list[tuple[Loc, str]]:
        out = super().spec_problems(spec)
        for i, s in enumerate(spec.strata):
            if s not in POPULATION_STRATA:
                out.append((("strata", i), f"a rate can only be stratified by what the "
                            f"official population is broken down by "
                            f"({', '.join(POPULATION_STRATA)}), not {s!r}: there is no "
                            f"population per {s} to divide by"))
        for c, case in enumerate(spec.tests):
            if case.population is None:
                out.append((("tests", c), f"tests[{c}]: a rate test case needs "
                            "'population': the persons it divides by, as rows "
                            "{age_band, sex, persons}"))
        return out

    def expect_problem(self, spec: IndicatorSpec, cell: ExpectedCell) -> str | None:
        if cell.numerator is None or cell.denominator is None:
            return ("a rate expectation needs numerator (events) and denominator (persons "
                    "of the case's population in the stratum)")
        return None

    def aggregate_sql(self, spec: IndicatorSpec, table: str) -> str:
        return (f"SELECT {strata_select(spec)}count(*) AS events FROM {table} "
                f"WHERE {population_filter(spec)}{group_by(len(spec.strata))}")

    def cells(self, spec: IndicatorSpec, rows: Sequence[tuple[Any, ...]],
              ctx: Context) -> list[Cell]:
        population = needs_population(spec, ctx)
        k = len(spec.strata)
        out = []
        for r in rows:
            stratum = dict(zip(spec.strata, map(str, r[:k]), strict=True))
            out.append(Cell(stratum=stratum, numerator=int(r[k]),
                            denominator=persons_in(spec, stratum, population)))
        return out

    def empty_cell(self, spec: IndicatorSpec, stratum: dict[str, str], ctx: Context) -> Cell:
        return Cell(stratum=stratum, numerator=0,
                    denominator=persons_in(spec, stratum, needs_population(spec, ctx)))

    def protect(self, spec: IndicatorSpec, cell: Cell, threshold: int) -> Cell:
        if is_small(cell.numerator, threshold):
            return cell.model_copy(update={"numerator": None, "denominator": None,
                                           "suppressed": True})
        return cell

    def describe(self, spec: IndicatorSpec, summary: Mapping[str, Any]) -> str:
        return f"events {summary['numerator']}, persons {summary['denominator']}"

    def differences(self, spec: IndicatorSpec, label: str, want: Mapping[str, Any],
                    got: Mapping[str, Any]) -> list[str]:
        return [f"{label}: {name} expected {want[f]}, got {got[f]}"
                for f, name in (("numerator", "events"), ("denominator", "persons"))
                if want[f] != got[f]]

    def margin_counts(self, spec: IndicatorSpec, cell: Cell
                      ) -> list[tuple[str, MarginKey, int | None]]:
        return [("events", ("d",), cell.numerator)]  # events: the population's count

    def local_value(self, spec: IndicatorSpec, cell: Cell) -> float | None:
        pair = released(cell)
        return scale(spec) * pair[0] / pair[1] if pair and pair[1] else None

    def local_columns(self, spec: IndicatorSpec) -> tuple[list[str], str]:
        return ["events", "persons"], SCALE_TEXT[spec.unit]

    def wire_problem(self, cell: Cell) -> str | None:
        return pair_wire_problem(cell, "rate")  # numerator: events, denominator: persons

    def cell_problems(self, spec: IndicatorSpec, cell: Cell, where: str, threshold: int,
                      max_count: int) -> list[Problem]:
        num, den = cell.numerator, cell.denominator
        if cell.suppressed != (num is None and den is None) or (num is None) != (den is None):
            return [Problem("suppression_inconsistent", f"{where}: a rate cell is either "
                            "withheld (suppressed, both counts null) or has events and "
                            "persons")]
        if num is None or den is None:
            return []
        p: list[Problem] = []
        if max(num, den) > max_count:
            p.append(Problem("count_out_of_range", f"{where}: count {max(num, den)} exceeds "
                             f"the plausible maximum {max_count}"))
        if unknown_stratum(cell):
            if den:
                p.append(Problem("count_out_of_range", f"{where}: {den} persons, but the "
                                 "official population has no one of unknown age band or "
                                 "sex (the plausible maximum here is 0)"))
        elif num > den:
            p.append(Problem("numerator_exceeds_denominator",
                             f"{where}: {num} events among {den} persons"))
        if is_small(num, threshold):
            p.append(Problem("disclosure_violation", f"{where}: releases {num} events, a "
                             f"count from 1 to {threshold - 1}"))
        return p

    def basis(self, figure: Figure, count: Callable[[int | None], str]) -> str:
        return f"{count(figure.numerator)} events · {count(figure.denominator)} inhabitants"

    def merge(self, spec: IndicatorSpec, results: Mapping[str, Sequence[Cell]], year: int,
              pool: Pool) -> list[Figure]:
        return merge_by_stratum(spec, results, year, pool, RateTally)

    def measure_text(self, spec: IndicatorSpec, unit_text: str) -> str:
        return f"Rate {unit_text} a year (events / official population)"


RATE = Rate()
