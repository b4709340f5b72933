"""The charts' shared look and their rendering to inline SVG; ``hub.charts`` builds the charts.

The look: one font list (``FONT``), one width (``WIDTH``), fixed colours (``PALETTE``, so
that ``series_colour`` gives a series one colour in every chart; ``_RAMP`` for ordered
categories), the number formats of each language and the Vega-Lite config every chart gets,
with the small pure helpers the chart functions share (labels, value axes, titles, legends).

``_render`` turns an altair chart into an SVG string to inline in HTML: no XML prologue, the
root ``<svg>`` carrying ``role="img"``, ``aria-labelledby`` a ``<title>`` (and ``<desc>``
when a description is given), ``width``/``height`` and a ``viewBox`` so that
``max-width: 100%`` scales it. Rendering is offline (vl-convert bundles the Vega runtime;
data is inline and external URLs are refused), fonts are named, not fetched, and the output
is byte-for-byte the same for the same input. The layout reckons text widths in DejaVu Sans,
the first of ``FONT`` (``_text_px``; a title wraps after ``TITLE_CHARS``, as the SVG clips
what passes its width).

Ids are renamed: Vega numbers clip paths ``clip1``, ``clip2``… from a counter that lives as
long as the process, so the same chart came out different on a second call, and two charts
inlined in one HTML page could share an id. ``_render`` therefore renames them after a
prefix derived from the spec (the same chart: the same ids; another chart: other ids).

Validation is skipped outside the tests: checking each spec against the Vega-Lite schema is
a third of a chart's time; the test suite does it for every chart it draws
(EMSBENCH_VALIDATE_CHARTS=1, set in tests/conftest.py, read into ``VALIDATE``), so the
report and the site skip it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import vl_convert

__all__ = [
    "BAR_PX",
    "FONT",
    "GRID",
    "INK",
    "MUTED",
    "PALETTE",
    "POOLED",
    "ROW_PX",
    "STRIPE",
    "TITLE_CHARS",
    "VALIDATE",
    "WIDTH",
    "series_colour",
]

POOLED = "NORDIC"  # hub.merge.NORDIC, the pooled series; the charts need nothing else of it
FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
WIDTH = 680  # the whole SVG, in px: an A4 text column at 96 dpi
TITLE_CHARS = 72  # a title line wraps after this many characters
VALIDATE = os.environ.get("EMSBENCH_VALIDATE_CHARTS", "") not in ("", "0")
ROW_PX = 14  # one series row of a forest plot
BAR_PX = 20  # one bar of a stacked share chart
INK, MUTED, GRID, STRIPE = "#1d2430", "#5b6472", "#e6e9ee", "#f4f6f9"

# One colour per series code, the same in every chart. The pool and the US stand out (strong
# blue, burnt orange); the Nordic countries get distinct muted hues, every one with a contrast
# of at least 4.5:1 on white (WCAG asks 3:1 of graphics), and in the forest plot each also has
# a fixed place within its group, so colour is never the only cue.
PALETTE: Mapping[str, str] = {
    "NO": "#6b4c9a",  # violet
    "SE": "#167a6e",  # teal
    "DK": "#a3366d",  # raspberry
    "FI": "#6b7a1f",  # olive
    "IS": "#5f6b7a",  # slate
    POOLED: "#0b5cad",
    "US": "#b0411e",
}
# Series not in PALETTE (a country that joins later) take one of these by a hash of the code,
# so they too keep their colour from chart to chart.
_EXTRA = ("#7f6a00", "#3b6e8f", "#8a4f3d", "#4d5d2a", "#6d3f5b")
# Ordered categories of a stacked bar (e.g. urgency U1 > U2 > U3): dark to light, with the
# label colour inside each segment chosen for contrast.
_RAMP = ("#1f3b57", "#4f7396", "#93afc8", "#d3dde7", "#b9a27a", "#8c8c8c")

# Number formats (d3-format locales). Thousands are grouped with a narrow no-break space in
# both languages, as the report's tables do; Norwegian writes a decimal comma.
_LOCALES: Mapping[str, Mapping[str, Any]] = {
    "en": {"decimal": ".", "thousands": "\u202f", "grouping": [3], "currency": ["", ""]},
    "nb": {"decimal": ",", "thousands": "\u202f", "grouping": [3], "currency": ["", " kr"]},
}

_CONFIG: Mapping[str, Any] = {
    "font": FONT,
    "background": "white",
    # Vega's own ARIA texts are English and describe marks one by one; the root <title> is
    # the accessible name instead (role="img" makes the inside presentational anyway).
    "aria": False,
    "view": {"stroke": None},
    "axis": {"labelColor": INK, "titleColor": INK, "labelFontSize": 11, "titleFontSize": 11,
             "titleFontWeight": "normal", "gridColor": GRID, "domainColor": MUTED,
             "tickColor": MUTED},
    "legend": {"labelColor": INK, "titleColor": INK, "labelFontSize": 11, "titleFontSize": 11,
               "titleFontWeight": "normal", "orient": "top", "labelLimit": 200},
    "title": {"color": INK, "fontSize": 13, "fontWeight": "bold", "anchor": "start",
              "offset": 8},
}



# -- pure helpers ---------------------------------------------------------------------------


def series_colour(series: str) -> str:
    """The fixed colour of a series code (``PALETTE``, else one of ``_EXTRA`` by its hash)."""
    if series in PALETTE:
        return PALETTE[series]
    digest = hashlib.sha256(series.encode()).digest()
    return _EXTRA[digest[0] % len(_EXTRA)]


def _order(codes: Sequence[str]) -> list[str]:
    """Codes in order of first appearance, each once."""
    return list(dict.fromkeys(codes))


def _labels(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """series code → display label; one label per code and one code per label, since the
    legend is keyed by label."""
    out: dict[str, str] = {}
    for code, label in pairs:
        if out.setdefault(code, label) != label:
            raise ValueError(f"series {code!r} has two labels: {out[code]!r} and {label!r}")
    if len(set(out.values())) != len(out):
        raise ValueError("two series share one label; the legend could not tell them apart")
    return out


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _domain(values: Sequence[float], percent: bool) -> list[float]:
    """The value axis: the data's range (a point's range widened by one unit), kept within
    0–100 for percentages, which Vega then rounds outwards to nice numbers (never past 0 or
    100, as 100 is a multiple of every nice step below it)."""
    def fit(v: float) -> float:
        return min(max(v, 0.0), 100.0) if percent else v

    lo, hi = fit(min(values)), fit(max(values))
    if hi - lo < 1e-9:
        lo, hi = fit(lo - 1.0), fit(hi + 1.0)
    return [lo, hi]


def _focus(values: Sequence[float], intervals: Sequence[tuple[float | None, float | None]]
           ) -> list[float]:
    """What the value axis must show: every value, and each interval end within reach of
    them. Reach is the larger of the values' own spread and the median interval's width:
    one country's interval many times wider than the rest (a tiny stratum, or a quantile
    interval running into the open last bin) would otherwise flatten every other line into
    the axis. An end beyond reach is drawn cut at the axis (the scale clamps); the table
    beside the chart gives it whole."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    widths = sorted(h - low for low, h in intervals if low is not None and h is not None)
    reach = max(hi - lo, widths[len(widths) // 2] if widths else 0.0)
    ends = [e for pair in intervals for e in pair if e is not None]
    return [*values, *(min(max(e, lo - reach), hi + reach) for e in ends)]


def _number(value: float, lang: str) -> str:
    """A short number as the axis would print it ("99.8" / "99,8")."""
    text = f"{value:g}"
    return text.replace(".", ",") if _LOCALES[lang]["decimal"] == "," else text


def _shown_title(title: str, show: bool) -> dict[str, Any]:
    """The ``title`` property of a chart drawing its title (a "\n" breaks the line), or
    none when the page shows the title itself."""
    # A long title is wrapped: Vega does not wrap, and the SVG clips what passes its width
    # (about 80 characters of 13-px bold DejaVu Sans in WIDTH).
    lines = [w for line in title.split("\n") for w in textwrap.wrap(line, TITLE_CHARS) or [""]]
    return {"title": lines[0] if len(lines) == 1 else lines} if show else {}


def _check_lang(lang: str) -> None:
    if lang not in _LOCALES:
        raise ValueError(f"lang must be one of {sorted(_LOCALES)}, got {lang!r}")


# -- rendering ------------------------------------------------------------------------------

_PROLOGUE = re.compile(r"^\s*<\?xml[^>]*\?>\s*")
# Vega escapes "<" and ">" in text, so every "<…>" is a tag; the edits below touch tags only,
# never a label that happens to read like an attribute.
_TAG = re.compile(r"<[^>]*>")
_ID = re.compile(r'\bid="([^"]+)"')
_VEGA_ARIA = re.compile(r' (?:role|aria-roledescription)="[^"]*"')
_GEOMETRY = re.compile(r' (d|transform|x|y|x1|x2|y1|y2|width|height|points)="([^"]*)"')
_LONG_FLOAT = re.compile(r"-?\d+\.\d{3,}(?:e[-+]?\d+)?")


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _short(match: re.Match[str]) -> str:
    text = f"{float(match.group(0)):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _tidy(svg: str, prefix: str) -> str:
    """Vega's SVG made fit to inline: ids renamed to ``prefix-1``, ``prefix-2``… (with the
    references to them), Vega's English ARIA roles dropped, coordinates like
    119.99999999999999 cut to two decimals (a fifth of the file)."""
    ids: dict[str, str] = {}
    for found in _TAG.findall(svg):
        for old in _ID.findall(found):
            ids.setdefault(old, f"{prefix}-{len(ids) + 1}")

    def tag(match: re.Match[str]) -> str:
        text = _VEGA_ARIA.sub("", match.group(0))
        text = _GEOMETRY.sub(lambda m: f' {m.group(1)}="{_LONG_FLOAT.sub(_short, m.group(2))}"',
                             text)
        for old, new in ids.items():
            text = (text.replace(f'id="{old}"', f'id="{new}"')
                    .replace(f"url(#{old})", f"url(#{new})")
                    .replace(f'href="#{old}"', f'href="#{new}"'))
        return text

    return _TAG.sub(tag, svg)


def _render(chart: alt.TopLevelMixin, *, title: str, description: str = "",
            lang: str = "en") -> str:
    """The chart as an inline SVG string: vl-convert, offline, then made accessible (root
    ``role="img"`` named by a ``<title>``), unique on the page and deterministic (ids
    renamed after a prefix derived from the spec; why: the module docstring)."""
    _check_lang(lang)
    # Validated in the tests only (VALIDATE; why: the module docstring).
    spec = chart.to_dict(validate=VALIDATE)
    given = spec.get("config", {})  # altair's defaults (view size), kept where _CONFIG is silent
    spec["config"] = {**given, **{k: {**given.get(k, {}), **v} if isinstance(v, Mapping) else v
                                  for k, v in _CONFIG.items()}}
    spec.pop("$schema", None)  # a URL; the Vega-Lite bundled with vl-convert is used
    svg = vl_convert.vegalite_to_svg(spec, format_locale=dict(_LOCALES[lang]),
                                     allowed_base_urls=[])  # no data by URL, ever
    canonical = json.dumps([spec, title, description, lang], sort_keys=True)
    prefix = "ch" + hashlib.sha256(canonical.encode()).hexdigest()[:10]
    svg = _tidy(_PROLOGUE.sub("", svg), prefix)
    root_end = svg.index(">")
    root = svg[:root_end].replace(' class="marks"', "")
    if "xlink:" not in svg[root_end:]:
        root = root.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    labelled = f"{prefix}-title" + (f" {prefix}-desc" if description else "")
    head = (f'{root} role="img" aria-labelledby="{labelled}">'
            f'<title id="{prefix}-title">{_escape(" ".join(title.split()))}</title>')
    if description:
        head += f'<desc id="{prefix}-desc">{_escape(description)}</desc>'
    return head + svg[root_end + 1:]


def _text_px(text: str, bold: bool = False) -> int:
    """Rough width of an 11 px DejaVu Sans text (its characters average 0.6 em)."""
    return math.ceil(len(text) * (7.4 if bold else 6.8))


def _legend(labels: Sequence[str], left: int = 0, title: str = "") -> alt.Legend:
    """A legend above the plot, on as many rows as its labels need: Vega aligns it with the
    plot, ``left`` px in from the SVG's edge, and does not wrap it by itself."""
    room = WIDTH - left - 10
    entries = [_text_px(t) + 28 for t in labels]
    columns = len(labels) if sum(entries) <= room else max(1, room // max(entries))
    return alt.Legend(columns=columns, symbolStrokeWidth=0, symbolOpacity=1, columnPadding=10,
                      title=title or None)


def _colour_scale(labels: Mapping[str, str]) -> alt.Scale:
    return alt.Scale(domain=list(labels.values()), range=[series_colour(c) for c in labels])
