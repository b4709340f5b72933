"""The public site: every page there, every link resolving, no script and no other host,
accessible markup, open data that reads back to the same figures, the synthetic banner,
safe republishing, and the hub serving it read-only under ``/public/``.

The history has three years of six countries (``test_report``'s fixture indicators, counts
growing year by year), with the median response time redefined (version 2.0.0) in the last
year, Iceland small enough that some of its cells are withheld, and Denmark's 2024
correction set aside. The pages are read back as a reader (or a crawler) would: parsed,
never compared with hard-coded text.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from emsbench.specs import IndicatorSpec, catalogue_sha256
from emsbench.wire import DataQuality, DataSource, Period, Submission
from hub.catalogues import Catalogue, Catalogues
from hub.config import HubConfig, hub_config_from_mapping, load_hub_config, write_hub_config
from hub.export import COLUMNS
from hub.history import History, change, history_of
from hub.ledger import Note, PeriodView
from hub.messages import Messages
from hub.site import MANIFEST, SiteError, publish
from hub.site_model import Figures, country_codes, indicator_ids
from hub.site_pages import file_name, link

YEARS = (2023, 2024, 2025)
COUNTRIES = ("NO", "SE", "DK", "FI", "IS", "US")
SIZE = {"NO": 1.0, "SE": 2.0, "DK": 1.2, "FI": 1.1, "IS": 0.08, "US": 6.0}


def _load(name: str) -> ModuleType:
    """A sibling test module (pytest runs in importlib mode: not importable by name)."""
    key = f"_site_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).parent / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


rep = _load("test_report")  # signed records without a store
js = _load("test_jsonstat")  # the JSON-stat schema and reader


# --- the history ----------------------------------------------------------------------


def releases() -> tuple[list[IndicatorSpec], list[IndicatorSpec]]:
    """Release 2026.1 (both indicators at 1.0.0) and 2026.2, which redefines RT-MEDIAN."""
    old = rep.fixture_specs()
    rt = old[0]
    new_rt = IndicatorSpec.model_validate(rt.model_dump() | {
        "version": "2.0.0", "description": rt.description + " Calls transferred from "
        "another centre count from the first answer."})
    return old, [new_rt, old[1]]


def year_submissions(specs: list[IndicatorSpec], year: int, k: float,
                     synthetic: frozenset[str] = frozenset()) -> list[Submission]:
    rt, surv = specs
    rng = np.random.default_rng(year)
    # Norway's survival doubles in the last year: a change beyond chance.
    survival = {"NO": 2.0 if year == YEARS[-1] else 1.0, "SE": 0.9, "DK": 1.15, "FI": 0.85,
                "IS": 1.0, "US": 0.7}
    subs = []
    for country in COUNTRIES:
        n = SIZE[country] * k
        endpoint = "discharge" if country == "US" else "30d"
        rt_cells = [rep._times(rng, int(4000 * n), 9.0 + i * 5 + (country == "US"))
                    .model_copy(update={"stratum": {"urbanicity": area}})
                    for i, area in enumerate(["urban", "rural"])]
        surv_cells = [rep._share(int(600 * n * p * survival[country]), int(600 * n * w),
                                 ca_survival_endpoint=endpoint, ca_witnessed_by=by)
                      for by, p, w in [("bystander", 0.16, 0.6), ("unwitnessed", 0.05, 0.4)]]
        source = DataSource(format=f"national-{country.lower()}", description="test register",
                            synthetic=country in synthetic)
        subs.append(Submission(
            submission_id=f"{country}-{year}-01", country=country, period=Period(year=year),
            catalogue=catalogue_sha256(specs), revision=1,
            created_at=rep.RECEIVED - timedelta(days=400 * (YEARS[-1] - year)),
            software_version="0.1.0", model_version="1", disclosure_threshold=5,
            # rows read and accepted end in 13 and 17: numbers no figure has
            data_quality=DataQuality(rows_read=int(50000 * n) * 100 + 13,
                                     rows_accepted=int(49000 * n) * 100 + 17,
                                     rejected_by_reason={"missing_call_time": int(700 * n)}),
            indicators=[rep._result(rt, rt_cells), rep._result(surv, surv_cells)],
            source=source))
    return subs


def make_history(synthetic: dict[int, frozenset[str]] | None = None,
                 countries: tuple[str, ...] = COUNTRIES) -> History:
    old, new = releases()
    catalogues = Catalogues([Catalogue(catalogue_sha256(new), "2026.2", tuple(new)),
                             Catalogue(catalogue_sha256(old), "2026.1", tuple(old))])
    views = []
    for i, year in enumerate(YEARS):
        specs = new if year == YEARS[-1] else old
        subs = [s for s in year_submissions(specs, year, 1.0 + 0.35 * i,
                                            (synthetic or {}).get(year, frozenset()))
                if s.country in countries]
        received = rep.RECEIVED - timedelta(days=365 * (YEARS[-1] - year))
        notes = [Note("DK", year, f"DK-{year}-02", 2, "signature_invalid: the stored "
                      "envelope does not verify")] if year == 2024 else []
        views.append(PeriodView(year, [rep.standing(s, received) for s in subs], notes))
    history = history_of(views, catalogues)
    assert history.year_numbers == list(YEARS), history.skipped
    return history


@pytest.fixture(scope="module")
def history() -> History:
    return make_history()


@pytest.fixture(scope="module")
def site(history: History, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # an annual report already in the publish folder, which the landing page links
    (out / "report" / "2025").mkdir(parents=True)
    (out / "report" / "2025" / "index.html").write_text("<!DOCTYPE html><title>r</title>")
    (out / "report" / "2025" / "benchmark-2025-en.pdf").write_bytes(b"%PDF-1.7\n")
    publish(history, out)
    return out


# --- reading pages back -----------------------------------------------------------------

URL_ATTRS = {"href", "src", "srcset", "action", "formaction", "data", "poster", "xlink:href",
             "background", "cite", "manifest", "ping"}


@dataclass
class Page:
    path: str  # relative to the publish folder
    lang: str = ""
    links: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    headings: list[int] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # every URL-valued attribute
    tables: list[dict[str, Any]] = field(default_factory=list)
    first_link: str | None = None
    text: list[str] = field(default_factory=list)
    in_main: bool = False

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


class _Reader(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.skip = 0  # inside <style> or <title>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        p, a = self.page, dict(attrs)
        p.tags.append(tag)
        if tag == "html":
            p.lang = a.get("lang") or ""
        if a.get("id"):
            p.ids.add(a["id"] or "")
        for name, value in attrs:
            if name in URL_ATTRS and value is not None:
                p.urls.append(value)
        if tag == "a" and a.get("href"):
            p.links.append(a["href"] or "")
            if p.first_link is None:
                p.first_link = a["href"]
        if re.fullmatch(r"h[1-6]", tag):
            p.headings.append(int(tag[1]))
        if tag == "table":
            p.tables.append({"caption": False, "th": [], "scopes": []})
        elif tag == "caption" and p.tables:
            p.tables[-1]["caption"] = True
        elif tag == "th" and p.tables:
            p.tables[-1]["scopes"].append(a.get("scope"))
        if tag in ("style", "title"):
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.page.text.append(data)


def read_page(root: Path, path: str) -> Page:
    page = Page(path)
    reader = _Reader(page)
    reader.feed((root / path).read_text(encoding="utf-8"))
    reader.close()
    return page


def pages_of(root: Path) -> dict[str, Page]:
    return {p.relative_to(root).as_posix(): read_page(root, p.relative_to(root).as_posix())
            for p in sorted(root.rglob("*.html")) if "report" not in p.relative_to(root).parts}


def resolve(page: str, href: str) -> tuple[str, str]:
    """(target path relative to the publish folder, fragment) of a relative link."""
    parts = urlsplit(href)
    assert not parts.scheme and not parts.netloc, f"{page}: {href} leaves the site"
    target = unquote(parts.path)
    joined = PurePosixPath(page).parent / target if target else PurePosixPath(page)
    stack: list[str] = []
    for part in joined.parts:
        if part == "..":
            assert stack, f"{page}: {href} climbs out of the publish folder"
            stack.pop()
        elif part != ".":
            stack.append(part)
    return "/".join(stack), parts.fragment


# --- pages ------------------------------------------------------------------------------


def test_every_indicator_and_country_has_a_page_in_both_languages(site: Path,
                                                                 history: History) -> None:
    ids, codes = indicator_ids(history), country_codes(history)
    assert set(ids) >= {"RT-MEDIAN", "CA-SURV"} and "NORDIC" in codes and "US" in codes
    for root, lang in (("", "en"), ("nb/", "nb")):
        for path in ("index.html", "data/index.html", "releases.html",
                     *(f"indicators/{i}.html" for i in ids),
                     *(f"countries/{c}.html" for c in codes)):
            page = read_page(site, root + path)
            assert page.lang == lang, path
    # a page per indicator and country, and nothing else under those folders
    assert {p.stem for p in (site / "indicators").glob("*.html")} == set(ids)
    assert {p.stem for p in (site / "countries").glob("*.html")} == set(codes)


def test_every_link_resolves_to_a_file_and_every_fragment_to_an_id(site: Path) -> None:
    pages = pages_of(site)
    assert len(pages) > 20
    reached = {"index.html"}
    for path, page in pages.items():
        for href in page.links:
            target, fragment = resolve(path, href)
            assert (site / target).is_file(), f"{path}: {href} -> {target} is not a file"
            if fragment:
                assert target in pages and fragment in pages[target].ids, f"{path}: {href}"
            reached.add(target)
    # every page is reachable from the landing pages by links (a crawler finds them all)
    assert set(pages) <= reached
    assert any(t.startswith("data/") and t.endswith(".csv") for t in reached)


def test_no_page_has_a_script_or_names_another_host(site: Path) -> None:
    for path, page in pages_of(site).items():
        html = (site / path).read_text(encoding="utf-8")
        assert "<script" not in html.lower() and "javascript:" not in html.lower(), path
        assert not {"script", "iframe", "object", "embed", "img", "form"} & set(page.tags), path
        # CSS and SVG fetch nothing either: url() only for the chart's own clip paths
        assert not re.search(r"@import|url\(\s*['\"]?(?!#)", html), path
        for url in page.urls:
            parts = urlsplit(url)
            assert not parts.scheme and not url.startswith("//"), f"{path}: {url}"
        # an absolute http(s) URL anywhere but the SVG namespace is another host
        others = re.findall(r"https?://[^\s\"'<>)]+", html)
        assert set(others) <= {"http://www.w3.org/2000/svg"}, (path, others)
        # <link> only for the language alternates (relative, checked above): no stylesheet
        assert "stylesheet" not in html, path


def test_pages_are_accessible_markup(site: Path) -> None:
    for path, page in pages_of(site).items():
        assert page.first_link == "#main" and "main" in page.ids, path  # skip link first
        assert page.headings and page.headings[0] == 1 and page.headings.count(1) == 1, path
        jumps = [(a, b) for a, b in zip(page.headings, page.headings[1:], strict=False)
                 if b > a + 1]
        assert not jumps, f"{path}: heading levels skipped {jumps}"
        for table in page.tables:
            assert table["caption"], f"{path}: a table without <caption>"
            assert table["scopes"] and all(s in ("col", "row", "rowgroup", "colgroup")
                                           for s in table["scopes"]), f"{path}: th scope"


def test_language_switch_links_the_same_page_in_the_other_language(site: Path) -> None:
    for path in ("index.html", "indicators/CA-SURV.html", "countries/IS.html"):
        en, nb = read_page(site, path), read_page(site, "nb/" + path)
        assert resolve(path, next(h for h in en.links if "nb/" in h))[0] == "nb/" + path
        back = [resolve("nb/" + path, h)[0] for h in nb.links]
        assert path in back
        assert Messages("nb")("site.title") in nb.words
        assert Messages("en")("site.title") in en.words


@pytest.mark.parametrize("name", ["../index", "..", "a/b", "NO.html\x00", ".hidden", "",
                                  "x" * 65, "NO\\..\\x", "NO ", "NO\n"])
def test_only_plain_names_become_page_file_names(name: str) -> None:
    with pytest.raises(ValueError, match="cannot name a page"):
        file_name(name)
    assert file_name("SURV-OE") == "SURV-OE" and file_name("NORDIC") == "NORDIC"


def test_link_is_relative_from_any_depth() -> None:
    assert link("data/a.csv", "nb/indicators/X.html") == "../../data/a.csv"
    assert link("index.html#indicators", "countries/NO.html") == "../index.html#indicators"
    assert link("releases.html", "index.html") == "releases.html"


def test_landing_page_links_reports_downloads_and_key_parts(site: Path) -> None:
    page = read_page(site, "index.html")
    targets = {resolve("index.html", h)[0] for h in page.links}
    assert "report/2025/index.html" in targets and "report/2025/benchmark-2025-en.pdf" in targets
    assert {"data/emsbench-figures-all-years.csv",
            "data/emsbench-figures-all-years.jsonstat.json"} <= targets
    assert {"releases.html", "data/index.html", "countries/NORDIC.html",
            "indicators/RT-MEDIAN.html"} <= targets
    # the Norwegian landing page links the same report folder (no nb report there)
    nb = read_page(site, "nb/index.html")
    assert "report/2025/index.html" in {resolve("nb/index.html", h)[0] for h in nb.links}


# --- what the pages say -----------------------------------------------------------------


def _row_text(html: str, start: str) -> str:
    """The text of the table row whose first cell starts with ``start``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S):
        text = " ".join(re.sub(r"<[^>]+>", " ", row).split())
        if text.startswith(start):
            return text
    raise AssertionError(f"no row starting {start!r}")


