"""Turn an indicator spec into one aggregate query and run it in a sandbox.

The engine writes the SQL around the spec's expressions, so a spec can only choose *which*
rows count and *what* value is binned; the shape of what comes out (strata, counts, fixed
bins) is fixed here. Results are additive: share cells carry numerator and denominator,
distribution cells carry per-bin counts (as runs), so the hub merges countries by adding.
"""

from __future__ import annotations

from typing import Any

import duckdb

from emsbench.sandbox import SandboxError, query
from emsbench.specs import IndicatorSpec, statement_count
from emsbench.wire import Cell, IndicatorResult

UNKNOWN = "unknown"


def _strata_select(spec: IndicatorSpec) -> str:
    # Strata become text so every cell key is a string; a missing value is its own stratum.
    return "".join(f"coalesce(CAST({s} AS VARCHAR), '{UNKNOWN}') AS s_{i}, "
                   for i, s in enumerate(spec.strata))


def _group_by(spec: IndicatorSpec, extra: str = "") -> str:
    keys = [f"s_{i}" for i in range(len(spec.strata))] + ([extra] if extra else [])
    return (" GROUP BY " + ", ".join(keys)) if keys else ""


def aggregate_sql(spec: IndicatorSpec, table: str = "missions") -> str:
    """The aggregate query for a spec. Rows where the population is NULL are not counted."""
    pop = f"coalesce(({spec.population}), false)"
    strata = _strata_select(spec)
    if spec.type == "share":
        return (f"SELECT {strata}count(*) AS denominator, "
                f"count(*) FILTER (WHERE coalesce(({spec.numerator}), false)) AS numerator "
                f"FROM {table} WHERE {pop}{_group_by(spec)}")
    assert spec.bins is not None
    b = spec.bins
    value = f"CAST(({spec.measure}) AS DOUBLE)"
    bin_expr = f"least(CAST(floor((v - {b.start!r}) / {b.width!r}) AS INTEGER), {b.count})"
    return (f"WITH m AS (SELECT {strata}{value} AS v FROM {table} WHERE {pop}) "
            f"SELECT {''.join(f's_{i}, ' for i in range(len(spec.strata)))}"
            f"{bin_expr} AS bin, count(*) AS n FROM m "
            f"WHERE v IS NOT NULL AND v >= {b.start!r}{_group_by(spec, 'bin')}")


def compute(con: duckdb.DuckDBPyConnection, spec: IndicatorSpec,
            table: str = "missions") -> IndicatorResult:
    """Run one spec on a (sandboxed) connection; cells are sorted by stratum."""
    sql = aggregate_sql(spec, table)
    if statement_count(sql) != 1:  # belt and braces: validation already refuses this
        raise SandboxError(f"indicator {spec.id}: expressions must not hold extra statements")
    rows = query(con, sql, f"indicator {spec.id}")
    k = len(spec.strata)
    cells: list[Cell] = []
    if spec.type == "share":
        for r in rows:
            cells.append(Cell(stratum=dict(zip(spec.strata, map(str, r[:k]), strict=True)),
                              denominator=int(r[k]), numerator=int(r[k + 1])))  # type: ignore[call-overload]
    else:
        assert spec.bins is not None
        # One run per non-empty bin; disclosure control may later join runs.
        hist: dict[tuple[str, ...], list[tuple[int, int, int]]] = {}
        for r in rows:
            b, n = int(r[k]), int(r[k + 1])  # type: ignore[call-overload]
            hist.setdefault(tuple(map(str, r[:k])), []).append((b, b, n))
        cells = [Cell(stratum=dict(zip(spec.strata, key, strict=True)), bins=sorted(runs))
                 for key, runs in hist.items()]
    cells.sort(key=lambda c: tuple(c.stratum.get(s, "") for s in spec.strata))
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type=spec.type, strata=list(spec.strata), cells=cells)


def sparse_bins(runs: list[tuple[int, int, int]]) -> dict[int, int]:
    """Single-bin runs as bin index → count (how spec test cases write histograms)."""
    assert all(first == last for first, last, _ in runs), "runs were coarsened"
    return {first: count for first, _, count in runs}


def cell_summary(result: IndicatorResult) -> list[dict[str, Any]]:
    """Cells in the shape spec test cases expect, for comparing and for messages."""
    out: list[dict[str, Any]] = []
    for c in result.cells:
        if result.type == "share":
            out.append({"stratum": c.stratum, "numerator": c.numerator,
                        "denominator": c.denominator, "bins": None})
        else:
            out.append({"stratum": c.stratum, "numerator": None, "denominator": None,
                        "bins": sparse_bins(c.bins or [])})
    return out
