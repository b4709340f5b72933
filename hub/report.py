"""The public benchmark report: one self-contained HTML page built from merged figures.

This module turns ``Figure`` objects into a view model (tables per indicator, a dot-and-
whisker chart per indicator with its geometry computed here) and renders the Jinja2
template ``hub/templates/report.html``. The page carries its CSS and SVG inline so it can
be published or mailed as a single file. ``build_report`` and ``export_csv`` are the glue
from a re-verified ``PeriodView`` (``hub.ledger``) to the report and the CSV; the report
names the signed document behind each country's figures and every revision set aside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from emsbench import __version__
from emsbench.kinds import kind_of
from emsbench.specs import IndicatorSpec
from emsbench.stats import wilson_interval
from emsbench.wire import Withdrawal
from hub.catalogues import Catalogues
from hub.export import write_csv
from hub.ledger import PeriodView
from hub.merge import (
    COUNTRY_ORDER,
    NORDIC,
    Figure,
    QualityRow,
    country_key,
    data_quality_rows,
    merge,
    natural_key,
)

ENDPOINT_KEY = "ca_survival_endpoint"
COUNTRY_NAMES = {"NO": "Norway", "SE": "Sweden", "DK": "Denmark", "FI": "Finland",
                 "IS": "Iceland", NORDIC: "Nordic pooled", "US": "United States"}
UNIT_TEXT = {"percent": "percent", "minutes": "minutes", "per_1000": "per 1 000 inhabitants",
             "per_100k": "per 100 000 inhabitants", "ratio": "observed / expected"}
UNIT_SUFFIX = {"percent": " %", "minutes": " min", "per_1000": " per 1,000",
               "per_100k": " per 100k", "ratio": ""}
DIRECTION_TEXT = {"lower_is_better": "Lower is better", "higher_is_better": "Higher is better",
                  "descriptive": "Descriptive: neither higher nor lower is better"}
# Chart geometry in SVG user units; the SVG scales to the page width.
CHART_W, LABEL_W, RIGHT_PAD, ROW_H, HEAD_H, AXIS_H = 760, 170, 24, 16, 20, 30


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
    reference: str
    lines: list[RatioLine]


@dataclass
class Section:
    spec: IndicatorSpec
    measure: str
    rows: list[Row]
    endpoints: list[tuple[str, str]]  # (countries, endpoint value) found in the data
    chart: dict[str, Any] | None
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


def fmt_value(value: float | None, unit: str, places: int = 1) -> str:
    return "–" if value is None else f"{value:.{places}f}{UNIT_SUFFIX.get(unit, '')}"


def fmt_bare(value: float | None, places: int = 1) -> str:
    return "–" if value is None else f"{value:.{places}f}"


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


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering [lo, hi]."""
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _chart(spec: IndicatorSpec, rows: list[Row], columns: Sequence[str]) -> dict[str, Any] | None:
    shown = [e.figure for r in rows for c in columns for e in r.cells[c]
             if e.figure is not None and e.figure.value is not None]
    if not shown:
        return None
    points = [v for f in shown for v in (f.value, f.ci_low, f.ci_high) if v is not None]
    reference = kind_of(spec).reference
    if reference is not None:
        points.append(reference)  # the axis always shows it (O/E: 1, "as expected")
    ticks = nice_ticks(min(points), max(points))
    if spec.unit == "percent":  # a share's axis never needs to leave 0–100
        ticks = [t for t in ticks if 0 <= t <= 100] or [0.0, 100.0]
    lo, hi = ticks[0], ticks[-1]
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        frac = (min(max(v, lo), hi) - lo) / span
        return round(LABEL_W + frac * (CHART_W - LABEL_W - RIGHT_PAD), 1)

    panels: list[dict[str, Any]] = []
    y = 4
    for row in rows:
        lines: list[dict[str, Any]] = []
        for c in columns:
            for e in row.cells[c]:
                f = e.figure
                label = COUNTRY_NAMES.get(c, c) + (f" ({e.endpoint})" if e.endpoint else "")
                line: dict[str, Any] = {"label": label, "country": c,
                                        "y": y + HEAD_H + len(lines) * ROW_H}
                if f is not None and f.value is not None:
                    line.update(cx=x(f.value), lo=x(f.ci_low if f.ci_low is not None else f.value),
                                hi=x(f.ci_high if f.ci_high is not None else f.value))
                else:
                    line["note"] = ("suppressed" if f is not None and f.suppressed
                                    else "not submitted" if f is None else "no cases")
                lines.append(line)
        panels.append({"label": row.label, "y": y, "lines": lines})
        y += HEAD_H + len(lines) * ROW_H + 8
    return {"width": CHART_W, "height": y + AXIS_H, "axis_y": y, "plot_x0": LABEL_W,
            "plot_x1": CHART_W - RIGHT_PAD, "ref_x": None if reference is None else x(reference),
            "ticks": [{"x": x(t), "label": f"{t:g}"} for t in ticks],
            "unit": UNIT_TEXT[spec.unit], "panels": panels}


