"""Compute, protect, package, sign and deliver a country's aggregates.

Plain functions; ``node.flow`` orders them as Prefect tasks. The outbox file is written
before anything is sent, so a node keeps an exact copy of every envelope it signed and can
resend it (the hub answers an identical resubmission with the same receipt).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx

from emsbench import __version__, dsse, model
from emsbench.engine import compute
from emsbench.specs import IndicatorSpec
from emsbench.wire import DataQuality, IndicatorResult, Period, Submission
from node.disclosure import protect, protect_counts
from node.ingest import IngestReport


class DeliveryError(RuntimeError):
    """The hub refused the submission or could not be reached."""


def compute_all(con: duckdb.DuckDBPyConnection, specs: list[IndicatorSpec],
                threshold: int) -> list[IndicatorResult]:
    """Every spec computed in the sandbox, with disclosure control applied."""
    return [protect(compute(con, spec), threshold) for spec in specs]


def build_submission(country: str, year: int, threshold: int, report: IngestReport,
                     results: list[IndicatorResult]) -> Submission:
    quality = DataQuality(
        rows_read=report.rows_read, rows_accepted=report.rows_accepted,
        rejected_by_reason=protect_counts(report.rejected_by_reason, threshold))
    return Submission(
        submission_id=f"{country}-{year}-{uuid.uuid4().hex[:16]}", country=country,
        period=Period(year=year), created_at=datetime.now(UTC), software_version=__version__,
        model_version=model.MODEL_VERSION, disclosure_threshold=threshold,
        data_quality=quality, indicators=results)


def sign_submission(submission: Submission, key_path: Path) -> dict[str, Any]:
    return dsse.sign(submission.to_bytes(), dsse.load_private_key(key_path))


def write_outbox(envelope: dict[str, Any], outbox: Path, submission_id: str) -> Path:
    """Write ``<outbox>/<submission-id>.json`` atomically (temp file, then rename)."""
    outbox.mkdir(parents=True, exist_ok=True)
    target = outbox / f"{submission_id}.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_bytes(dsse.envelope_bytes(envelope))
    tmp.replace(target)
    return target


def post(envelope_file: Path, hub_url: str, timeout: float = 60.0) -> dict[str, Any]:
    """POST the outbox file's exact bytes to the hub; return the receipt."""
    url = f"{hub_url}/v1/submissions"
    try:
        resp = httpx.post(url, content=envelope_file.read_bytes(), timeout=timeout,
                          headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        raise DeliveryError(f"cannot reach the hub at {url}: {exc}. The signed submission is "
                            f"kept in {envelope_file}; resend it when the hub is up") from exc
    if resp.status_code not in (200, 201):
        try:
            err = resp.json()["error"]
            detail = f"{err['code']}: {err['message']}"
        except (ValueError, KeyError, TypeError):
            detail = resp.text[:500]
        raise DeliveryError(f"the hub refused {envelope_file.name} ({resp.status_code}) {detail}")
    receipt: dict[str, Any] = resp.json()
    return receipt


def summary(submission: Submission) -> str:
    """One line per indicator for the log: cells and how many were withheld."""
    lines = []
    for r in submission.indicators:
        withheld = sum(c.suppressed for c in r.cells)
        lines.append(f"{r.spec_id} v{r.spec_version}: {len(r.cells)} cells, {withheld} withheld")
    return "\n".join(lines)
