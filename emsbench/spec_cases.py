"""Run the test cases embedded in indicator specs.

A case lists input rows (columns of the common model; columns left out are NULL) and the
aggregate cells the spec must produce on them. The rows go into a sandbox exactly as a
node's data would, so a case exercises the same SQL the node runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from emsbench import model
from emsbench.engine import cell_summary, compute
from emsbench.kinds import Context
from emsbench.sandbox import open_sandbox
from emsbench.specs import IndicatorSpec, SpecTestCase


def rows_to_table(rows: list[dict[str, Any]], *, derived: bool = False) -> pa.Table:
    """Rows of partial missions → an Arrow table with every model column (nullable).

    ``derived`` fills the columns the node derives at ingest (age band, call month...) the
    way it does, over any value a row gives, so a case sees what a node's specs see.
    """
    schema = model.arrow_schema()
    nullable = pa.schema([f.with_nullable(True) for f in schema])
    types = model.duckdb_types()
    full: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        rec: dict[str, Any] = {"mission_id": f"case-{i}"}
        for name, value in row.items():
            if types.get(name) == "TIMESTAMP" and isinstance(value, str):
                value = datetime.fromisoformat(value)
            rec[name] = value
        if derived:
            rec.update(model.derive(rec))
        full.append(rec)
    return pa.Table.from_pylist(full, schema=nullable)


def loader(table: pa.Table) -> Any:
    """A sandbox loader that makes ``table`` the sandbox's missions table."""

    def load(con: duckdb.DuckDBPyConnection) -> None:
        con.register("_rows", table)
        con.execute("CREATE TABLE missions AS SELECT * FROM _rows")
        con.unregister("_rows")
    return load


def case_context(case: SpecTestCase) -> Context:
    """What the case gives besides its rows: the population a rate divides by."""
    return Context(population=case.population_by())


def case_cells(spec: IndicatorSpec, case: SpecTestCase, table: pa.Table | None = None
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cells the spec computes on the case's rows (``table``: those rows already
    converted), and the cells the case expects, in the same shape."""
    rows = rows_to_table(case.rows, derived=True) if table is None else table
    con = open_sandbox(loader(rows))
    try:
        got = cell_summary(compute(con, spec, ctx=case_context(case)), spec)
    finally:
        con.close()
    want = [{"stratum": c.stratum, "numerator": c.numerator, "denominator": c.denominator,
             "bins": c.bins} for c in case.expect]
    return got, want


def run_case(spec: IndicatorSpec, case: SpecTestCase) -> list[str]:
    """Compute the spec on the case's rows; return the differences (empty = pass)."""
    got, want = case_cells(spec, case)

    def key(c: dict[str, Any]) -> tuple[str, ...]:
        return tuple(c["stratum"].get(s, "") for s in spec.cell_strata)

    got_by, want_by = {key(c): c for c in got}, {key(c): c for c in want}
    problems = []
    for k in sorted(set(got_by) | set(want_by)):
        g, w = got_by.get(k), want_by.get(k)
        if g != w:
            problems.append(f"{spec.id} / {case.name!r}: stratum {k}: expected {w}, got {g}")
    return problems
