"""Compute, protect, package, check and sign a country's documents.

Plain functions; ``node.flow`` orders them as Prefect tasks. A document is checked with the
hub's own rules (``emsbench.conformance``) before it is signed, and written to the outbox
before anything is sent, so a node keeps an exact copy of every envelope it signed and can
resend it (``node.delivery``; the hub answers an identical resubmission with the same
receipt).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from emsbench import __version__, dsse, model
from emsbench.batch import compute_catalogue
from emsbench.conformance import Policy, Problem, check_document
from emsbench.kinds import Context
from emsbench.specs import IndicatorSpec, catalogue_sha256
from emsbench.wire import (
    SUBMISSION_TYPE,
    WITHDRAWAL_TYPE,
    DataQuality,
    DataSource,
    Document,
    IndicatorResult,
    Period,
    Submission,
    Withdrawal,
    kind_of,
)
from node import audit
from node.config import NodeConfig
from node.disclosure import full_grid, protect_quality, protect_release, quality_suppressions
from node.ingest import IngestReport
from node.outbox import (
    Signed,
    locked,
    next_revision,
    read_outbox,
    read_signed,
    write_envelope,
    write_hold,
)
from node.suppression import Suppression, suppressions_of


class SigningRefused(ValueError):
    """The node's own check found problems; nothing was signed."""


def compute_all(con: duckdb.DuckDBPyConnection, specs: list[IndicatorSpec],
                threshold: int, progress: Callable[[str], None] | None = None,
                ctx: Context | None = None) -> list[IndicatorResult]:
    """Every spec computed in the sandbox, with disclosure control applied; ``ctx``: the
    node's country, year and official population (for rates). The list returned is a
    ``node.suppression.Protected``: it also holds every suppression and its reason."""
    results = compute_catalogue(con, specs, ctx=ctx)  # one scan (emsbench.batch)
    raw = [full_grid(result, spec, ctx) for result, spec in zip(results, specs, strict=True)]
    if progress:
        progress(f"  computed {len(specs)} indicators in one scan")
    # Each kind's own rule, then secondary suppression across margins: indicators on one
    # population must not give each other's withheld counts away.
    return protect_release(raw, specs, threshold)


def build_submission(country: str, year: int, threshold: int, report: IngestReport,
                     results: list[IndicatorResult], *, catalogue: str, revision: int,
                     created_at: datetime | None = None,
                     source: DataSource | None = None) -> Submission:
    # Every count leaves through the small-count rule, the row totals included: a file of
    # three rows would otherwise say so.
    read, accepted, reasons = protect_quality(report.rows_read, report.rows_accepted,
                                              report.rejected_by_reason, threshold)
    quality = DataQuality(rows_read=read, rows_accepted=accepted,
                          rejected_by_reason=reasons)
    return Submission(
        submission_id=_new_id(country, year), country=country, period=Period(year=year),
        catalogue=catalogue, revision=revision, created_at=created_at or datetime.now(UTC),
        software_version=__version__, model_version=model.MODEL_VERSION,
        disclosure_threshold=threshold, data_quality=quality, indicators=list(results),
        source=source)


def release_suppressions(results: list[IndicatorResult], report: IngestReport,
                         submission: Submission) -> list[Suppression]:
    """Why each count of ``submission`` was withheld or coarsened, for its release preview
    (never sent): the cells' reasons ``compute_all`` recorded, then the data quality's."""
    q = submission.data_quality
    return [*suppressions_of(results), *quality_suppressions(
        report.rows_read, report.rows_accepted, report.rejected_by_reason,
        (q.rows_read, q.rows_accepted, dict(q.rejected_by_reason)),
        submission.disclosure_threshold)]


def build_withdrawal(country: str, year: int, catalogue: str, revision: int, reason: str,
                     created_at: datetime | None = None) -> Withdrawal:
    return Withdrawal(submission_id=_new_id(country, year), country=country,
                      period=Period(year=year), catalogue=catalogue, revision=revision,
                      created_at=created_at or datetime.now(UTC), reason=reason)


def _new_id(country: str, year: int) -> str:
    return f"{country}-{year}-{uuid.uuid4().hex[:16]}"


def self_check(doc: Document, specs: list[IndicatorSpec], threshold: int,
               at: datetime | None = None) -> list[Problem]:
    """What the hub would object to, judged by the same rules, before anything is signed."""
    return check_document(doc, specs, catalogue_sha256(specs),
                          Policy(min_disclosure_threshold=threshold), at or datetime.now(UTC))


def sign_document(doc: Document, key_path: Path) -> dict[str, Any]:
    payload_type = WITHDRAWAL_TYPE if isinstance(doc, Withdrawal) else SUBMISSION_TYPE
    return dsse.sign(doc.to_bytes(), dsse.load_private_key(key_path), payload_type=payload_type)


def seal(doc: Document, specs: list[IndicatorSpec], cfg: NodeConfig,
         hold: bool = False) -> Signed:
    """Check, sign, write to the outbox and log a document; refuse to sign a faulty one.
    With ``hold`` the document waits for the operator's approval before it can be sent."""
    problems = self_check(doc, specs, cfg.disclosure_threshold)
    if problems:
        raise SigningRefused(
            f"refusing to sign {doc.submission_id}: {len(problems)} problem(s) the hub "
            f"would refuse it for: " + "; ".join(map(str, problems)))
    audit.check_appendable(cfg.audit_log)
    envelope = sign_document(doc, cfg.key)
    if hold:  # first: a crash must never leave a held document without its hold
        write_hold(cfg.outbox, doc.submission_id)
    path = write_envelope(cfg.outbox, envelope, doc.submission_id)
    signed = read_signed(path)  # what is on disk is what gets sent and logged
    audit.append(cfg.audit_log, "signed", {
        "submission_id": doc.submission_id, "kind": kind_of(doc), "year": doc.period.year,
        "revision": doc.revision, "catalogue": doc.catalogue,
        "payload_sha256": signed.payload_sha256, "held_for_review": hold})
    return signed


def seal_next_revision(build: Callable[[str, int], Document], country: str, year: int,
                       specs: list[IndicatorSpec], cfg: NodeConfig,
                       hold: bool = False) -> Signed:
    """Seal ``build(catalogue, revision)`` as the next revision of its period.

    The revision is 1 + the highest in the outbox for (country, year, catalogue of
    ``specs``); the outbox is locked from reading it to writing the new envelope.
    """
    catalogue = catalogue_sha256(specs)
    with locked(cfg.outbox):
        revision = next_revision(read_outbox(cfg.outbox), country, year, catalogue)
        doc = build(catalogue, revision)
        if (doc.country, doc.period.year, doc.catalogue, doc.revision) != \
                (country, year, catalogue, revision):
            raise ValueError(f"the document built is for {doc.country} {doc.period.year} "
                             f"revision {doc.revision}, not {country} {year} revision "
                             f"{revision} of this catalogue")
        return seal(doc, specs, cfg, hold)


def summary(submission: Submission) -> str:
    """One line per indicator for the log: cells and how many were withheld."""
    lines = []
    for r in submission.indicators:
        withheld = sum(c.suppressed for c in r.cells)
        lines.append(f"{r.spec_id} v{r.spec_version}: {len(r.cells)} cells, {withheld} withheld")
    return "\n".join(lines)