def build_sections(figures: Sequence[Figure], specs: Sequence[IndicatorSpec],
                   columns: Sequence[str], catalogues: Catalogues | None = None
                   ) -> list[Section]:
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
            label = stratum_text(f.stratum, skip)
            row = rows.setdefault(label, Row(label, {c: [] for c in columns}))
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
                                _chart(spec, row_list, columns), bins_note(spec),
                                releases, anchor,
                                # O/E tables for a kind compared with a reference value
                                ratio_tables(mine, columns)
                                if kind_of(spec).reference is not None else None))
    return sections


def ratio_tables(figures: Sequence[Figure], columns: Sequence[str]) -> list[RatioTable]:
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
        tables.append(RatioTable(stratum_text(stratum),
                                 ", ".join(COUNTRY_NAMES.get(c, c) for c in reference), lines))
    return tables


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("hub", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["value"] = fmt_value
    env.filters["count"] = fmt_count
    env.filters["basis"] = lambda f, spec: kind_of(spec).basis(f, fmt_count)
    env.filters["bare"] = fmt_bare
    return env


def write_report(figures: Sequence[Figure], specs: Sequence[IndicatorSpec],
                 quality_rows: Sequence[QualityRow], year: int, out_dir: Path | str,
                 meta: dict[str, Any], catalogues: Catalogues | None = None) -> Path:
    """Render the report to ``out_dir/index.html`` and return that path."""
    extra = {f.country for f in figures} - set(COUNTRY_ORDER)
    columns = [*COUNTRY_ORDER, *sorted(extra)]
    thresholds = sorted({q.disclosure_threshold for q in quality_rows
                         if q.disclosure_threshold is not None})
    reasons = sorted({r for q in quality_rows for r in q.rejected_by_reason})
    html = _environment().get_template("report.html").render(
        year=year, columns=columns, names=COUNTRY_NAMES, sections=build_sections(
            figures, specs, columns, catalogues), quality={q.country: q for q in quality_rows},
        reasons=reasons, thresholds=thresholds, direction_text=DIRECTION_TEXT,
        generated_at=meta.get("generated_at", ""),
        software_version=meta.get("software_version", ""),
        spec_versions=meta.get("spec_versions") or _versions(specs),
        provenance=meta.get("provenance", []),
        plain=_plain)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(html, encoding="utf-8")
    return path


def _versions(specs: Sequence[IndicatorSpec]) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for s in specs:
        out.setdefault(s.id, []).append(s.version)
    return {k: " and ".join(v) for k, v in out.items()}


def _merged(view: PeriodView, catalogues: Catalogues) -> list[Figure]:
    if not view.standing and not view.set_aside:
        raise ValueError(f"no accepted submissions for {view.year}: run the nodes first")
    return merge(view.submissions, catalogues.specs(), view.year)


def provenance(view: PeriodView, catalogues: Catalogues) -> list[dict[str, str]]:
    """Which signed document each country's figures come from, under which catalogue
    release, and what was passed over."""
    rows = [{"country": s.record.country, "what": s.record.kind,
             "submission_id": s.record.submission_id, "revision": str(s.record.revision),
             "received_at": s.record.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
             "payload_sha256": s.record.payload_sha256,
             "release": catalogues.name_of(s.record.catalogue),
             "note": (f"withdrawn: {s.document.reason}" if isinstance(s.document, Withdrawal)
                      else "published")}
            for s in view.standing]
    rows += [{"country": n.country, "what": "set aside", "submission_id": n.submission_id,
              "revision": str(n.revision) if n.revision else "", "received_at": "",
              "payload_sha256": "", "release": "", "note": n.reason} for n in view.set_aside]
    return sorted(rows, key=lambda r: country_key(r["country"]))


def build_report(view: PeriodView, catalogues: Catalogues, out_dir: Path | str) -> Path:
    """Merge the standing submissions of ``view`` and write the report."""
    figures = _merged(view, catalogues)
    specs = catalogues.specs()
    meta = {"generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "software_version": __version__,
            "spec_versions": _versions(specs),
            "provenance": provenance(view, catalogues)}
    return write_report(figures, specs, data_quality_rows(view.submissions), view.year,
                        out_dir, meta, catalogues)


def export_csv(view: PeriodView, catalogues: Catalogues, out_path: Path | str) -> Path:
    """Merge the standing submissions of ``view`` and write the CSV."""
    return write_csv(_merged(view, catalogues), out_path)


def export_jsonstat(view: PeriodView, catalogues: Catalogues, out_path: Path | str) -> Path:
    """Merge the standing submissions of ``view`` and write the CSV's rows as JSON-stat 2.0
    (``hub.jsonstat``)."""
    from hub.jsonstat import write_jsonstat  # it reads this module's labels

    return write_jsonstat(_merged(view, catalogues), catalogues.specs(), out_path)
