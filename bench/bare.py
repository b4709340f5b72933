"""The floor for ``node_bench.py``: the node's figures from a Parquet file in one DuckDB scan,
written independently of the node (no ``emsbench.kinds``, ``emsbench.batch`` or
``node.ingest``): plain SQL from the spec files' expressions.

One statement reads the file once and groups it by every stratum of the catalogue at once,
with each spec's counts as ``count(*) FILTER (...)``, and adds each spec's figures up over
the groups (``GROUPING SETS``, one set per spec's strata, was four times slower: every
aggregate is kept in every set). A
distribution's histogram and its exact quantiles come from the count of each value
(``histogram(v)``), because ``quantile_cont`` in one scan would hold every value of every
distribution in memory; each quantile is then interpolated by ``quantile_cont`` itself
between the two values around its rank, so it is the same double.

Validation is only what changes the figures: a required field missing or outside its code
set, a call outside the year, and optional values outside their code set or range read as
empty. It does not look for duplicate mission ids (the synthetic files have none, and the
comparison with the node would show it) and writes no rejects file.

Usage: ``python bench/bare.py FILE YEAR [--out figures.json]``; prints seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "indicator_specs"
sys.path.insert(0, str(ROOT))

from emsbench import model  # noqa: E402 - the model's columns and code sets, not its code


def _lit(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def missions_sql(path: Path, year: int) -> str:
    """The valid rows: required fields present and in their code sets, the call in the year;
    optional codes and ranges that fail are NULL; derived columns by the model's rules."""
    types = model.duckdb_types()
    cols = []
    for c in model.input_columns():
        expr = c
        if c in model.ENUMS and not model.is_required(c):
            expr = f"CASE WHEN {c} IN ({', '.join(map(_lit, model.ENUMS[c]))}) THEN {c} END"
        if c in model.RANGES:
            lo, hi = model.RANGES[c]
            expr = f"CASE WHEN {c} BETWEEN {lo} AND {hi} THEN {c} END"
        cols.append(f"{expr} AS {c}")
    rules = {**model.DERIVED, **model.COMPLETED}
    outer = ", ".join(f"CAST(({rules[c]}) AS {types[c]}) AS {c}" if c in rules else c
                      for c in model.columns())
    where = " AND ".join(
        [f"{c} IS NOT NULL" for c in model.input_columns() if model.is_required(c)]
        + [f"{c} IN ({', '.join(map(_lit, model.ENUMS[c]))})"
           for c in model.input_columns() if model.is_required(c) and c in model.ENUMS]
        + [f"year(call_received) = {int(year)}"])
    return (f"SELECT {outer} FROM (SELECT {', '.join(cols)} FROM "
            f"read_parquet({_lit(str(path))}) WHERE {where})")


def _key(expr: str) -> str:
    return f"coalesce(CAST({expr} AS VARCHAR), 'unknown')"


def _adjust(name: str, expr: str) -> str:
    if expr.strip() in model.ENUMS:
        return _key(expr.strip())
    return f"CASE WHEN ({expr}) THEN 'true' WHEN NOT ({expr}) THEN 'false' ELSE 'unknown' END"


def load() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted(SPECS.glob("*.yaml"))]


