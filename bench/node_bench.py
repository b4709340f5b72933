"""Node compute time and peak memory on N synthetic US rows, next to a bare DuckDB script.

Usage::

    python bench/node_bench.py --rows 10000000 [--rows 50000000 ...] [--pairs 3]
        [--memory-limit 512MB] [--keep DIR] [--fixed-cost] [--json]

For each N it generates a US file once (``--keep DIR`` keeps it for the next run), then runs
``--pairs`` pairs of two steps, interleaved (node, bare, bare, node, …), each in a fresh
child process so its peak RSS is its own:

- **node**: what ``emsbench node run`` does between reading the file and signing
  (``node.flow`` read and compute tasks): validate every row (``node.ingest``: the rows with a
  problem, duplicate ids, the rejects file, the data-quality counts), then every indicator of
  the catalogue in one scan of the locked sandbox (``emsbench.batch``) and disclosure control;
- **bare**: ``bench/bare.py``, the same figures from the Parquet file in one DuckDB scan,
  written independently of the node, with no sandbox, no duplicate check, no rejects file,
  no data-quality counts and no memory limit.

It checks that both computed the same figures (every count, bin and exact quantile, before
disclosure control) and prints the median wall and CPU seconds and peak RSS of each, and
their ratio. ``--fixed-cost`` also runs ``bench/fixed_cost.py`` (a whole ``node run`` on
1,000 rows against a running Prefect server, and without one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
YEAR = 2025

NODE = """
import json, resource, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from emsbench.batch import compute_catalogue
from emsbench.kinds import Context
from emsbench.reference import population_by
from emsbench.specs import load_specs
from node.disclosure import full_grid, protect_release
from node.ingest import open_missions
path, year, out, limit = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
specs = load_specs()
ctx = Context("US", year, population_by("US", year))
with tempfile.TemporaryDirectory() as work:
    t1 = time.perf_counter()
    con, report = open_missions(path, year, Path(work), rejects=Path(work) / "rejects.csv",
                                memory_limit=limit)
    t2 = time.perf_counter()
    raw = compute_catalogue(con, specs, ctx=ctx)
    protected = protect_release([full_grid(r, s, ctx) for r, s in zip(raw, specs)], specs, 5)
    con.close()
t3 = time.perf_counter()
def canon(result, spec):
    cells = {}
    for c in result.cells:
        key = "|".join(c.stratum[s] for s in spec.cell_strata)
        if spec.type == "distribution":
            cells[key] = {"bins": {str(b): n for b, _, n in c.bins or []},
                          "quantiles": c.quantiles}
        elif spec.type == "rate":
            cells[key] = [c.numerator]
        else:
            cells[key] = [c.denominator, c.numerator]
    return cells
out.write_text(json.dumps({"figures": {s.id: canon(r, s) for r, s in zip(raw, specs)},
                           "accepted": report.rows_accepted}, sort_keys=True))
print(json.dumps({"seconds": round(t3 - t0, 3), "import": round(t1 - t0, 3),
                  "validate": round(t2 - t1, 3), "compute": round(t3 - t2, 3),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "accepted": report.rows_accepted, "rejected": report.rejected_by_reason}))
