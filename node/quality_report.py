"""The node's data-quality report: what reading the national file found, for the analyst.

One self-contained HTML page in the node's ``reports`` folder (and a Markdown summary for
the Prefect UI), built from ``IngestReport``: rows read, accepted and rejected by reason;
values of optional fields set to empty, by reason; times out of order; completeness of
every field of the common model; and the same counts per month of the call. It holds
counts only, but exact ones (no disclosure control: it never leaves the node); the rejects
file it points to holds the rows themselves.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from emsbench import model
from emsbench.files import write_atomic
from node.ingest import IngestReport


def _share(n: int, of: int) -> str:
    return f"{100 * n / of:.1f} %" if of else "–"


def warnings(r: IngestReport, max_rejected_share: float | None = None) -> list[str]:
    """The findings an operator should act on, one sentence each (empty: none)."""
    out = []
    rejected = r.rows_read - r.rows_accepted
    if rejected:
        out.append(f"{rejected:,} of {r.rows_read:,} rows rejected "
                   f"({_share(rejected, r.rows_read)}): "
                   + ", ".join(f"{k} {v:,}" for k, v in r.rejected_by_reason.items()))
    if max_rejected_share is not None and r.rows_read and \
            rejected / r.rows_read > max_rejected_share:
        out.append(f"the rejected share is above the configured limit "
                   f"({100 * max_rejected_share:g} %)")
    if r.nulled_by_reason:
        out.append("values set to empty: " + ", ".join(
            f"{k} {v:,}" for k, v in r.nulled_by_reason.items()))
    if r.out_of_order:
        out.append("times out of order: " + ", ".join(
            f"{k} {v:,}" for k, v in r.out_of_order.items()))
    if r.missing_optional_columns:
        out.append(f"{len(r.missing_optional_columns)} optional column(s) absent: "
                   + ", ".join(r.missing_optional_columns))
    return out


def markdown(r: IngestReport, source: str) -> str:
    """A short Markdown summary for a Prefect artifact."""
    lines = [f"# Data quality: {source}", "",
             f"- rows read **{r.rows_read:,}**, accepted **{r.rows_accepted:,}**, rejected "
             f"**{r.rows_read - r.rows_accepted:,}**"]
    lines += [f"- {w}" for w in warnings(r)]
    if r.rejects_file:
        lines.append(f"- rejects file (stays on the node): `{r.rejects_file}`")
    return "\n".join(lines) + "\n"


def _table(head: tuple[str, ...], rows: Sequence[tuple[object, ...]],
           empty: str = "none") -> str:
    e = html.escape
    if not rows:
        return f"<p>{e(empty)}</p>"
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(
        f"<td class=n>{v:,}</td>" if isinstance(v, int) else f"<td>{e(str(v))}</td>"
        for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render(r: IngestReport, source: str, country: str, year: int) -> str:
    e = html.escape
    fields = [(c, model.nemsis(c) or "", r.completeness.get(c, 0),
               _share(r.completeness.get(c, 0), r.rows_accepted),
               "absent from the input" if c in r.missing_optional_columns
               else "as recorded; the model completes it by a rule" if c in model.COMPLETED
               else "")
              for c in model.input_columns()]
    months = [(m, read, acc, read - acc) for m, (read, acc) in r.by_month.items()]
    found = warnings(r)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Data quality {e(country)} {year}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}
table{{border-collapse:collapse;font-size:.9rem;margin-bottom:1rem}}
td,th{{border:1px solid #ccc;padding:.2rem .5rem}}td.n{{text-align:right}}</style></head><body>
<h1>Data quality: {e(country)} {year}</h1>
<p>Input <code>{e(source)}</code> ({e(r.encoding)}). This page stays on the node: its counts
are exact and no disclosure control was applied. Only rows read, rows accepted and rejected
rows by reason (with small counts withheld) go to the hub.</p>
<h2>Findings</h2>{"<ul>" + "".join(f"<li>{e(w)}</li>" for w in found) + "</ul>"
                   if found else "<p>none</p>"}
<h2>Rows</h2>{_table(("read", "accepted", "rejected"),
                     [(r.rows_read, r.rows_accepted, r.rows_read - r.rows_accepted)])}
<h2>Rejected rows by reason</h2>
{_table(("reason", "rows"), list(r.rejected_by_reason.items()))}
<h2>Values set to empty (optional fields), by reason</h2>
{_table(("reason", "values"), list(r.nulled_by_reason.items()))}
<h2>Times out of order (rows kept; intervals with them are excluded by the specs)</h2>
{_table(("time", "rows"), list(r.out_of_order.items()))}
<h2>Columns</h2>
{_table(("file header", "read as"), list(r.renamed_columns.items()),
        "every header is a model column name")}
{_table(("ignored header",), [(h,) for h in r.ignored_columns], "no header was ignored")}
<h2>Completeness of accepted rows</h2>
{_table(("column", "NEMSIS", "with a value", "share", "note"), fields)}
<h2>Per month of the call</h2>
{_table(("month", "read", "accepted", "rejected"), months)}
<p>Every rejected row and every emptied value, with its row number:
<code>{e(str(r.rejects_file or "not written"))}</code></p>
</body></html>
"""


def write_quality_report(r: IngestReport, source: str, country: str, year: int,
                         reports: Path) -> Path:
    reports.mkdir(parents=True, exist_ok=True, mode=0o700)
    return write_atomic(reports / f"data-quality-{year}.html",
                        render(r, source, country, year).encode("utf-8"))