def test_indicator_page_shows_every_year_and_the_change_as_history_computes_it(
        site: Path, history: History) -> None:
    figs = Figures(history)
    stratum = "ca_survival_endpoint=30d;ca_witnessed_by=bystander"
    series = figs.series("CA-SURV", "NO", stratum)
    assert sorted(series) == list(YEARS)
    c = change(series[2024], series[2025])
    assert c is not None and c.beyond_chance  # the fixture doubled Norway's survival
    html = (site / "indicators/CA-SURV.html").read_text(encoding="utf-8")
    m = Messages("en")
    section = html.split('id="h-all"')[1]
    group = section.split(m.stratum(stratum, "ca_survival_endpoint"))[1]
    row = _row_text(group, m.country("NO"))
    for year in YEARS:
        assert f"{series[year].value:.1f}" in row, (year, row)
    assert f"{c.diff:.1f}" in row and m("report.beyond_chance") in row
    # Iceland's unwitnessed cell is withheld by its node: shown as suppressed, no number
    iceland = _row_text(html.split('id="h-all"')[1].split(m.stratum(
        "ca_witnessed_by=unwitnessed"))[1], m.country("IS"))
    withheld = figs.series("CA-SURV", "IS", "ca_survival_endpoint=30d;"
                           "ca_witnessed_by=unwitnessed")
    assert any(f.suppressed and f.value is None for f in withheld.values())
    assert m("report.suppressed") in iceland


