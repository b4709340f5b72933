"""The executive summary: key statistics, the most notable findings, the urgency mix.

A director reads this page and nothing else, so every item is a figure the chapters show,
chosen by rule rather than by hand:

- key statistics: the indicators ``hub/layout.toml`` lists, each in its headline group,
  one column per country, the pool and the US;
- findings: changes from the year before and a Nordic country's difference from the rest
  of the Nordic countries, kept only when beyond chance (the 95 % interval excludes
  zero), ranked by how many standard errors they are, at most one per indicator, so that
  five findings cover five indicators. The direction says better or worse where the spec
  says which way is better, and up or down where it is descriptive; findings with a
  direction come first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from emsbench.figure import Figure
from emsbench.stats import Z95
from hub import charts
from hub.annual import IndicatorView, fmt_change, headline_figure
from hub.layout import Layout
from hub.merge import NORDIC
from hub.messages import Messages


@dataclass(frozen=True)
class KeyStatistic:
    view: IndicatorView
    figures: dict[str, Figure | None]  # column -> headline figure


@dataclass(frozen=True)
class Finding:
    view: IndicatorView
    country: str
    text: str
    good: bool | None  # None: descriptive, neither better nor worse
    z: float


def key_statistics(views: Sequence[IndicatorView], layout: Layout, columns: Sequence[str]
                   ) -> list[KeyStatistic]:
    by_id: dict[str, IndicatorView] = {}
    for v in views:
        by_id.setdefault(v.spec.id, v)  # the newest version of each id comes first
    return [KeyStatistic(by_id[i], {c: headline_figure(by_id[i], c) for c in columns})
            for i in layout.key_statistics if i in by_id]


def _good(direction: str, diff: float) -> bool | None:
    if direction == "lower_is_better":
        return diff < 0
    if direction == "higher_is_better":
        return diff > 0
    return None


def _fmt(v: float | None, f: Figure, m: Messages) -> str:
    return m.number(v, f.decimals)


def findings(views: Sequence[IndicatorView], m: Messages, year: int, limit: int
             ) -> list[Finding]:
    """The ``limit`` most notable changes and differences beyond chance, one per indicator."""
    found: list[Finding] = []
    for v in views:
        spec = v.spec
        group = "" if v.headline == m("stratum.all") else f" ({v.headline})"
        for t in v.trend_lines:
            c = t.change
            if c is None or not c.beyond_chance:
                continue
            good = _good(spec.direction, c.diff)
            verb = m("summary.up" if c.diff > 0 else "summary.down") if good is None else m(
                "summary.better" if good else "summary.worse")
            text = m("summary.change_finding", country=t.label, indicator=spec.title,
                     group=group, verb=verb, before=_fmt(c.before.value, c.before, m),
                     now=_fmt(c.now.value, c.now, m), year_before=c.before.year, year=year,
                     change=fmt_change(c, c.now.decimals, m),
                     unit=m(f"unit.{spec.unit}"))
            found.append(Finding(v, t.country, text, good, c.z))
        for t in v.trend_lines:
            f = t.by_year.get(year)
            if (f is None or f.country == NORDIC or f.diff is None or f.diff_low is None
                    or f.diff_high is None or not (f.diff_low > 0 or f.diff_high < 0)):
                continue
            se = (f.diff_high - f.diff_low) / (2 * Z95)
            good = _good(spec.direction, f.diff)
            verb = m("summary.higher" if f.diff > 0 else "summary.lower") if good is None else m(
                "summary.better_than" if good else "summary.worse_than")
            text = m("summary.rest_finding", country=t.label, indicator=spec.title,
                     group=group, verb=verb, value=_fmt(f.value, f, m),
                     diff=m.number(f.diff, max(f.decimals, 1), signed=True),
                     low=m.number(f.diff_low, max(f.decimals, 1)),
                     high=m.number(f.diff_high, max(f.decimals, 1)))
            found.append(Finding(v, t.country, text, good, abs(f.diff) / se if se else 0.0))
    # Better or worse comes before a descriptive rise or fall (urgency mix, volume): a
    # director reads the first lines as what went well or badly.
    found.sort(key=lambda x: (x.good is None, -x.z))
    out: list[Finding] = []
    seen: set[str] = set()
    for x in found:
        if x.view.spec.id not in seen:
            seen.add(x.view.spec.id)
            out.append(x)
        if len(out) == limit:
            break
    return out


def urgency_mix_svg(views: Sequence[IndicatorView], layout: Layout, columns: Sequence[str],
                    m: Messages) -> str:
    """Stacked bars of U1, U2 and the rest (U3) per column, from the layout's two urgency
    shares (all emergency missions, one population, so the three add up to 100 %)."""
    if len(layout.urgency_mix) != 2:
        return ""
    by_id = {v.spec.id: v for v in reversed(views)}
    if any(i not in by_id for i in layout.urgency_mix):
        return ""
    rows = []
    for c in columns:
        u1, u2 = (headline_figure(by_id[i], c) for i in layout.urgency_mix)
        if u1 is None or u2 is None or u1.value is None or u2.value is None:
            continue
        rows.append(charts.ShareRow(series=c, series_label=m.country(c), shares={
            "U1": u1.value, "U2": u2.value, "U3": max(0.0, 100 - u1.value - u2.value)}))
    if not rows:
        return ""
    cats = [(u, m.value_label("urgency_level", u)) for u in ("U1", "U2", "U3")]
    try:
        return charts.stacked_share_svg(rows, title=m("report.urgency_mix"), categories=cats,
                                        lang=m.lang)
    except ValueError:  # nothing to draw, or shares that do not add up (a withheld cell)
        return ""
