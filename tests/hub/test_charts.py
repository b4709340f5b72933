"""The report's charts (``hub.charts``): read back from the SVG they render.

Each test parses the SVG as XML and checks what a reader or an auditor would: the accessible
name, that nothing is fetched from another host, that every dot sits where its value is on
the printed axis, that the funnel's flagged series are those the binomial distribution
(scipy, as an independent reference) puts outside the limits, that the year axis shows the
given years and nothing else, that the same input gives the same bytes, also in a fresh
process, and that hostile labels come out as text.
"""

from __future__ import annotations

import math
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy.stats import binom

from hub import charts
from hub.charts import (
    FunnelPoint,
    NothingToDraw,
    Point,
    ShareRow,
    TrendPoint,
    TrendSeries,
    forest_svg,
    funnel_limits,
    funnel_position,
    funnel_svg,
    series_colour,
    stacked_share_svg,
    trend_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
NAMES = {"NO": "Norway", "SE": "Sweden", "DK": "Denmark", "FI": "Finland", "IS": "Iceland",
         "NORDIC": "Nordic pooled", "US": "United States"}
GROUPS = [f"U{u} {a} · {r}" for u, a in ((1, "acute"), (2, "urgent"), (3, "non-urgent"))
          for r in ("urban", "rural", "remote")]
TRANSLATE = re.compile(r"translate\(([-\d.e]+),([-\d.e]+)\)")


# -- reading the SVG back -------------------------------------------------------------------


def parse(svg: str) -> ET.Element:
    assert svg.startswith("<svg"), svg[:80]  # inline-ready: no XML prologue, no doctype
    return ET.fromstring(svg)


def walk(el: ET.Element, x: float = 0.0, y: float = 0.0) -> Iterator[tuple[ET.Element, float,
                                                                             float]]:
    """Every element under ``el`` with its position: the sum of the translates above it and
    its own leading one (absolute when ``el`` is the root)."""
    m = TRANSLATE.match(el.get("transform", ""))
    if m:
        x, y = x + float(m.group(1)), y + float(m.group(2))
    yield el, x, y
    for child in el:
        yield from walk(child, x, y)


def groups_of(root: ET.Element, cls: str) -> list[ET.Element]:
    return [el for el in root.iter(SVG + "g") if cls in el.get("class", "").split()]


def texts_in(root: ET.Element, within: ET.Element | None = None
             ) -> list[tuple[str, float, float, ET.Element]]:
    """The texts under ``within`` (default: all), with absolute positions."""
    inside = set((within if within is not None else root).iter())
    return [("".join(el.itertext()), x, y, el) for el, x, y in walk(root)
            if el.tag == SVG + "text" and el in inside]


def all_text(root: ET.Element) -> list[str]:
    return [t for t, *_ in texts_in(root)]


def number(text: str) -> float:
    return float(text.replace("\u202f", "").replace(",", "."))


def axes(root: ET.Element) -> list[list[tuple[str, float, float]]]:
    """Each axis's tick labels (text, absolute x, absolute y)."""
    return [[(t, x, y) for t, x, y, _ in texts_in(root, g)]
            for g in groups_of(root, "role-axis-label")]


def value_axis(root: ET.Element) -> list[tuple[float, float]]:
    """(value, x) of the horizontal numeric axis."""
    for labels in axes(root):
        try:
            ticks = [(number(t), x) for t, x, _ in labels]
        except ValueError:
            continue
        if len({round(y) for *_, y in labels}) == 1 and len(ticks) >= 2:
            return ticks
    raise AssertionError("no numeric horizontal axis")


def vertical_ticks(root: ET.Element) -> list[tuple[float, float]]:
    """(value, y) of the vertical numeric axis, y where its tick marks are (labels sit a few
    px lower, on their baseline)."""
    parents = {child: parent for parent in root.iter() for child in parent}
    for labels in groups_of(root, "role-axis-label"):
        ticks = [g for g in parents[labels] if "role-axis-tick" in g.get("class", "")]
        texts = texts_in(root, labels)
        if not ticks or len({round(x) for _, x, _, _ in texts}) != 1:
            continue
        lines = {el for el in ticks[0].iter(SVG + "line")}
        ys = [y for el, _, y in walk(root) if el in lines]
        return [(number(t), y) for (t, *_), y in zip(texts, ys, strict=True)]
    raise AssertionError("no vertical axis")


def x_of(ticks: list[tuple[float, float]], value: float) -> float:
    """Where ``value`` is on a linear axis, from two of its printed ticks."""
    (v0, x0), (v1, x1) = ticks[0], ticks[-1]
    return x0 + (value - v0) * (x1 - x0) / (v1 - v0)


def dots(root: ET.Element) -> list[tuple[float, float, str, str]]:
    """The data symbols (not the legend's): absolute x, y, fill, path."""
    inside = {el for g in groups_of(root, "role-mark") if "mark-symbol" in g.get("class", "")
              for el in g.iter(SVG + "path")}
    return [(x, y, el.get("fill", ""), el.get("d", "")) for el, x, y in walk(root)
            if el in inside]


def legend(root: ET.Element) -> dict[str, str]:
    """Legend label → its symbol's fill."""
    out = {}
    for scope in groups_of(root, "role-scope"):
        for entry in scope:  # one <g> per entry: its symbol and its label
            symbols = [p for g in groups_of(entry, "role-legend-symbol") for p in g]
            labels = ["".join(t.itertext()) for g in groups_of(entry, "role-legend-label")
                      for t in g]
            if symbols and labels:
                out[labels[0]] = symbols[0].get("fill", "")
    return out


def external_references(svg: str) -> list[str]:
    """Anything in the SVG that would make a browser fetch: href/src attributes not pointing
    into the document, url(...) other than url(#...), @import, elements that embed."""
    root = parse(svg)
    found = []
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in {"image", "use", "foreignObject", "script", "style", "a", "iframe"}:
            found.append(f"<{tag}>")
        for name, value in el.attrib.items():
            local = name.rsplit("}", 1)[-1]
            if local in {"href", "src"} and not value.startswith("#"):
                found.append(f"{local}={value}")
            for ref in re.findall(r"url\(([^)]*)\)", value):
                if not ref.strip("'\" ").startswith("#"):
                    found.append(f"url({ref})")
            if "@import" in value:
                found.append(value)
    return found


def inline_ready(svg: str, title: str) -> ET.Element:
    """The checks every chart passes: an image named by its title, fetching nothing, its
    internal references resolving, sized for an A4 column and scalable."""
    root = parse(svg)
    assert root.get("role") == "img"
    by_id = {el.get("id"): el for el in root.iter() if el.get("id")}
    named = root.get("aria-labelledby", "").split()
    assert named and by_id[named[0]].tag == SVG + "title"
    assert by_id[named[0]].text == " ".join(title.split())
    assert root[0].tag == SVG + "title"  # the first child, where screen readers look
    assert external_references(svg) == []
    for ref in re.findall(r"url\(#([^)]+)\)", svg):
        assert ref in by_id, ref
    assert 640 <= float(root.get("width", 0)) <= 700
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    return root


# -- fixtures -------------------------------------------------------------------------------


def forest_points(seed: int = 1, percent: bool = False) -> list[Point]:
    rng = random.Random(seed)
    points = []
    for g in GROUPS:
        for code, name in NAMES.items():
            v = rng.uniform(3, 97) if percent else rng.uniform(6, 20)
            w = rng.uniform(0.3, 3)
            points.append(Point(g, code, name, round(v, 2), round(v - w, 2), round(v + w, 2)))
    return points


def test_forest_is_a_named_inline_image_that_fetches_nothing() -> None:
    svg = forest_svg(forest_points(), title="Response time, median", axis_title="minutes",
                     description="Dots: medians; whiskers: 95 % intervals.")
    root = inline_ready(svg, "Response time, median")
    ids = root.get("aria-labelledby", "").split()
    by_id = {el.get("id"): el for el in root.iter() if el.get("id")}
    assert [by_id[i].tag for i in ids] == [SVG + "title", SVG + "desc"]
    assert by_id[ids[1]].text == "Dots: medians; whiskers: 95 % intervals."
    height = float(root.get("height", 0))
    # compact: 9 groups of 7 series in 14-18 px per series row (plus title, legend, axis)
    assert 9 * 7 * 14 <= height <= 9 * 7 * 18 + 160
    # the visible title; texts use the named system fonts, nothing downloaded
    assert "Response time, median" in all_text(root)
    assert {el.get("font-family") for el in root.iter(SVG + "text")} == {charts.FONT}


def test_forest_draws_every_value_at_its_place_on_the_axis_in_its_colour() -> None:
    points = forest_points(seed=3)
    # Iceland has nothing in one group, Finland nothing anywhere
    points = [Point(p.group, p.series, p.series_label, None, None, None, "suppressed")
              if p.series == "FI" or (p.series == "IS" and p.group == GROUPS[4]) else p
              for p in points]
    root = inline_ready(forest_svg(points, title="T", axis_title="minutes"), "T")
    texts = all_text(root)
    for g in GROUPS:
        assert g in texts
    shown = [p for p in points if p.value is not None]
    assert legend(root) == {NAMES[c]: series_colour(c) for c in NAMES if c != "FI"}
    marks = dots(root)
    assert len(marks) == len(shown)
    ticks = value_axis(root)
    # Vega draws in data order: match each mark to its point
    for (x, _, fill, path), p in zip(marks, shown, strict=True):
        assert p.value is not None
        assert x == pytest.approx(x_of(ticks, p.value), abs=1.0)
        assert fill == series_colour(p.series)
        # the pool a diamond (straight edges), the countries circles (arcs)
        assert ("A" in path) is (p.series != "NORDIC")
    # within each group the series keep one order, top to bottom, and one place
    rows: dict[str, list[float]] = {}
    for (_, y, _, _), p in zip(marks, shown, strict=True):
        rows.setdefault(p.series, []).append(y)
    tops = {c: ys[0] for c, ys in rows.items()}
    assert sorted(tops, key=tops.__getitem__) == [c for c in NAMES if c != "FI"]
    steps = [b - a for c, ys in rows.items() if c != "IS"
             for a, b in zip(ys, ys[1:], strict=False)]
    assert max(steps) - min(steps) < 0.5  # every series moves down by the same group step


def test_forest_reference_rule_sits_at_the_reference_value() -> None:
    points = [Point("Survival · 30 days", c, NAMES[c], v, v - 0.2, v + 0.25)
              for c, v in (("NO", 0.8), ("SE", 1.3), ("NORDIC", 1.05), ("US", 0.9))]
    root = parse(forest_svg(points, title="O/E", axis_title="observed / expected",
                            reference=1.0, reference_label="as expected"))
    dashed = [(x, el) for el, x, _ in walk(root)
              if el.tag == SVG + "line" and el.get("stroke-dasharray")]
    assert len(dashed) == 1
    assert dashed[0][0] == pytest.approx(x_of(value_axis(root), 1.0), abs=1.0)
    assert "as expected" in all_text(root)
    # the reference is on the axis even when every interval lies on one side of it
    far = [Point("g", "NO", "Norway", 3.0, 2.5, 3.5)]
    root = parse(forest_svg(far, title="O/E", axis_title="ratio", reference=1.0))
    ticks = value_axis(root)
    assert ticks[0][0] <= 1.0 <= ticks[-1][0]
    plain = parse(forest_svg(far, title="O/E", axis_title="ratio"))
    assert not [el for el in plain.iter(SVG + "line") if el.get("stroke-dasharray")]


def test_percent_axis_stays_within_0_and_100() -> None:
    points = [Point("g", "NO", "Norway", 2.0, 0.0, 6.5), Point("g", "SE", "Sweden", 99.0, 96.0,
                                                                  100.0),
              Point("h", "US", "United States", 97.0, 93.0, 104.0)]  # an interval past 100
    root = parse(forest_svg(points, title="T", axis_title="%", percent_axis=True))
    axis = value_axis(root)
    ticks = [v for v, _ in axis]
    assert 0 <= min(ticks) and max(ticks) <= 100
    # the whisker past 100 ends at the axis's end instead of leaving the plot
    rules = {el for g in groups_of(root, "role-mark") if "mark-rule" in g.get("class", "")
             for el in g.iter(SVG + "line")}
    ends = [x + float(el.get("x2", 0)) for el, x, _ in walk(root) if el in rules]
    assert len(ends) == 3 and max(ends) <= x_of(axis, max(ticks)) + 1
    # the flag is what keeps it there: the same data on a plain axis runs past 100
    ticks = [v for v, _ in value_axis(parse(forest_svg(points, title="T", axis_title="%")))]
    assert max(ticks) > 100


def test_a_chart_of_missing_values_raises() -> None:
    empty = [Point(g, "NO", "Norway", None, None, None, "suppressed") for g in GROUPS]
    with pytest.raises(NothingToDraw):
        forest_svg(empty, title="T", axis_title="x")
    with pytest.raises(ValueError):  # NothingToDraw is a ValueError
        forest_svg([], title="T", axis_title="x")
    with pytest.raises(NothingToDraw):
        trend_svg([TrendSeries("NO", "Norway", [TrendPoint(2024, None, None, None)])],
                  title="T", axis_title="x", years=[2024])
    with pytest.raises(NothingToDraw):
        funnel_svg([FunnelPoint("NO", "Norway", 0, 0)], title="T", x_title="n", y_title="%")
    with pytest.raises(NothingToDraw):
        stacked_share_svg([ShareRow("NO", "Norway", {})], title="T", categories=[("a", "A")])


def two_charts() -> str:
    """A forest plot and a funnel plot (whose clipped limit lines carry clip-path ids)."""
    return (forest_svg(forest_points(seed=5), title="T", axis_title="minutes")
            + funnel_svg(FUNNEL, title="F", x_title="cases", y_title="percent"))


def test_same_input_same_bytes_also_in_a_fresh_process() -> None:
    first = two_charts()
    assert 'clip-path="url(#' in first  # the ids Vega numbers from a process-wide counter
    assert two_charts() == first
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.hub.test_charts import *; "
            "sys.stdout.write(two_charts())")
    root_dir = Path(__file__).resolve().parents[2]
    fresh = subprocess.run([sys.executable, "-c", code, str(root_dir)], capture_output=True,
                           text=True, check=True, cwd=root_dir).stdout
    assert fresh == first
    # charts inlined in one page share no id, even two funnels of the same shape
    other = funnel_svg(FUNNEL[:-1], title="F", x_title="cases", y_title="percent")
    ids = [re.findall(r'\bid="([^"]+)"', s) for s in (first, other)]
    assert len(set(ids[0])) == len(ids[0]) and not set(ids[0]) & set(ids[1])


