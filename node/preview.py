"""The release preview: every figure that would leave the country, before it leaves.

Built from the signed submission as it lies in the outbox (the payload bytes the hub will
receive), never from the computation that produced it, so what the operator reviews is
what is sent. One row per released cell: indicator, version, stratum, the counts or the
histogram runs exactly as in the payload, and whether disclosure control withheld the cell;
then the data-quality counts the submission carries. Written as CSV (for a spreadsheet or
a diff against last year) and as a self-contained HTML page, both naming the payload's
SHA-256, which ``emsbench node approve`` records and ``node send`` checks.

Every suppression is listed with its reason (``node.suppression``: primary, secondary
across a margin or the data-quality total, coarsened): in the ``reason`` column of each
cell, in a table of its own on the page, in ``preview-<id>.suppressions.csv`` and, in a
Prefect run, as an artifact. The reasons are what the process that built the submission
recorded (they are never sent); a reason is shown only where the payload agrees (a withheld
cell, a released one with joined runs), and a withheld count without one says so.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from emsbench.files import write_atomic
from emsbench.wire import Submission
from node.outbox import Signed
from node.suppression import (
    COARSENED,
    DATA_QUALITY,
    FIELDS,
    Suppression,
    stratum_label,
)

COLUMNS = ("indicator_id", "spec_version", "stratum", "numerator", "denominator", "bins",
           "withheld", "reason")
NOT_RECORDED = "withheld (no reason recorded)"


@dataclass(frozen=True)
class Preview:
    html: Path
    csv: Path
    cells: int
    withheld: int
    suppressions: Path | None = None  # every suppression with its reason (CSV)


def suppressions(sub: Submission, recorded: Iterable[Suppression] = ()) -> list[Suppression]:
    """The ``recorded`` suppressions that the payload of ``sub`` bears out, in payload order
    (data quality last), and one "no reason recorded" for every withheld count without."""
    recorded = tuple(recorded)
    by_cell: dict[tuple[str, str], list[Suppression]] = {}
    for s in recorded:
        by_cell.setdefault((s.indicator, s.stratum), []).append(s)
    out: list[Suppression] = []
    for r in sub.indicators:
        for c in r.cells:
            label = stratum_label(c.stratum)
            runs = c.bins or []
            joined = any(first != last for first, last, _ in runs)
            found = [s for s in by_cell.get((r.spec_id, label), [])
                     if (s.reason == COARSENED) == (not c.suppressed) and
                     (c.suppressed or joined)]
            if c.suppressed and not found:
                found = [Suppression(r.spec_id, label, "cell", NOT_RECORDED)]
            out += found
    q = sub.data_quality
    sent = {"rows_read": q.rows_read, "rows_accepted": q.rows_accepted,
            **{f"rejected {k}": v for k, v in q.rejected_by_reason.items()}}
    quality = {s.stratum: s for s in recorded if s.indicator == DATA_QUALITY}
    for name, value in sent.items():
        if value is None:
            out.append(quality.get(name, Suppression(DATA_QUALITY, name, "rows",
                                                     NOT_RECORDED)))
    return out


def _reasons(found: Iterable[Suppression]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], list[str]] = {}
    for s in found:
        out.setdefault((s.indicator, s.stratum), []).append(
            s.reason if s.reason == NOT_RECORDED else f"{s.reason} ({s.count})")
    return {k: "; ".join(v) for k, v in out.items()}


def preview_rows(sub: Submission, found: Sequence[Suppression] | None = None
                 ) -> list[dict[str, str]]:
    """One row per cell of the payload, in payload order, with why it was withheld or
    coarsened (``found``: the submission's ``suppressions``)."""
    reasons = _reasons(suppressions(sub) if found is None else found)
    rows = []
    for r in sub.indicators:
        for c in r.cells:
            label = stratum_label(c.stratum)
            rows.append({
                "indicator_id": r.spec_id, "spec_version": r.spec_version,
                "stratum": label,
                "numerator": "" if c.numerator is None else str(c.numerator),
                "denominator": "" if c.denominator is None else str(c.denominator),
                "bins": " ".join(f"[{a}-{b}]:{n}" for a, b, n in c.bins or []),
                "withheld": "yes" if c.suppressed else "",
                "reason": reasons.get((r.spec_id, label), "")})
    return rows


def suppression_markdown(sub: Submission, found: Sequence[Suppression]) -> str:
    """Every suppression and its reason, as a Markdown table (the Prefect artifact)."""
    lines = [f"# Suppressions in {sub.submission_id}", "",
             f"Disclosure threshold k = {sub.disclosure_threshold}. {len(found)} "
             "suppression(s); none of these reasons is sent.", "",
             "| " + " | ".join(FIELDS) + " |", "|" + "---|" * len(FIELDS)]
    lines += ["| " + " | ".join(s.row()[f].replace("|", "\\|") for f in FIELDS) + " |"
              for s in found]
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict[str, str]], columns: Sequence[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _html(signed: Signed, sub: Submission, rows: list[dict[str, str]],
          found: Sequence[Suppression]) -> bytes:
    e = html.escape
    q = sub.data_quality
    why = {s.stratum: s.reason for s in found if s.indicator == DATA_QUALITY}

    def count(name: str, n: int | None) -> str:
        return str(n) if n is not None else f"withheld ({e(why.get(name, NOT_RECORDED))})"

    reasons = "".join(f"<tr><td>{e(k)}</td><td class=n>{count(f'rejected {k}', v)}</td>"
                      "</tr>" for k, v in q.rejected_by_reason.items()) or \
        "<tr><td colspan=2>none</td></tr>"
    listed = "".join("<tr>" + "".join(f"<td>{e(s.row()[f])}</td>" for f in FIELDS) + "</tr>"
                     for s in found) or f"<tr><td colspan={len(FIELDS)}>none</td></tr>"
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
<table><tr><th>Rows read</th><td class=n>{count('rows_read', q.rows_read)}</td></tr>
<tr><th>Rows accepted</th><td class=n>{count('rows_accepted', q.rows_accepted)}</td></tr>
</table>
<h3>Rejected rows by reason</h3><table>{reasons}</table>
<h2>Withheld and why ({len(found)} suppressions)</h2>
<p>Primary: the count is from 1 to k − 1. Secondary: withheld although not small, so that
a withheld count (named after "margin of") cannot be recovered by subtraction from figures
that add up to the same total, or from rows read = rows accepted + rejected rows.
Coarsened: released with neighbouring time bands joined. These reasons are not sent.</p>
<table><thead><tr>{''.join(f'<th>{f}</th>' for f in FIELDS)}</tr></thead>
<tbody>{listed}</tbody></table>
<h2>Figures sent ({len(rows)} cells, {sum(bool(r['withheld']) for r in rows)} withheld)</h2>
<table><thead><tr>{''.join(f'<th>{c}</th>' for c in COLUMNS)}</tr></thead>
<tbody>{body}</tbody></table></body></html>
"""
    return page.encode("utf-8")


def write_preview(signed: Signed, reports: Path, recorded: Iterable[Suppression] = ()
                  ) -> Preview:
    """Write ``preview-<submission id>.html`` and ``.csv`` into ``reports``, with the reason
    of every suppression ``recorded`` when the submission was computed."""
    if not isinstance(signed.doc, Submission):
        raise TypeError(f"{signed.path} holds a {type(signed.doc).__name__}, not a submission")
    sub = signed.doc
    found = suppressions(sub, recorded)
    rows = preview_rows(sub, found)
    reports.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = reports / f"preview-{sub.submission_id}"
    csv_path = write_atomic(stem.with_suffix(".csv"), _csv(rows))
    listed = write_atomic(stem.with_suffix(".suppressions.csv"),
                          _csv([s.row() for s in found], FIELDS))
    html_path = write_atomic(stem.with_suffix(".html"), _html(signed, sub, rows, found))
    _artifact(sub, found)
    return Preview(html_path, csv_path, len(rows), sum(bool(r["withheld"]) for r in rows),
                   listed)


def _artifact(sub: Submission, found: Sequence[Suppression]) -> None:
    """In a Prefect run, the suppressions as a Markdown artifact beside the preview table."""
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        suppression_markdown(sub, found),
        key=f"suppressions-{sub.country.lower()}-{sub.period.year}",
        description=f"Every count submission {sub.submission_id} withholds or coarsens, "
                    "and why (not sent)")
