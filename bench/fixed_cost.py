"""Fixed cost of a node run: the wall time of ``emsbench node run`` on a small node.

Usage: ``python bench/fixed_cost.py [--rows 1000] [--runs 5] [--json]``, or
``from bench.fixed_cost import measure_fixed_cost``.

A synthetic Norwegian node (``rows`` missions, its own key, no hub, ``review = false``) runs
``runs`` times as an operator runs it, each time a fresh ``emsbench node run`` process:

- ``server``: against a Prefect server that is already running (``scripts/prefect-server.sh``
  on a free port, its database in a temporary Prefect home), with ``PREFECT_API_URL`` set;
  the first run against the fresh server (which also registers the flow, while the server's
  services are still starting) is reported apart as ``server_first``;
- ``server_flow``: for those runs, the flow run's own time as the server recorded it (start
  to end: tasks, artifacts, signing), so the rest of ``server`` is process start, imports,
  creating the run and exiting;
- ``ephemeral_first`` and ``ephemeral``: without ``PREFECT_API_URL``, on Prefect's temporary
  server in the node's own Prefect home; the first run in a new home also creates its
  database, so it is reported apart;
- ``imports``: ``python -c "import node.flow"`` with the garbage collector off, as ``node
  run`` imports it (the node's modules and Prefect's).

Each figure is the median and the minimum in seconds. Nothing is asserted: the figures
depend on the machine and on what else runs on it.
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
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = ROOT / "scripts" / "prefect-server.sh"
STARTUP_TIMEOUT = 120.0


def _env(**extra: str) -> dict[str, str]:
    """This environment without any PREFECT_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


def make_node(root: Path, rows: int, year: int = 2025) -> Path:
    """A node folder with ``rows`` synthetic missions, its key and node.toml; returns
    node.toml."""
    from node.config import NodeConfig, write_node_config
    from node.keys import keygen
    from node.synth.generator import generate

    root.mkdir(parents=True, exist_ok=True)
    generate("NO", year, root / f"NO-{year}.parquet", rows=rows, seed=1)
    keygen(root / "NO.pem")
    config = root / "node.toml"
    write_node_config(config, NodeConfig(review=False, country="NO", year=year,
                                         data=Path(f"NO-{year}.parquet"), key=Path("NO.pem"),
                                         outbox=Path("outbox")))
    return config


def start_server(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``scripts/prefect-server.sh`` on ``port`` with its database in ``home``; returns
    once its API answers."""
    import httpx

    home.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(["bash", str(SERVER_SCRIPT)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT,
                                env=_env(PREFECT_HOME=str(home), PORT=str(port)))
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Prefect server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.terminate()
    raise RuntimeError(f"the Prefect server did not answer within {STARTUP_TIMEOUT:.0f} s; "
                       f"see {log}")


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of one process; RuntimeError with its output if it fails."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                           f"{proc.stdout}{proc.stderr}")
    return took


def flow_seconds(api: str, count: int) -> list[float]:
    """Start to end of the server's ``count`` latest node flow runs."""
    import httpx

    runs = httpx.post(f"{api}/flow_runs/filter", timeout=10, json={
        "flows": {"name": {"any_": ["emsbench-node"]}}, "sort": "START_TIME_DESC",
        "limit": count}).json()
    return [(datetime.fromisoformat(r["end_time"])
             - datetime.fromisoformat(r["start_time"])).total_seconds() for r in runs]


def _summary(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "all": [round(v, 2) for v in values]}


def measure_fixed_cost(rows: int = 1000, runs: int = 5) -> dict[str, Any]:
    """Wall seconds of ``emsbench node run`` on ``rows`` synthetic rows, ``runs`` times
    against a running Prefect server and as many times on a temporary one (module doc)."""
    from emsbench.demo import free_port, stop_process

    node_run = [sys.executable, "-m", "emsbench.cli", "node", "run", "--config"]
    with tempfile.TemporaryDirectory(prefix="emsbench-fixed-cost-") as tmp:
        root = Path(tmp)
        config = make_node(root / "NO", rows)  # not "node": the cwd is on sys.path
        run = [*node_run, str(config)]
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        server = start_server(root / "server-home", port, root / "server.log")
        try:
            server_first = timed(run, _env(PREFECT_API_URL=api), root)
            with_server = [timed(run, _env(PREFECT_API_URL=api), root) for _ in range(runs)]
            in_flow = flow_seconds(api, runs)
        finally:
            stop_process(server)
        first = timed(run, _env(), root)  # creates the node's Prefect home and database
        ephemeral = [timed(run, _env(), root) for _ in range(runs)]
        imports = [timed([sys.executable, "-c", "import gc; gc.disable(); import node.flow"],
                         _env(), root) for _ in range(runs)]
    return {"rows": rows, "runs": runs, "server_first": round(server_first, 2),
            "server": _summary(with_server),
            "server_flow": _summary(in_flow), "ephemeral_first": round(first, 2),
            "ephemeral": _summary(ephemeral), "imports": _summary(imports)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = measure_fixed_cost(args.rows, args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"emsbench node run, {result['rows']:,} rows, {result['runs']} runs "
          f"(seconds, median / min):")
    labels = {"server": "against a running Prefect server",
              "server_flow": "  of which the flow run (server's record)",
              "ephemeral": "temporary Prefect server (no PREFECT_API_URL)",
              "imports": "imports alone (import node.flow)"}
    for key, label in labels.items():
        print(f"  {label:<48} {result[key]['median']:6.2f} / {result[key]['min']:.2f}")
    print(f"  {'first run against a fresh server':<48} {result['server_first']:6.2f}")
    print(f"  {'first run in a new node Prefect home':<48} {result['ephemeral_first']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
