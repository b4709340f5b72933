"""One indicator as the annual report and the public site show it: table, charts, trend.

``indicator_view`` turns one spec's merged figures of the report year, and its series over
every year the hub holds (``hub.history``), into an ``IndicatorView``: the table rows (one
per stratum with cases, one cell per country column), a forest plot of the headline group,
a funnel plot for shares whose denominators differ a lot, the trend of the headline group
and each column's change from the year before with whether it is beyond chance. Every word
comes from ``hub.messages``; the charts from ``hub.charts``. The template partial
``hub/templates/_indicator.html`` renders a view; report and site include the same partial.

The *headline group* is the stratum a chart and a trend line show when an indicator is
stratified: among the most urgent level (U1) if urgency is a stratum, the one with the
most pooled cases; per country its own largest one when the pool has none there (the US
reports another survival endpoint).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from emsbench.figure import Figure, natural_key
from emsbench.kinds import kind_of
from emsbench.specs import IndicatorSpec
from hub import charts
from hub.history import Change, History, last_change
from hub.merge import NORDIC, country_key
from hub.messages import Messages
from hub.sections import ENDPOINT_KEY, RatioTable, Row, Section, build_sections

# A funnel plot is drawn for shares whose largest country denominator is at least this many
# times the smallest: there a table of intervals hides that a small country's extreme share
# is within chance.
FUNNEL_SPREAD = 20.0


@dataclass
class TrendLine:
    """One column's figure in each year held, and its change into the report year."""

    country: str
    label: str
    stratum: str
    by_year: dict[int, Figure]
    change: Change | None
    broken: bool = False  # the definition changed between the last two years shown


@dataclass
class IndicatorView:
    spec: IndicatorSpec
    section: Section  # table rows, endpoints, ratio tables (hub.sections.build_sections)
    measure: str
    direction: str
    headline: str  # the headline group in words
    forest: str = ""  # inline SVG, "" when nothing can be drawn
    funnel: str = ""
    trend: str = ""
    trend_lines: list[TrendLine] = field(default_factory=list)
    years: list[int] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return self.section.anchor

    @property
    def rows(self) -> list[Row]:
        return self.section.rows

    @property
    def ratio(self) -> list[RatioTable] | None:
        return self.section.ratio


def measure_text(spec: IndicatorSpec, m: Messages) -> str:
    unit = m(f"unit.{spec.unit}")
    if spec.type == "distribution":
        q = round((spec.quantile or 0.5) * 100)
        return m("measure.distribution_median", unit=unit) if q == 50 else m(
            "measure.distribution", q=q, unit=unit)
    return m(f"measure.{spec.type}", unit=unit)


def _cases(f: Figure) -> int:
    return f.denominator or 0


def headline_strata(spec: IndicatorSpec, figures: Sequence[Figure]) -> dict[str, str]:
    """Per column (country code or NORDIC): the stratum its chart and trend show."""
    mine = [f for f in figures if f.value is not None or f.suppressed or _cases(f)]
    if "urgency_level" in spec.strata:
        urgent = [f for f in mine if "urgency_level=U1" in f.stratum.split(";")]
        mine = urgent or mine
    if not mine:
        return {}
    pooled: dict[str, int] = {}
    for f in mine:
        if f.country == NORDIC:
            pooled[f.stratum] = pooled.get(f.stratum, 0) + _cases(f)
    best_pooled = max(sorted(pooled, key=natural_key), key=lambda s: pooled[s], default=None)
    out: dict[str, str] = {}
    for country in sorted({f.country for f in mine}, key=country_key):
        theirs = [f for f in mine if f.country == country]
        if best_pooled is not None and any(f.stratum == best_pooled and (_cases(f) or f.suppressed)
                                           for f in theirs):
            out[country] = best_pooled
        else:
            out[country] = max(sorted(theirs, key=lambda f: natural_key(f.stratum)),
                               key=_cases).stratum
    return out


def _label(m: Messages, code: str, f: Figure | None = None, endpoint: bool = False) -> str:
    name = m.country(code)
    if endpoint and f is not None:
        for part in f.stratum.split(";"):
            key, _, value = part.partition("=")
            if key == ENDPOINT_KEY:
                return f"{name} ({m.value_label(key, value)})"
    return name


def _forest(spec: IndicatorSpec, figures: Sequence[Figure], heads: dict[str, str],
            columns: Sequence[str], m: Messages, year: int, group: str) -> str:
    endpoint = ENDPOINT_KEY in spec.strata
    points = []
    for c in columns:
        f = next((f for f in figures if f.country == c and f.stratum == heads.get(c)), None)
        if f is None:
            continue
        points.append(charts.Point(group=group, series=c, series_label=_label(m, c, f, endpoint),
                                   value=f.value, low=f.ci_low, high=f.ci_high))
    try:
        return charts.forest_svg(points, title=m("report.forest_title", title=spec.title,
                                                  year=year, group=group),
                                 axis_title=measure_text(spec, m),
                                 reference=kind_of(spec).reference,
                                 reference_label=m("report.reference_line"),
                                 percent_axis=spec.unit == "percent", lang=m.lang)
    except charts.NothingToDraw:
        return ""