def test_a_new_definition_breaks_the_series_and_is_listed(site: Path) -> None:
    m = Messages("en")
    html = (site / "indicators/RT-MEDIAN.html").read_text(encoding="utf-8")
    versions = html.split('id="h-versions"')[1].split("</table>")[0]
    assert _row_text(versions, "1.0.0").endswith("2023, 2024 2026.1")
    assert _row_text(versions, "2.0.0").endswith("2025 2026.2")
    trend = html.split('id="h-all"')[1]
    row = _row_text(trend.split(m.stratum("urbanicity=urban"))[1], m.country("SE"))
    assert m("report.series_break") in row and m("report.beyond_chance") not in row


def latest_title(history: History) -> str:
    return next(s.title for s in history.catalogues.specs() if s.id == "RT-MEDIAN")


def test_country_page_lists_every_indicator_with_its_pool_and_data_source(
        site: Path, history: History) -> None:
    m = Messages("en")
    html = (site / "countries/SE.html").read_text(encoding="utf-8")
    page = read_page(site, "countries/SE.html")
    links = {resolve("countries/SE.html", h)[0] for h in page.links}
    assert {f"indicators/{i}.html" for i in indicator_ids(history)} <= links
    assert "test register" in page.words and "national-se" in page.words
    latest = Figures(history).series("RT-MEDIAN", "SE", "urbanicity=urban")[2025]
    row = _row_text(html, f"{latest_title(history)} RT-MEDIAN {m.stratum('urbanicity=urban')}")
    assert f"{latest.value:.{latest.decimals}f}" in row
    pool = Figures(history).series("RT-MEDIAN", "NORDIC", "urbanicity=urban")[2025]
    assert f"{pool.value:.{pool.decimals}f}" in row
    nordic = read_page(site, "countries/NORDIC.html").words
    assert m("site.pool_text") in nordic


