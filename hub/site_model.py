"""The public site's own view model: what its pages show beyond the report's indicator view.

An indicator page shows the indicator exactly as the annual report does (``hub.annual``
view, ``_indicator.html`` partial); this module adds what only the site has: every group's
figures over every year held, every version of the definition and the years it was used
in, a page per country, and the catalogue releases. Pure functions from a
``hub.history.History`` to small frozen dataclasses; nothing here is worded for a language,
the templates word it through ``hub.messages``.

Rules:

* A figure is *shown* when it has cases, or was withheld (suppressed, or a pool that left a
  country out): a stratum no country had a case in is noise on a page (the downloads keep
  it).
* Survival strata carry the endpoint (30 days in the Nordic registries, discharge in the
  US). Pages group by the stratum without the endpoint, so Nordic and US figures sit in
  one group, each line naming its endpoint.
* A change is computed against the same country and stratum in the latest earlier year
  that has a figure (``hub.history.change``); a different spec version there is a series
  break, shown as such, never as a change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from emsbench.specs import IndicatorSpec
from hub.history import Change, History, change
from hub.layout import layout
from hub.merge import NORDIC, Figure, country_key, natural_key
from hub.sections import ENDPOINT_KEY


def shown(f: Figure | None) -> bool:
    """The figure has cases or was withheld (see the module docstring)."""
    return f is not None and bool(f.denominator or f.suppressed or f.omitted)


def group_key(stratum: str) -> str:
    """The stratum without its survival endpoint: 'ca_survival_endpoint=30d;x=y' → 'x=y'."""
    return ";".join(p for p in stratum.split(";") if p and not p.startswith(ENDPOINT_KEY + "="))


def endpoint_of(stratum: str) -> str:
    """The survival endpoint value of a stratum ('30d', 'discharge'); '' when none."""
    for part in stratum.split(";"):
        key, _, value = part.partition("=")
        if key == ENDPOINT_KEY:
            return value
    return ""


@dataclass(frozen=True)
class Line:
    """One figure with the same country's and stratum's figure of the latest earlier year
    that has one (``before``) and the change from it; ``figure`` None: nothing sent."""

    country: str
    figure: Figure | None
    before: Figure | None = None
    change: Change | None = None

    @property
    def endpoint(self) -> str:
        return endpoint_of(self.figure.stratum) if self.figure is not None else ""

    @property
    def broken(self) -> bool:
        """The definition changed since ``before``: no change is computed across it."""
        return (self.figure is not None and self.before is not None
                and self.before.spec_version != self.figure.spec_version)


@dataclass(frozen=True)
class TrendRow:
    country: str
    stratum: str  # the full stratum, so the endpoint of this country's series is known
    by_year: dict[int, Figure]
    last: Line  # the latest year's figure (None if not sent) with its change

    @property
    def endpoint(self) -> str:
        return endpoint_of(self.stratum)


@dataclass(frozen=True)
class Trend:
    """One group's figures in every year held: a row per country (and endpoint)."""

    key: str  # the stratum without the endpoint ('' = all cases)
    years: tuple[int, ...]
    rows: tuple[TrendRow, ...]


@dataclass(frozen=True)
class VersionUse:
    """One definition of an indicator, the years it was used in, the releases holding it."""

    spec: IndicatorSpec
    years: tuple[int, ...]
    releases: tuple[str, ...]


@dataclass(frozen=True)
class CountryRow:
    spec: IndicatorSpec
    line: Line  # figure None: the country has no figure of this indicator this year
    pooled: Figure | None  # the Nordic pool's figure of the same stratum, for comparison


@dataclass(frozen=True)
class CountryModel:
    code: str
    year: int
    chapters: tuple[tuple[str, tuple[CountryRow, ...]], ...]  # (chapter id, rows)


@dataclass(frozen=True)
class ReleaseRow:
    id: str
    name: str
    date: str  # the release manifest's date; '' when unknown
    specs: tuple[IndicatorSpec, ...]
    years: tuple[int, ...]  # years whose standing revisions name this release


