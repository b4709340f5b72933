"""The public site's pages: which there are, what each template gets, and their HTML.

One language's pages are rendered at a time (``render_language``), with the report's Jinja
environment (``hub.report.environment``: the same filters, and the ``_indicator.html``
partial the report uses, so an indicator reads the same in both). The first language of a
site lives at the publish folder's root and every other one below ``<lang>/``, with the
same page paths, so a page's translation is found by swapping the prefix. Every link is
relative, so the folder works from any web server path, a ``file://`` URL or a copy.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emsbench import __version__
from emsbench.specs import IndicatorSpec
from hub.annual import IndicatorView, indicator_views
from hub.country_notes import country_notes, synthetic
from hub.layout import layout
from hub.merge import NORDIC
from hub.messages import Messages
from hub.report import columns_of, environment, provenance
from hub.sections import ENDPOINT_KEY
from hub.site_data import DATA_DIR, SUMS, Download
from hub.site_model import (
    Figures,
    country_codes,
    country_model,
    indicator_ids,
    release_rows,
    specs_of,
    trends,
    versions,
)
from hub.summary import key_statistics

# (nav key, page, message key): the header's menu, in order.
NAV = (("home", "index.html", "site.home"),
       ("indicators", "index.html#indicators", "site.indicators"),
       ("countries", "index.html#countries", "site.countries"),
       ("data", "data/index.html", "site.downloads"),
       ("releases", "releases.html", "site.releases"))
REPORT_DIR = "report"  # the annual reports go in <publish folder>/report/<year>[/<lang>]/
# Spec ids (emsbench.specs.ID_PATTERN) and country codes become file names: nothing else may.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class ReportLink:
    """The annual report of one year found in the publish folder (paths relative to it)."""

    year: int
    html: str | None
    pdf: str | None


@dataclass(frozen=True)
class SiteInput:
    """What every language's pages are made of."""

    figs: Figures
    langs: tuple[str, ...]
    downloads: tuple[Download, ...]
    reports: dict[str, tuple[ReportLink, ...]]  # by language
    release_dates: dict[str, str]
    generated_at: str


def prefix(lang: str, langs: Sequence[str]) -> str:
    """Where a language's pages live: the first at the root, others below '<lang>/'."""
    return "" if lang == langs[0] else f"{lang}/"


def link(target: str, page: str) -> str:
    """The relative link from ``page`` to ``target``, both relative to the publish folder
    ('nb/indicators/X.html' → 'data/a.csv' gives '../../data/a.csv')."""
    path, hash_, fragment = target.partition("#")
    rel = posixpath.relpath(path, posixpath.dirname(page) or ".")
    return rel + hash_ + fragment


def file_name(name: str) -> str:
    """``name`` if it is safe as a file name of the site, else ``ValueError``."""
    if not _FILE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a page of the site")
    return name


def find_reports(root: Path, years: Sequence[int], lang: str) -> tuple[ReportLink, ...]:
    """The annual reports already in the publish folder, newest first: per year
    ``report/<year>/<lang>/`` or else ``report/<year>/``, its ``index.html`` and its PDF
    (``benchmark-<year>-<lang>.pdf``, else the folder's only PDF)."""
    found = []
    for year in sorted(years, reverse=True):
        for folder in (f"{REPORT_DIR}/{year}/{lang}", f"{REPORT_DIR}/{year}"):
            where = root / folder
            if not where.is_dir():
                continue
            html = f"{folder}/index.html" if (where / "index.html").is_file() else None
            pdfs = sorted(p.name for p in where.glob("*.pdf") if p.is_file())
            named = f"benchmark-{year}-{lang}.pdf"
            pdf = named if named in pdfs else pdfs[0] if len(pdfs) == 1 else None
            if html or pdf:
                found.append(ReportLink(year, html, f"{folder}/{pdf}" if pdf else None))
                break
    return tuple(found)


def _chapters(figs: Figures) -> list[tuple[str, list[IndicatorSpec]]]:
    history = figs.history
    return [(chapter, [specs_of(history, i)[0] for i in ids if specs_of(history, i)])
            for chapter, ids in layout().arrange(indicator_ids(history))]