"""


def run(cmd: list[str]) -> dict[str, Any]:
    """Run a child; its last line is JSON. Adds wall and CPU seconds (children's rusage)."""
    before = os.times()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{proc.stderr[-3000:]}")
    got: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    got["wall"] = round(wall, 3)
    got["cpu"] = round((after.children_user - before.children_user)
                       + (after.children_system - before.children_system), 3)
    return got


def generate(path: Path, rows: int) -> None:
    if path.exists():
        return
    print(f"generating {rows:,} synthetic US rows in {path} ...", file=sys.stderr, flush=True)
    code = (f"from pathlib import Path\nfrom node.synth.generator import generate\n"
            f"generate('US', {YEAR}, Path({str(path)!r}), rows={rows}, seed=7)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def bench(path: Path, pairs: int, limit: str, folder: Path) -> dict[str, Any]:
    node_out, bare_out = folder / "node-figures.json", folder / "bare-figures.json"
    runs: dict[str, list[dict[str, Any]]] = {"node": [], "bare": []}
    order = ["node", "bare"]
    for i in range(pairs):
        for step in order if i % 2 == 0 else order[::-1]:
            print(f"  pair {i + 1}/{pairs}: {step} ...", file=sys.stderr, flush=True)
            if step == "node":
                got = run([sys.executable, "-c", NODE, str(path), str(YEAR), str(node_out),
                           limit])
            else:
                got = run([sys.executable, str(ROOT / "bench" / "bare.py"), str(path),
                           str(YEAR), "--out", str(bare_out)])
            runs[step].append(got)
            print(f"    {got['wall']:.2f} s wall, {got['cpu']:.2f} s CPU, "
                  f"{got['peak_rss_mib']} MiB", file=sys.stderr, flush=True)
    node_figs = json.loads(node_out.read_text(encoding="utf-8"))
    bare_figs = json.loads(bare_out.read_text(encoding="utf-8"))
    differ = sorted(k for k in set(node_figs["figures"]) | set(bare_figs["figures"])
                    if node_figs["figures"].get(k) != bare_figs["figures"].get(k))
    if node_figs["accepted"] != bare_figs["accepted"]:
        differ.append(f"accepted rows: node {node_figs['accepted']}, "
                      f"bare {bare_figs['accepted']}")
    return {"runs": runs, "differ": differ,
            "cells": sum(len(v) for v in node_figs["figures"].values())}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", required=True)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--memory-limit", default="512MB", help="the node's DuckDB limit")
    parser.add_argument("--keep", type=Path, help="folder to keep the generated files in")
    parser.add_argument("--fixed-cost", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON line as well")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="emsbench-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    table = []
    for rows in args.rows:
        path = folder / f"US-{rows}.parquet"
        generate(path, rows)
        print(f"{rows:,} rows ({path.stat().st_size / 2**20:,.0f} MiB Parquet):",
              file=sys.stderr, flush=True)
        result = bench(path, args.pairs, args.memory_limit, folder)
        node, bare = result["runs"]["node"], result["runs"]["bare"]
        table.append({
            "rows": rows, "mib": round(path.stat().st_size / 2**20),
            "node_wall": median(node, "wall"), "node_cpu": median(node, "cpu"),
            "node_rss": max(r["peak_rss_mib"] for r in node),
            "validate": median(node, "validate"), "compute": median(node, "compute"),
            "bare_wall": median(bare, "wall"), "bare_cpu": median(bare, "cpu"),
            "bare_rss": max(r["peak_rss_mib"] for r in bare),
            "identical": not result["differ"], "differ": result["differ"],
            "cells": result["cells"], "accepted": node[0]["accepted"],
            "runs": result["runs"]})
        if not args.keep:
            path.unlink(missing_ok=True)
    print(f"\n{os.cpu_count()} cores; node DuckDB memory limit {args.memory_limit}; "
          f"{args.pairs} interleaved pairs, medians (peak RSS: the largest)")
    print(f"{'rows':>12} {'node s':>8} {'(validate':>10} {'compute)':>9} {'node MiB':>9} "
          f"{'bare s':>8} {'bare MiB':>9} {'wall ratio':>10} {'CPU ratio':>10}  figures")
    for t in table:
        print(f"{t['rows']:>12,} {t['node_wall']:>8.2f} {t['validate']:>10.2f} "
              f"{t['compute']:>9.2f} {t['node_rss']:>9} {t['bare_wall']:>8.2f} "
              f"{t['bare_rss']:>9} {t['node_wall'] / t['bare_wall']:>9.2f}x "
              f"{t['node_cpu'] / t['bare_cpu']:>9.2f}x  "
              + ("identical" if t["identical"] else f"DIFFER: {', '.join(t['differ'][:5])}"))
    fixed = None
    if args.fixed_cost:
        sys.path.insert(0, str(ROOT / "bench"))
        from fixed_cost import measure_fixed_cost  # type: ignore[import-not-found]

        fixed = measure_fixed_cost()
    if args.json:
        print(json.dumps({"table": table, "fixed_cost": fixed}))
    return 0 if all(t["identical"] for t in table) else 1


if __name__ == "__main__":
    sys.exit(main())
