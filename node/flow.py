"""The node's Prefect flow: the order of the steps, nothing else.

Each task is a thin wrapper over a plain function in ``node.ingest``, ``node.submission``
or ``emsbench``. Tasks run in the flow's own thread and pass the sandboxed DuckDB
connection along, so no rows are ever serialised or persisted by Prefect (caching and
result persistence are off). Without ``PREFECT_API_URL`` Prefect runs on a temporary
embedded server; with it, the runs appear in that server's UI.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import temporary_settings

from emsbench.specs import IndicatorSpec, load_specs
from emsbench.wire import IndicatorResult, Submission
from node import submission as sub
from node.config import NodeConfig, load_node_config
from node.ingest import IngestReport, open_missions


@dataclass(frozen=True)
class NodeResult:
    submission: Submission
    outbox_file: Path
    receipt: dict[str, Any] | None


@task(name="load-config", cache_policy=NO_CACHE, persist_result=False)
def load_config_task(path: Path) -> NodeConfig:
    return load_node_config(path)


@task(name="load-specs", cache_policy=NO_CACHE, persist_result=False)
def load_specs_task(cfg: NodeConfig) -> list[IndicatorSpec]:
    return load_specs(cfg.specs)


@task(name="read-and-validate", cache_policy=NO_CACHE, persist_result=False)
def read_task(cfg: NodeConfig, workdir: Path) -> tuple[duckdb.DuckDBPyConnection, IngestReport]:
    con, report = open_missions(cfg.data, cfg.year, workdir, threads=cfg.threads or None)
    log = get_run_logger()
    log.info("%s: %d rows read, %d accepted, rejected by reason: %s", cfg.data.name,
             report.rows_read, report.rows_accepted, report.rejected_by_reason or "none")
    if report.missing_optional_columns:
        log.warning("columns absent from the input (treated as empty): %s",
                    ", ".join(report.missing_optional_columns))
    if report.ignored_columns:
        log.warning("columns not in the common model (ignored): %s",
                    ", ".join(report.ignored_columns))
    return con, report


@task(name="compute-indicators", cache_policy=NO_CACHE, persist_result=False)
def compute_task(con: duckdb.DuckDBPyConnection, specs: list[IndicatorSpec],
                 threshold: int) -> list[IndicatorResult]:
    try:
        return sub.compute_all(con, specs, threshold)
    finally:
        con.close()


@task(name="build-and-sign", cache_policy=NO_CACHE, persist_result=False)
def sign_task(cfg: NodeConfig, report: IngestReport,
              results: list[IndicatorResult]) -> tuple[Submission, Path]:
    submission = sub.build_submission(cfg.country, cfg.year, cfg.disclosure_threshold,
                                      report, results)
    envelope = sub.sign_submission(submission, cfg.key)
    path = sub.write_outbox(envelope, cfg.outbox, submission.submission_id)
    get_run_logger().info("signed submission %s written to %s\n%s", submission.submission_id,
                          path, sub.summary(submission))
    return submission, path


@task(name="send-to-hub", cache_policy=NO_CACHE, persist_result=False)
def send_task(path: Path, hub_url: str) -> dict[str, Any]:
    receipt = sub.post(path, hub_url)
    get_run_logger().info("hub receipt: %s", receipt)
    return receipt


@flow(name="emsbench-node", log_prints=True)
def node_flow(config_path: Path) -> NodeResult:
    cfg = load_config_task(config_path)
    specs = load_specs_task(cfg)
    # The validated rows live in a temporary DuckDB file that goes when the flow ends.
    with tempfile.TemporaryDirectory(prefix="emsbench-node-") as workdir:
        con, report = read_task(cfg, Path(workdir))
        results = compute_task(con, specs, cfg.disclosure_threshold)
    submission, path = sign_task(cfg, report, results)
    receipt = send_task(path, cfg.hub_url) if cfg.hub_url else None
    return NodeResult(submission, path, receipt)


def run_node(config_path: Path) -> NodeResult:
    """Run the flow; the heartbeat is off because a node run is short and local."""
    with temporary_settings(updates={"flows.heartbeat_frequency": None}):  # type: ignore[dict-item]
        return node_flow(config_path)
