"""The node's Prefect flows: the order of the steps, nothing else.

``emsbench-node`` computes, signs and (with a hub) delivers one submission;
``emsbench-node-send`` delivers what the outbox still holds as pending. Each task is a thin
wrapper over a plain function in ``node.*`` or ``emsbench``. Tasks run in the flow's own
thread and pass the sandboxed DuckDB connection along, so no rows are ever serialised or
persisted by Prefect (caching and result persistence are off). The rows live in the
node's working folder (``node.workspace``) only while the run lasts.

``deliver`` retries a transient failure (no connection, 5xx, 503 overload) with backoff and
never retries a refusal: the hub answers a 4xx the same way every time. A delivery that
fails does not fail the flow: its outcome says so, and the signed document stays pending
in the outbox for ``emsbench node send`` to deliver later.

Without ``PREFECT_API_URL`` Prefect runs on a temporary embedded server; with it, the runs
appear in that server's UI. ``emsbench node serve`` (``node.serve``) deploys ``node_flow``
on the schedules of node.toml, each with its ``year``.

A run is named ``node-<COUNTRY>-<YEAR>`` (``run_name``) once its config is read, and
``node-<COUNTRY>-<YEAR>-r<REVISION>`` once it has signed that revision (the revision is
only certain then, under the outbox lock; reading every document in the outbox twice to
guess it sooner would cost more than a small run). Few tasks, and ``opaque`` around large
inputs (Prefect would otherwise walk every spec and cell of them for each task), keep a
run's fixed cost low.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import duckdb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.settings import temporary_settings
from prefect.states import Completed
from prefect.utilities.annotations import opaque

from emsbench.kinds import Context
from emsbench.release import check_release
from emsbench.specs import IndicatorSpec, load_specs
from emsbench.wire import IndicatorResult, Receipt, Submission
from node import submission as sub
from node.config import NodeConfig, YearChoice, load_node_config, node_context
from node.console import log_to, say
from node.delivery import HubUnavailable, Outcome, attempt
from node.ingest import IngestReport, InputError, open_missions
from node.outbox import Entry, Signed, pending, read_outbox, read_signed
from node.preview import Preview, preview_rows, suppressions, write_preview
from node.quality_report import markdown, warnings, write_quality_report
from node.receipt import load_hub_key
from node.workspace import workspace

T = TypeVar("T")
RETRIES = 4
RETRY_DELAYS: list[float] = [1, 2, 4, 8]  # seconds before retry 1, 2, 3, 4
RETRY_AFTER_CAP = 30.0  # an overloaded hub's Retry-After is honoured up to this many seconds


@dataclass(frozen=True)
class NodeResult:
    submission: Submission
    outbox_file: Path
    delivery: Outcome | None  # None: no hub configured, or held for review
    ingest: IngestReport | None = None
    preview: Preview | None = None
    held: bool = False  # signed and waiting for `node approve`

    @property
    def receipt(self) -> Receipt | None:
        return self.delivery.receipt if self.delivery else None


@dataclass(frozen=True)
class Prepared:
    """What a run knows before it reads a row."""

    cfg: NodeConfig
    specs: list[IndicatorSpec]
    ctx: Context


def run_name(country: str, year: int, revision: int | None = None) -> str:
    """The flow run's name in the Prefect UI: ``node-NO-2025``, and ``node-NO-2025-r3``
    once it has signed revision 3."""
    return f"node-{country}-{year}" + (f"-r{revision}" if revision is not None else "")


def _whole(value: T) -> T:
    """``value`` as a task input Prefect takes as it is, without walking into every spec,
    cell or count in it (which costs more than the task for a small node)."""
    return cast(T, opaque(value))


def _name_run(name: str) -> None:
    """Rename the current flow run (a deployment's run starts with a generated name)."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None or ctx.flow_run.name == name:
        return
    ctx.client.set_flow_run_name(ctx.flow_run.id, name)
    ctx.flow_run.name = name


@task(name="load-config", cache_policy=NO_CACHE, persist_result=False)
def load_config_task(path: Path) -> NodeConfig:
    return load_node_config(path)


@task(name="prepare", cache_policy=NO_CACHE, persist_result=False)
def prepare_task(config_path: Path, year: YearChoice = None) -> Prepared:
    """The config for the year asked, the specs (checked against the signed release) and
    the official population: one task, not one each."""
    cfg = load_node_config(config_path, year)
    log_to(cfg.reports / "node.log")  # a served run's process has no log file yet
    return Prepared(cfg, _checked_specs(cfg), _context(cfg))


def _checked_specs(cfg: NodeConfig) -> list[IndicatorSpec]:
    specs = load_specs(cfg.specs)
    if cfg.release is None or cfg.approvers is None:
        get_run_logger().warning("no signed catalogue release configured (release, "
                                 "approvers): running the specs as they are on disk")
        say(f"warning: no signed catalogue release configured: running the {len(specs)} "
            "specs as they are on disk")
        return specs
    release, names = check_release(specs, cfg.release, cfg.approvers)
    get_run_logger().info("catalogue release %s, approved by %s", release.name,
                          ", ".join(names))
    say(f"catalogue release {release.name} ({len(specs)} indicators), approved by "
        f"{', '.join(names)}")
    return specs


@task(name="read-and-validate", cache_policy=NO_CACHE, persist_result=False)
def read_task(cfg: NodeConfig, workdir: Path, specs: list[IndicatorSpec]
              ) -> tuple[duckdb.DuckDBPyConnection, IngestReport]:
    # A column the catalogue stratifies on cannot be absent: every figure would go to
    # stratum "unknown" and still look valid.
    strata = tuple(dict.fromkeys(c for s in specs for c in s.strata))
    say(f"reading {cfg.data} ({cfg.format})")
    con, report = open_missions(cfg.data, cfg.year, workdir, threads=cfg.threads or None,
                                timezone=cfg.time_zone, encoding=cfg.encoding or None,
                                required=strata, fmt=cfg.format, progress=say,
                                rejects=cfg.reports / f"rejects-{cfg.year}.csv",
                                memory_limit=cfg.memory_limit, spill=cfg.spill)
    say(f"  {report.rows_read:,} rows read, {report.rows_accepted:,} accepted")
    log = get_run_logger()
    log.info("%s: %d rows read, %d accepted, rejected by reason: %s", cfg.data.name,
             report.rows_read, report.rows_accepted, report.rejected_by_reason or "none")
    if report.nulled_by_reason:
        log.warning("values set to empty (optional fields that failed a check): %s",
                    report.nulled_by_reason)
    if report.out_of_order:
        log.warning("accepted rows with times out of order (specs exclude negative "
                    "intervals): %s", report.out_of_order)
    if report.rejects_file is not None:
        log.info("every rejected row and emptied value: %s", report.rejects_file)
    quality = write_quality_report(report, str(cfg.data), cfg.country, cfg.year, cfg.reports)
    create_markdown_artifact(markdown(report, str(cfg.data)) + f"\nReport: `{quality}`\n",
                             key=f"data-quality-{cfg.country.lower()}-{cfg.year}",
                             description="What reading the national file found")
    log.info("data-quality report: %s", quality)
    rejected = report.rows_read - report.rows_accepted
    if report.rows_read and rejected / report.rows_read > cfg.max_rejected_share:
        con.close()
        raise InputError(
            f"{rejected:,} of {report.rows_read:,} rows ({rejected / report.rows_read:.0%}) "
            f"were rejected, more than max_rejected_share ({cfg.max_rejected_share:.0%}): "
            f"the export looks broken, so nothing was signed. See {quality} and "
            f"{report.rejects_file}")
    if report.missing_optional_columns:
        log.warning("columns absent from the input (treated as empty): %s",
                    ", ".join(report.missing_optional_columns))
    if report.ignored_columns:
        log.warning("columns not in the common model (ignored): %s",
                    ", ".join(report.ignored_columns))
    return con, report


def _context(cfg: NodeConfig) -> Context:
    """Country, year and the official population rates divide by (node.toml key
    ``population``, else the shipped reference data), before any row is read."""
    ctx = node_context(cfg)
    source = cfg.population if cfg.population is not None else "the shipped reference data"
    total = sum((ctx.population or {}).values())
    get_run_logger().info("official population of %s %d: %d persons, from %s", cfg.country,
                          cfg.year, total, source)
    return ctx


@task(name="compute-indicators", cache_policy=NO_CACHE, persist_result=False)
def compute_task(con: duckdb.DuckDBPyConnection, specs: list[IndicatorSpec],
                 threshold: int, ctx: Context | None = None) -> list[IndicatorResult]:
    say(f"computing {len(specs)} indicators")
    try:
        return sub.compute_all(con, specs, threshold, progress=say, ctx=ctx)
    finally:
        con.close()


@task(name="build-and-sign", cache_policy=NO_CACHE, persist_result=False)
def sign_task(cfg: NodeConfig, specs: list[IndicatorSpec], report: IngestReport,
              results: list[IndicatorResult]) -> Signed:
    def build(catalogue: str, revision: int) -> Submission:
        return sub.build_submission(cfg.country, cfg.year, cfg.disclosure_threshold, report,
                                    results, catalogue=catalogue, revision=revision,
                                    source=cfg.data_source())

    signed = sub.seal_next_revision(build, cfg.country, cfg.year, specs, cfg, hold=cfg.review)
    get_run_logger().info("signed submission %s (revision %d) written to %s\n%s",
                          signed.submission_id, signed.doc.revision, signed.path,
                          sub.summary(signed.doc) if isinstance(signed.doc, Submission) else "")
    return signed


@task(name="release-preview", cache_policy=NO_CACHE, persist_result=False)
def preview_task(cfg: NodeConfig, signed: Signed, report: IngestReport,
                 results: list[IndicatorResult]) -> Preview:
    """Write the release preview beside the node and show it in the Prefect UI."""
    recorded = (sub.release_suppressions(results, report, signed.doc)
                if isinstance(signed.doc, Submission) else [])
    preview = write_preview(signed, cfg.reports, recorded)
    if isinstance(signed.doc, Submission):
        create_table_artifact(
            table=preview_rows(signed.doc, suppressions(signed.doc, recorded)),
            key=f"release-preview-{cfg.country.lower()}-{cfg.year}",
            description=f"Every cell submission {signed.submission_id} (revision "
                        f"{signed.doc.revision}) sends; payload SHA-256 "
                        f"{signed.payload_sha256}. File: {preview.html}")
    get_run_logger().info("release preview: %s (%d cells, %d withheld)", preview.html,
                          preview.cells, preview.withheld)
    return preview


@task(name="read-outbox", cache_policy=NO_CACHE, persist_result=False)
def outbox_task(cfg: NodeConfig, only: list[str] | None) -> list[Entry]:
    entries = pending(read_outbox(cfg.outbox, _hub_key(cfg)))
    return [e for e in entries if only is None or e.submission_id in only]


def _hub_key(cfg: NodeConfig) -> Ed25519PublicKey | None:
    return load_hub_key(cfg.hub_key) if cfg.hub_key else None


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: retry only what may succeed later, never a refusal."""
    return isinstance(state.data, HubUnavailable)


def _attempts_left() -> bool:
    ctx = TaskRunContext.get()
    return ctx is not None and ctx.task_run.run_count <= ctx.task.retries


@task(name="deliver", cache_policy=NO_CACHE, persist_result=False, retries=RETRIES,
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=_transient)
def deliver_task(path: Path, cfg: NodeConfig) -> Outcome:
    """One attempt; raises only a transient failure that a retry will follow, so the
    final outcome (even a failed one) is a result, not a traceback in the log."""
    log = get_run_logger()
    if cfg.hub_key is None:  # NodeConfig requires it with hub_url; a caller may not
        raise ValueError("hub_key is required to deliver: set it in node.toml")
    retry_follows = _attempts_left()
    try:
        outcome = attempt(read_signed(path), cfg.hub_url, load_hub_key(cfg.hub_key),
                          cfg.audit_log, retry_follows=retry_follows)
    except HubUnavailable as exc:
        log.warning("%s", exc)
        # An overloaded hub says when to come back: wait that long (within reason) on top
        # of the retry's own backoff, so the retry never comes sooner than asked.
        wait = min(exc.retry_after or 0.0, RETRY_AFTER_CAP)
        if wait:
            time.sleep(wait)
        raise
    if outcome.receipt:
        log.info("%s delivered: hub receipt at %s (hub audit entry %d)",
                 outcome.submission_id, outcome.receipt.received_at.isoformat(),
                 outcome.receipt.audit_seq)
    else:
        log.warning("%s %s: %s", outcome.submission_id, outcome.status, outcome.message)
    return outcome


@flow(name="emsbench-node", log_prints=True)
def node_flow(config_path: Path, year: YearChoice = None) -> Any:
    """Returns a ``NodeResult``, in a state named "Completed with warnings" when reading
    the data found something the operator should look at (the Prefect UI shows the name
    and the data-quality artifact). ``year`` overrides node.toml's (``load_node_config``)."""
    prep = prepare_task(config_path, year)
    cfg, specs, ctx = prep.cfg, prep.specs, prep.ctx
    _name_run(run_name(cfg.country, cfg.year))
    with workspace(cfg.workdir) as work:
        if work.removed:
            get_run_logger().warning("removed working files left in %s by a run that did "
                                     "not finish: %s", work.path, ", ".join(work.removed))
        con, report = read_task(cfg, work.path, _whole(specs))
        results = compute_task(con, _whole(specs), cfg.disclosure_threshold, ctx)
    signed = sign_task(cfg, _whole(specs), _whole(report), _whole(results))
    _name_run(run_name(cfg.country, cfg.year, signed.doc.revision))
    preview = preview_task(cfg, _whole(signed), _whole(report), _whole(results))
    # Under review nothing leaves until the operator approves exactly these bytes.
    outcome = deliver_task(signed.path, cfg) if cfg.hub_url and not cfg.review else None
    if not isinstance(signed.doc, Submission):  # sign_task builds submissions only
        raise TypeError(f"{signed.path} holds a {type(signed.doc).__name__}")
    result = NodeResult(signed.doc, signed.path, outcome, report, preview, held=cfg.review)
    found = warnings(report)
    if found:
        return Completed(name="Completed with warnings", data=result,
                         message="; ".join(found)[:1000])
    return result


@flow(name="emsbench-node-send", log_prints=True)
def send_flow(config_path: Path, only: list[str] | None = None) -> list[Outcome]:
    cfg = load_config_task(config_path)
    outcomes: list[Outcome] = []
    for entry in outbox_task(cfg, only):
        if outcomes and outcomes[-1].hub_unreachable:
            # Retries are exhausted: the next entry would only wait as long again.
            outcomes.append(Outcome(entry.submission_id, "pending", "not tried: the hub is "
                                    "unreachable", hub_unreachable=True))
            continue
        outcomes.append(deliver_task(entry.path, cfg))
    return outcomes


def _quiet_heartbeat() -> Any:
    # The heartbeat is off because a node run is short and local.
    return temporary_settings(updates={"flows.heartbeat_frequency": None})  # type: ignore[dict-item]


def run_node(config_path: Path, year: YearChoice = None) -> NodeResult:
    """Compute, sign and (with a hub) deliver this period's submission (node.toml's year,
    or ``year``: "current", "previous" or a year)."""
    with _quiet_heartbeat():
        result = node_flow(Path(config_path), year)
    if not isinstance(result, NodeResult):
        raise TypeError(f"the node flow returned {type(result).__name__}")
    return result


def send_pending(config_path: Path, only: list[str] | None = None) -> list[Outcome]:
    """Deliver every pending outbox entry (or only the given ones), oldest first."""
    with _quiet_heartbeat():
        return send_flow(config_path, only)

