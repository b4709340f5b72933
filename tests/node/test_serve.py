"""A node served on its schedules (``emsbench node serve``), its own Prefect home, run names,
and ``scripts/prefect-server.sh`` on the port it prints.

The end-to-end test starts a real Prefect server with the script (in its own process, its
database in the node's Prefect home), serves a node with ``emsbench node serve`` in another
process, triggers a run of one deployment through the server's API and then asks that API
what happened. Neither process inherits this process's ``PREFECT_*`` variables and this
process's Prefect settings are left alone (the API is addressed explicitly), so the
session's Prefect test harness is not disturbed.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from emsbench.demo import free_port, stop_process
from node.config import load_node_config, resolve_year, write_node_config
from node.keys import keygen
from node.serve import PREFECT_DIR, deployment_name, node_prefect_env
from node.synth.generator import generate

ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = ROOT / "scripts" / "prefect-server.sh"
STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 120.0

NODE = '[node]\ncountry = "NO"\nyear = 2024\ndata = "NO-{year}.parquet"\nkey = "NO.pem"\n' \
       'outbox = "outbox"\nreview = false\n'
SCHEDULES = """
[[schedule]]
name = "monthly"
cron = "0 6 2 * *"
year = 2025

[[schedule]]
name = "annual"
cron = "0  6 15 2 *"
year = "previous"
timezone = "UTC"
"""


def _write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ValueError) as caught:
        load_node_config(_write(tmp_path, text))
    return str(caught.value)


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without any PREFECT_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


# --- node.toml: [[schedule]] ---------------------------------------------------------------


def test_schedules_are_read_with_their_year_and_round_trip(tmp_path: Path) -> None:
    path = _write(tmp_path, NODE + SCHEDULES)
    cfg = load_node_config(path)
    assert [(s.name, s.cron, s.year, s.timezone) for s in cfg.schedules] == [
        ("monthly", "0 6 2 * *", 2025, ""), ("annual", "0 6 15 2 *", "previous", "UTC")]
    assert cfg.year == 2024 and cfg.data == tmp_path / "NO-2024.parquet"
    assert deployment_name(cfg.country, cfg.schedules[0]) == "node-NO-monthly"
    written = tmp_path / "written.toml"
    write_node_config(written, cfg)
    assert load_node_config(written).schedules == cfg.schedules
    assert load_node_config(_write(tmp_path, NODE, "plain.toml")).schedules == ()


def test_a_year_override_reaches_year_and_data(tmp_path: Path) -> None:
    path = _write(tmp_path, NODE.replace('"NO-{year}.parquet"', '"exports/{year}/NO.csv"')
                  + 'query = ""\n')
    cfg = load_node_config(path, 2023)
    assert cfg.year == 2023 and cfg.data == tmp_path / "exports" / "2023" / "NO.csv"
    assert load_node_config(path).data == tmp_path / "exports" / "2024" / "NO.csv"
    with pytest.raises(ValueError, match="year: Input should be greater than or equal to 1990"):
        load_node_config(path, 1899)


def test_current_and_previous_are_the_calendar_year_of_the_node() -> None:
    new_year_in_oslo = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 January
    assert resolve_year("current", 2020, "Europe/Oslo", new_year_in_oslo) == 2026
    assert resolve_year("previous", 2020, "Europe/Oslo", new_year_in_oslo) == 2025
    assert resolve_year("current", 2020, "UTC", new_year_in_oslo) == 2025
    assert resolve_year(None, 2020, "UTC") == 2020
    assert resolve_year(2019, 2020, "UTC") == 2019


@pytest.mark.parametrize(("schedule", "expected"), [
    ('name = "monthly"\ncron = "61 6 2 * *"',
     "schedule 1 (monthly) cron: '61 6 2 * *' is not a valid cron expression (minute 0-59"),
    ('name = "monthly"\ncron = "* * * *"',
     "is not a cron expression of five fields (minute hour day-of-month month day-of-week)"),
    ('name = "monthly"\ncron = "0 0 6 2 * *"', "is not a cron expression of five fields"),
    ('name = "monthly"\ncron = "H 6 * * *"', "is not a valid cron expression"),
    ('name = "monthly"\ncron = "0 6 2 * *; rm -rf /"', "is not a cron expression of five"),
    ('name = "monthly"\ncron = "0 6 2 * *"\nyear = "last"',
     "schedule 1 (monthly) year: 'last': use \"current\", \"previous\" or a year from 1990"),
    ('name = "monthly"\ncron = "0 6 2 * *"\nyear = "2025"', "'2025': use \"current\""),
    ('name = "monthly"\ncron = "0 6 2 * *"\nyear = 1899', "1899: use \"current\""),
    ('name = "monthly"\ncron = "0 6 2 * *"\nyear = true', "True: use \"current\""),
    ('name = "Monthly"\ncron = "0 6 2 * *"', "'Monthly': use 1 to 40 lower-case letters"),
    ('name = "../x"\ncron = "0 6 2 * *"', "'../x': use 1 to 40 lower-case letters"),
    ('name = "monthly"\ncron = "0 6 2 * *"\ntimezone = "Mars/Olympus"',
     "unknown time zone 'Mars/Olympus'"),
    ('name = "monthly"\ncron = "0 6 2 * *"\nwhen = "monthly"',
     "schedule 1 (monthly) when: Extra inputs are not permitted"),
    ('cron = "0 6 2 * *"', "schedule 1 name: Field required"),
])
def test_a_bad_schedule_is_refused_saying_which_and_why(tmp_path: Path, schedule: str,
                                                       expected: str) -> None:
    message = _error(tmp_path, NODE + "\n[[schedule]]\n" + schedule + "\n")
    assert message.startswith(f"invalid node config {tmp_path / 'node.toml'}:")
    assert expected in message


def test_two_schedules_of_one_name_and_stray_tables_are_refused(tmp_path: Path) -> None:
    twice = SCHEDULES.replace('name = "annual"', 'name = "monthly"')
    assert "more than one [[schedule]] is named monthly: each needs its own name (it names " \
           "the deployment node-NO-<name>)" in _error(tmp_path, NODE + twice)
    assert "unknown table(s) schedules; node.toml holds [node] and [[schedule]] tables" in \
        _error(tmp_path, NODE + SCHEDULES.replace("[[schedule]]", "[[schedules]]"))
    assert "write each schedule as a [[schedule]] table" in _error(
        tmp_path, NODE + '\n[schedule]\nname = "monthly"\ncron = "0 6 2 * *"\n')


# --- run names and the node's Prefect home --------------------------------------------------


def test_run_names_carry_country_year_and_revision() -> None:
    from node.flow import run_name

    assert run_name("NO", 2025) == "node-NO-2025"
    assert run_name("US", 2024, 3) == "node-US-2024-r3"


def test_the_node_prefect_home_is_beside_node_toml_unless_set(tmp_path: Path) -> None:
    config = tmp_path / "nodes" / "NO" / "node.toml"
    env = node_prefect_env(config, {})
    assert env == {"PREFECT_HOME": str(tmp_path / "nodes" / "NO" / PREFECT_DIR),
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    assert node_prefect_env(config, {"PREFECT_HOME": "/srv/prefect",
                                     "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "30"}
                            ) == {}


def test_node_commands_give_prefect_the_node_home_before_it_is_imported(
        tmp_path: Path) -> None:
    keygen(tmp_path / "NO.pem")
    config = _write(tmp_path, NODE)
    probe = (
        "import sys\n"
        "from emsbench.cli import build_parser, main\n"
        "build_parser()\n"
        "assert 'prefect' not in sys.modules, 'parsing the command line imported Prefect'\n"
        f"assert main(['node', 'status', '--config', {str(config)!r}]) == 0\n"
        "assert 'prefect' not in sys.modules, 'node status imported Prefect'\n"
        "from prefect.settings import get_current_settings\n"
        "print(get_current_settings().home)\n")

    def home(**extra: str) -> Path:
        proc = subprocess.run([sys.executable, "-c", probe], env=_env(**extra), cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return Path(proc.stdout.splitlines()[-1])

    assert home() == tmp_path / PREFECT_DIR
    assert stat.S_IMODE((tmp_path / PREFECT_DIR).stat().st_mode) == 0o700
    mine = tmp_path / "elsewhere"
    assert home(PREFECT_HOME=str(mine)) == mine


def test_serve_says_what_is_missing(tmp_path: Path) -> None:
    keygen(tmp_path / "NO.pem")

    def serve(text: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "emsbench.cli", "node", "serve", "--config",
             str(_write(tmp_path, text))], env=_env(**env), cwd=tmp_path,
            capture_output=True, text=True, timeout=120)

    unscheduled = serve(NODE)
    assert unscheduled.returncode == 2
    assert "has no [[schedule]]: add one" in unscheduled.stderr
    no_server = serve(NODE + SCHEDULES)
    assert no_server.returncode == 2
    assert "needs a running Prefect server: start one with `bash scripts/prefect-server.sh" \
           in no_server.stderr
    gone = serve(NODE + SCHEDULES, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    assert gone.returncode == 2 and "no Prefect server answers at PREFECT_API_URL" in gone.stderr


# --- a real server, a served node -----------------------------------------------------------


@dataclass(frozen=True)
class Server:
    api: str
    port: int
    node: Path  # the node folder whose Prefect home holds the server's database
    output: Path


def _tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``scripts/prefect-server.sh NODE_FOLDER`` on a free port that is not 4200, with a
    small node in that folder (data for 2025 only, a config for 2024 with schedules)."""
    node = tmp_path_factory.mktemp("node")
    generate("NO", 2025, node / "NO-2025.parquet", rows=1000, seed=3)
    keygen(node / "NO.pem")
    _write(node, NODE + SCHEDULES)
    output = node.parent / "server.log"
    port = free_port()
    while port == 4200:
        port = free_port()
    with output.open("wb") as out:
        proc = subprocess.Popen(["bash", str(SERVER_SCRIPT), str(node)], env=_env(PORT=str(port)),
                                cwd=node.parent, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server script exited ({proc.returncode}):\n{_tail(output)}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no server after {STARTUP_TIMEOUT:.0f} s:\n" \
                                                f"{_tail(output)}"
            time.sleep(0.25)
        yield Server(api, port, node, output)
    finally:
        stop_process(proc)


def test_the_server_script_serves_its_ui_for_the_port_it_prints(server: Server) -> None:
    printed = server.output.read_text(encoding="utf-8")
    assert f"export PREFECT_API_URL=http://127.0.0.1:{server.port}/api" in printed
    # The UI asks /ui-settings where its API is: it must be this server, not port 4200.
    settings = httpx.get(f"http://127.0.0.1:{server.port}/ui-settings", timeout=10).json()
    assert settings["api_url"] == server.api
    page = httpx.get(f"http://127.0.0.1:{server.port}/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    # The database is in the node's Prefect home, not in ~/.prefect.
    assert (server.node / PREFECT_DIR / "prefect.db").is_file()
    assert f"database: {server.node / PREFECT_DIR}/prefect.db" in printed


def test_a_run_against_the_server_loads_no_server_code(server: Server, tmp_path: Path
                                                       ) -> None:
    """With PREFECT_API_URL set, Prefect's own server code (two seconds to import) is not
    needed, and a one-shot run is named like a served one."""
    generate("NO", 2025, tmp_path / "NO-2025.parquet", rows=300, seed=4)
    keygen(tmp_path / "NO.pem")
    config = _write(tmp_path, NODE.replace("year = 2024", "year = 2025"))
    probe = ("import sys\nfrom emsbench.cli import main\n"
             f"assert main(['node', 'run', '--config', {str(config)!r}]) == 0\n"
             "print(sorted(m for m in sys.modules if m.startswith('prefect.server')))\n")
    proc = subprocess.run([sys.executable, "-c", probe], env=_env(PREFECT_API_URL=server.api),
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
    runs = httpx.post(f"{server.api}/flow_runs/filter", timeout=10, json={
        "sort": "START_TIME_DESC", "limit": 1}).json()
    assert runs[0]["name"] == "node-NO-2025-r1" and runs[0]["state_type"] == "COMPLETED"


def _wait_for(what: str, check: Any, proc: subprocess.Popen[bytes], log: Path,
              timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"emsbench node serve exited ({proc.returncode}):\n{_tail(log)}")
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s:\n{_tail(log)}"
        time.sleep(0.5)


def test_a_served_node_runs_its_deployment_and_the_server_records_it(server: Server) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.exceptions import ObjectNotFound

    config = server.node / "node.toml"
    log = server.node.parent / "serve.log"
    with log.open("wb") as out:
        # Poll the server every second for runs to start (the default is every 10 s).
        proc = subprocess.Popen(
            [sys.executable, "-m", "emsbench.cli", "node", "serve", "--config", str(config)],
            env=_env(PREFECT_API_URL=server.api, PREFECT_RUNNER_POLL_FREQUENCY="1"),
            cwd=server.node.parent, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        with SyncPrefectClient(server.api) as client:
            def deployment(name: str) -> Any:
                try:
                    return client.read_deployment_by_name(f"emsbench-node/{name}")
                except ObjectNotFound:
                    return None

            monthly = _wait_for("deployment", lambda: deployment("node-NO-monthly"), proc, log,
                                STARTUP_TIMEOUT)
            annual = _wait_for("deployment", lambda: deployment("node-NO-annual"), proc, log,
                               30)
            # The schedules of node.toml, the node's time zone unless the schedule has one.
            [schedule] = monthly.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == \
                   ("0 6 2 * *", "Europe/Oslo", True)
            assert monthly.parameters == {"config_path": str(config), "year": 2025}
            assert not monthly.paused
            [schedule] = annual.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 6 15 2 *", "UTC")
            assert annual.parameters["year"] == "previous"

            flow_run = client.create_flow_run_from_deployment(monthly.id)

            def finished() -> Any:
                run = client.read_flow_run(flow_run.id)
                return run if run.state is not None and run.state.is_final() else None

            run = _wait_for("finished run", finished, proc, log, RUN_TIMEOUT)
            assert run.state is not None and run.state.is_completed(), run.state
            # node.toml says 2024; the schedule's year 2025 chose the year and the data file.
            assert run.name == "node-NO-2025-r1"
            artifacts = client.read_artifacts(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            keys = {a.key for a in artifacts}
            assert {"data-quality-no-2025", "release-preview-no-2025"} <= keys, keys
            assert len(list((server.node / "outbox").glob("NO-2025-*.json"))) == 1
            # The run's process writes the node's log, as a one-shot run does.
            logged = (server.node / "reports" / "node.log").read_text(encoding="utf-8")
            assert "rows read" in logged and "catalogue release" in logged, logged[-2000:]

            # SIGTERM (as a service manager stops it): a clean exit, schedules paused.
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, _tail(log)
            assert "stopped; the schedules are paused" in log.read_text(encoding="utf-8")
            assert client.read_deployment(monthly.id).paused
    finally:
        stop_process(proc)