def _common(site: SiteInput, lang: str) -> dict[str, Any]:
    figs = site.figs
    m = Messages(lang)
    return {"m": m, "synthetic": synthetic(figs.history), "generated_at": site.generated_at,
            "software_version": __version__, "nordic": NORDIC, "endpoint_key": ENDPOINT_KEY,
            "year": figs.latest, "years": list(figs.years),
            "nav": [(key, target, m(label)) for key, target, label in NAV]}


def _page_contexts(site: SiteInput, lang: str, views: Sequence[IndicatorView]
                   ) -> dict[str, tuple[str, str, str, dict[str, Any]]]:
    """page path → (template, page title, nav key, context) for one language."""
    figs, m = site.figs, Messages(lang)
    history, year = figs.history, figs.latest
    current = history.year(year)
    columns = columns_of(current.figures)
    countries = country_codes(history)
    thresholds = sorted({s.disclosure_threshold for s in current.view.submissions})
    pages: dict[str, tuple[str, str, str, dict[str, Any]]] = {}
    pages["index.html"] = ("site/index.html", m("site.home"), "home", {
        "columns": columns, "countries": countries, "chapters": _chapters(figs),
        "key_statistics": key_statistics(views, layout(), columns),
        "reports": site.reports.get(lang, ()),
        "all_years": [d for d in site.downloads if d.year is None],
        "thresholds": " / ".join(str(t) for t in thresholds) or "–"})
    for indicator_id in indicator_ids(history):
        mine = [v for v in views if v.spec.id == indicator_id]
        spec = mine[0].spec if mine else specs_of(history, indicator_id)[0]
        pages[f"indicators/{file_name(indicator_id)}.html"] = (
            "site/indicator.html", m("site.indicator_page", id=indicator_id, title=spec.title),
            "indicators", {"indicator_id": indicator_id, "spec": spec, "views": mine,
                           "chapter": layout().chapter_of(indicator_id), "columns": columns,
                           "versions": versions(history, indicator_id),
                           "trends": trends(figs, indicator_id)})
    notes = {n.country: n for n in country_notes(current.view.submissions, current.figures, m)}
    previous = figs.years[-2] if len(figs.years) > 1 else None
    for code in countries:
        pages[f"countries/{file_name(code)}.html"] = (
            "site/country.html", m("site.country_page", country=m.country(code)), "countries",
            {"code": code, "model": country_model(figs, code), "note": notes.get(code),
             "previous": previous,
             "country_years": [y.year for y in history.years
                               if any(f.country == code for f in y.figures)]})
    pages[f"{DATA_DIR}/index.html"] = ("site/data.html", m("site.downloads"), "data", {
        "downloads": site.downloads, "sums": f"{DATA_DIR}/{SUMS}"})
    pages["releases.html"] = ("site/releases.html", m("site.releases"), "releases", {
        "releases": release_rows(history, site.release_dates),
        "provenance": [(y.year, provenance(y.view, history.catalogues))
                       for y in reversed(history.years)],
        "skipped": sorted(history.skipped.items(), reverse=True)})
    return pages


def render_language(site: SiteInput, lang: str) -> dict[str, str]:
    """Every page of ``lang``: its path relative to the publish folder → its HTML."""
    figs, m = site.figs, Messages(lang)
    year = figs.latest
    # the report's indicator views, charts included: the costly part (hub.charts)
    made = indicator_views(figs.history, year, m, columns_of(figs.of_year(year)))
    env = environment(m)
    common = _common(site, lang)
    here_prefix = prefix(lang, site.langs)
    out: dict[str, str] = {}
    for path, (template, title, nav, context) in _page_contexts(site, lang, made).items():
        page = here_prefix + path

        def href(target: str, page: str = page) -> str:  # a page of this language
            return link(here_prefix + target, page)

        def top(target: str, page: str = page) -> str:  # a file of the publish folder
            return link(target, page)

        alternates = [{"lang": other, "name": Messages(other)("site.lang_name"),
                       "href": link(prefix(other, site.langs) + path, page)}
                      for other in site.langs if other != lang]
        out[page] = env.get_template(template).render(
            **common, **context, page_title=title, here=nav, href=href, top=top,
            alternates=alternates)
    return out
