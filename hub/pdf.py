"""The report's PDF: a self-contained HTML file printed to A4 by headless Chromium.

Playwright's sync API drives the system's Chromium (Debian's package; Playwright's own
browser downloads are never used), found by ``find_chromium``. The page may load nothing but
itself and ``data:`` URLs: every other request is aborted, and ``html_to_pdf`` then raises,
because a published report that needs the network (a CDN font, a remote image) is not
self-contained and would print differently, or leak its readers, elsewhere. Each page carries
a running header (the report's title and a note such as "SYNTHETIC DATA – not real
figures") and a localised "Page X of Y" footer, drawn by Chromium in the page margins.

Page size and margins are set here, not by the page's CSS (``prefer_css_page_size`` is
False): the header and footer live in these margins, so a stylesheet must not shrink them.
``hub/templates/print.css`` makes the report's wide tables fit this page.

Playwright's sync API refuses to start inside a running asyncio event loop (an async caller,
or another Playwright session in the same thread): ``html_to_pdf`` then prints from a thread
of its own, which blocks the caller's loop for the second or two it takes; async code had
better call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import html
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from emsbench.files import write_atomic

if TYPE_CHECKING:
    from playwright.sync_api import PdfMargins

# A4 margins: room at the top for the running header and at the bottom for the footer.
MARGINS: PdfMargins = {"top": "18mm", "bottom": "16mm", "left": "12mm", "right": "12mm"}
# "Page X of Y" by the report's language (BCP 47 primary tag): the words around the numbers.
PAGE_OF = {"en": ("Page", "of"), "nb": ("Side", "av"), "nn": ("Side", "av"),
           "sv": ("Sida", "av"), "da": ("Side", "af"), "fi": ("Sivu", "/"),
           "is": ("Síða", "af")}
# Chromium names executables differently per distribution; Debian's is "chromium".
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
PRINT_TIMEOUT_MS = 60_000


class PdfError(RuntimeError):
    """The PDF could not be written: no browser, or the page is not self-contained."""


def find_chromium() -> str:
    """The Chromium to drive: ``EMSBENCH_CHROMIUM`` if set, else the first of
    ``CANDIDATES`` on PATH."""
    override = os.environ.get("EMSBENCH_CHROMIUM", "")
    if override:
        if not (Path(override).is_file() and os.access(override, os.X_OK)):
            raise PdfError(f"EMSBENCH_CHROMIUM={override} is not an executable file")
        return override
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise PdfError("no Chromium found (looked for " + ", ".join(CANDIDATES) + " on PATH): "
                   "run `bash scripts/browser.sh` to install it, or set EMSBENCH_CHROMIUM to "
                   "a Chromium or Chrome executable")


def launch_args() -> list[str]:
    """Chromium flags for printing and testing on a server or in a container."""
    args = [
        "--disable-gpu",  # no GPU in containers; software rendering prints the same
        # Nothing but the page may reach the network: no update, sync, safe-browsing or
        # field-trial fetches, and no QUIC sockets that request routing does not see.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        # Docker's /dev/shm is 64 MB, too small for Chromium's shared memory.
        "--disable-dev-shm-usage",
    ]
    # Chromium refuses to start its sandbox as root (CI containers run as root).
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(0, "--no-sandbox")
    return args


def header_template(title: str, note: str = "") -> str:
    """Chromium's running-header markup: the title, then the note in bold. Header markup
    gets none of the page's CSS and a zero default font size, so it is styled inline."""
    text = html.escape(title)
    if note:
        text += f' <span style="font-weight:700">· {html.escape(note)}</span>'
    return ('<div style="font-family:DejaVu Sans,sans-serif;font-size:8pt;color:#333;'
            f'width:100%;box-sizing:border-box;padding:0 12mm;text-align:left">{text}</div>')


def footer_template(lang: str = "en") -> str:
    """The "Page X of Y" footer in ``lang``; Chromium fills the two spans in."""
    try:
        page, of = PAGE_OF[lang.split("-")[0].lower()]
    except KeyError:
        raise ValueError(f"no page-number wording for language {lang!r}; known: "
                         + ", ".join(sorted(PAGE_OF))) from None
    return ('<div style="font-family:DejaVu Sans,sans-serif;font-size:8pt;color:#333;'
            f'width:100%;box-sizing:border-box;padding:0 12mm;text-align:right">{page} '
            f'<span class="pageNumber"></span> {of} <span class="totalPages"></span></div>')


def _allowed(url: str, own: str) -> bool:
    # The file itself (a fragment is the same document) and inline data only.
    return url.split("#")[0] == own or url.startswith("data:")


def html_to_pdf(html_path: Path, pdf_path: Path, *, title: str, header_note: str = "",
                lang: str = "en") -> Path:
    """Print ``html_path`` to an A4 PDF at ``pdf_path`` (written atomically) and return it.

    Raises ``PdfError`` when no Chromium is found, when the page requested anything but
    itself or a ``data:`` URL (those requests are blocked, not made), or when one of its
    scripts threw; ``ValueError`` for a ``lang`` without page-number wording.
    """
    footer = footer_template(lang)  # an unknown language fails before Chromium starts
    source = Path(html_path).resolve()
    if not source.is_file():
        raise FileNotFoundError(source)
    job = (find_chromium(), source, header_template(title, header_note), footer)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pdf = _print(*job)
    else:
        with ThreadPoolExecutor(1, thread_name_prefix="html_to_pdf") as pool:
            pdf = pool.submit(_print, *job).result()
    # A reader (the web server, a mirror) sees the old PDF or the new one, never half.
    return write_atomic(Path(pdf_path), pdf)


def _print(chromium: str, source: Path, header: str, footer: str) -> bytes:
    """The PDF of ``source``, printed by a Chromium of its own."""
    from playwright.sync_api import Route, sync_playwright  # heavy: only when printing

    own = source.as_uri()
    blocked: list[str] = []
    errors: list[str] = []

    def route(r: Route) -> None:
        if _allowed(r.request.url, own):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort("blockedbyclient")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=launch_args())
        try:
            # No service workers: their fetches would bypass request routing.
            context = browser.new_context(service_workers="block")
            page = context.new_page()
            page.set_default_timeout(PRINT_TIMEOUT_MS)
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(own, wait_until="load")
            page.evaluate("document.fonts.ready.then(() => true)")
            pdf = page.pdf(format="A4", margin=MARGINS, print_background=True,
                           display_header_footer=True, header_template=header,
                           footer_template=footer, prefer_css_page_size=False)
        finally:
            browser.close()
    if blocked:
        raise PdfError(f"{source.name} is not self-contained: it requested "
                       + ", ".join(sorted(set(blocked))))
    if errors:
        raise PdfError(f"{source.name}: a script failed: " + "; ".join(errors))
    return pdf

