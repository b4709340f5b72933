"""The whole catalogue in one scan: every spec's counts from one GROUP BY over the rows.

A node's cost used to be one query per spec, each reading and filtering every row again.
Here each kind states its figures as *partials*, additive aggregates over the rows (a count
of the rows where some terms hold, or the count of each value of a measure), and the
catalogue becomes one query:

* every distinct term (a population, a numerator, a measure, a stratum) is computed once per
  row in an inner projection, so specs sharing a population or a measure share its cost, and
  identical partials (two quantiles of one distribution) are computed once;
* the outer query groups by the union of every spec's strata. A stratum column is NULL on
  rows outside the populations of the specs that use it, so a spec's rare strata (a cardiac
  arrest's case mix) do not multiply the groups of the common ones;
* each spec's rows are then added up over the groups that share its own strata values.
  Counts add; value counts add value by value. From those, the distribution kind bins the
  values and finds its exact quantiles (``exact_quantiles``): memory follows the number of
  distinct values of a measure (a response time in whole seconds has a few thousand), never
  the number of rows, whereas DuckDB's ``quantile_cont`` holds every value in memory and
  cannot spill.

The rows handed to ``Kind.cells`` have the same shape as the kind's own one-spec query
(``Kind.aggregate_sql``, the reference that tests hold this module equal to).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from emsbench.kinds import Context, kind_of
from emsbench.kinds.base import Partial
from emsbench.sandbox import SandboxError, query
from emsbench.spec_language import expression_problems
from emsbench.specs import IndicatorSpec, statement_count
from emsbench.wire import IndicatorResult

Counts = dict[float, int]


@dataclass(frozen=True)
class CatalogueQuery:
    """The one query, and where each spec finds its strata and partials in its rows."""

    sql: str
    keys: dict[str, tuple[int, ...]]  # spec id → positions of its strata columns
    partials: dict[str, tuple[tuple[int, bool], ...]]  # spec id → (position, is value counts)


class _Names:
    """Distinct SQL expressions, each named once (``prefix``0, ``prefix``1, …)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.named: dict[str, str] = {}

    def __call__(self, expr: str) -> str:
        if expr not in self.named:
            self.named[expr] = f"{self.prefix}{len(self.named)}"
        return self.named[expr]


def catalogue_query(specs: Sequence[IndicatorSpec], table: str = "missions"
                    ) -> CatalogueQuery:
    """The query computing every spec's partials, grouped by the union of their strata."""
    terms, values, keys = _Names("_t"), _Names("_v"), _Names("_k")
    users: dict[str, list[str]] = {}  # key expression → the populations of specs using it
    spec_keys: dict[str, list[str]] = {}
    spec_partials: dict[str, list[tuple[str, bool]]] = {}
    aggregates = _Names("_a")
    for spec in specs:
        kind = kind_of(spec)
        population = terms(kind.population(spec))
        for expr in kind.keys(spec):
            users.setdefault(expr, [])
            if population not in users[expr]:
                users[expr].append(population)
            spec_keys.setdefault(spec.id, []).append(expr)
        spec_partials[spec.id] = [(aggregates(_aggregate(p, terms, values)), p.value is not None)
                                  for p in kind.partials(spec)]
    for expr in users:
        keys(expr)
    inner = [f"({expr}) AS {name}" for expr, name in terms.named.items()]
    inner += [f"({expr}) AS {name}" for expr, name in values.named.items()]
    # A stratum only where some spec using it counts the row; elsewhere NULL, one group.
    inner += [f"CASE WHEN {' OR '.join(users[expr])} THEN {expr} END AS {name}"
              for expr, name in keys.named.items()]
    key_names = list(keys.named.values())
    agg_names = list(aggregates.named.values())
    select = key_names + [f"{sql} AS {name}" for sql, name in aggregates.named.items()]
    sql = (f"SELECT {', '.join(select)} FROM (SELECT *, {', '.join(inner)} FROM {table})"
           + (f" GROUP BY {', '.join(key_names)}" if key_names else ""))
    position = {name: i for i, name in enumerate(key_names + agg_names)}
    return CatalogueQuery(
        sql=sql,
        keys={sid: tuple(position[keys(e)] for e in exprs) for sid, exprs in spec_keys.items()},
        partials={sid: tuple((position[a], v) for a, v in parts)
                  for sid, parts in spec_partials.items()})


