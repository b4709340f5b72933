"""Node compute time and peak memory on N synthetic US rows, next to bare DuckDB.

Usage: ``python bench/node_bench.py --rows 1000000 [--keep DIR]``

Three figures, each measured in a fresh child process so peak RSS is that step's alone:

- ``node``: what ``emsbench node run`` does between reading the file and signing:
  validation of every row against the common model, loading the typed table into the
  sandbox's working database (a temporary file), and all indicator specs with disclosure
  control;
- ``bare duckdb``: the same aggregate queries run straight on the Parquet file by one
  unlocked DuckDB connection, with no validation (the floor for this work);
- ``synth``: generating the file, for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = {
    "synth": """
from node.synth.generator import generate
generate("US", 2025, PATH, rows=ROWS, seed=7)
""",
    "node": """
import tempfile
from emsbench.kinds import Context
from emsbench.reference import population_by
from emsbench.specs import load_specs
from node.ingest import open_missions
from node.submission import compute_all
with tempfile.TemporaryDirectory() as workdir:
    con, report = open_missions(PATH, 2025, Path(workdir))
    ctx = Context("US", 2025, population_by("US", 2025))
    results = compute_all(con, load_specs(), 5, ctx=ctx)
    con.close()
print("cells", sum(len(r.cells) for r in results), "accepted", report.rows_accepted)
""",
    "bare duckdb": """
import duckdb
from emsbench.engine import aggregate_sql
from emsbench.specs import load_specs
con = duckdb.connect()
src = "read_parquet('" + str(PATH) + "')"
n = 0
for spec in load_specs():
    n += len(con.execute(aggregate_sql(spec, src)).fetchall())
print("groups", n)
""",
}


def measure(step: str, path: Path, rows: int) -> tuple[float, float, str]:
    """Run one step in a child; return (seconds, peak RSS in MiB, its output)."""
    code = f"from pathlib import Path\nPATH = Path({str(path)!r})\nROWS = {rows}\n" + STEPS[step]
    script = (
        "import resource, sys, time\n"
        "t0 = time.perf_counter()\n"
        f"exec(compile({code!r}, 'bench', 'exec'))\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print('__RESULT__', time.perf_counter() - t0, peak)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed:\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    _, secs, peak = lines[-1].split()
    return float(secs), float(peak), " ".join(lines[:-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--keep", type=Path, help="folder to keep the generated file in")
    parser.add_argument("--json", action="store_true", help="print one JSON line as well")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="emsbench-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"US-{args.rows}.parquet"
    figures: dict[str, dict[str, float | str]] = {}
    steps = ["node", "bare duckdb"] if path.exists() else ["synth", "node", "bare duckdb"]
    for step in steps:
        print(f"running {step} on {args.rows:,} rows ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        secs, peak, out = measure(step, path, args.rows)
        figures[step] = {"seconds": round(secs, 2), "peak_rss_mib": round(peak),
                         "wall": round(time.perf_counter() - started, 2), "note": out}
    size = path.stat().st_size / 2**20
    print(f"\n{args.rows:,} synthetic US rows ({size:,.0f} MiB Parquet), "
          f"{os.cpu_count()} cores")
    print(f"{'step':<12} {'seconds':>9} {'peak MiB':>9}  note")
    for step, f in figures.items():
        print(f"{step:<12} {f['seconds']:>9.2f} {f['peak_rss_mib']:>9}  {f['note']}")
    if "node" in figures and "bare duckdb" in figures:
        node_s, bare_s = figures["node"]["seconds"], figures["bare duckdb"]["seconds"]
        assert isinstance(node_s, float) and isinstance(bare_s, float)
        ratio = node_s / max(bare_s, 1e-9)
        print(f"node / bare duckdb time: {ratio:.1f}x")
    if args.json:
        print(json.dumps({"rows": args.rows, **figures}))
    if not args.keep:
        path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
