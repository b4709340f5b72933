"""The browser and PDF harness (tests/browser.py) and hub.pdf's printing, attacked.

Pages that reach for other hosts, scripts that fail, links that lead nowhere, tables wider
than the paper and long tables that lose their column headers must all be caught; clean
pages must pass. Screenshots and PDFs go to each test's tmp_path. Without Chromium or
poppler (``scripts/browser.sh``) these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import asyncio
import re
import struct
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hub import pdf as hub_pdf
from hub.pdf import PdfError, find_chromium, footer_template, header_template, html_to_pdf
from tests.browser import (
    PageCheck,
    PdfPage,
    Word,
    check_pages,
    chromium,
    crawl_site,
    hyphen_parts,
    page_texts,
    pdf_page_count,
    render_pages,
    require_chromium,
    require_poppler,
    serve_dir,
    tables_intact,
    tables_of,
    words_outside_page,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# Each requests something from another host, in a different way.
ATTACKS = {
    "img": '<img src="http://example.com/x.png" alt="">',
    "css-import": "<style>@import url(https://fonts.example.org/font.css);</style>",
    "cdn-link": '<link rel="stylesheet" href="//cdn.example.net/site.css">',
    "font": "<style>@font-face { font-family: F; src: url(https://fonts.example.org/f.woff2) }"
            " p { font-family: F }</style>",
    "fetch": "<script>fetch('https://tracker.example.com/beacon')</script>",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with chromium() as b:
        yield b


@pytest.fixture
def poppler() -> None:
    require_poppler()


def page(folder: Path, name: str, body: str, head: str = "") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                    f"<title>{name}</title>{head}</head><body>{body}</body></html>",
                    encoding="utf-8")
    return path


def pdfinfo(pdf: Path) -> str:
    return subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True,
                          text=True).stdout


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def wide_table(columns: int = 20, wrapped: bool = False, rows: int = 3) -> str:
    heads = "".join(f"<th>Long column header number {i}</th>" for i in range(columns))
    body = "".join("<tr>" + "".join(f"<td>value {r}.{i}</td>" for i in range(columns)) + "</tr>"
                   for r in range(rows))
    table = (f"<table><caption>A table wider than A4</caption><thead><tr>{heads}</tr></thead>"
             f"<tbody>{body}</tbody></table>")
    # The report's screen CSS scrolls wide tables in a wrapper: printed, that clips them.
    return f'<div style="overflow-x:auto">{table}</div>' if wrapped else table


def long_table(rows: int = 150, thead_css: str = "") -> str:
    style = f"<style>thead {{ {thead_css} }}</style>" if thead_css else ""
    body = "".join(f"<tr><th>Row {r}</th><td>{r * 7}</td><td>{r * 11}</td></tr>"
                   for r in range(rows))
    return (f"{style}<table><caption>Rows by number</caption><thead><tr><th>Row label</th>"
            f"<th>Sevens</th><th>Elevens</th></tr></thead><tbody>{body}</tbody></table>")


# ---- pure parts: no browser needed ---------------------------------------------------


def test_tables_of_reads_captions_and_header_cells() -> None:
    html = """<table class="x"><caption> Response&nbsp;time,
      <em>2025</em> </caption><thead><tr><th scope="col">Group</th>
      <th>Norway <small>(NO)</small></th><th>Nordic&#160;pooled</th></tr></thead>
      <tbody><tr><th>urban</th><td><table><caption>inner</caption><thead><tr><th>a</th>
      </tr></thead></table></td></tr></tbody></table>
      <table><tr><th>no thead</th></tr></table>"""
    assert tables_of(html) == [
        ("Response time, 2025", ["Group", "Norway (NO)", "Nordic pooled"]),
        ("inner", ["a"]),
        ("", []),
    ]


def test_words_outside_the_paper_are_listed() -> None:
    inside = Word("in", 10, 10, 100, 20, 0)
    right = Word("US", 580, 10, 620, 20, 0)
    below = Word("foot", 10, 840, 40, 850, 1)
    pages = [PdfPage(595.9, 842.9, (inside, right)), PdfPage(595.9, 842.9, (below,))]
    found = words_outside_page(pages)
    assert len(found) == 2
    assert found[0].startswith("page 1: 'US'") and found[1].startswith("page 2: 'foot'")
    assert words_outside_page([PdfPage(595.9, 842.9, (inside,))]) == []


def test_chromium_is_found_from_the_environment_or_path(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "chromium-browser"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    monkeypatch.delenv("EMSBENCH_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(fake.parent))
    with pytest.raises(PdfError, match=r"scripts/browser\.sh.*EMSBENCH_CHROMIUM"):
        find_chromium()  # not executable: not a candidate
    fake.chmod(0o755)
    assert find_chromium() == str(fake)
    monkeypatch.setenv("EMSBENCH_CHROMIUM", str(tmp_path / "nowhere"))
    with pytest.raises(PdfError, match="EMSBENCH_CHROMIUM=.*nowhere is not an executable"):
        find_chromium()
    monkeypatch.setenv("EMSBENCH_CHROMIUM", str(fake))
    assert find_chromium() == str(fake)


def test_the_sandbox_is_left_out_only_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_pdf.os, "geteuid", lambda: 0)
    assert "--no-sandbox" in hub_pdf.launch_args()
    monkeypatch.setattr(hub_pdf.os, "geteuid", lambda: 1000)
    args = hub_pdf.launch_args()
    assert "--no-sandbox" not in args
    assert {"--disable-gpu", "--disable-background-networking", "--disable-quic"} <= set(args)


def test_header_and_footer_markup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header = header_template("Report <b>2025</b> & more", "SYNTHETIC")
    assert "<b>" not in header and "Report &lt;b&gt;2025&lt;/b&gt; &amp; more" in header
    assert "SYNTHETIC" in header and "font-size:8pt" in header
    assert re.search(r"Side <span class=\"pageNumber\"></span> av <span class=\"totalPages\">",
                     footer_template("nb"))
    assert ">Page <span" in footer_template("en-GB")
    # An unknown language is refused before any browser starts (none can be found here).
    monkeypatch.setenv("EMSBENCH_CHROMIUM", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no page-number wording for language 'xx'"):
        html_to_pdf(page(tmp_path, "a.html", "<p>a</p>"), tmp_path / "a.pdf", title="t",
                    lang="xx")
    assert not (tmp_path / "a.pdf").exists()


# ---- pages in Chromium ------------------------------------------------------------------


def test_a_clean_page_passes_and_is_shot_whole(browser: Browser, tmp_path: Path) -> None:
    svg = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='10' "
           "height='10'/%3E")
    clean = page(tmp_path / "site", "index.html",
                 f'<h1>Tall</h1><img src="{svg}" alt=""><div style="height:3000px"></div>'
                 '<img src="dot.svg" alt="">')
    (clean.parent / "dot.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    with serve_dir(clean.parent) as base:
        checks = check_pages([clean, base + "index.html"], tmp_path / "shots", browser)
    assert [c.problems for c in checks] == [[], []]
    assert checks[0].status is None and checks[1].status == 200
    for check in checks:
        assert check.screenshot is not None and check.screenshot.parent == tmp_path / "shots"
        width, height = png_size(check.screenshot)
        assert height > 3000 and width > 0  # the whole page, not the viewport


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_requests_to_other_hosts_are_reported_not_made(browser: Browser, tmp_path: Path,
                                                       attack: str) -> None:
    bad = page(tmp_path, "bad.html", "<p>text</p>", ATTACKS[attack])
    with serve_dir(tmp_path) as base:
        checks = check_pages([bad, base + "bad.html"], tmp_path / "shots", browser)
    host = re.search(r"//([\w.]+)/", ATTACKS[attack]).group(1)  # type: ignore[union-attr]
    for check in checks:
        assert any(host in url for url in check.foreign_requests), check
        assert any(host in p for p in check.problems)
        assert not any(host in f for f in check.failed_requests)  # blocked, not failed


def test_script_errors_are_reported(browser: Browser, tmp_path: Path) -> None:
    path = page(tmp_path, "broken.html", "<p>x</p>",
                "<script>console.error('boom-console');</script>"
                "<script>throw new Error('boom-thrown');</script>")
    [check] = check_pages([path], tmp_path / "shots", browser)
    assert any("boom-console" in m for m in check.console_errors)
    assert any("boom-thrown" in m for m in check.page_errors)
    assert len(check.problems) == 2


def test_missing_own_files_are_failed_requests(browser: Browser, tmp_path: Path) -> None:
    path = page(tmp_path, "holes.html", '<img src="missing.png" alt="">')
    with serve_dir(tmp_path) as base:
        local, served, absent = check_pages(
            [path, base + "holes.html", base + "absent.html"], tmp_path / "shots", browser)
    assert any("missing.png" in f and "ERR_FILE_NOT_FOUND" in f for f in local.failed_requests)
    assert any(f.endswith("missing.png: 404") for f in served.failed_requests)
    assert served.status == 200 and absent.status == 404 and "status 404" in absent.problems


def _site(root: Path) -> None:
    page(root, "index.html", '<a href="a.html">a</a> <a href="sub/b.html#part">b</a> '
         '<a href="data/figures.csv">csv</a> <a href="data/gone.csv">gone</a> '
         '<a href="https://example.org/elsewhere.html">elsewhere</a>')
    page(root, "a.html", '<a href="index.html">home</a> <a href="sub/b.html">b</a>')
    page(root, "sub/b.html", '<a href="../index.html">home</a> <a href="../data/figures.csv">'
         'csv</a> <a href="../nowhere.html">dead</a>')
    (root / "data").mkdir()
    (root / "data" / "figures.csv").write_text("country,value\nNO,1\n")


def test_crawl_visits_each_own_page_once_and_checks_downloads(browser: Browser,
                                                               tmp_path: Path) -> None:
    _site(tmp_path / "site")
    with serve_dir(tmp_path / "site") as base:
        checks = crawl_site(base + "index.html", tmp_path / "shots", browser=browser)
    by_url = {c.url.removeprefix(base): c for c in checks}
    assert sorted(by_url) == ["a.html", "index.html", "nowhere.html", "sub/b.html"]
    assert by_url["index.html"].broken_links == [base + "data/gone.csv"]
    assert by_url["sub/b.html"].broken_links == []  # figures.csv is there
    assert by_url["nowhere.html"].problems == ["status 404"]
    assert by_url["a.html"].problems == []
    assert not any("example.org" in p for c in checks for p in c.problems)  # not fetched
    assert len(list((tmp_path / "shots").glob("*.png"))) == 4


def test_crawl_of_local_files_and_its_limit(browser: Browser, tmp_path: Path) -> None:
    _site(tmp_path / "site")
    start = (tmp_path / "site" / "index.html").as_uri()
    checks = crawl_site(start, tmp_path / "shots", browser=browser)
    assert len(checks) == 4
    assert [c.broken_links for c in checks if c.broken_links] == [
        [(tmp_path / "site" / "data" / "gone.csv").as_uri()]]
    [dead] = [c for c in checks if c.url.endswith("nowhere.html")]
    assert dead.failed_requests and dead.screenshot is None
    with pytest.raises(RuntimeError, match="more than 2 pages"):
        crawl_site(start, tmp_path / "shots2", limit=2, browser=browser)


# ---- printing ---------------------------------------------------------------------------


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_page_that_reaches_out_is_not_printed(tmp_path: Path, attack: str) -> None:
    require_chromium()
    out = tmp_path / "report.pdf"
    out.write_bytes(b"%PDF- the published one")
    bad = page(tmp_path, "bad.html", "<p>text</p>", ATTACKS[attack])
    with pytest.raises(PdfError, match="not self-contained: it requested .*example"):
        html_to_pdf(bad, out, title="t")
    assert out.read_bytes() == b"%PDF- the published one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.html", "report.pdf"]


def test_a_page_may_not_read_other_local_files(tmp_path: Path) -> None:
    require_chromium()
    (tmp_path / "secret.txt").write_text("not for the report")
    bad = page(tmp_path, "bad.html", '<iframe src="secret.txt"></iframe>'
               '<img src="/etc/hostname" alt="">')
    with pytest.raises(PdfError, match="not self-contained") as info:
        html_to_pdf(bad, tmp_path / "out.pdf", title="t")
    assert "secret.txt" in str(info.value) and "/etc/hostname" in str(info.value)
    assert not (tmp_path / "out.pdf").exists()


def test_a_page_whose_script_fails_is_not_printed(tmp_path: Path) -> None:
    require_chromium()
    bad = page(tmp_path, "bad.html", "<p>x</p>", "<script>null.chart.draw()</script>")
    with pytest.raises(PdfError, match="a script failed"):
        html_to_pdf(bad, tmp_path / "out.pdf", title="t")
    assert not (tmp_path / "out.pdf").exists()


def test_every_page_has_the_running_header_and_localised_page_numbers(tmp_path: Path,
                                                                      poppler: None) -> None:
    require_chromium()
    doc = page(tmp_path, "long.html", long_table(150))
    pdf = html_to_pdf(doc, tmp_path / "out" / "long.pdf", title="Rapport 2025 – Norden",
                      header_note="SYNTETISKE DATA", lang="nb")
    pages = pdf_page_count(pdf)
    texts = page_texts(pdf)
    assert pages >= 3 and len(texts) == pages
    for n, text in enumerate(texts, 1):
        assert "Rapport 2025 – Norden" in text and "SYNTETISKE DATA" in text
        assert re.search(rf"\bSide {n} av {pages}\b", text), text[-200:]
        assert "Page" not in text
    assert re.search(r"^Page size: +595\.9\d x 842\.\d\d pts \(A4\)$", pdfinfo(pdf), re.M)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["long.pdf"]  # no temp left
    assert len(render_pages(pdf, tmp_path / "png")) == pages


def test_printing_from_async_code_works(tmp_path: Path, poppler: None) -> None:
    """Playwright's sync API refuses to start inside an event loop; html_to_pdf then prints
    from a thread of its own."""
    require_chromium()
    doc = page(tmp_path, "a.html", "<p>printed from a coroutine</p>")

    async def main() -> Path:
        asyncio.get_running_loop()  # there is one
        return html_to_pdf(doc, tmp_path / "a.pdf", title="t")

    # A thread of its own: this module's Playwright session occupies the test's thread.
    with ThreadPoolExecutor(1) as pool:
        pdf = pool.submit(asyncio.run, main()).result()
    assert "printed from a coroutine" in page_texts(pdf)[0]
    assert pdf.stat().st_mode & 0o777 == 0o644


def test_a_long_table_keeps_its_headers_on_every_page(tmp_path: Path, poppler: None) -> None:
    require_chromium()
    html = page(tmp_path, "long.html", long_table(150)).read_text(encoding="utf-8")
    pdf = html_to_pdf(tmp_path / "long.html", tmp_path / "long.pdf", title="t")
    assert pdf_page_count(pdf) >= 3
    assert tables_intact(html, pdf) == []
    # The same table with its header row made an ordinary row: not repeated, and caught.
    html = page(tmp_path, "bare.html", long_table(150, "display: table-row-group")
                ).read_text(encoding="utf-8")
    pdf = html_to_pdf(tmp_path / "bare.html", tmp_path / "bare.pdf", title="t")
    problems = tables_intact(html, pdf)
    assert len(problems) == pdf_page_count(pdf) - 1
    assert problems[0].startswith("page 2: table 'Rows by number': column header(s) "
                                  "'Row label', 'Sevens', 'Elevens' missing above its rows")


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "scroll-wrapper"])
def test_a_table_wider_than_a4_is_caught(tmp_path: Path, poppler: None, wrapped: bool) -> None:
    require_chromium()
    html = page(tmp_path, "wide.html", wide_table(wrapped=wrapped)).read_text(encoding="utf-8")
    pdf = html_to_pdf(tmp_path / "wide.html", tmp_path / "wide.pdf", title="t")
    [problem] = tables_intact(html, pdf)
    assert problem.startswith("page 1: table 'A table wider than A4': column header(s) ")
    # The columns past the paper's edge are the ones missing, the last one first of all.
    assert "'Long column header number 19'" in problem
    assert "'Long column header number 0'" not in problem
    # The same columns as a narrow table print whole.
    html = page(tmp_path, "narrow.html", wide_table(4, wrapped)).read_text(encoding="utf-8")
    pdf = html_to_pdf(tmp_path / "narrow.html", tmp_path / "narrow.pdf", title="t")
    assert tables_intact(html, pdf) == []


def test_row_labels_broken_at_a_hyphen_are_followed(tmp_path: Path, poppler: None) -> None:
    """Finding (the demo's report): "Incidence of EMS-treated out-of-hospital cardiac arrest"
    in a narrow first column printed as "EMS-" / "treated", and the table was reported
    broken."""
    require_chromium()
    # left-aligned row labels, as the report's (a centred wrapped line is not followed)
    rows = "".join(f"<tr><th style='text-align:left'>Row {i}: EMS-treated out-of-hospital "
                   f"arrests, long-standing cross-border data-sharing</th><td>{i}</td></tr>"
                   for i in range(40))
    html = page(tmp_path, "hy.html", "<table><caption>Hyphen-broken labels</caption>"
                "<thead><tr><th style='width:4.5em'>Group</th><th>Value</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>",
                # rows kept whole across pages, as print.css does
                head="<style>tr { break-inside: avoid; }</style>").read_text(encoding="utf-8")
    pdf = html_to_pdf(tmp_path / "hy.html", tmp_path / "hy.pdf", title="t")
    words = " ".join(page_texts(pdf))
    assert "EMS-\n" in "\n".join(page_texts(pdf)) or "EMS- " in words  # it did break there
    assert tables_intact(html, pdf) == []
    assert hyphen_parts("out-of-hospital") == ["out-", "of-", "hospital"]
    assert hyphen_parts("plain") == ["plain"]


def test_a_missing_table_is_caught(tmp_path: Path, poppler: None) -> None:
    require_chromium()
    printed = page(tmp_path, "one.html", long_table(3))
    pdf = html_to_pdf(printed, tmp_path / "one.pdf", title="t")
    html = printed.read_text(encoding="utf-8").replace(
        "</body>", "<table><caption>Never printed</caption><thead><tr><th>x</th></tr>"
        "</thead></table></body>")
    assert tables_intact(html, pdf) == ["table 'Never printed': caption not found in the PDF"]


def test_page_check_problems_name_everything() -> None:
    check = PageCheck("http://127.0.0.1/x.html", 500, console_errors=["c"],
                      page_errors=["p"], failed_requests=["f"], foreign_requests=["u"],
                      broken_links=["b"])
    assert check.problems == ["status 500", "console error: c", "script error: p",
                              "failed request: f", "request to another origin: u",
                              "broken link: b"]
