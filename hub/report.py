"""The annual benchmark report: one self-contained HTML file (and its PDF) for one year.

``write_report`` renders ``hub/templates/report.html`` from a ``hub.history.History``:
the executive summary (``hub.summary``), one chapter per ``hub/layout.toml`` chapter with
each indicator's table, charts and trend (``hub.annual``), a section per country on what
its figures rest on (``hub.country_notes``) and the method appendix with the provenance
of every year's figures. Styles and charts are inline and nothing is fetched from another
host, so the file can be mailed, archived or printed as it is; ``hub.pdf`` prints it.

``build_report`` (one re-verified ``PeriodView``), ``build_annual_report`` (every year the
hub holds) and ``export_csv``/``export_jsonstat`` are the glue from the ledger to files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from emsbench import __version__
from emsbench.crosswalk import crosswalk
from emsbench.kinds import kind_of
from emsbench.wire import Withdrawal
from hub.annual import IndicatorView, fmt_change, indicator_views
from hub.catalogues import Catalogues
from hub.country_notes import country_notes, synthetic
from hub.export import write_csv
from hub.history import Change, History, history_of
from hub.layout import layout
from hub.ledger import PeriodView
from hub.merge import COUNTRY_ORDER, NORDIC, Figure, country_key, merge
from hub.messages import Messages
from hub.sections import UNIT_TEXT, fmt_count
from hub.summary import findings, key_statistics, urgency_mix_svg


@dataclass
class Chapter:
    id: str
    title: str
    intro: str
    views: list[IndicatorView]


def environment(m: Messages) -> jinja2.Environment:
    """The Jinja environment of the report and the site (the same filters and partials)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("hub", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    suffix = {u: m(f"unit.suffix.{u}") for u in UNIT_TEXT}
    env.filters["value"] = lambda v, unit, places=1: (
        "–" if v is None else f"{m.number(v, places)}{suffix.get(unit, '')}")
    env.filters["count"] = fmt_count
    env.filters["country"] = m.country
    env.filters["bare"] = lambda v, places=1: m.number(v, places)
    env.filters["signed"] = lambda v, places=1: m.number(v, places, signed=True)
    env.filters["basis"] = lambda f, spec: (
        m("measure.rate_basis", events=fmt_count(f.numerator), persons=fmt_count(f.denominator))
        if spec.unit in ("per_1000", "per_100k") else kind_of(spec).basis(f, fmt_count))

    def change(c: Change, spec: Any) -> str:
        return fmt_change(c, c.now.decimals, m)

    env.filters["change"] = change
    return env


def columns_of(figures: Sequence[Figure]) -> list[str]:
    extra = {f.country for f in figures} - set(COUNTRY_ORDER)
    return [*COUNTRY_ORDER, *sorted(extra)]


def chapters_of(views: Sequence[IndicatorView], m: Messages) -> list[Chapter]:
    by_id: dict[str, list[IndicatorView]] = {}
    for v in views:
        by_id.setdefault(v.spec.id, []).append(v)
    return [Chapter(c, m(f"chapter.{c}"), m(f"chapter.intro.{c}"),
                    [v for i in ids for v in by_id[i]])
            for c, ids in layout().arrange(list(by_id))]


def provenance(view: PeriodView, catalogues: Catalogues) -> list[dict[str, str]]:
    """Which signed document each country's figures come from, under which catalogue
    release and key, and what was passed over."""
    rows = [{"country": s.record.country, "year": str(view.year), "what": s.record.kind,
             "submission_id": s.record.submission_id, "revision": str(s.record.revision),
             "received_at": s.record.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
             "payload_sha256": s.record.payload_sha256, "keyid": s.record.keyid,
             "release": catalogues.name_of(s.record.catalogue),
             "note": (f"withdrawn: {s.document.reason}" if isinstance(s.document, Withdrawal)
                      else "published")}
            for s in view.standing]
    rows += [{"country": n.country, "year": str(view.year), "what": "set aside",
              "submission_id": n.submission_id,
              "revision": str(n.revision) if n.revision else "", "received_at": "",
              "payload_sha256": "", "keyid": "", "release": "", "note": n.reason}
             for n in view.set_aside]
    return sorted(rows, key=lambda r: country_key(r["country"]))


def render_report(history: History, year: int, lang: str = "en",
                  generated_at: str | None = None) -> str:
    """The report of ``year`` as HTML text, with trends over every earlier year held."""
    m = Messages(lang)
    current = history.year(year)
    columns = columns_of(current.figures)
    views = indicator_views(history, year, m, columns)
    submissions = current.view.submissions
    thresholds = sorted({s.disclosure_threshold for s in submissions})
    years = [y for y in history.year_numbers if y <= year]
    return environment(m).get_template("report.html").render(
        m=m, year=year, years=years, columns=columns, chapters=chapters_of(views, m),
        key_statistics=key_statistics(views, layout(), columns),
        findings=findings(views, m, year, layout().findings),
        urgency_mix=urgency_mix_svg(views, layout(), columns, m),
        countries=country_notes(submissions, current.figures, m),
        specs=[v.spec for v in views], crosswalk=crosswalk(),
        thresholds=" / ".join(str(t) for t in thresholds) or "–",
        threshold_minus=" / ".join(str(t - 1) for t in thresholds) or "–",
        synthetic=synthetic(history),
        provenance=[r for y in reversed(history.years) if y.year <= year
                    for r in provenance(y.view, history.catalogues)],
        generated_at=generated_at or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        software_version=__version__, nordic=NORDIC)


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    pdf: Path | None


def write_report(history: History, year: int, out_dir: Path | str, lang: str = "en",
                 pdf: bool = False) -> ReportFiles:
    """Write ``out_dir/index.html`` (and ``benchmark-<year>-<lang>.pdf`` beside it)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = out / "index.html"
    html.write_text(render_report(history, year, lang), encoding="utf-8")
    printed = None
    if pdf:
        from hub.pdf import html_to_pdf  # Playwright loads only when a PDF is wanted

        m = Messages(lang)
        printed = html_to_pdf(html, out / f"benchmark-{year}-{lang}.pdf",
                              title=m("report.title", year=year),
                              header_note=m("report.synthetic_short")
                              if synthetic(history) else "", lang=lang)
    return ReportFiles(html, printed)


def build_report(view: PeriodView, catalogues: Catalogues, out_dir: Path | str,
                 lang: str = "en") -> Path:
    """The report of one re-verified year alone (no trend); returns the HTML path."""
    history = history_of([view], catalogues)
    if not history.years:
        why = history.skipped.get(view.year, "")
        raise ValueError(f"no accepted submissions for {view.year}: run the nodes first"
                         if why == "no submission" else why)
    return write_report(history, view.year, out_dir, lang).html


def _merged(view: PeriodView, catalogues: Catalogues) -> list[Figure]:
    if not view.standing and not view.set_aside:
        raise ValueError(f"no accepted submissions for {view.year}: run the nodes first")
    return merge(view.submissions, catalogues.specs(), view.year)


def export_csv(view: PeriodView, catalogues: Catalogues, out_path: Path | str) -> Path:
    """Merge the standing submissions of ``view`` and write the CSV."""
    return write_csv(_merged(view, catalogues), out_path)


def export_jsonstat(view: PeriodView, catalogues: Catalogues, out_path: Path | str) -> Path:
    """Merge the standing submissions of ``view`` and write the CSV's rows as JSON-stat 2.0
    (``hub.jsonstat``)."""
    from hub.jsonstat import write_jsonstat

    return write_jsonstat(_merged(view, catalogues), catalogues.specs(), out_path)