def _aggregate(partial: Partial, terms: _Names, values: _Names) -> str:
    where = " AND ".join(terms(t) for t in partial.where)
    if partial.value is None:
        return f"count(*) FILTER (WHERE {where})"
    return f"histogram({values(partial.value)}) FILTER (WHERE {where})"


def merged_partials(q: CatalogueQuery, spec: IndicatorSpec, rows: Sequence[tuple[Any, ...]]
                    ) -> dict[tuple[str, ...], list[Any]]:
    """The spec's partials added up per stratum; strata where it counted no row are left
    out, as its own query (``Kind.aggregate_sql``) leaves them out."""
    out: dict[tuple[str, ...], list[Any]] = {}
    parts = q.partials[spec.id]
    for row in rows:
        if not row[parts[0][0]]:  # the population's count is 0, or it has no value
            continue
        key = tuple(row[i] for i in q.keys.get(spec.id, ()))
        got = out.get(key)
        if got is None:
            out[key] = [dict(row[i] or {}) if v else int(row[i]) for i, v in parts]
            continue
        for j, (i, v) in enumerate(parts):
            if v:
                for value, n in (row[i] or {}).items():
                    got[j][value] = got[j].get(value, 0) + n
            else:
                got[j] += int(row[i])
    if not q.keys.get(spec.id) and not out:
        # Without strata the spec's own query answers one row even when nothing counts.
        out[()] = [{} if v else 0 for _, v in parts]
    return out


def exact_quantiles(con: duckdb.DuckDBPyConnection, counts: Counts,
                    probs: Sequence[float]) -> list[float]:
    """``quantile_cont(v, probs)`` of the values ``counts`` describes, bit for bit.

    The two values around each rank are found in the counts; DuckDB itself then
    interpolates between them (``quantile_cont`` of those two values at the fraction of the
    rank), so the result is what ``quantile_cont`` over every value gives, whatever its
    arithmetic (a test holds the two equal on random data).
    """
    ordered = sorted(counts.items())
    n = sum(c for _, c in ordered)
    out = []
    for p in probs:
        rank = (n - 1) * p
        lo_i, hi_i = math.floor(rank), math.ceil(rank)
        lo, hi = _value_at(ordered, lo_i), _value_at(ordered, hi_i)
        if lo_i == hi_i or lo == hi:
            out.append(float(lo))
            continue
        ((got,),) = con.execute("SELECT quantile_cont(v, $q) FROM (SELECT unnest($v) AS v)",
                                {"q": rank - lo_i, "v": [lo, hi]}).fetchall()
        out.append(float(got))
    return out


def _value_at(ordered: Sequence[tuple[float, int]], index: int) -> float:
    seen = 0
    for value, count in ordered:
        seen += count
        if index < seen:
            return value
    raise IndexError(index)


def compute_catalogue(con: duckdb.DuckDBPyConnection, specs: Sequence[IndicatorSpec],
                      table: str = "missions", ctx: Context | None = None
                      ) -> list[IndicatorResult]:
    """Every spec's result (cells sorted by stratum) from one query on a (sandboxed)
    connection."""
    columns = {str(r[0]) for r in con.execute(f"DESCRIBE {table}").fetchall()}
    for spec in specs:
        # Belt and braces: loading refuses these already. The sandbox can read the node's
        # input (the view over it does), so no expression may name anything but a column.
        for name, expr in spec.expressions().items():
            refused = expression_problems(expr, columns)
            if refused:
                raise SandboxError(f"indicator {spec.id}: {name} is not in the spec language: "
                                   f"{refused[0]}")
    q = catalogue_query(specs, table)
    if statement_count(q.sql) != 1:
        raise SandboxError("spec expressions must not hold extra statements")
    try:
        rows = query(con, q.sql, f"indicator {specs[0].id}" if len(specs) == 1
                     else f"the catalogue query ({len(specs)} indicators)")
    except SandboxError as exc:
        # Name the spec that fails: the first that fails on its own (not after a time-out,
        # which would only repeat itself spec by spec).
        if len(specs) > 1 and "stopped after" not in str(exc):
            for spec in specs:
                compute_catalogue(con, [spec], table, ctx)
        raise
    results = []
    for spec in specs:
        kind = kind_of(spec)
        merged = merged_partials(q, spec, rows)
        cells = kind.cells(spec, kind.rows(spec, merged, con), ctx or Context())
        cells.sort(key=lambda c: tuple(c.stratum.get(s, "") for s in spec.cell_strata))
        results.append(IndicatorResult(
            spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
            type=spec.type, strata=spec.cell_strata, cells=cells))
    return results