def test_releases_page_has_every_release_and_every_years_provenance(site: Path,
                                                                    history: History) -> None:
    page = read_page(site, "releases.html")
    for c in history.catalogues.releases:
        assert c.id in page.words and c.name in page.words
    for y in history.years:
        for s in y.view.standing:
            for value in (s.record.submission_id, s.record.payload_sha256, s.record.keyid):
                assert value in page.words
    assert "DK-2024-02" in page.words and "signature_invalid" in page.words  # set aside


def test_synthetic_banner_on_every_page_only_when_a_source_is_synthetic(
        site: Path, tmp_path: Path) -> None:
    banner = Messages("en")("site.synthetic_banner")
    banner_nb = Messages("nb")("site.synthetic_banner")
    assert not any(banner in p.words or banner_nb in p.words for p in pages_of(site).values())
    # one country, one earlier year: still every page, in both languages
    marked = make_history(synthetic={2023: frozenset({"FI"})})
    out = tmp_path / "synthetic"
    publish(marked, out)
    pages = pages_of(out)
    assert len(pages) == len(pages_of(site))
    for path, page in pages.items():
        assert (banner_nb if path.startswith("nb/") else banner) in page.words, path


# --- open data --------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _key(row: dict[str, str]) -> tuple[str, ...]:
    return (row["indicator_id"], row["spec_version"], row["year"], row["stratum"],
            row["country"])


