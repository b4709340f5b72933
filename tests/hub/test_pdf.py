"""The report printed to PDF (hub.pdf) with its print stylesheet (hub/templates/print.css).

The report is the multi-country fixture of tests/hub/test_report.py. Printed, every page
must render, carry the running header with the synthetic-data note and "Page N of M", and
show every table whole: each column, the United States' included, under its header.
Without the print stylesheet the same report loses its widest tables' last columns at the
paper's edge (the issue's finding: "printed to PDF the tables are cut off (the US column is
missing)"), which shows the check can see it. Page images go to the test's tmp_path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.messages import Messages
from hub.pdf import PdfError, html_to_pdf
from hub.report import ReportFiles, write_report
from tests.browser import (
    check_pages,
    page_texts,
    pdf_page_count,
    render_pages,
    require_chromium,
    require_poppler,
    tables_intact,
    tables_of,
)
from tests.hub.test_report import YEAR, fixture_history, fixture_specs

PRINT_CSS = Path(__file__).parents[2] / "hub" / "templates" / "print.css"
NOTE = Messages("en")("report.synthetic_short")  # the fixture is synthetic
COUNTRIES = ("Norway", "Sweden", "Denmark", "Finland", "Iceland", "Nordic pooled",
             "United States")


@dataclass(frozen=True)
class Printed:
    html: str
    pdf: Path
    title: str


def title_of(html: str) -> str:
    match = re.search(r"<title>([^<]+)</title>", html)
    assert match, "the report has no <title>"
    return " ".join(match.group(1).split())


def with_print_css(html: str) -> str:
    """The report with the print stylesheet: as the template includes it, or added."""
    css = PRINT_CSS.read_text(encoding="utf-8").strip()
    return html if css in html else html.replace("</head>", f"<style>\n{css}\n</style>\n</head>",
                                                 1)


def without_print_css(html: str) -> str:
    css = PRINT_CSS.read_text(encoding="utf-8").strip()
    bare = html.replace(css, "")
    assert "@page" not in bare, "the report has print rules of its own"
    return bare


def print_report(folder: Path, html: str) -> Printed:
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "report.html"
    page.write_text(html, encoding="utf-8")
    title = title_of(html)
    return Printed(html, html_to_pdf(page, folder / "report.pdf", title=title,
                                     header_note=NOTE), title)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    """The three-year fixture report as ``hub report`` writes it: HTML, then its PDF."""
    require_chromium()
    require_poppler()
    return write_report(fixture_history(), YEAR, tmp_path_factory.mktemp("report"), pdf=True)


@pytest.fixture(scope="module")
def report(files: ReportFiles) -> Path:
    return files.html


@pytest.fixture(scope="module")
def printed(files: ReportFiles) -> Printed:
    html = files.html.read_text(encoding="utf-8")
    assert files.pdf is not None and with_print_css(html) == html  # the template has it
    return Printed(html, files.pdf, title_of(html))


def test_every_page_renders(printed: Printed, tmp_path: Path) -> None:
    pages = pdf_page_count(printed.pdf)
    assert pages >= 3
    pngs = render_pages(printed.pdf, tmp_path / "pages")
    assert len(pngs) == pages
    assert all(p.parent == tmp_path / "pages" for p in pngs)


def test_every_page_has_the_title_the_note_and_its_number(printed: Printed) -> None:
    texts = page_texts(printed.pdf)
    total = pdf_page_count(printed.pdf)
    assert len(texts) == total
    for n, text in enumerate(texts, 1):
        assert printed.title in text and NOTE in text, f"page {n}"
        assert re.search(rf"\bPage {n} of {total}\b", text), f"page {n}"


def test_no_page_is_blank(printed: Printed) -> None:
    for n, text in enumerate(page_texts(printed.pdf), 1):
        body = text.replace(printed.title, "").replace(NOTE, "")
        body = re.sub(rf"Page {n} of \d+", "", body)
        assert len(re.sub(r"[\s·]", "", body)) > 20, f"page {n} is blank"


def test_every_chapter_and_every_indicator_is_printed(printed: Printed) -> None:
    text = " ".join(" ".join(page_texts(printed.pdf)).split())
    m = Messages("en")
    for heading in ("report.summary", "report.key_findings", "chapter.other",
                    "report.countries_chapter", "report.method", "report.provenance"):
        assert m(heading) in text, heading
    for spec in fixture_specs():
        assert spec.title in text and f"Trend: {m.stratum('urbanicity=rural')}" in text


def test_tables_print_whole_with_every_country(printed: Printed) -> None:
    assert tables_intact(printed.html, printed.pdf) == []
    # The indicator tables: a column for each country and the Nordic pool, all printed.
    wide = [headers for _, headers in tables_of(printed.html)
            if all(any(h.startswith(c) for h in headers) for c in COUNTRIES)]
    assert wide, "no table has a column for each country and the Nordic pool"
    text = "\n".join(page_texts(printed.pdf))
    assert all(country in text for country in COUNTRIES)


def test_without_print_css_the_us_column_is_cut_off(report: Path, tmp_path: Path) -> None:
    """The finding, reproduced: the screen layout printed on A4 loses its last columns."""
    html = without_print_css(report.read_text(encoding="utf-8"))
    problems = tables_intact(html, print_report(tmp_path, html).pdf)
    cut = [p for p in problems if "'United States" in p and "missing above its rows" in p]
    assert cut, problems


def test_the_report_loads_cleanly_in_a_browser(report: Path, tmp_path: Path) -> None:
    [check] = check_pages([report], tmp_path / "shots")
    assert check.problems == []
    assert check.screenshot is not None and check.screenshot.stat().st_size > 10_000


def test_without_a_browser_the_html_is_written_and_the_error_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo and ``hub report`` rely on this: the HTML is written before the PDF is
    tried, and a missing Chromium is a PdfError naming the fix."""
    monkeypatch.setenv("EMSBENCH_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(PdfError, match="is not an executable file"):
        write_report(fixture_history(years=(YEAR,)), YEAR, tmp_path / "r", pdf=True)
    assert (tmp_path / "r" / "index.html").stat().st_size > 10_000
    assert not list((tmp_path / "r").glob("*.pdf"))
