"""Turn an indicator spec into one aggregate query and run it in a sandbox.

The engine runs the SQL the spec's kind writes around the spec's expressions
(``emsbench.kinds``), so a spec can only choose *which* rows count and *what* value is
binned; the shape of what comes out (strata, counts, fixed bins) is fixed by the kind.
Results are additive, so the hub merges countries by adding.
"""

from __future__ import annotations

from typing import Any

import duckdb

from emsbench.kinds import Context, kind_of
from emsbench.sandbox import SandboxError, query
from emsbench.specs import IndicatorSpec, statement_count
from emsbench.wire import IndicatorResult

UNKNOWN = "unknown"


def aggregate_sql(spec: IndicatorSpec, table: str = "missions") -> str:
    """The aggregate query for a spec. Rows where the population is NULL are not counted."""
    return kind_of(spec).aggregate_sql(spec, table)


def compute(con: duckdb.DuckDBPyConnection, spec: IndicatorSpec,
            table: str = "missions", ctx: Context | None = None) -> IndicatorResult:
    """Run one spec on a (sandboxed) connection; cells are sorted by stratum."""
    kind = kind_of(spec)
    sql = kind.aggregate_sql(spec, table)
    if statement_count(sql) != 1:  # belt and braces: validation already refuses this
        raise SandboxError(f"indicator {spec.id}: expressions must not hold extra statements")
    rows = query(con, sql, f"indicator {spec.id}")
    cells = kind.cells(spec, rows, ctx or Context())
    cells.sort(key=lambda c: tuple(c.stratum.get(s, "") for s in spec.cell_strata))
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type=spec.type, strata=spec.cell_strata, cells=cells)


def cell_summary(result: IndicatorResult, spec: IndicatorSpec) -> list[dict[str, Any]]:
    """Cells in the shape spec test cases expect, for comparing and for messages."""
    kind = kind_of(spec)
    return [kind.summary_of(spec, c) for c in result.cells]
