"""The node flow runs against a real Prefect server when ``PREFECT_API_URL`` is set.

The other flow tests use Prefect's embedded test server. This one starts ``prefect server
start`` as its own process (own ``PREFECT_HOME``, hence its own SQLite database), runs
``emsbench node run`` in another process with ``PREFECT_API_URL`` pointing at it, and then
asks that server's REST API what it recorded: the ``emsbench-node`` flow run and its
read/compute/sign task runs, all completed. A fresh server that knows about the run proves
the run was orchestrated by it and not by a temporary embedded one.

Neither process inherits this process's ``PREFECT_*`` variables, and this process's
Prefect settings are left alone, so the session-wide test harness is not disturbed.
Starting the server takes about ten seconds, mostly its database migrations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emsbench.demo import free_port, stop_process
from node.config import NodeConfig, write_node_config
from node.keys import keygen
from node.synth.generator import generate

PREFECT = Path(sys.executable).parent / "prefect"
FLOW_NAME = "emsbench-node"
EXPECTED_TASKS = {"read-and-validate", "compute-indicators", "build-and-sign"}
STARTUP_TIMEOUT = 90.0
RECORD_TIMEOUT = 30.0


def _env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any PREFECT_* variable, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               **extra)
    return env


def _tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``prefect server start`` on loopback; yields its API URL.

    The services stay on: task runs reach the database only through the server's
    task-run recorder service (with ``--no-services`` only the flow run would appear).
    The UI is not needed here.
    """
    root = tmp_path_factory.mktemp("prefect-server")
    home = root / "home"
    home.mkdir()
    log = root / "server.log"
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--no-ui"],
            env=_env(home), cwd=root, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited with status {proc.returncode}:\n"
                            f"{_tail(log)}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > STARTUP_TIMEOUT:
                pytest.fail(f"prefect server did not answer within {STARTUP_TIMEOUT:.0f} s:\n"
                            f"{_tail(log)}")
            time.sleep(0.25)
        print(f"prefect server healthy after {time.monotonic() - started:.1f} s")
        yield api
    finally:
        stop_process(proc)


def _post(api: str, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}{path}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def _task_states(api: str, flow_run_id: str) -> dict[str, str]:
    """Task name (without the run suffix Prefect appends) → state type."""
    runs = _post(api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    return {run["name"].rsplit("-", 1)[0]: run["state_type"] for run in runs}


def test_node_run_is_recorded_by_the_prefect_server(prefect_server: str,
                                                    tmp_path: Path) -> None:
    api = prefect_server
    data = tmp_path / "NO.parquet"
    generate("NO", 2025, data, rows=3000, seed=1)
    keygen(tmp_path / "NO.pem")
    config = tmp_path / "node.toml"
    write_node_config(config, NodeConfig(review=False, country="NO", year=2025, data=data,
                                         key=tmp_path / "NO.pem", outbox=tmp_path / "outbox",
                                         hub_url=""))
    client_home = tmp_path / "prefect-home"
    client_home.mkdir()

    proc = subprocess.run(
        [sys.executable, "-m", "emsbench.cli", "node", "run", "--config", str(config)],
        env=_env(client_home, PREFECT_API_URL=api), cwd=tmp_path,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert list((tmp_path / "outbox").glob("*.json")), output

    flow_runs = _post(api, "/flow_runs/filter", {"flows": {"name": {"any_": [FLOW_NAME]}}})
    assert len(flow_runs) == 1, flow_runs
    [flow_run] = flow_runs
    assert flow_run["state_type"] == "COMPLETED", flow_run["state"]
    flow = httpx.get(f"{api}/flows/{flow_run['flow_id']}", timeout=10).json()
    assert flow["name"] == FLOW_NAME

    # Task runs arrive as events and are written by a server service: allow a moment.
    deadline = time.monotonic() + RECORD_TIMEOUT
    while True:
        states = _task_states(api, flow_run["id"])
        if all(states.get(name) == "COMPLETED" for name in EXPECTED_TASKS):
            break
        assert time.monotonic() < deadline, f"task runs recorded by the server: {states}"
        time.sleep(0.5)