def assert_same(csv_rows: list[dict[str, str]], js_rows: list[dict[str, str]]) -> None:
    """The JSON-stat file's rows are the CSV's, cell for cell, as text."""
    assert len(js_rows) == len(csv_rows) == len({_key(r) for r in csv_rows})
    assert {_key(r): r for r in js_rows} == {_key(r): r for r in csv_rows}


def test_downloads_read_back_as_the_same_figures(site: Path, history: History) -> None:
    data = site / "data"
    every = _rows(data / "emsbench-figures-all-years.csv")
    per_year: list[dict[str, str]] = []
    for y in history.years:
        rows = _rows(data / f"emsbench-figures-{y.year}.csv")
        assert {r["year"] for r in rows} == {str(y.year)} and len(rows) == len(y.figures)
        doc = json.loads((data / f"emsbench-figures-{y.year}.jsonstat.json").read_text())
        js.validate(doc)
        assert_same(rows, js.read_jsonstat(data / f"emsbench-figures-{y.year}.jsonstat.json"))
        per_year += rows
    doc = json.loads((data / "emsbench-figures-all-years.jsonstat.json").read_text())
    js.validate(doc)
    # all years in one collection: a dataset per definition, its year dimension several
    years = {tuple(d["dimension"]["year"]["category"]["index"]) for d in doc["link"]["item"]}
    assert ("2023", "2024", "2025") in years
    assert_same(every, js.read_jsonstat(data / "emsbench-figures-all-years.jsonstat.json"))
    assert sorted(every, key=_key) == sorted(per_year, key=_key)
    # the checksums list every file and match
    sums = {name: digest for digest, name in (
        line.split("  ") for line in (data / "SHA256SUMS").read_text().splitlines())}
    assert len(sums) == 2 * (len(YEARS) + 1)
    for name, digest in sums.items():
        assert hashlib.sha256((data / name).read_bytes()).hexdigest() == digest


def test_downloads_carry_only_publishable_figures(site: Path, history: History) -> None:
    rows = _rows(site / "data" / "emsbench-figures-all-years.csv")
    assert tuple(rows[0]) == COLUMNS  # the public column set, nothing else
    figures = {(f.indicator_id, f.spec_version, str(f.year), f.stratum, f.country): f
               for y in history.years for f in y.figures}
    assert len(rows) == len(figures)  # exactly the merged figures
    withheld = 0
    for r in rows:
        f = figures[(r["indicator_id"], r["spec_version"], r["year"], r["stratum"],
                     r["country"])]
        if f.country in f.omitted:  # withheld by its own node: no count, no value
            withheld += 1
            assert r["suppressed"] == "true"
            assert r["numerator"] == r["denominator"] == r["value"] == r["ci_low"] == ""
    assert withheld > 0
    # nothing of the submissions' data quality reaches the files
    text = (site / "data" / "emsbench-figures-all-years.csv").read_text()
    quality = {str(n) for y in history.years for s in y.view.submissions
               for n in (s.data_quality.rows_read, s.data_quality.rows_accepted)}
    assert not any(re.search(rf"(^|,){q}(,|$)", text, flags=re.M) for q in quality)


