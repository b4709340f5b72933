"""Test harness for pages and PDFs: headless Chromium (Playwright) and poppler's tools.

Pages: ``check_pages`` opens pages (``file://`` paths or ``http://`` URLs), records what a
reader's browser would complain about (console errors, script errors, failed requests and
any request to another origin, which is blocked, never made) and saves a full-page
screenshot of each. ``crawl_site`` does that for a whole static site, following its own
links and checking that its download links resolve. ``serve_dir`` serves a folder over
loopback HTTP for that.

PDFs: ``pdf_page_count``, ``render_pages``, ``page_texts`` and ``pdf_words`` read a PDF back
with pdfinfo, pdftoppm and pdftotext; ``words_outside_page`` and ``tables_intact`` look for
what a printed report gets wrong: text beyond the paper, and tables cut off.

How ``tables_intact`` decides a table is whole (from text alone, with no markers in the
page): each table of the HTML that was printed (its caption, column headers and each body
row's first cell) is looked for in the PDF's words, read page by page from top to bottom and
left to right, table after table, so tables with the same caption, or a chart repeating a
table's labels, are told apart by position (a heading with the caption's words is told apart
by the column header that follows a caption). Every word of every column header must be
printed between the caption and the table's first body row; a table whose rows run on to
the next page must show its column headers there again, above its next row (Chromium repeats
``<thead>``); and no word may lie outside the page. A column past the paper's edge is
clipped away by Chromium, words and all, so its header is missing: that is what this finds.
A caption cut off with its table, or left alone at the foot of a page, is reported too. A
body row is recognised by the words of its first cell, on one line or wrapped within its
cell.

Chromium and poppler come from ``scripts/browser.sh``. Without them ``require_chromium`` and
``require_poppler`` skip the calling test, or fail it under CI (CI set), like the
PostgreSQL tests.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError

from hub.pdf import MARGINS, PdfError, find_chromium, launch_args

if TYPE_CHECKING:
    from playwright.sync_api import APIRequestContext, Browser, Page, Playwright, Route

POPPLER = ("pdfinfo", "pdftoppm", "pdftotext")
# Characters the report uses inside numbers and units that PDF text may give back as spaces.
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " "})
_PT_PER_MM = 72 / 25.4
# Chromium's console line for a failed subresource; the request itself is recorded, URL and
# reason, in failed_requests or foreign_requests.
LOAD_FAILED = "Failed to load resource"
CAPTION_LEAD = 40  # characters of a caption looked for when the whole is not found


# ---- skipping when the tools are missing --------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def _missing(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a missing tool is a failure, not a skip)")
    pytest.skip(reason)


def require_chromium() -> str:
    """Chromium's path, or skip the test (fail it under CI) with how to install it."""
    try:
        return find_chromium()
    except PdfError as exc:
        _missing(str(exc))


def require_poppler() -> None:
    """Skip the test (fail it under CI) unless pdfinfo, pdftoppm and pdftotext are here."""
    missing = [tool for tool in POPPLER if shutil.which(tool) is None]
    if missing:
        _missing(f"{', '.join(missing)} not found: run `bash scripts/browser.sh` "
                 "(Debian package poppler-utils)")


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium, launched as ``hub.pdf`` launches it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            yield browser
        finally:
            browser.close()


def launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=find_chromium(), args=launch_args())


# ---- pages ---------------------------------------------------------------------------


@dataclass
class PageCheck:
    """What one page did while loading, and its screenshot."""

    url: str
    status: int | None  # of the page itself over HTTP; None for file:// pages
    screenshot: Path | None = None
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)  # uncaught script exceptions
    failed_requests: list[str] = field(default_factory=list)  # network failure or >= 400
    foreign_requests: list[str] = field(default_factory=list)  # other origins: blocked
    broken_links: list[str] = field(default_factory=list)  # own links not answering 200
    links: list[str] = field(default_factory=list)  # own links, fragments dropped

    @property
    def problems(self) -> list[str]:
        found = [f"status {self.status}"] if self.status not in (None, 200) else []
        found += [f"console error: {m}" for m in self.console_errors]
        found += [f"script error: {m}" for m in self.page_errors]
        found += [f"failed request: {m}" for m in self.failed_requests]
        found += [f"request to another origin: {u}" for u in self.foreign_requests]
        found += [f"broken link: {u}" for u in self.broken_links]
        return found


