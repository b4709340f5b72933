"""The indicator catalogue as browsable, self-contained static HTML.

``write_docs(specs, out)`` writes ``index.html`` (the indicators grouped by chapter: the
part of the id before the first '-', until specs carry a chapter of their own) and one page
per indicator: definition, SQL, bins, strata with their code sets, version and hash, and
the test cases as tables. Every value from a spec is escaped by Jinja2's autoescaping (spec
text is written by others); the pages load nothing from anywhere (inline CSS, no scripts,
links only between the pages themselves).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from emsbench import model
from emsbench.files import write_atomic
from emsbench.kinds import kind_of
from emsbench.specs import IndicatorSpec, catalogue_sha256, stratum_values

UNIT_TEXT = {"percent": "percent", "minutes": "minutes", "per_1000": "per 1 000 inhabitants",
             "per_100k": "per 100 000 inhabitants", "ratio": "observed / expected"}
DIRECTION_TEXT = {"higher_is_better": "higher is better", "lower_is_better": "lower is better",
                  "descriptive": "descriptive"}


def chapter(spec: IndicatorSpec) -> str:
    """The group a spec is listed under: its ``chapter`` when specs get one, until then its
    id up to the first '-'."""
    return str(getattr(spec, "chapter", None) or spec.id.split("-", 1)[0])


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("emsbench", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["cell"] = _cell_text
    return env


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _bin_label(spec: IndicatorSpec, index: int) -> str:
    assert spec.bins is not None
    b = spec.bins
    lo = b.start + index * b.width
    return f"[{lo:g}, ∞)" if index >= b.count else f"[{lo:g}, {lo + b.width:g})"


def _case(spec: IndicatorSpec, index: int) -> dict[str, Any]:
    case = spec.tests[index]
    used = {k for row in case.rows for k in row}
    order = [c for c in model.columns() if c in used] + sorted(used - set(model.columns()))
    kind = kind_of(spec)
    expect: list[list[Any]] = []
    for cell in case.expect:
        result: list[Any] = [getattr(cell, f) for f in kind.expect_fields]
        if cell.bins is not None and "bins" in kind.expect_fields:
            result[kind.expect_fields.index("bins")] = "; ".join(
                f"bin {i} {_bin_label(spec, i)}: {n}" for i, n in sorted(cell.bins.items()))
        expect.append([*(cell.stratum.get(s) for s in spec.cell_strata), *result])
    return {"name": case.name, "columns": order,
            "rows": [[row.get(c) for c in order] for row in case.rows],
            "expect_columns": [*spec.cell_strata, *kind.expect_fields],
            "expect": expect}


def page_context(spec: IndicatorSpec) -> dict[str, Any]:
    """What an indicator page shows."""
    described = {r["column"]: r["description"] for r in model.field_table()}
    bins = None
    if spec.bins is not None:
        b = spec.bins
        bins = {"start": f"{b.start:g}", "width": f"{b.width:g}", "count": b.count,
                "first": _bin_label(spec, 0), "last_closed": _bin_label(spec, b.count - 1),
                "open": _bin_label(spec, b.count)}
    strata = [{"column": s, "description": described.get(s, ""),
               "values": stratum_values(s) if s in model.ENUMS else ()} for s in spec.strata]
    return {"spec": spec, "chapter": chapter(spec), "unit": UNIT_TEXT[spec.unit],
            "direction": DIRECTION_TEXT[spec.direction], "bins": bins, "strata": strata,
            "expressions": list(spec.expressions().items()),
            "cases": [_case(spec, i) for i in range(len(spec.tests))]}


def index_context(specs: Iterable[IndicatorSpec]) -> dict[str, Any]:
    """What the index shows: the specs grouped by chapter, and the catalogue hash."""
    specs = sorted(specs, key=lambda s: s.id)
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in specs:
        groups.setdefault(chapter(s), []).append(
            {"spec": s, "unit": UNIT_TEXT[s.unit], "direction": DIRECTION_TEXT[s.direction]})
    return {"groups": sorted(groups.items()), "catalogue": catalogue_sha256(specs),
            "count": len(specs)}


def write_docs(specs: Iterable[IndicatorSpec], out: Path) -> list[Path]:
    """Write ``index.html`` and ``ID.html`` per spec into ``out``; return the files (the
    index last)."""
    specs = list(specs)
    env = _environment()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    page = env.get_template("spec-docs-page.html")
    for spec in specs:
        path = out / f"{spec.id}.html"  # ids are [A-Z0-9-]: a safe file name
        write_atomic(path, page.render(page_context(spec)).encode("utf-8"))
        written.append(path)
    index = out / "index.html"
    html = env.get_template("spec-docs-index.html").render(index_context(specs))
    write_atomic(index, html.encode("utf-8"))
    written.append(index)
    return written