def test_data_page_lists_every_file_with_its_checksum(site: Path) -> None:
    page = read_page(site, "data/index.html")
    targets = {resolve("data/index.html", h)[0] for h in page.links}
    for line in (site / "data" / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert f"data/{name}" in targets and digest in page.words


# --- publishing again -------------------------------------------------------------------


def test_republishing_replaces_the_site_and_removes_only_its_own_files(
        tmp_path: Path) -> None:
    out = tmp_path / "public"
    publish(make_history(), out, ["en"])
    mine = out / "report" / "2024" / "index.html"  # put there by the operator
    mine.parent.mkdir(parents=True)
    mine.write_text("report")
    assert (out / "countries" / "IS.html").is_file()
    done = publish(make_history(countries=("NO", "SE", "US")), out, ["en", "nb"])
    assert not (out / "countries" / "IS.html").exists()  # Iceland gone, its page too
    assert (out / "nb" / "countries" / "SE.html").is_file()
    assert mine.read_text() == "report"
    listed = set(json.loads((out / MANIFEST).read_text())["files"])
    assert listed == set(done.files) >= {*done.pages, *(d.path for d in done.downloads)}
    assert not [p for p in out.iterdir() if p.name.startswith(".publish-")]
    report = read_page(out, "index.html")
    assert "report/2024/index.html" in {resolve("index.html", h)[0] for h in report.links}


def test_a_foreign_file_in_the_way_stops_publishing_before_anything_is_written(
        tmp_path: Path) -> None:
    out = tmp_path / "public"
    out.mkdir()
    (out / "index.html").write_text("someone else's page")
    with pytest.raises(SiteError, match="not written by hub publish"):
        publish(make_history(), out, ["en"])
    assert (out / "index.html").read_text() == "someone else's page"
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]


def test_a_publication_cut_short_is_finished_by_the_next(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import hub.site

    out = tmp_path / "public"
    publish(make_history(), out, ["en"])
    real = hub.site.os.replace
    moved: list[Any] = []

    def failing(src: Any, dst: Any) -> None:
        # cut short once some files new to the folder (the Norwegian pages) are in place
        if sum("/nb/" in str(d) for d in moved) == 3:
            raise OSError(28, "No space left on device")
        moved.append(dst)
        real(src, dst)

    monkeypatch.setattr(hub.site.os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        publish(make_history(countries=("NO", "SE", "US")), out, ["en", "nb"])
    monkeypatch.undo()
    assert (out / "nb").is_dir() and not (out / "nb" / "index.html").exists()
    done = publish(make_history(countries=("NO", "SE", "US")), out, ["en", "nb"])
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == set(done.files)
    assert not (out / "countries" / "IS.html").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".publish-")]


def test_a_tampered_publication_list_cannot_delete_outside_the_site(tmp_path: Path) -> None:
    out = tmp_path / "public"
    publish(make_history(), out, ["en"])
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    inside = out / "report" / "keep.txt"
    inside.parent.mkdir()
    inside.write_text("keep")
    listed = json.loads((out / MANIFEST).read_text())
    listed["files"] += ["../precious.txt", str(outside), "report/../../precious.txt",
                        "report\\..\\..\\precious.txt", ".", ""]
    (out / MANIFEST).write_text(json.dumps(listed))
    publish(make_history(), out, ["en"])
    assert outside.read_text() == "keep" and inside.read_text() == "keep"


def test_nothing_to_publish_and_unknown_languages_are_refused(tmp_path: Path) -> None:
    empty = history_of([PeriodView(2025)], make_history().catalogues)
    with pytest.raises(ValueError, match="nothing to publish"):
        publish(empty, tmp_path / "a")
    with pytest.raises(SiteError, match="languages"):
        publish(make_history(), tmp_path / "b", ["en", "sv"])
    assert not (tmp_path / "b" / "index.html").exists()


# --- the hub serves it ------------------------------------------------------------------


def test_public_folder_config_defaults_beside_the_database(tmp_path: Path) -> None:
    cfg = hub_config_from_mapping({"database": "db/hub.duckdb", "trust_registry": "t.toml"},
                                  tmp_path)
    assert cfg.public_dir == tmp_path / "db" / "public"
    cfg = hub_config_from_mapping({"database": "hub.duckdb", "trust_registry": "t.toml",
                                   "public": "www"}, tmp_path)
    assert cfg.public_dir == tmp_path / "www"
    write_hub_config(tmp_path / "hub.toml", cfg)
    assert load_hub_config(tmp_path / "hub.toml").public_dir == tmp_path / "www"


