"""Compute indicator specs in a sandbox.

The engine runs the SQL the spec's kind writes around the spec's expressions
(``emsbench.kinds``), so a spec can only choose *which* rows count and *what* value is
binned; the shape of what comes out (strata, counts, fixed bins) is fixed by the kind.
Results are additive, so the hub merges countries by adding. One spec or the whole
catalogue, it is one query (``emsbench.batch``).
"""

from __future__ import annotations

from typing import Any

import duckdb

from emsbench.batch import compute_catalogue
from emsbench.kinds import Context, kind_of
from emsbench.specs import IndicatorSpec
from emsbench.wire import IndicatorResult

UNKNOWN = "unknown"


def aggregate_sql(spec: IndicatorSpec, table: str = "missions") -> str:
    """The aggregate query for a spec. Rows where the population is NULL are not counted."""
    return kind_of(spec).aggregate_sql(spec, table)


def compute(con: duckdb.DuckDBPyConnection, spec: IndicatorSpec,
            table: str = "missions", ctx: Context | None = None) -> IndicatorResult:
    """Run one spec on a (sandboxed) connection; cells are sorted by stratum."""
    return compute_catalogue(con, [spec], table, ctx)[0]


def cell_summary(result: IndicatorResult, spec: IndicatorSpec) -> list[dict[str, Any]]:
    """Cells in the shape spec test cases expect, for comparing and for messages."""
    kind = kind_of(spec)
    return [kind.summary_of(spec, c) for c in result.cells]