def test_hostile_labels_come_out_as_text() -> None:
    evil = {"NO": 'No <b>"&amp;</b>', "SE": 'x id="clip1" role="img"',
            "US": 'url(#clip1) href="http://e.vil/"'}  # within the legend's label limit
    group = "<script>alert(1)</script> & ' ]]>"
    points = [Point(group, c, label, 10.0 + i, 9.0 + i, 11.0 + i)
              for i, (c, label) in enumerate(evil.items())]
    title = 'Title </title><image href="http://evil.example/x.png"/>'
    svg = forest_svg(points, title=title, axis_title="<i>minutes</i>",
                     reference=10.5, reference_label='"ref" <ref>')
    root = parse(svg)
    texts = all_text(root)
    for label in [*evil.values(), group, "<i>minutes</i>", '"ref" <ref>']:
        assert label in texts
    assert root[0].text == title
    assert external_references(svg) == []


def test_labels_that_would_clash_are_refused() -> None:
    with pytest.raises(ValueError, match="two labels"):
        forest_svg([Point("g", "NO", "Norway", 1, 0, 2), Point("h", "NO", "Noreg", 1, 0, 2)],
                   title="T", axis_title="x")
    with pytest.raises(ValueError, match="share one label"):
        forest_svg([Point("g", "NO", "Norway", 1, 0, 2), Point("g", "SE", "Norway", 1, 0, 2)],
                   title="T", axis_title="x")
    with pytest.raises(ValueError, match="lang"):
        forest_svg([Point("g", "NO", "Norway", 1, 0, 2)], title="T", axis_title="x", lang="xx")


