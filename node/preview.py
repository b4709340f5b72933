"""The release preview: every figure that would leave the country, before it leaves.

Built from the signed submission as it lies in the outbox (the payload bytes the hub will
receive), never from the computation that produced it, so what the operator reviews is
what is sent. One row per released cell: indicator, version, stratum, the counts or the
histogram runs exactly as in the payload, and whether disclosure control withheld the cell;
then the data-quality counts the submission carries. Written as CSV (for a spreadsheet or
a diff against last year) and as a self-contained HTML page, both naming the payload's
SHA-256, which ``emsbench node approve`` records and ``node send`` checks.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

from emsbench.files import write_atomic
from emsbench.wire import Submission
from node.outbox import Signed

COLUMNS = ("indicator_id", "spec_version", "stratum", "numerator", "denominator", "bins",
           "withheld")


@dataclass(frozen=True)
class Preview:
    html: Path
    csv: Path
    cells: int
    withheld: int


def preview_rows(sub: Submission) -> list[dict[str, str]]:
    """One row per cell of the payload, in payload order."""
    rows = []
    for r in sub.indicators:
        for c in r.cells:
            rows.append({
                "indicator_id": r.spec_id, "spec_version": r.spec_version,
                "stratum": ";".join(f"{k}={v}" for k, v in c.stratum.items()) or "(all)",
                "numerator": "" if c.numerator is None else str(c.numerator),
                "denominator": "" if c.denominator is None else str(c.denominator),
                "bins": " ".join(f"[{a}-{b}]:{n}" for a, b, n in c.bins or []),
                "withheld": "yes" if c.suppressed else ""})
    return rows


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _html(signed: Signed, sub: Submission, rows: list[dict[str, str]]) -> bytes:
    e = html.escape
    q = sub.data_quality
    reasons = "".join(f"<tr><td>{e(k)}</td><td class=n>{'withheld' if v is None else v}</td>"
                      "</tr>" for k, v in q.rejected_by_reason.items()) or \
        "<tr><td colspan=2>none</td></tr>"
    body = "".join(
        "<tr" + (" class=w" if r["withheld"] else "") + ">"
        + "".join(f"<td>{e(r[c])}</td>" for c in COLUMNS) + "</tr>" for r in rows)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Release preview {e(sub.submission_id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}
table{{border-collapse:collapse;font-size:.9rem}}td,th{{border:1px solid #ccc;padding:.2rem .5rem}}
td.n{{text-align:right}}tr.w{{color:#777}}code{{word-break:break-all}}</style></head><body>
<h1>Release preview: {e(sub.country)} {sub.period.year}, revision {sub.revision}</h1>
<p>This is everything submission <code>{e(sub.submission_id)}</code> would send to the hub.
No row-level data is in it: counts below the disclosure threshold
({sub.disclosure_threshold}) were withheld (grey rows) or joined with neighbouring time bands.
Payload SHA-256 <code>{e(signed.payload_sha256)}</code> (what <code>node approve</code>
records and <code>node send</code> checks).</p>
<h2>Data quality sent</h2>
<table><tr><th>Rows read</th><td class=n>{q.rows_read}</td></tr>
<tr><th>Rows accepted</th><td class=n>{q.rows_accepted}</td></tr></table>
<h3>Rejected rows by reason</h3><table>{reasons}</table>
<h2>Figures sent ({len(rows)} cells, {sum(bool(r['withheld']) for r in rows)} withheld)</h2>
<table><thead><tr>{''.join(f'<th>{c}</th>' for c in COLUMNS)}</tr></thead>
<tbody>{body}</tbody></table></body></html>
"""
    return page.encode("utf-8")


def write_preview(signed: Signed, reports: Path) -> Preview:
    """Write ``preview-<submission id>.html`` and ``.csv`` into ``reports``."""
    if not isinstance(signed.doc, Submission):
        raise TypeError(f"{signed.path} holds a {type(signed.doc).__name__}, not a submission")
    sub = signed.doc
    rows = preview_rows(sub)
    reports.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = reports / f"preview-{sub.submission_id}"
    csv_path = write_atomic(stem.with_suffix(".csv"), _csv(rows))
    html_path = write_atomic(stem.with_suffix(".html"), _html(signed, sub, rows))
    return Preview(html_path, csv_path, len(rows), sum(bool(r["withheld"]) for r in rows))