TRAVERSALS = [
    "/public/../hub.duckdb", "/public/%2e%2e/hub.duckdb", "/public/..%2fhub.duckdb",
    "/public/%2e%2e%2fhub.duckdb", "/public/data/..%2f..%2fhub.duckdb",
    "/public/data/%2e%2e/%2e%2e/hub.duckdb", "/public/..%5chub.duckdb",
    "/public/%2fetc%2fpasswd", "/public//etc/passwd", "/public/index.html%00",
    "/public/%00", "/public/.emsbench-site.json", "/public/outside/hub.duckdb",
    "/public/..%252fhub.duckdb", "/public/trust.toml", "/public/../trust.toml",
]


def test_hub_serves_the_published_site_read_only(hub: Any, history: History) -> None:
    # before the first publication: 404, not a broken hub
    assert hub.client.get("/public/index.html").status_code == 404
    assert hub.client.get("/v1/health").status_code == 200
    public: Path = hub.config.public_dir
    publish(history, public)
    (public / "outside").symlink_to(hub.tmp)  # a link out of the folder is not followed
    for path in ("/public/index.html", "/public/", "/public/nb/countries/NO.html",
                 "/public/data/emsbench-figures-2025.csv"):
        r = hub.client.get(path)
        assert r.status_code == 200, path
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert hub.client.get("/public/").text == (public / "index.html").read_text()
    r = hub.client.get("/public", follow_redirects=False)
    assert r.status_code in (301, 302, 307, 308)
    assert r.headers["location"].endswith("public/")
    assert hub.client.post("/public/index.html").status_code == 405
    secrets = [(hub.tmp / name).read_bytes()[:64] for name in ("hub.duckdb", "trust.toml")]
    for path in TRAVERSALS:
        r = hub.client.get(path)
        assert r.status_code in (400, 404), (path, r.status_code)
        assert not any(s in r.content for s in secrets), path
        assert b"emsbench hub publish" not in r.content, path  # the manifest stays unserved


def test_hub_publish_command_writes_where_the_hub_serves(hub: Any, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from emsbench.cli import main
    from hub.api import create_app

    for country, sid in (("NO", "NO-2024-0001"), ("SE", "SE-2024-0001")):
        r = hub.post(hub.envelope(hub.submission(country, sid), country))
        assert r.status_code == 201, r.text
    hub.store.close()  # the CLI reads the file, as after the hub stopped
    config = tmp_path / "hub.toml"
    write_hub_config(config, hub.config)
    assert main(["hub", "publish", "--config", str(config), "--lang", "en"]) == 0
    assert "site written to" in capsys.readouterr().out
    assert (hub.config.public_dir / "countries" / "SE.html").is_file()
    from fastapi.testclient import TestClient

    client = TestClient(create_app(hub.config))
    page = client.get("/public/indicators/T-ALPHA.html")
    assert page.status_code == 200 and "T-ALPHA" in page.text


# --- in a browser -----------------------------------------------------------------------


@contextmanager
def serving(config: HubConfig) -> Iterator[str]:
    """The hub app on a free loopback port (uvicorn in a thread); yields its base URL."""
    import uvicorn

    from hub.api import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the hub did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_every_page_renders_in_chromium_without_errors_or_other_hosts(
        hub: Any, history: History, tmp_path: Path) -> None:
    browser = _load_browser()
    browser.require_chromium()
    publish(make_history(synthetic={2025: frozenset({"US"})}), hub.config.public_dir)
    shots = tmp_path / "screenshots"
    with serving(hub.config) as base:
        checks = browser.crawl_site(f"{base}/public/index.html", shots)
    expected = len(pages_of(hub.config.public_dir))
    assert len(checks) == expected
    problems = {c.url: c.problems for c in checks if c.problems}
    assert not problems
    assert len(list(shots.glob("*.png"))) == expected
    assert all(p.stat().st_size > 1000 for p in shots.glob("*.png"))


def _load_browser() -> ModuleType:
    name = "_site_browser"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parents[1] / "browser.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