def figures(path: Path, year: int) -> tuple[dict[str, Any], dict[str, int]]:
    """Per spec id: stratum key → its raw counts (share/ratio: [denominator, numerator];
    rate: [events]; distribution: {"bins": {bin: n}, "quantiles": {p: value}})."""
    specs = load()
    aggs: list[str] = []
    keys_of: dict[str, list[str]] = {}  # key expression → populations of the specs using it
    plan = []
    for s in specs:
        keys = [_key(c) for c in s.get("strata") or []]
        keys += [_adjust(n, e) for n, e in (s.get("adjust_for") or {}).items()]
        pop = f"coalesce(({s['population']}), false)"
        for k in keys:
            keys_of.setdefault(k, []).append(pop)
        first = len(aggs)
        if s["type"] == "distribution":
            v = f"CAST(({s['measure']}) AS DOUBLE)"
            aggs.append(f"histogram({v}) FILTER (WHERE {pop} AND {v} IS NOT NULL "
                        f"AND {v} >= {float(s['bins']['start'])!r})")
        else:
            aggs.append(f"count(*) FILTER (WHERE {pop})")
            if s.get("numerator"):
                aggs.append(f"count(*) FILTER (WHERE {pop} AND "
                            f"coalesce(({s['numerator']}), false))")
        plan.append((s, keys, first, len(aggs)))
    # One GROUP BY over every stratum of every spec; a stratum is NULL where no spec using it
    # counts the row, so rare strata (a cardiac arrest's case mix) add few groups. Each
    # spec's figures are then the sum over the groups sharing its strata.
    all_keys = list(keys_of)
    inner = ", ".join(f"CASE WHEN {' OR '.join(dict.fromkeys(keys_of[k]))} THEN {k} END "
                      f"AS _k{i}" for i, k in enumerate(all_keys))
    names = ", ".join(f"_k{i}" for i in range(len(all_keys)))
    sql = (f"SELECT {names}, {', '.join(aggs)}, count(*) FROM (SELECT *, {inner} "
           f"FROM ({missions_sql(path, year)})) GROUP BY {names}")
    con = duckdb.connect()
    rows = con.execute(sql).fetchall()
    n = len(all_keys)
    out: dict[str, Any] = {}
    for s, keys, a, b in plan:
        summed: dict[str, list[Any]] = {}
        for r in rows:
            vals = r[n + a:n + b]
            if not vals[0]:
                continue
            stratum = "|".join(str(r[all_keys.index(k)]) for k in keys)
            got = summed.setdefault(stratum, [{} if s["type"] == "distribution" else 0
                                              for _ in vals])
            for j, v in enumerate(vals):
                if isinstance(v, dict):
                    for x, c in v.items():
                        got[j][x] = got[j].get(x, 0) + c
                else:
                    got[j] += int(v)
        if not keys and not summed and s["type"] != "distribution":
            summed[""] = [0] * (b - a)
        out[s["id"]] = {k: _distribution(con, s, v[0]) if s["type"] == "distribution" else v
                        for k, v in summed.items()}
    return out, {"accepted": int(sum(r[-1] for r in rows))}


def _distribution(con: duckdb.DuckDBPyConnection, spec: dict[str, Any],
                  counts: dict[float, int]) -> dict[str, Any]:
    b = spec["bins"]
    start, width, count = float(b["start"]), float(b["width"]), int(b["count"])
    bins: dict[str, int] = {}
    for v, c in counts.items():
        i = str(min(math.floor((v - start) / width), count))
        bins[i] = bins.get(i, 0) + c
    ordered = sorted(counts.items())
    total = sum(c for _, c in ordered)
    probs = [0.5] if spec["quantile"] == 0.5 else [0.5, float(spec["quantile"])]
    qs = {}
    for p in probs:
        rank = (total - 1) * p
        lo_i, hi_i = math.floor(rank), math.ceil(rank)
        lo, hi = _nth(ordered, lo_i), _nth(ordered, hi_i)
        if lo_i == hi_i or lo == hi:
            qs[f"{p:g}"] = float(lo)
        else:
            ((q,),) = con.execute("SELECT quantile_cont(v, $q) FROM (SELECT unnest($v) AS v)",
                                  {"q": rank - lo_i, "v": [lo, hi]}).fetchall()
            qs[f"{p:g}"] = float(q)
    return {"bins": dict(sorted(bins.items())), "quantiles": qs}


def _nth(ordered: list[tuple[float, int]], i: int) -> float:
    seen = 0
    for v, c in ordered:
        seen += c
        if i < seen:
            return v
    raise IndexError(i)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("year", type=int)
    parser.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    found, totals = figures(args.file, args.year)
    secs = time.perf_counter() - t0
    if args.out:
        args.out.write_text(json.dumps({"figures": found, **totals}, sort_keys=True),
                            encoding="utf-8")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(secs, 3), "peak_rss_mib": round(peak),
                      "accepted": totals["accepted"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
