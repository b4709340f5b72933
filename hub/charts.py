"""The report's and the public site's charts: Vega-Lite specs (altair) rendered to static SVG.

Each public function takes plain typed data (the dataclasses below) and texts the caller has
already translated, and returns an SVG string to inline in HTML, the same bytes for the
same input. The look they share (font, width, colours, number formats) and the rendering
(vl-convert, offline, then made accessible and deterministic) are ``hub.chart_render``'s.

* ``forest_svg``: a compact forest plot, one row per group (stratum), one dot and interval
  whisker per series (country, pool) within it;
* ``funnel_svg``: a funnel plot of shares against their denominators, with exact binomial
  control limits around the pooled share (``funnel_limits``, ``funnel_position``);
* ``trend_svg``: values by year, one line per series, with interval whiskers;
* ``stacked_share_svg``: one horizontal bar per series, split into category shares.

Colours follow the series code (``series_colour``), so a country has one colour in every
chart. A chart with nothing to draw raises ``NothingToDraw`` (a ``ValueError``): the caller
decides what to show instead (the report's table says why each value is missing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt

from emsbench.special import binomial_cdf, binomial_ppf

# The names imported "as" themselves are re-exported for callers of ``hub.charts`` (the tests
# read ``charts.PALETTE``, ``charts.TITLE_CHARS``...); this module does not use them.
from hub.chart_render import _EXTRA as _EXTRA
from hub.chart_render import (
    _RAMP,
    BAR_PX,
    FONT,
    INK,
    MUTED,
    POOLED,
    ROW_PX,
    STRIPE,
    WIDTH,
    _colour_scale,
    _domain,
    _finite,
    _focus,
    _labels,
    _legend,
    _number,
    _order,
    _render,
    _shown_title,
    _text_px,
    series_colour,
)
from hub.chart_render import PALETTE as PALETTE
from hub.chart_render import TITLE_CHARS as TITLE_CHARS
from hub.chart_render import VALIDATE as VALIDATE

__all__ = [
    "FONT",
    "FunnelPoint",
    "NothingToDraw",
    "Point",
    "ShareRow",
    "TrendPoint",
    "TrendSeries",
    "forest_svg",
    "funnel_limits",
    "funnel_position",
    "funnel_svg",
    "series_colour",
    "stacked_share_svg",
    "trend_svg",
]


class NothingToDraw(ValueError):
    """The chart would be empty: every value is missing (suppressed, no cases, not sent)."""


@dataclass(frozen=True)
class Point:
    """One value of a forest plot: ``series`` (a country code, ``NORDIC`` or ``US``) in
    ``group`` (the row, e.g. a stratum's label), with its interval. ``value`` None: not
    drawn (the caller's table carries ``note``, e.g. why it is missing)."""

    group: str
    series: str
    series_label: str
    value: float | None
    low: float | None
    high: float | None
    note: str = ""


@dataclass(frozen=True)
class FunnelPoint:
    """One series' share as counts: ``numerator`` cases of ``denominator``."""

    series: str
    series_label: str
    numerator: int
    denominator: int


@dataclass(frozen=True)
class TrendPoint:
    year: int
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class TrendSeries:
    series: str
    series_label: str
    points: Sequence[TrendPoint]


@dataclass(frozen=True)
class ShareRow:
    """One bar: the percent of the series' cases in each category (key → percent); a
    category left out counts as 0."""

    series: str
    series_label: str
    shares: Mapping[str, float]


# -- funnel limits --------------------------------------------------------------------------


def funnel_limits(pooled: float, n: int, coverage: float) -> tuple[float, float]:
    """Lower and upper control limits, as proportions, of a share with denominator ``n`` when
    the true share is the proportion ``pooled`` (0–1), covering ``coverage`` (e.g. 0.998) of
    such shares.

    Exact binomial limits (Spiegelhalter 2005, "Funnel plots for comparing institutional
    performance", Stat Med 24:1185–1202, appendix): r is the binomial quantile at the tail
    probability and the limit (r − α)/n interpolates between r − 1 and r by
    α = (F(r) − prob) / (F(r) − F(r − 1)), so that the limit is a smooth curve in n. A count
    k therefore lies above the upper limit exactly when F(k) > 1 − tail, below the lower one
    when F(k) < tail (F the binomial distribution function at the pooled share).

    Chosen over the normal approximation (and over Wilson-score limits, which are an interval
    for an observed share, not the spread of shares around a known one) because strata can
    be small and shares near 0 or 100 %, where the normal limits go wrong.
    ``emsbench.special`` computes the binomial distribution in pure Python.
    """
    if n < 1:
        raise ValueError(f"funnel_limits needs n >= 1, got {n}")
    if not 0.0 <= pooled <= 1.0:  # a percentage passed by mistake fails here, loudly
        raise ValueError(f"funnel_limits needs pooled as a proportion in 0..1, got {pooled}")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"funnel_limits needs coverage in (0, 1), got {coverage}")
    low, high = _limit_counts(pooled, n, coverage)
    return min(max(low / n, 0.0), 1.0), min(max(high / n, 0.0), 1.0)


def _limit_counts(pooled: float, n: int, coverage: float) -> tuple[float, float]:
    """``funnel_limits`` as counts (r − α), unclamped: points are judged on their counts, so
    that no rounding of a division moves one across a limit."""
    p = pooled
    if p in (0.0, 1.0):  # no spread at all: every share equals the pool's
        return n * p, n * p

    def limit(prob: float) -> float:
        r = binomial_ppf(prob, n, p)
        f_r, f_below = binomial_cdf(r, n, p), binomial_cdf(r - 1, n, p)
        alpha = (f_r - prob) / (f_r - f_below) if f_r > f_below else 0.0
        return r - alpha

    tail = (1.0 - coverage) / 2.0
    return limit(tail), limit(1.0 - tail)


def funnel_position(point: FunnelPoint, pooled: float, coverage: float) -> int:
    """-1 below the lower control limit at the point's denominator, +1 above the upper one,
    0 within them (a share exactly on a limit is within); ``pooled`` a proportion (0–1)."""
    if point.denominator < 1 or not 0 <= point.numerator <= point.denominator:
        raise ValueError(f"{point.series}: need 0 <= numerator <= denominator >= 1")
    funnel_limits(pooled, point.denominator, coverage)  # the same argument checks
    low, high = _limit_counts(pooled, point.denominator, coverage)
    k = point.numerator
    return -1 if k < low else 1 if k > high else 0


# -- forest plot ----------------------------------------------------------------------------


_GROUP_GAP, _GROUP_MARGIN = 0.12, 0.06  # forest plot: space between groups, at the ends
_GROUP_LABEL_PX = 220  # a longer group label is cut with an ellipsis


def forest_svg(points: Sequence[Point], *, title: str, axis_title: str,
               reference: float | None = None, reference_label: str = "",
               percent_axis: bool = False, description: str = "", show_title: bool = True,
               lang: str = "en") -> str:
    """A compact forest plot: one row per group (in order of first appearance), within it
    one line per series (the same order and place in every group), each a dot (the pool a
    larger diamond) with its interval whisker; a dashed vertical rule at ``reference`` (O/E:
    1) labelled ``reference_label``. Points whose value is None are not drawn, but their
    series keeps its place (a series with no value anywhere is left out, legend included),
    and so does a group with no value. ``percent_axis`` keeps the axis within 0–100 (the
    axis spans the data, not necessarily all of 0–100; intervals reaching past are cut).

    Raises ``NothingToDraw`` when no point has a value."""
    shown = [p for p in points if _finite(p.value)]
    if not shown:
        raise NothingToDraw(f"forest plot {title!r}: no point has a value")
    _labels([(p.series, p.series_label) for p in points])
    # Groups keep their place even when empty (the chart's rows follow the caller's table);
    # a series with no value in any group gets no row at all.
    groups = _order([p.group for p in points])
    labels = _labels([(p.series, p.series_label) for p in shown])
    order = list(labels)
    rows: list[dict[str, Any]] = [
        {"group": p.group, "series": p.series, "label": p.series_label, "value": p.value,
         "low": p.low if _finite(p.low) else None, "high": p.high if _finite(p.high) else None,
         "pooled": p.series == POOLED} for p in shown]
    extent = _focus([p.value for p in shown if p.value is not None and _finite(p.value)],
                    [(p.low if _finite(p.low) else None, p.high if _finite(p.high) else None)
                     for p in shown])
    if reference is not None:
        extent.append(reference)  # the axis always shows it
    x_scale = alt.Scale(domain=_domain(extent, percent_axis), nice=True, zero=False,
                        clamp=True)  # an interval beyond the axis is cut at its end
    y = alt.Y("group:N", scale=alt.Scale(domain=groups, paddingInner=_GROUP_GAP,
                                                paddingOuter=_GROUP_MARGIN),
              axis=alt.Axis(title=None, labelLimit=_GROUP_LABEL_PX, labelFontWeight="bold",
                            ticks=False,
                            domain=False, labelPadding=6))
    y_offset = alt.YOffset("series:N", scale=alt.Scale(domain=order, paddingInner=0.05))
    label_px = min(max(_text_px(g, bold=True) for g in groups), _GROUP_LABEL_PX)
    colour = alt.Color("label:N", scale=_colour_scale(labels), title=None,
                       legend=_legend(list(labels.values()), left=label_px + 12))
    shape = alt.Shape("label:N", title=None, scale=alt.Scale(
        domain=list(labels.values()),
        range=["diamond" if c == POOLED else "circle" for c in labels]))
    base = alt.Chart(alt.Data(values=rows))
    whiskers = base.mark_rule().encode(
        x=alt.X("low:Q", scale=x_scale, title=axis_title,
                axis=alt.Axis(grid=True, tickCount=8, labelFlush=False)),
        x2="high:Q", y=y, yOffset=y_offset, color=colour,
        strokeWidth=alt.condition("datum.pooled", alt.value(2.5), alt.value(1.5)))
    dots = base.mark_point(filled=True, opacity=1).encode(
        x="value:Q", y=y, yOffset=y_offset, color=colour, shape=shape,
        size=alt.condition("datum.pooled", alt.value(90), alt.value(40)))
    # Every other group on a light band, so that a row is easy to follow across.
    stripes = alt.Chart(alt.Data(values=[{"group": g} for g in groups[1::2]])).mark_rect(
        color=STRIPE).encode(y=y, x=alt.value(0), x2=alt.value("width"))
    layers: list[alt.Chart] = [stripes, whiskers, dots]
    if reference is not None:
        ref = alt.Chart(alt.Data(values=[{"ref": reference, "label": reference_label}]))
        layers.insert(1, ref.mark_rule(color=MUTED, strokeDash=[4, 3]).encode(x="ref:Q"))
        if reference_label:
            layers.append(ref.mark_text(color=MUTED, baseline="bottom", align="left", dx=3,
                                        fontSize=10).encode(
                x="ref:Q", y=alt.value(-2), text="label:N"))
    # A band of one series row each per group, a gap between groups: Vega's
    # band scale spans step · (groups − paddingInner + 2 · paddingOuter).
    step = len(order) * ROW_PX / (1 - _GROUP_GAP)
    height = step * (len(groups) - _GROUP_GAP + 2 * _GROUP_MARGIN)
    chart = alt.layer(*layers).properties(
        width=WIDTH, height=round(height),
        **_shown_title(title, show_title),
        autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    return _render(chart, title=title, description=description, lang=lang)


# -- funnel plot ----------------------------------------------------------------------------

_FUNNEL_GRID = 80  # denominators at which each control limit is computed and joined
_LOG_SPAN = 20.0  # denominators spanning more than this factor get a log axis


def _denominator_grid(low: int, high: int, log: bool) -> list[int]:
    """Integer denominators from ``low`` to ``high``, evenly spaced on the axis's scale."""
    if high <= low:
        return [low]
    steps = _FUNNEL_GRID - 1
    if log:
        ratio = high / low
        raw = [low * ratio ** (i / steps) for i in range(_FUNNEL_GRID)]
    else:
        raw = [low + (high - low) * i / steps for i in range(_FUNNEL_GRID)]
    return sorted({min(max(round(v), low), high) for v in raw})


def _log_ticks(low: float, high: float) -> list[int]:
    """1, 2, 5 × 10^k within [low, high]: round counts, unlike Vega's own log ticks."""
    ticks = []
    for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        ticks += [m * 10**k for m in (1, 2, 5) if low <= m * 10**k <= high]
    return ticks


def funnel_svg(points: Sequence[FunnelPoint], *, pooled: float | None = None, title: str,
               x_title: str, y_title: str, limits: Sequence[float] = (0.95, 0.998),
               limit_labels: Sequence[str] = (), pooled_label: str = "", description: str = "",
               show_title: bool = True, lang: str = "en") -> str:
    """A funnel plot of shares: each series a labelled dot at (denominator, percent), the
    pooled share a horizontal line, and for each coverage in ``limits`` the exact binomial
    control limits around it (``funnel_limits``), drawn over a grid of denominators that
    includes every point's own, so a dot lies outside a drawn line exactly when
    ``funnel_position`` says so. Series outside the widest limits have their label in bold.

    ``pooled`` is a proportion (0–1, e.g. the pool's numerator / denominator; the chart
    shows it in percent); None takes the points' total numerator over their total
    denominator. ``pooled_label`` names its line. The x axis is logarithmic when the
    denominators span more than 20×.
    ``limit_labels`` name the limits in the legend (default: the coverage, "99.8 %").
    Points with denominator 0 are not drawn; raises ``NothingToDraw`` when none is left.
    """
    for p in points:
        if not 0 <= p.numerator <= p.denominator:
            raise ValueError(f"{p.series}: need 0 <= numerator <= denominator, got "
                             f"{p.numerator}/{p.denominator}")
    shown = [p for p in points if p.denominator > 0]
    if not shown:
        raise NothingToDraw(f"funnel plot {title!r}: no point has a denominator")
    if not limits or sorted(limits) != list(limits) or len(set(limits)) != len(limits):
        raise ValueError(f"limits must be increasing coverages, got {list(limits)}")
    if limit_labels and len(limit_labels) != len(limits):
        raise ValueError("limit_labels must name every limit")
    labels = _labels([(p.series, p.series_label) for p in shown])
    if pooled is None:
        pooled = sum(p.numerator for p in shown) / sum(p.denominator for p in shown)
    funnel_limits(pooled, 1, limits[-1])  # refuses a pooled share given in percent
    names = list(limit_labels) or [f"{_number(100 * c, lang)} %" for c in limits]
    n_min, n_max = min(p.denominator for p in shown), max(p.denominator for p in shown)
    log = n_max / n_min > _LOG_SPAN
    # The lines reach a little beyond the outermost dots, on the axis's own scale.
    low, high = (max(1, math.floor(n_min / 1.3)), math.ceil(n_max * 1.3)) if log else (
        max(1, math.floor(n_min - 0.05 * (n_max - n_min + 10))),
        math.ceil(n_max + 0.05 * (n_max - n_min + 10)))
    grid = sorted(set(_denominator_grid(low, high, log)) | {p.denominator for p in shown})
    lines: list[dict[str, Any]] = []
    for coverage, name in zip(limits, names, strict=True):
        for n in grid:
            lo, hi = funnel_limits(pooled, n, coverage)
            lines += [{"n": n, "pct": 100.0 * lo, "limit": name, "side": "low"},
                      {"n": n, "pct": 100.0 * hi, "limit": name, "side": "high"}]
    # The value axis spans the dots, the pool and the limits where the dots are; further left
    # the funnel widens out of the plot (clipped), rather than squeezing the dots together.
    extent = [100.0 * v for v in (pooled, *funnel_limits(pooled, n_min, limits[-1]))]
    widest = limits[-1]
    dots: list[dict[str, Any]] = [
        {"n": p.denominator, "pct": 100.0 * p.numerator / p.denominator,
         "label": p.series_label, "outside": funnel_position(p, pooled, widest) != 0}
        for p in shown]
    extent += [100.0 * p.numerator / p.denominator for p in shown]
    y_scale = alt.Scale(domain=_domain(extent, True), nice=True, zero=False)
    x_axis = alt.Axis(grid=True, format=",d", values=_log_ticks(low, high) if log else
                      alt.Undefined, labelFlush=False)
    x_scale = alt.Scale(type="log", domain=[low, high], nice=False) if log else alt.Scale(
        domain=[low, high], nice=False, zero=False)
    x = alt.X("n:Q", scale=x_scale, axis=x_axis, title=x_title)
    y = alt.Y("pct:Q", scale=y_scale, title=y_title, axis=alt.Axis(grid=True))
    # The outermost limits solid, inner ones dashed; a legend names them.
    dash = alt.StrokeDash("limit:N", title=None, scale=alt.Scale(
        domain=names, range=[[5, 3]] * (len(names) - 1) + [[1, 0]]),
        legend=alt.Legend(symbolType="stroke", symbolStrokeColor=MUTED, columns=len(names)))
    limit_lines = alt.Chart(alt.Data(values=lines)).mark_line(
        color=MUTED, strokeWidth=1.2, clip=True).encode(
        x=x, y=y, strokeDash=dash, detail="side:N", order="n:Q")
    pool_line = alt.Chart(alt.Data(values=[{"pooled": 100.0 * pooled}])).mark_rule(
        color=INK, strokeWidth=1).encode(y="pooled:Q")
    colour = alt.Color("label:N", scale=_colour_scale(labels), legend=None)
    base = alt.Chart(alt.Data(values=dots))
    marks = base.mark_point(filled=True, size=60, opacity=1).encode(x=x, y=y, color=colour)
    # Direct labels instead of a colour legend: the reader needs to know which dot is whom.
    # Labels to the right of their dot, or to the left in the axis's right quarter where they
    # would run out of the plot; bold outside the widest limits (Vega-Lite cannot encode a
    # text's alignment or weight, so each combination is a layer of its own).
    def right_end(n: int) -> bool:
        frac = (math.log(n / low) / math.log(high / low) if log
                else (n - low) / max(high - low, 1))
        return frac > 0.75

    texts = []
    for bold in (False, True):
        for left in (False, True):
            mine = [d for d in dots if d["outside"] is bold and right_end(d["n"]) is left]
            if mine:
                texts.append(alt.Chart(alt.Data(values=mine)).mark_text(
                    align="right" if left else "left", dx=-7 if left else 7, dy=-7,
                    fontSize=11, fontWeight="bold" if bold else "normal").encode(
                    x=x, y=y, text="label:N", color=colour))
    layers = [limit_lines, pool_line, marks, *texts]
    if pooled_label:
        layers.append(alt.Chart(alt.Data(values=[{"pooled": 100.0 * pooled,
                                                  "text": pooled_label}]))
                      .mark_text(align="left", baseline="bottom", dx=3, dy=-2, fontSize=10,
                                 color=INK).encode(x=alt.value(0), y="pooled:Q", text="text:N"))
    chart = alt.layer(*layers).properties(
        width=WIDTH, height=360, **_shown_title(title, show_title),
        autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    return _render(chart, title=title, description=description, lang=lang)


# -- trend ----------------------------------------------------------------------------------

_DODGE_PX = 5  # horizontal distance between two series' whiskers in one year


def trend_svg(series: Sequence[TrendSeries], *, title: str, axis_title: str,
              years: Sequence[int], percent_axis: bool = False, description: str = "",
              show_title: bool = True, lang: str = "en") -> str:
    """Values by year: one line with dots per series, each value's interval a whisker. The x
    axis shows exactly ``years`` (all of them, as plain integers, whether or not a series has
    a value there); a series' line breaks where it has no value. Within a year the series
    are set a few px apart so that their whiskers do not hide each other.

    Raises ``NothingToDraw`` when no point has a value, ``ValueError`` for a point in a year
    not in ``years``."""
    axis_years = sorted(set(years))
    if not axis_years:
        raise ValueError("trend_svg needs at least one year")
    labels = _labels([(s.series, s.series_label) for s in series])
    known = set(axis_years)
    for s in series:
        stray = sorted({p.year for p in s.points} - known)
        if stray:
            raise ValueError(f"{s.series}: years {stray} are not among the axis years")
    if not any(_finite(p.value) for s in series for p in s.points):
        raise NothingToDraw(f"trend {title!r}: no point has a value")
    first, last = axis_years[0], axis_years[-1]
    span = max(last - first, 1)
    pad = 0.4 if last > first else 0.6
    dodge = _DODGE_PX * (span + 2 * pad) / (WIDTH - 100)  # in years: ~5 px on the axis
    order = list(labels)
    rows: list[dict[str, Any]] = []
    shown: list[float] = []
    intervals: list[tuple[float | None, float | None]] = []
    for s in series:
        shift = (order.index(s.series) - (len(order) - 1) / 2) * dodge
        values = {p.year: p for p in s.points}
        for year in axis_years:
            p = values.get(year)
            value = p.value if p is not None and _finite(p.value) else None
            rows.append({"x": year + shift, "label": s.series_label, "value": value,
                         "low": p.low if p is not None and value is not None
                         and _finite(p.low) else None,
                         "high": p.high if p is not None and value is not None
                         and _finite(p.high) else None,
                         "pooled": s.series == POOLED})
            if value is not None:
                shown.append(value)
                intervals.append((rows[-1]["low"], rows[-1]["high"]))
    x = alt.X("x:Q", title=None, scale=alt.Scale(domain=[first - pad, last + pad], nice=False,
                                                 zero=False),
              # every year labelled, as a plain integer; slanted when there are many
              axis=alt.Axis(values=axis_years, format="d", grid=False, labelFlush=False,
                            labelOverlap=False, labelAngle=-45 if len(axis_years) > 12 else 0,
                            labelAlign="right" if len(axis_years) > 12 else "center"))
    y = alt.Y("value:Q", title=axis_title, axis=alt.Axis(grid=True), scale=alt.Scale(
        domain=_domain(_focus(shown, intervals), percent_axis), nice=True, zero=False,
        clamp=True))  # an interval beyond the axis is cut at its end
    colour = alt.Color("label:N", scale=_colour_scale(labels), title=None,
                       legend=_legend(list(labels.values()), left=60))
    width = alt.condition("datum.pooled", alt.value(2.5), alt.value(1.5))
    base = alt.Chart(alt.Data(values=rows))
    # invalid "break-paths-show-domains": a missing year breaks the line instead of joining
    # its neighbours across it as if there were a value.
    line = base.mark_line(invalid="break-paths-show-domains").encode(
        x=x, y=y, color=colour, strokeWidth=width, detail="label:N")
    whiskers = base.mark_rule(opacity=0.8).encode(x=x, y="low:Q", y2="high:Q", color=colour,
                                                   strokeWidth=width)
    dots = base.mark_point(filled=True, opacity=1).encode(
        x=x, y=y, color=colour,
        shape=alt.condition("datum.pooled", alt.value("diamond"), alt.value("circle")),
        size=alt.condition("datum.pooled", alt.value(80), alt.value(36)))
    chart = alt.layer(whiskers, line, dots).properties(
        width=WIDTH, height=300, **_shown_title(title, show_title),
        autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    return _render(chart, title=title, description=description, lang=lang)


# -- stacked shares -------------------------------------------------------------------------


def _ink_on(fill: str) -> str:
    """Dark or white label text, whichever contrasts more with ``fill`` (WCAG luminance)."""
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(fill[i:i + 2], 16) / 255) for i in (1, 3, 5))
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "white" if (1.05 / (lum + 0.05)) > ((lum + 0.05) / 0.05) else INK


def stacked_share_svg(rows: Sequence[ShareRow], *, title: str,
                      categories: Sequence[tuple[str, str]], axis_title: str = "",
                      description: str = "", show_title: bool = True,
                      min_label: float = 7.0, lang: str = "en") -> str:
    """One horizontal bar per row (in the given order), split into the ``categories`` (key,
    label) in their order, left to right, dark to light; a segment of at least
    ``min_label`` percent shows its share, rounded to a whole percent.

    Shares are percent of the row; they need not add up to 100 (a row may leave out unknown
    cases), but may not exceed it. Raises ``NothingToDraw`` when every row is empty."""
    keys = [k for k, _ in categories]
    if len(set(keys)) != len(keys) or len(categories) > len(_RAMP):
        raise ValueError(f"need distinct categories, at most {len(_RAMP)}")
    _labels([(r.series, r.series_label) for r in rows])
    fills = {k: _RAMP[i] for i, k in enumerate(keys)}
    names = dict(categories)
    data = []
    for r in rows:
        stray = set(r.shares) - set(keys)
        if stray:
            raise ValueError(f"{r.series}: unknown categories {sorted(stray)}")
        if any(not math.isfinite(v) or v < 0 for v in r.shares.values()):
            raise ValueError(f"{r.series}: shares must be finite and >= 0")
        if sum(r.shares.values()) > 100.5:  # rounding of the parts may add up to 100.4
            raise ValueError(f"{r.series}: shares add up to more than 100 %")
        start = 0.0
        for k in keys:
            share = r.shares.get(k, 0.0)
            if share > 0:
                data.append({"row": r.series_label, "category": names[k], "start": start,
                             "end": min(start + share, 100.0), "mid": start + share / 2,
                             "text": f"{round(share)} %" if share >= min_label else "",
                             "ink": _ink_on(fills[k])})
            start += share
    if not data:
        raise NothingToDraw(f"stacked shares {title!r}: every row is empty")
    row_labels = [r.series_label for r in rows]
    y = alt.Y("row:N", title=None, scale=alt.Scale(domain=row_labels, paddingInner=0.25),
              axis=alt.Axis(ticks=False, domain=False, labelLimit=200))
    x_scale = alt.Scale(domain=[0, 100], nice=False)
    colour = alt.Color("category:N", scale=alt.Scale(
        domain=[n for _, n in categories], range=[fills[k] for k in keys]),
        legend=_legend([n for _, n in categories], left=max(map(_text_px, row_labels)) + 12))
    base = alt.Chart(alt.Data(values=data))
    bars = base.mark_bar(stroke="white", strokeWidth=1).encode(
        x=alt.X("start:Q", scale=x_scale, title=axis_title or None,
                axis=alt.Axis(grid=True, values=[0, 20, 40, 60, 80, 100])),
        x2="end:Q", y=y, color=colour)
    texts = base.mark_text(fontSize=10).encode(
        x="mid:Q", y=y, text="text:N", color=alt.Color("ink:N", scale=None))
    step = BAR_PX / (1 - 0.25)
    chart = alt.layer(bars, texts).properties(
        width=WIDTH, height=round(step * (len(rows) + 0.25)),
        **_shown_title(title, show_title),
        autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    return _render(chart, title=title, description=description, lang=lang)
