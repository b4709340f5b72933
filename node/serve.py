"""``emsbench node serve``: the node as a long-lived process that runs its flow on the
schedules of node.toml, against a running Prefect server; and the Prefect home every node
command uses.

Each ``[[schedule]]`` of node.toml (``node.config.Schedule``) becomes one deployment of the
``emsbench-node`` flow, named ``node-<COUNTRY>-<name>``, with its cron (in the node's time
zone unless the schedule names another) and its ``year`` as the flow's parameter. The
process serves them (``prefect.serve``) until Ctrl-C or SIGTERM, one run at a time; on the
way out it pauses their schedules, so no run waits for a process that is gone. A run can
also be started from the UI or with ``prefect deployment run emsbench-node/node-NO-monthly``.

Every ``emsbench node`` command gives Prefect the node's own home, ``.prefect`` beside
node.toml, unless ``PREFECT_HOME`` is set: the temporary server's database, Prefect's
profiles and what it stores of failed tasks stay with the node, and two nodes (or the tests)
on one machine never see each other's runs. Prefect reads its settings once, when it is
first imported, so this happens before that.

Nothing here imports Prefect at module level.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node.config import NodeConfig, Schedule

PREFECT_DIR = ".prefect"  # the node's Prefect home, beside node.toml
# A busy machine can miss Prefect's default 20 s for its temporary server to start.
EPHEMERAL_STARTUP_TIMEOUT = "120"
SERVER_HINT = "bash scripts/prefect-server.sh"


class ServeError(Exception):
    """The node cannot be served; the message says what to do."""


def node_prefect_env(config_path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The Prefect settings a node command adds to ``env`` (what is set there wins): the
    node's own Prefect home, and time for a temporary server to start when no server is
    configured (a one-shot ``node run``)."""
    add = {}
    if not env.get("PREFECT_HOME"):
        add["PREFECT_HOME"] = str(Path(config_path).resolve().parent / PREFECT_DIR)
    if not env.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        add["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = EPHEMERAL_STARTUP_TIMEOUT
    return add


def use_node_prefect(config_path: Path) -> Path | None:
    """Give this process the node's Prefect settings (``node_prefect_env``) and create its
    Prefect home (mode 0700); return the home. Nothing, and None, once Prefect is imported
    (a test session or a program embedding the node): its settings are read by then."""
    if "prefect" in sys.modules:
        return None
    os.environ.update(node_prefect_env(config_path, os.environ))
    home = Path(os.environ["PREFECT_HOME"]).expanduser()
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        pass  # a read-only node folder: commands that need no Prefect still work
    return home


def deployment_name(country: str, schedule: Schedule) -> str:
    return f"node-{country}-{schedule.name}"


def _which_year(schedule: Schedule) -> str:
    return "node.toml's year" if schedule.year is None else f"year {schedule.year}"


def api_url() -> str:
    """The Prefect server the node runs against (``PREFECT_API_URL``, from the environment
    or the node's Prefect profile); ServeError saying what to start when there is none."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ServeError("`emsbench node serve` needs a running Prefect server: start one "
                         f"with `{SERVER_HINT} <node folder>` and set PREFECT_API_URL as it "
                         "prints (e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api)")
    return str(url)


def check_server(url: str) -> None:
    """ServeError unless the Prefect server at ``url`` answers its health check."""
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ServeError(f"no Prefect server answers at PREFECT_API_URL={url} ({exc}): "
                         f"start it with `{SERVER_HINT} <node folder>`, or correct "
                         "PREFECT_API_URL") from None


def deployments(config_path: Path, cfg: NodeConfig) -> list[Any]:
    """One deployment of the node flow per ``[[schedule]]`` of node.toml."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from node.flow import node_flow

    path = str(Path(config_path).resolve())
    out = []
    for s in cfg.schedules:
        zone = s.timezone or cfg.time_zone
        out.append(node_flow.to_deployment(
            name=deployment_name(cfg.country, s), schedule=Cron(s.cron, timezone=zone),
            parameters={"config_path": path, "year": s.year},
            description=f"{cfg.country}, {_which_year(s)}, on '{s.cron}' ({zone}); {path}",
            tags=["emsbench", f"node-{cfg.country}"],
            # The flow is imported by name, whatever folder the node is served from.
            entrypoint_type=EntrypointType.MODULE_PATH))
    return out


def serve(config_path: Path, cfg: NodeConfig, say: Callable[[str], None] = print) -> None:
    """Serve the node's deployments until Ctrl-C or SIGTERM (then their schedules are
    paused). ServeError when node.toml has no schedule or no server answers."""
    if not cfg.schedules:
        raise ServeError(f"{config_path} has no [[schedule]]: add one, e.g.\n\n"
                         "[[schedule]]\nname = \"monthly\"\ncron = \"0 6 2 * *\"   # 06:00 on "
                         "the 2nd of every month\nyear = \"current\"")
    url = api_url()
    check_server(url)
    from prefect import serve as serve_deployments

    served = deployments(config_path, cfg)
    ui = url.removesuffix("/api")
    for s, d in zip(cfg.schedules, served, strict=True):
        say(f"{d.flow_name}/{d.name}: '{s.cron}' ({s.timezone or cfg.time_zone}), "
            f"{_which_year(s)}")
    say(f"serving {len(served)} deployment(s) of {cfg.country} against {url}; runs in the UI "
        f"at {ui}/runs. Ctrl-C stops (and pauses the schedules)")
    # One run at a time: two runs of a node would contend for its working folder.
    serve_deployments(*served, limit=1, print_starting_message=False)