def _funnel(spec: IndicatorSpec, figures: Sequence[Figure], heads: dict[str, str],
            columns: Sequence[str], m: Messages, year: int) -> str:
    if spec.unit != "percent":
        return ""
    pool = next((f for f in figures if f.country == NORDIC and f.stratum == heads.get(NORDIC)),
                None)
    if pool is None or not pool.denominator or pool.numerator is None:
        return ""
    points = [charts.FunnelPoint(series=f.country, series_label=m.country(f.country),
                                 numerator=f.numerator, denominator=f.denominator)
              for c in columns if c != NORDIC
              for f in figures if f.country == c and f.stratum == pool.stratum
              and f.numerator is not None and f.denominator]
    sizes = [p.denominator for p in points]
    if len(points) < 3 or max(sizes) < FUNNEL_SPREAD * min(sizes):
        return ""
    return charts.funnel_svg(points, pooled=pool.numerator / pool.denominator,
                             title=m("report.funnel_title", title=spec.title, year=year),
                             x_title=m("report.funnel_x"), y_title=m("report.funnel_y"),
                             lang=m.lang)


def _trend(spec: IndicatorSpec, history: History, year: int, heads: dict[str, str],
           columns: Sequence[str], m: Messages) -> tuple[list[TrendLine], list[int]]:
    years = [y for y in history.year_numbers if y <= year]
    lines = []
    for c in columns:
        stratum = heads.get(c)
        if stratum is None:
            continue
        series = history.series(spec.id, stratum, c, until=year)
        now = [f for f in series if f.year == year and f.spec_version == spec.version]
        if not now:
            continue
        # A series runs back only while the definition stays the same.
        same = [f for f in series if f.spec_version == spec.version]
        broken = len(same) < len(series)
        lines.append(TrendLine(c, _label(m, c, now[0], ENDPOINT_KEY in spec.strata), stratum,
                               {f.year: f for f in same}, last_change(same, year), broken))
    return lines, years


def _trend_svg(spec: IndicatorSpec, lines: Sequence[TrendLine], years: Sequence[int],
               m: Messages, group: str) -> str:
    if len(years) < 2:
        return ""
    series = [charts.TrendSeries(series=t.country, series_label=t.label, points=[
        charts.TrendPoint(year=y, value=f.value, low=f.ci_low, high=f.ci_high)
        for y, f in sorted(t.by_year.items())]) for t in lines]
    try:
        return charts.trend_svg(series, title=m("report.trend_title", title=spec.title,
                                                group=group, first=years[0], last=years[-1]),
                                axis_title=measure_text(spec, m), years=list(years),
                                percent_axis=spec.unit == "percent", lang=m.lang)
    except charts.NothingToDraw:
        return ""


def indicator_views(history: History, year: int, m: Messages, columns: Sequence[str]
                    ) -> list[IndicatorView]:
    """Every spec of the catalogue as shown for ``year``, in catalogue order."""
    figures = history.year(year).figures
    specs = history.catalogues.specs()
    sections = build_sections(figures, specs, columns, history.catalogues,
                              label=lambda s, skip: m.stratum(s, skip))
    by_anchor = {s.anchor: s for s in sections}
    views = []
    for section in sections:
        spec = section.spec
        mine = [f for f in figures
                if f.indicator_id == spec.id and f.spec_version == spec.version]
        heads = headline_strata(spec, mine)
        skip = ENDPOINT_KEY if ENDPOINT_KEY in spec.strata else ""
        pooled_head = heads.get(NORDIC) or next(iter(heads.values()), "")
        group = m.stratum(pooled_head, skip)
        view = IndicatorView(spec, by_anchor[section.anchor], measure_text(spec, m),
                             m(f"direction.{spec.direction}"), group)
        if mine:
            view.forest = _forest(spec, mine, heads, columns, m, year, group)
            view.funnel = _funnel(spec, mine, heads, columns, m, year)
            view.trend_lines, view.years = _trend(spec, history, year, heads, columns, m)
            view.trend = _trend_svg(spec, view.trend_lines, view.years, m, group)
        views.append(view)
    return views


def headline_figure(view: IndicatorView, country: str) -> Figure | None:
    """The report year's figure of ``country`` in the view's headline group."""
    for t in view.trend_lines:
        if t.country == country:
            return t.by_year.get(max(t.by_year)) if t.by_year else None
    return None


def fmt_change(c: Change, decimals: int, m: Messages) -> str:
    """'+1.2 (0.4 – 2.0)' in the figure's unit (percentage points for shares), in ``m``'s
    number format."""
    places = max(decimals, 1)
    diff = m.number(c.diff, places, signed=True)
    if not (math.isfinite(c.low) and math.isfinite(c.high)):
        return diff
    return f"{diff} ({m.number(c.low, places)} – {m.number(c.high, places)})"