def origin(url: str) -> str:
    """``scheme://host:port``; for a local file ``file://`` (a ``file:`` URL naming a host,
    as ``//cdn.example/x.css`` becomes on a local page, is another origin)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _own(url: str, page_origin: str) -> bool:
    # data: and blob: never leave the browser; about:blank is the empty starting page.
    if url.startswith(("data:", "blob:", "about:")):
        return True
    return origin(url) == page_origin


def _as_url(target: str | Path) -> str:
    if isinstance(target, Path) or "://" not in target:
        return Path(target).resolve().as_uri()
    return target


def _shot_name(index: int, url: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", unquote(urlsplit(url).path)).strip("-")[-60:]
    return f"{index:03d}-{stem or 'index'}.png"


def open_page(browser: Browser, url: str, shot: Path | None) -> PageCheck:
    """Load ``url`` in a fresh context, record its complaints, screenshot it whole."""
    own = origin(url)
    check = PageCheck(url, None, shot)
    blocked: set[str] = set()
    context = browser.new_context(service_workers="block")
    try:
        page = context.new_page()

        def route(r: Route) -> None:
            if _own(r.request.url, own):
                r.continue_()
            else:  # record, and never let a test reach the internet
                blocked.add(r.request.url)
                check.foreign_requests.append(r.request.url)
                r.abort("blockedbyclient")

        page.route("**/*", route)
        page.on("console", lambda m: check.console_errors.append(m.text)
                if m.type == "error" and not m.text.startswith(LOAD_FAILED) else None)
        page.on("pageerror", lambda e: check.page_errors.append(str(e)))
        page.on("requestfailed", lambda r: None if r.url in blocked else
                check.failed_requests.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: check.failed_requests.append(f"{r.url}: {r.status}")
                if r.status >= 400 and r.url != url else None)
        page.on("websocket", lambda ws: None if _own(ws.url.replace("ws", "http", 1), own)
                else check.foreign_requests.append(ws.url))
        try:
            response = page.goto(url, wait_until="load")
        except PlaywrightError as exc:  # a missing file, a refused connection
            check.failed_requests.append(f"{url}: {exc.message.splitlines()[0]}")
            check.screenshot = None
            return check
        if response is not None and not url.startswith("file:"):
            check.status = response.status
        page.evaluate("document.fonts.ready.then(() => true)")
        check.links = _links(page, own)
        if shot is not None:
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=shot, full_page=True)
    finally:
        context.close()
    return check


def _links(page: Page, own: str) -> list[str]:
    hrefs: list[str] = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    found = {urldefrag(h).url for h in hrefs if _own(h, own) and not h.startswith("data:")}
    return sorted(found)


def check_pages(urls_or_paths: Iterable[str | Path], shots_dir: Path,
                browser: Browser | None = None) -> list[PageCheck]:
    """Open each page, record its complaints and save ``shots_dir/NNN-name.png``."""
    with _browser(browser) as b:
        return [open_page(b, url, shots_dir / _shot_name(i, url))
                for i, url in enumerate(_as_url(t) for t in urls_or_paths)]


def _browser(browser: Browser | None) -> AbstractContextManager[Browser]:
    return nullcontext(browser) if browser is not None else chromium()


def _is_page(url: str) -> bool:
    path = urlsplit(url).path
    return path.endswith((".html", ".htm", "/"))


def crawl_site(start_url: str, shots_dir: Path, limit: int = 500,
               browser: Browser | None = None) -> list[PageCheck]:
    """Check every page reachable from ``start_url`` through its own ``<a href>`` links.

    Links to pages (``.html`` or a folder) are followed within the start's origin (for a
    ``file://`` start: below its folder); every other own link, a download, must answer 200
    (for ``file://``: exist) or is listed in the linking page's ``broken_links``. Raises
    ``RuntimeError`` past ``limit`` pages, which is a link loop or a site grown past what a
    test should crawl.
    """
    start = _as_url(start_url)
    root = start.rsplit("/", 1)[0] + "/"
    seen, queue, checks = {start}, [start], list[PageCheck]()
    with _browser(browser) as b:
        fetcher = b.new_context()
        try:
            status: dict[str, bool] = {}
            while queue:
                if len(checks) >= limit:
                    raise RuntimeError(f"more than {limit} pages below {start}")
                url = queue.pop(0)
                check = open_page(b, url, shots_dir / _shot_name(len(checks), url))
                checks.append(check)
                for link in check.links:
                    if not link.startswith(root):
                        continue
                    if _is_page(link):
                        if link not in seen:
                            seen.add(link)
                            queue.append(link)
                        continue
                    if link not in status:
                        status[link] = _resolves(fetcher.request, link)
                    if not status[link]:
                        check.broken_links.append(link)
        finally:
            fetcher.close()
    return checks


def _resolves(api: APIRequestContext, url: str) -> bool:
    if url.startswith("file:"):
        return Path(unquote(urlsplit(url).path)).is_file()
    response = api.get(url, max_redirects=0)
    try:
        return response.status == 200
    finally:
        response.dispose()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextmanager
def serve_dir(folder: Path) -> Iterator[str]:
    """Serve ``folder`` read-only on a free loopback port; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---- PDFs ------------------------------------------------------------------------------


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def pdf_page_count(pdf: Path) -> int:
    match = re.search(r"^Pages:\s+(\d+)$", _run("pdfinfo", str(pdf)), re.MULTILINE)
    if match is None:
        raise AssertionError(f"pdfinfo reports no page count for {pdf}")
    return int(match.group(1))


def render_pages(pdf: Path, out_dir: Path) -> list[Path]:
    """Rasterise every page at 50 dpi to ``out_dir/page-N.png``; one non-empty PNG a page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _run("pdftoppm", "-r", "50", "-png", str(pdf), str(out_dir / "page"))
    # pdftoppm pads the number to the width of the page count: page-1 or page-01.
    pngs = sorted(out_dir.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
    pages = pdf_page_count(pdf)
    if len(pngs) != pages:
        raise AssertionError(f"pdftoppm wrote {len(pngs)} PNGs for {pages} pages")
    for png in pngs:
        if not png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" or png.stat().st_size < 100:
            raise AssertionError(f"{png} is not a rendered page")
    return pngs


def page_texts(pdf: Path) -> list[str]:
    """Each page's text in layout order (pdftotext ends every page with a form feed)."""
    pages = _run("pdftotext", "-layout", "-enc", "UTF-8", str(pdf), "-").split("\f")[:-1]
    return [p.translate(_SPACES) for p in pages]


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    page: int  # 0-based


@dataclass(frozen=True)
class PdfPage:
    width: float
    height: float
    words: tuple[Word, ...]  # in pdftotext's reading order


def pdf_words(pdf: Path) -> list[PdfPage]:
    """Every word with its box in points, origin top left (pdftotext -bbox-layout)."""
    xml = _run("pdftotext", "-bbox-layout", "-enc", "UTF-8", str(pdf), "-")
    root = ET.fromstring(xml)
    pages = []
    for n, page in enumerate(el for el in root.iter() if _tag(el) == "page"):
        words = tuple(Word((w.text or "").translate(_SPACES), float(w.get("xMin", 0)),
                           float(w.get("yMin", 0)), float(w.get("xMax", 0)),
                           float(w.get("yMax", 0)), n)
                      for w in page.iter() if _tag(w) == "word")
        pages.append(PdfPage(float(page.get("width", 0)), float(page.get("height", 0)), words))
    return pages


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def words_outside_page(pdf: Path | Sequence[PdfPage], slack: float = 0.5) -> list[str]:
    """Words whose box reaches beyond the page's width or height."""
    pages = pdf_words(pdf) if isinstance(pdf, Path) else pdf
    return [f"page {w.page + 1}: {w.text!r} at x {w.x0:.0f}–{w.x1:.0f}, y {w.y0:.0f}–{w.y1:.0f}"
            f" is outside the {p.width:.0f}×{p.height:.0f} pt page"
            for p in pages for w in p.words
            if w.x0 < -slack or w.y0 < -slack or w.x1 > p.width + slack
            or w.y1 > p.height + slack]


# ---- tables ----------------------------------------------------------------------------


@dataclass
class Table:
    caption: str = ""
    headers: list[str] = field(default_factory=list)  # <thead> cells
    rows: list[str] = field(default_factory=list)  # first cell of each body row


class _Tables(HTMLParser):
    """Collects each table's caption, header cells and body rows' first cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self.open: list[Table] = []  # nested tables
        self.where: list[str] = []  # "caption", "thead" or "tbody", per open table
        self.text: list[str] | None = None  # the cell or caption being read
        self.first_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.open.append(Table())
            self.tables.append(self.open[-1])
            self.where.append("tbody")
        elif not self.open:
            return
        elif tag in ("thead", "tbody", "tfoot"):
            self.where[-1] = tag
        elif tag == "caption":
            self.where[-1], self.text = "caption", []
        elif tag == "tr":
            self.first_cell = True
        elif tag in ("th", "td"):
            self.text = []

    def handle_endtag(self, tag: str) -> None:
        if not self.open:
            return
        table, where = self.open[-1], self.where[-1]
        if tag == "table":
            self.open.pop()
            self.where.pop()
        elif tag == "caption" and self.text is not None:
            table.caption, self.text = _squash(self.text), None
            self.where[-1] = "tbody"
        elif tag in ("th", "td") and self.text is not None:
            text, self.text = _squash(self.text), None
            if where == "thead":
                table.headers.append(text)
            elif where == "tbody" and self.first_cell:
                table.rows.append(text)
            self.first_cell = False

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)


def _squash(parts: list[str]) -> str:
    return " ".join("".join(parts).translate(_SPACES).split())


def parse_tables(html: str) -> list[Table]:
    parser = _Tables()
    parser.feed(html)
    parser.close()
    return parser.tables


def tables_of(html: str) -> list[tuple[str, list[str]]]:
    """Each table's caption and its column headers (``<thead>`` cells), in page order."""
    return [(t.caption, t.headers) for t in parse_tables(html)]


def _missing_headers(headers: Sequence[str], zone: Sequence[Word]) -> list[str]:
    """The headers not all of whose words are printed in ``zone``.

    Words are counted, not just looked up: twenty headers "Long header 1" … "Long header 20"
    need twenty "Long"s. A word not found whole may be printed glued to a neighbour's
    (pdftotext joins words that nearly touch: found inside a longer word, if it has three
    or more letters) or wrapped over lines at a break the browser may take, such as
    "(NO+SE+DK+FI" and "+IS)" (found as up to three pieces of two or more letters each).
    """
    pool = Counter(w.text for w in zone)
    left: list[tuple[str, str]] = []
    for header in headers:
        for part in (p for w in header.split() for p in hyphen_parts(w)):
            if pool[part] > 0:
                pool[part] -= 1
            else:
                left.append((header, part))

    def pieces(rest: str, count: int) -> bool:
        if pool[rest] > 0:
            pool[rest] -= 1
            return True
        for text in [t for t, n in pool.items() if n > 0 and len(t) >= 2]:
            if count > 1 and rest.startswith(text) and len(rest) - len(text) >= 2:
                pool[text] -= 1
                if pieces(rest[len(text):], count - 1):
                    return True
                pool[text] += 1
        return False

    missing = []
    for header, part in left:
        glued = len(part) >= 3 and any(part in w.text and part != w.text for w in zone)
        if not glued and not pieces(part, 3) and header not in missing:
            missing.append(header)
    return missing


def _find_caption(words: Sequence[Word], seq: Sequence[str], start: int,
                  heads: set[str]) -> int | None:
    """Where the caption ``seq`` is printed, at or after ``words[start]``. A heading or a
    sentence may say the same words first ("Urgency crosswalk" above the table captioned
    so): the caption is the first occurrence followed by a word that starts a column header,
    or else the first occurrence."""
    found = [i for i in range(start, len(words) - len(seq) + 1)
             if all(words[i + k].text == s for k, s in enumerate(seq))]
    after = [i for i in found if i + len(seq) < len(words) and words[i + len(seq)].text in heads]
    return (after or found)[0] if found else None


_HYPHEN_PART = re.compile(r"[^-]+-|[^-]+$|-+")


def hyphen_parts(word: str) -> list[str]:
    """``word`` cut after each inner hyphen ("EMS-treated" -> ["EMS-", "treated"]): a
    narrow cell breaks a line there, so a label and the printed words are compared part by
    part, whether the line broke at the hyphen or not."""
    return _HYPHEN_PART.findall(word) or [word]


def _split_hyphens(w: Word) -> list[Word]:
    parts = hyphen_parts(w.text)
    if len(parts) == 1:
        return [w]
    per_char = (w.x1 - w.x0) / max(1, len(w.text))
    out, x = [], w.x0
    for part in parts:
        width = per_char * len(part)
        out.append(Word(part, x, w.y0, x + width, w.y1, w.page))
        x += width
    return out


def _body(pages: Sequence[PdfPage], top: float, bottom: float) -> list[Word]:
    """The words of all pages top to bottom, left to right, without the running header and
    footer (which Chromium draws in the page margins), each cut after its inner hyphens
    (``hyphen_parts``). pdftotext's own reading order goes column by column through a
    table, which can put a lower row's first cell first."""
    return sorted((part for p in pages for w in p.words
                   if w.y1 > top and w.y0 < p.height - bottom for part in _split_hyphens(w)),
                  key=lambda w: (w.page, round(w.y0), w.x0))


def _pt(length: str | float | None) -> float:
    """A ``hub.pdf.MARGINS`` length ("18mm") in PDF points."""
    assert isinstance(length, str) and length.endswith("mm"), length
    return float(length[:-2]) * _PT_PER_MM


def _lead(words: Sequence[str], chars: int) -> list[str]:
    """The first words of ``words``, up to about ``chars`` characters (at least one)."""
    lead: list[str] = []
    for word in words:
        if lead and len(" ".join([*lead, word])) > chars:
            break
        lead.append(word)
    return lead


def tables_intact(html: str, pdf: Path) -> list[str]:
    """What is wrong with the printed tables of ``html`` in ``pdf`` (empty: nothing).

    See the module docstring for how a table is found and followed across pages. The
    margins are ``hub.pdf.MARGINS``: words inside them are the running header and footer.
    """
    pages = pdf_words(pdf)
    words = _body(pages, _pt(MARGINS["top"]), _pt(MARGINS["bottom"]))
    problems = words_outside_page(pages)
    pos = 0
    for table in parse_tables(html):
        found, pos = _follow(table, words, pos, len(pages))
        problems += found
    return problems


def _aligned(a: Word, b: Word, slack: float = 2) -> bool:
    """Whether ``b`` starts, centres or ends where ``a`` does: lines of one cell, whichever
    way the cell is aligned."""
    return (abs(a.x0 - b.x0) < slack or abs(a.x1 - b.x1) < slack
            or abs(a.x0 + a.x1 - b.x0 - b.x1) < 2 * slack)


def _label_at(words: Sequence[Word], i: int, label: Sequence[str]) -> bool:
    """Whether a row whose first cell reads ``label`` starts at ``words[i]``: its words follow
    on the same line, or wrap onto the next lines, aligned as the first. (The header
    "Row label" does not start the row "Row 0"; "urbanicity: rural" may print as
    "urbanicity:" above "rural", with the row's other cells in between in reading order.)"""
    first = words[i]
    if first.text != label[0]:
        return False
    j = i
    for part in label[1:]:
        cur = words[j]
        if j + 1 < len(words) and words[j + 1].text == part and abs(words[j + 1].y0 - cur.y0) < 1:
            j += 1
            continue
        line = cur.y1 - cur.y0
        below = next((k for k in range(j + 1, min(j + 200, len(words)))
                      if words[k].text == part and cur.y1 - 1 < words[k].y0 < cur.y1 + 2 * line
                      and _aligned(first, words[k])), None)
        if below is None:
            return False
        j = below
    return True


def _follow(table: Table, words: Sequence[Word], pos: int, n_pages: int
            ) -> tuple[list[str], int]:
    """The problems of one table found at or after ``words[pos]``, and where it ends."""
    name = repr(table.caption[:60]) if table.caption else f"with headers {table.headers[:3]}"
    problems: list[str] = []
    caption = [p for w in table.caption.split() for p in hyphen_parts(w)]
    heads = {hyphen_parts(h.split()[0])[0] for h in table.headers if h.split()}
    at = _find_caption(words, caption, pos, heads) if caption else pos
    if at is None:
        # A caption as wide as its table is cut off with it: look for its start.
        caption = _lead(caption, CAPTION_LEAD)
        at = _find_caption(words, caption, pos, heads)
        if at is None:
            return [f"table {name}: caption not found in the PDF"], pos
        problems.append(f"page {words[at].page + 1}: table {name}: caption cut off")
    if at >= len(words):
        return [f"table {name}: not found in the PDF"], pos
    labels = [[part for w in r.split() for part in hyphen_parts(w)]
              for r in table.rows if r.split()]
    start, page, row = at + len(caption), words[at].page, 0
    while True:
        end = next((i for i in range(start, len(words)) if words[i].page > page), len(words))
        # This page's rows, in order; the column headers belong above the first of them.
        first_row, after = None, start
        while row < len(labels):
            hit = next((i for i in range(after, end) if _label_at(words, i, labels[row])),
                       None)
            if hit is None:
                break
            first_row = hit if first_row is None else first_row
            after, row = hit + 1, row + 1
        zone = words[start:first_row if first_row is not None else end]
        missing = _missing_headers(table.headers, zone)
        if first_row is None and page == words[at].page and len(missing) == len(table.headers) > 0:
            problems.append(f"page {page + 1}: table {name}: caption left at the foot of the "
                            "page, its table on the next")
        elif missing:
            problems.append(f"page {page + 1}: table {name}: column header(s) "
                            f"{', '.join(map(repr, missing))} missing above its rows")
        if row == len(labels):
            return problems, after
        if (first_row is None and page != words[at].page) or page + 1 >= n_pages:
            problems.append(f"page {page + 1}: table {name}: rows from "
                            f"{table.rows[row]!r} on not found")
            return problems, after
        start, page = end, page + 1
