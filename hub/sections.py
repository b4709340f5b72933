"""An indicator's figures of one year as table rows: one row per stratum with cases, one
cell per country column, and O/E tables for ratio indicators.

``build_sections`` is the part of the report and the site that decides what a table holds
(which strata, which endpoint per country, which versions of a spec are shown and under
which releases); ``hub.annual`` adds charts and trends on top, and the templates only lay
the rows out. Labels come from a ``label(stratum, skip)`` function, so the same rows serve
every language (``hub.messages``); ``stratum_text`` is the plain fallback the CSV and
JSON-stat exports use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from emsbench.kinds import kind_of
from emsbench.specs import IndicatorSpec
from emsbench.stats import wilson_interval
from hub.catalogues import Catalogues
from hub.merge import NORDIC, Figure, country_key, natural_key

ENDPOINT_KEY = "ca_survival_endpoint"
COUNTRY_NAMES = {"NO": "Norway", "SE": "Sweden", "DK": "Denmark", "FI": "Finland",
                 "IS": "Iceland", NORDIC: "Nordic pooled", "US": "United States"}
UNIT_TEXT = {"percent": "percent", "minutes": "minutes", "per_1000": "per 1 000 inhabitants",
             "per_100k": "per 100 000 inhabitants", "ratio": "observed / expected"}


@dataclass
class Entry:
    """One figure as shown in a table cell and as one line of the chart."""

    figure: Figure | None  # None: the country sent no submission this year
    endpoint: str = ""


@dataclass
class Row:
    label: str
    cells: dict[str, list[Entry]] = field(default_factory=dict)


@dataclass
class RatioLine:
    """One country's (or the pool's) O/E figure with its crude share (percent) beside."""

    country: str
    figure: Figure
    crude: float | None = None
    crude_low: float | None = None
    crude_high: float | None = None


@dataclass
class RatioTable:
    """An O/E ratio's figures of one reporting stratum (a survival endpoint): each group
    has its own reference population, the countries with released cases in it."""

    label: str
    reference: list[str]  # the reference countries' codes
    lines: list[RatioLine]


@dataclass
class Section:
    spec: IndicatorSpec
    measure: str
    rows: list[Row]
    endpoints: list[tuple[str, str]]  # (countries, endpoint value) found in the data
    bins_note: str = ""
    releases: str = ""  # the catalogue releases that hold exactly this spec
    anchor: str = ""  # the HTML id: the spec id, with the version when several are shown
    ratio: list[RatioTable] | None = None  # O/E ratios: one table per reporting stratum


def _plain(key: str) -> str:
    return key.replace("_", " ")


def stratum_text(stratum: str, skip: str = "") -> str:
    """'age_group=18-64;urgency=A' → 'age group: 18-64 · urgency: A'; '' → 'All cases'."""
    parts = [p.split("=", 1) for p in stratum.split(";") if p]
    shown = [f"{_plain(k)}: {_plain(v)}" for k, v in parts if k != skip]
    return " · ".join(shown) or "All cases"


def _endpoint(stratum: str) -> str:
    for part in stratum.split(";"):
        key, _, value = part.partition("=")
        if key == ENDPOINT_KEY:
            return _plain(value)
    return ""


def measure_text(spec: IndicatorSpec) -> str:
    return kind_of(spec).measure_text(spec, UNIT_TEXT[spec.unit])


def bins_note(spec: IndicatorSpec) -> str:
    """Plain-language note on how a distribution's quantile, its interval and its
    resolution come about."""
    if spec.bins is None:
        return ""
    b, unit = spec.bins, UNIT_TEXT[spec.unit]
    top = b.start + b.count * b.width
    seconds = b.width * 60
    if spec.unit == "minutes" and seconds < 59.5 and abs(seconds - round(seconds)) < 1e-6:
        bins = f"{round(seconds)}-second bins"
    elif spec.unit == "minutes":
        bins = f"{b.width:g}-minute bins"
    else:
        bins = f"bins {b.width:g} {unit} wide"
    return ("Quantile definition: Hyndman–Fan type 7 (R's default, numpy's linear): of n "
            "sorted values, the one at rank (n − 1)·q + 1, interpolated between neighbours. A "
            "country's value is exact: its node computes it from the raw values (where a node "
            "sent none, as under an earlier spec version, it is read off the country's "
            f"histogram like a pooled value). A pooled value is read off the pooled {bins} at "
            "that rank, each bin's cases spread evenly over it, so it is accurate to about one "
            "bin (one run, where nodes joined bins to withhold small counts). Intervals: the "
            "exact binomial order-statistic 95 % interval (the cases at "
            "the two ranks the binomial distribution gives), widened to the edges of the bins "
            "those cases lie in, or of the wider runs a node released where it joined bins "
            f"to withhold small counts. Values of {top:g} {unit} or more share one open-ended "
            f"bin; an interval that reaches into it is shown ending at {top:g}.")


def fmt_count(n: int | None) -> str:
    return "–" if n is None else f"{n:,}".replace(",", "\u202f")  # narrow no-break space


def build_sections(figures: Sequence[Figure], specs: Sequence[IndicatorSpec],
                   columns: Sequence[str], catalogues: Catalogues | None = None,
                   label: Callable[[str, str], str] = stratum_text) -> list[Section]:
    """Group figures per spec into table rows (one per stratum) and a chart.

    An indicator submitted under two versions (countries on different catalogue releases)
    gets one section per version, each naming its releases; versions nobody used are left
    out, except the first of each indicator, which says that nobody submitted it."""
    sections = []
    shown_ids: set[str] = set()
    versions = {(f.indicator_id, f.spec_version) for f in figures}
    several = {i for i, _ in versions if sum(j == i for j, _ in versions) > 1}
    for spec in specs:
        mine = [f for f in figures
                if f.indicator_id == spec.id and f.spec_version == spec.version]
        if not mine and spec.id in shown_ids:
            continue
        shown_ids.add(spec.id)
        # The survival endpoint differs by country by design, so it is shown in each cell
        # rather than splitting Nordic and US figures onto rows that are empty for the other.
        skip = ENDPOINT_KEY if ENDPOINT_KEY in spec.strata else ""
        rows: dict[str, Row] = {}
        for f in sorted(mine, key=lambda f: natural_key(f.stratum)):
            text = label(f.stratum, skip)
            row = rows.setdefault(text, Row(text, {c: [] for c in columns}))
            row.cells.setdefault(f.country, []).append(Entry(f, _endpoint(f.stratum)))
        for row in rows.values():
            for c in columns:
                entries = row.cells[c]
                # With several endpoints, keep only the ones this country actually reported.
                filled = [e for e in entries
                          if e.figure and (e.figure.denominator or e.figure.suppressed)]
                row.cells[c] = filled or entries[:1] or [Entry(None)]
        found: dict[str, list[str]] = {}
        for f in mine:
            if skip and f.country != NORDIC and (f.denominator or f.suppressed):
                found.setdefault(_endpoint(f.stratum), []).append(f.country)
        endpoints = [(", ".join(sorted(set(cs), key=country_key)), ep) for ep, cs in found.items()]
        # Nodes send every stratum of the grid; a row no country has a case in is noise here
        # (the export keeps it).
        row_list = [r for r in rows.values() if any(
            e.figure is not None and (e.figure.denominator or e.figure.suppressed)
            for entries in r.cells.values() for e in entries)]
        releases = ", ".join(catalogues.releases_of(spec)) if catalogues else ""
        anchor = f"{spec.id}-v{spec.version}" if spec.id in several else spec.id
        sections.append(Section(spec, measure_text(spec), row_list, endpoints,
                                bins_note(spec),
                                releases, anchor,
                                # O/E tables for a kind compared with a reference value
                                ratio_tables(mine, columns, label)
                                if kind_of(spec).reference is not None else None))
    return sections


def ratio_tables(figures: Sequence[Figure], columns: Sequence[str],
                 label: Callable[[str, str], str] = stratum_text) -> list[RatioTable]:
    """Per reporting stratum with any case: each country's and the pool's O, E, O/E and
    crude share (Wilson interval), in column order; countries without a case or a
    withheld cell there are left out (the US has no 30-day endpoint)."""
    tables = []
    by_stratum: dict[str, list[Figure]] = {}
    for f in figures:
        by_stratum.setdefault(f.stratum, []).append(f)
    for stratum in sorted(by_stratum, key=natural_key):
        order = {c: i for i, c in enumerate(columns)}
        found = sorted(by_stratum[stratum], key=lambda f: order.get(f.country, len(order)))
        lines = []
        for f in found:
            if not (f.denominator or f.suppressed or f.omitted):
                continue
            line = RatioLine(f.country, f)
            if f.numerator is not None and f.denominator:
                lo, hi = wilson_interval(f.numerator, f.denominator)
                line.crude = 100 * f.numerator / f.denominator
                line.crude_low, line.crude_high = 100 * lo, 100 * hi
            lines.append(line)
        if not lines:
            continue
        reference = [f.country for f in found if f.country != NORDIC and f.countries]
        tables.append(RatioTable(label(stratum, ""), reference, lines))
    return tables