class Figures:
    """Every figure of a history, by indicator, country and stratum, year by year."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.years = tuple(history.year_numbers)
        self._by: dict[tuple[str, str, str], dict[int, Figure]] = {}
        for y in history.years:
            for f in y.figures:
                self._by.setdefault((f.indicator_id, f.country, f.stratum), {})[y.year] = f

    @property
    def latest(self) -> int:
        if not self.years:
            raise ValueError("no year with published figures: nothing to publish")
        return self.years[-1]

    def of_year(self, year: int) -> list[Figure]:
        return self.history.year(year).figures

    def series(self, indicator_id: str, country: str, stratum: str) -> dict[int, Figure]:
        return self._by.get((indicator_id, country, stratum), {})

    def line(self, f: Figure) -> Line:
        """``f`` with its figure of the latest earlier year and the change from it."""
        earlier = {y: g for y, g in self.series(f.indicator_id, f.country, f.stratum).items()
                   if y < f.year}
        if not earlier:
            return Line(f.country, f)
        before = earlier[max(earlier)]
        return Line(f.country, f, before, change(before, f))


def columns(figures: Iterable[Figure]) -> list[str]:
    """The countries of ``figures`` in the benchmark's column order (NO SE DK FI IS NORDIC
    US, then any other code alphabetically)."""
    return sorted({f.country for f in figures}, key=country_key)


def indicator_ids(history: History) -> list[str]:
    """Every indicator the hub knows (any release) or holds figures of, in layout order."""
    ids = [s.id for s in history.catalogues.specs()]
    ids += [f.indicator_id for y in history.years for f in y.figures]
    return [i for _, chapter in layout().arrange(list(dict.fromkeys(ids))) for i in chapter]


def specs_of(history: History, indicator_id: str) -> list[IndicatorSpec]:
    """The indicator's definitions the hub knows, newest first."""
    return [s for s in history.catalogues.specs() if s.id == indicator_id]


def versions(history: History, indicator_id: str) -> tuple[VersionUse, ...]:
    return tuple(
        VersionUse(s, tuple(y.year for y in history.years
                            if any(f.indicator_id == s.id and f.spec_version == s.version
                                   for f in y.figures)),
                   tuple(history.catalogues.releases_of(s)))
        for s in specs_of(history, indicator_id))


def trends(figs: Figures, indicator_id: str) -> tuple[Trend, ...]:
    """Per group, one row per country and full stratum shown in any year, with its figure
    in every year and the latest year's change; a series that ended before the latest year
    keeps its row (the country stopped sending it), without a change."""
    years = figs.years
    rows: dict[str, set[tuple[str, str]]] = {}
    for y in figs.history.years:
        for f in y.figures:
            if f.indicator_id == indicator_id and shown(f):
                rows.setdefault(group_key(f.stratum), set()).add((f.country, f.stratum))
    out = []
    for key in sorted(rows, key=natural_key):
        found = []
        for country, stratum in sorted(rows[key], key=lambda cs: (country_key(cs[0]),
                                                                  natural_key(cs[1]))):
            by_year = figs.series(indicator_id, country, stratum)
            now = by_year.get(years[-1])
            found.append(TrendRow(country, stratum, dict(by_year),
                                  figs.line(now) if now is not None else Line(country, None)))
        out.append(Trend(key, years, tuple(found)))
    return tuple(out)


def country_codes(history: History) -> list[str]:
    """Every country (and the pool) with a figure in any year, in column order."""
    return columns(f for y in history.years for f in y.figures)


def country_model(figs: Figures, code: str) -> CountryModel:
    """Every indicator's shown figures of ``code`` in the latest year, by chapter, beside
    the pool's figure of the same stratum; an indicator it has no figure of gets one empty
    row, so the page says so instead of leaving the indicator out."""
    year, history = figs.latest, figs.history
    latest = [f for f in figs.of_year(year) if f.country == code]
    chapters = []
    for chapter, ids in layout().arrange(indicator_ids(history)):
        rows: list[CountryRow] = []
        for indicator_id in ids:
            specs = specs_of(history, indicator_id)
            rank = {s.version: i for i, s in enumerate(specs)}
            mine = [f for f in latest if f.indicator_id == indicator_id]
            found = sorted([f for f in mine if shown(f)] or mine[:1],
                           key=lambda f: (rank.get(f.spec_version, 0), natural_key(f.stratum)))
            for f in found:
                spec = next((s for s in specs if s.version == f.spec_version), specs[0])
                pooled = None if code == NORDIC else figs.series(
                    indicator_id, NORDIC, f.stratum).get(year)
                rows.append(CountryRow(spec, figs.line(f), pooled))
            if not found and specs:
                rows.append(CountryRow(specs[0], Line(code, None), None))
        chapters.append((chapter, tuple(rows)))
    return CountryModel(code, year, tuple(chapters))


def release_rows(history: History, dates: dict[str, str] | None = None) -> list[ReleaseRow]:
    """Every catalogue release the hub accepts, current first, with the years whose
    standing revisions were computed with it."""
    dates = dates or {}
    used: dict[str, set[int]] = {}
    for y in history.years:
        for s in y.view.standing:
            used.setdefault(s.record.catalogue, set()).add(y.year)
    return [ReleaseRow(c.id, c.name, dates.get(c.id, ""), c.specs,
                       tuple(sorted(used.get(c.id, ()))))
            for c in history.catalogues.releases]


def stamp(at: datetime) -> str:
    """A publication time as the pages print it."""
    return at.strftime("%Y-%m-%d %H:%M UTC")