# -- trend ----------------------------------------------------------------------------------


def trend(years: list[int], skip: int | None = None) -> list[TrendSeries]:
    rng = random.Random(sum(years))
    out = []
    for code, name in NAMES.items():
        pts = []
        for y in years:
            if code == "IS" and y == skip:
                continue
            v = rng.uniform(20, 40)
            pts.append(TrendPoint(y, v, v - 2, v + 2))
        out.append(TrendSeries(code, name, pts))
    return out


@pytest.mark.parametrize("years", [[2023, 2024, 2025], [2024], [2019, 2021, 2025],
                                   list(range(2000, 2026))])
def test_trend_axis_shows_exactly_the_given_years(years: list[int]) -> None:
    root = inline_ready(trend_svg(trend(years, skip=years[len(years) // 2]), title="T",
                                  axis_title="percent", years=years, percent_axis=True), "T")
    year_axes = [[t for t, *_ in a] for a in axes(root) if any(re.fullmatch(r"\d{4}", t)
                                                               for t, *_ in a)]
    assert year_axes == [[str(y) for y in years]]
    # no fractional years, no thousands separators anywhere
    for text in all_text(root):
        assert not re.search(r"\d[,.\u202f\u00a0]\d{3}\b|\b\d{4}\.\d", text), text


def test_trend_breaks_a_line_at_a_missing_year_and_keeps_colours() -> None:
    years = [2021, 2022, 2023, 2024, 2025]
    series = trend(years, skip=2023)
    root = parse(trend_svg(series, title="T", axis_title="x", years=years))
    lines = {el.get("stroke"): el.get("d", "") for g in groups_of(root, "role-mark")
             if "mark-line" in g.get("class", "") for el in g.iter(SVG + "path")}
    assert lines[series_colour("IS")].count("M") == 2  # 2021–2022, then 2024–2025
    assert lines[series_colour("NO")].count("M") == 1
    # within a year the whiskers stand side by side, in series order, not on top of each other
    rules = {el for g in groups_of(root, "role-mark") if "mark-rule" in g.get("class", "")
             for el in g.iter(SVG + "line")}
    first: dict[str | None, float] = {}  # each series' leftmost whisker: 2021
    for el, x, _ in walk(root):
        if el in rules:
            first[el.get("stroke")] = min(x, first.get(el.get("stroke"), x))
    first_year = sorted((x, c) for c, x in first.items())
    assert [c for _, c in first_year] == [series_colour(c) for c in NAMES]
    gaps = [b[0] - a[0] for a, b in zip(first_year, first_year[1:], strict=False)]
    assert all(3 <= g <= 8 for g in gaps), gaps
    assert legend(root) == {NAMES[c]: series_colour(c) for c in NAMES}
    with pytest.raises(ValueError, match="not among the axis years"):
        trend_svg(series, title="T", axis_title="x", years=[2021, 2022])


def test_a_series_keeps_its_colour_from_chart_to_chart() -> None:
    extra = ("GL", "Greenland")  # a code outside the palette
    forest = parse(forest_svg([Point("g", c, n, 1.0, 0.5, 1.5) for c, n in
                               [*NAMES.items(), extra]], title="T", axis_title="x"))
    trend_root = parse(trend_svg([TrendSeries(c, n, [TrendPoint(2024, 1.0, 0.5, 1.5)])
                                  for c, n in [extra, *NAMES.items()]],
                                 title="T", axis_title="x", years=[2024]))
    assert legend(forest) == legend(trend_root)
    assert legend(forest)["Greenland"] == series_colour("GL")


def contrast_on_white(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(colour[i:i + 2], 16) / 255) for i in (1, 3, 5))
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def test_series_colours_are_distinct_and_visible_on_white() -> None:
    colours = [*charts.PALETTE.values(), *charts._EXTRA]
    assert len(set(colours)) == len(colours)
    for colour in colours:
        assert contrast_on_white(colour) >= 3.0, colour  # WCAG 1.4.11, graphical objects
    assert charts.PALETTE["NORDIC"] == "#0b5cad" and charts.PALETTE["US"] == "#b0411e"


# -- funnel ---------------------------------------------------------------------------------


def scipy_position(k: int, n: int, pooled: float, coverage: float) -> int:
    """Outside the exact limits, by the binomial distribution function alone: above when
    P(X <= k) > 1 - tail, below when P(X <= k) < tail (what the interpolated limits of
    Spiegelhalter 2005 amount to for an integer count)."""
    tail = (1 - coverage) / 2
    f = binom.cdf(k, n, pooled)
    return 1 if f > 1 - tail else -1 if f < tail else 0


def scipy_limits(pooled: float, n: int, coverage: float) -> tuple[float, float]:
    p, tail = pooled, (1 - coverage) / 2

    def limit(prob: float) -> float:
        r = binom.ppf(prob, n, p)
        f_r, f_below = binom.cdf(r, n, p), binom.cdf(r - 1, n, p)
        return min(max((r - (f_r - prob) / (f_r - f_below)) / n, 0), 1)

    return limit(tail), limit(1 - tail)


def test_funnel_limits_match_the_binomial() -> None:
    for n in (1, 7, 40, 333, 5_000, 250_000):
        for pooled in (0.004, 0.125, 0.5, 0.97):
            for coverage in (0.95, 0.998):
                assert funnel_limits(pooled, n, coverage) == pytest.approx(
                    scipy_limits(pooled, n, coverage), abs=1e-8)
    # at large n the exact limits meet the normal approximation p ± z·sqrt(p(1-p)/n)
    low, high = funnel_limits(0.3, 1_000_000, 0.998)
    half = 3.090232 * math.sqrt(0.3 * 0.7 / 1_000_000)
    assert (low, high) == pytest.approx((0.3 - half, 0.3 + half), abs=2e-5)
    assert funnel_limits(0.0, 50, 0.95) == (0.0, 0.0)
    # 12.0 meant as percent is refused, not read as a share of 1 200 %
    for bad in ((12.0, 10, 0.95), (0.05, 0, 0.95), (0.05, 10, 1.0)):
        with pytest.raises(ValueError):
            funnel_limits(*bad)


def test_funnel_position_agrees_with_scipy() -> None:
    rng = random.Random(7)
    seen = set()
    for _ in range(400):
        n = rng.choice([5, 30, 200, 1_000, 20_000])
        pooled = rng.uniform(0.02, 0.6)
        k = min(n, max(0, round(rng.gauss(n * pooled, 2.5 * math.sqrt(n) + 1))))
        for coverage in (0.95, 0.998):
            got = funnel_position(FunnelPoint("X", "X", k, n), pooled, coverage)
            assert got == scipy_position(k, n, pooled, coverage), (k, n, pooled, coverage)
            seen.add(got)
    assert seen == {-1, 0, 1}  # the sample reached both sides and the middle


FUNNEL = [FunnelPoint("NO", "Norway", 130, 800), FunnelPoint("SE", "Sweden", 260, 1500),
          FunnelPoint("DK", "Denmark", 95, 700), FunnelPoint("FI", "Finland", 30, 400),
          FunnelPoint("IS", "Iceland", 9, 40), FunnelPoint("US", "United States", 1800, 14000)]


def test_funnel_marks_in_bold_exactly_the_series_outside_the_widest_limits() -> None:
    points = FUNNEL
    pooled = sum(p.numerator for p in points) / sum(p.denominator for p in points)
    expected = {p.series_label for p in points
                if scipy_position(p.numerator, p.denominator, pooled, 0.998) != 0}
    outside_95 = {p.series_label for p in points
                  if scipy_position(p.numerator, p.denominator, pooled, 0.95) != 0}
    # the fixture discriminates: some inside, some outside, one only outside the 95 % limits
    assert expected and len(expected) < len(points) and outside_95 > expected
    svg = funnel_svg(points, title="Survival", x_title="cases", y_title="percent",
                     pooled_label="All pooled")
    root = inline_ready(svg, "Survival")
    labels = {t: el.get("font-weight", "normal") for t, _, _, el in texts_in(root)
              if t in {p.series_label for p in points}}
    assert set(labels) == {p.series_label for p in points}
    assert {t for t, w in labels.items() if w == "bold"} == expected
    assert {"95 %", "99.8 %", "All pooled"} <= set(all_text(root))
    # the pool's line sits at its percentage on the vertical axis
    vertical = vertical_ticks(root)
    pool_rules = {el for g in groups_of(root, "role-mark") if "mark-rule" in g.get("class", "")
                  for el in g.iter(SVG + "line")}
    (pool_y,) = [y for el, _, y in walk(root) if el in pool_rules]
    assert pool_y == pytest.approx(x_of(vertical, 100 * pooled), abs=1.5)
    assert funnel_svg(points, pooled=pooled, title="Survival", x_title="cases",
                      y_title="percent", pooled_label="All pooled") == svg
    assert external_references(svg) == []
    # denominators 40 to 14 000: a log axis of round 1-2-5 ticks
    ticks = [v for v, _ in value_axis(root)]
    assert all(f"{v:g}"[0] in "125" and f"{v:g}".strip("0").rstrip(".") in "125" for v in ticks)
    assert ticks[-1] / ticks[0] >= 100


def test_funnel_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        funnel_svg([FunnelPoint("NO", "Norway", 11, 10)], title="T", x_title="n", y_title="%")
    with pytest.raises(ValueError):
        funnel_svg([FunnelPoint("NO", "Norway", -1, 10)], title="T", x_title="n", y_title="%")
    with pytest.raises(ValueError):
        funnel_svg([FunnelPoint("NO", "Norway", 1, 10)], title="T", x_title="n", y_title="%",
                   limits=(0.998, 0.95))
    with pytest.raises(ValueError, match="proportion"):  # 12 % passed as 12
        funnel_svg([FunnelPoint("NO", "Norway", 1, 10)], pooled=12.0, title="T", x_title="n",
                   y_title="%")


# -- stacked shares -------------------------------------------------------------------------


def test_stacked_shares_are_proportional_and_labelled() -> None:
    categories = [("U1", "U1 acute"), ("U2", "U2 urgent"), ("U3", "U3 non-urgent")]
    rows = [ShareRow("NO", "Norway", {"U1": 20.0, "U2": 30.0, "U3": 50.0}),
            ShareRow("US", "United States", {"U1": 10.0, "U3": 85.0}),  # U2 none, 5 % unknown
            ShareRow("NORDIC", "Nordic pooled", {"U1": 4.0, "U2": 46.0, "U3": 50.0})]
    root = inline_ready(stacked_share_svg(rows, title="Urgency mix", categories=categories),
                        "Urgency mix")
    assert {"Norway", "United States", "Nordic pooled", "U1 acute", "U2 urgent",
            "U3 non-urgent"} <= set(all_text(root))
    bars = [el for g in groups_of(root, "role-mark") if "mark-rect" in g.get("class", "")
            for el in g.iter(SVG + "path")]
    widths = [float(re.search(r"h([\d.]+)", el.get("d", "")).group(1))  # type: ignore[union-attr]
              for el in bars]
    shares = [20, 30, 50, 10, 85, 4, 46, 50]
    assert len(widths) == len(shares)
    scale = widths[0] / 20
    assert widths == pytest.approx([s * scale for s in shares], abs=1.0)
    labels = [t for t in all_text(root) if t.endswith("%")]
    assert labels == ["20 %", "30 %", "50 %", "10 %", "85 %", "46 %", "50 %"]  # 4 % too small
    # the share text on the darkest segment is white, on the lightest dark
    inks = {t: el.get("fill") for t, _, _, el in texts_in(root) if t in ("20 %", "50 %")}
    assert inks["20 %"] == "white" and inks["50 %"] != "white"


def test_stacked_shares_refuse_bad_rows() -> None:
    cats = [("a", "A"), ("b", "B")]
    for shares in ({"a": 60.0, "b": 50.0}, {"a": -1.0}, {"c": 10.0}, {"a": math.nan}):
        with pytest.raises(ValueError):
            stacked_share_svg([ShareRow("NO", "Norway", shares)], title="T", categories=cats)


# -- languages ------------------------------------------------------------------------------


def test_norwegian_numbers_have_a_decimal_comma() -> None:
    points = [Point("g", "NO", "Norge", 0.82, 0.61, 1.04), Point("g", "US", "USA", 1.12, 0.9,
                                                                 1.3)]
    en = [t for t, *_ in value_axis_labels(forest_svg(points, title="T", axis_title="x"))]
    nb = [t for t, *_ in value_axis_labels(forest_svg(points, title="T", axis_title="x",
                                                      lang="nb"))]
    assert any("." in t for t in en) and not any("," in t for t in en)
    assert nb == [t.replace(".", ",") for t in en]
    funnel = funnel_svg([FunnelPoint("NO", "Norge", 30, 300), FunnelPoint("SE", "Sverige", 20,
                                                                           250)],
                        title="T", x_title="n", y_title="%", lang="nb")
    assert "99,8 %" in all_text(parse(funnel))


def value_axis_labels(svg: str) -> list[tuple[str, float, float]]:
    root = parse(svg)
    for labels in axes(root):
        if all(re.fullmatch(r"[\d.,]+", t) for t, *_ in labels):
            return labels
    raise AssertionError("no numeric axis")


def test_title_can_be_left_to_the_page() -> None:
    points = [Point("g", "NO", "Norway", 1.0, 0.5, 1.5)]
    root = parse(forest_svg(points, title="Only for screen readers", axis_title="x",
                            show_title=False))
    assert root[0].text == "Only for screen readers"
    assert "Only for screen readers" not in all_text(root)


def test_a_long_title_wraps_instead_of_being_clipped() -> None:
    """Finding (PDF check): a funnel title ran past the SVG's width and was cut off."""
    title = ("Survival after out-of-hospital cardiac arrest, 2025: each country against the "
             "Nordic pooled share of bystander-witnessed arrests")
    root = parse(forest_svg([Point("g", "NO", "Norway", 1.0, 0.5, 1.5)], title=title,
                            axis_title="x"))
    assert root[0].text == title  # the accessible name keeps it whole
    [shown] = [el for el in root.iter(SVG + "text") if "Survival" in "".join(el.itertext())]
    lines = [span.text or "" for span in shown.iter(SVG + "tspan")]
    assert len(lines) >= 2 and all(len(t) <= charts.TITLE_CHARS for t in lines)
    assert " ".join(lines) == title


def test_the_suite_checks_every_chart_against_the_vega_lite_schema() -> None:
    assert charts.VALIDATE  # tests/conftest.py: a spec altair rejects fails the test drawing it


def test_one_very_wide_interval_does_not_flatten_the_others() -> None:
    """Finding (the demo's report): Iceland's median response time interval ran into the
    open bin (to 240 min), so the trend axis went to 240 and every line lay flat on it."""
    years = [2023, 2024, 2025]
    series = [TrendSeries(c, c, [TrendPoint(y, 10.0 + i + 0.3 * (y - 2023), 9.5 + i,
                                            10.5 + i + 0.3 * (y - 2023)) for y in years])
              for i, c in enumerate(("NO", "SE", "DK"))]
    series.append(TrendSeries("IS", "IS", [TrendPoint(2023, 9.0, 8.0, 10.0),
                                           TrendPoint(2024, 11.0, 0.0, 240.0),
                                           TrendPoint(2025, 9.5, 8.0, 11.0)]))
    root = parse(trend_svg(series, title="T", axis_title="min", years=years))
    numbers = [number(t) for a in axes(root) for t, *_ in a if not re.fullmatch(r"\d{4}", t)]
    assert max(numbers) < 30 and min(numbers) > -20  # not 0-240
    points = [Point("g", c, c, v, lo, hi) for c, v, lo, hi in (
        ("NO", 50.0, 45.0, 55.0), ("SE", 55.0, 50.0, 60.0), ("IS", 40.0, 0.0, 190.0))]
    root = parse(forest_svg(points, title="F", axis_title="per 100k"))
    numbers = [number(t) for a in axes(root) for t, *_ in a if re.fullmatch(r"[\d.]+", t)]
    assert max(numbers) < 100
