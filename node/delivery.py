"""Deliver one signed outbox entry to the hub and classify the answer.

Plain functions; ``node.flow`` wraps ``attempt`` in a Prefect task with retries. The
result of one attempt is exactly one of:

* a ``Receipt`` that proves delivery: the receipt file is written and ``delivered`` logged;
* ``HubUnavailable``: no connection, a 5xx (503 with ``Retry-After`` when overloaded) or
  429: worth retrying, the entry stays pending;
* ``HubRefused``: the hub's own 4xx error: final, recorded in ``<id>.refused.json`` so the
  entry is never resent;
* ``NotProven``: an answer that proves nothing (a receipt by another key or for other
  bytes, or a 4xx that is not the hub speaking, e.g. a wrong ``hub_url``): final for this
  attempt, the entry stays pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from emsbench.wire import Receipt, kind_of
from node import audit
from node.outbox import Refusal, Signed, write_receipt, write_refusal
from node.receipt import ReceiptError, check_receipt

ENDPOINTS = {"submission": "/v1/submissions", "withdrawal": "/v1/withdrawals"}
TIMEOUT = 60.0
MAX_PROBLEMS_SHOWN = 5


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class DeliveryError(RuntimeError):
    """A delivery attempt that did not prove delivery; the message says what happened."""

    def __init__(self, message: str, submission_id: str) -> None:
        super().__init__(_one_line(message, 1000))
        self.submission_id = submission_id


class HubUnavailable(DeliveryError):
    """Transient: the hub could not be reached or is overloaded; try again later."""

    def __init__(self, message: str, submission_id: str,
                 retry_after: float | None = None) -> None:
        super().__init__(message, submission_id)
        self.retry_after = retry_after


class HubRefused(DeliveryError):
    """Final: the hub refused the document with a 4xx error of its own."""

    def __init__(self, message: str, submission_id: str, refusal: Refusal) -> None:
        super().__init__(message, submission_id)
        self.refusal = refusal


class NotProven(DeliveryError):
    """The answer does not prove delivery; the entry stays pending."""


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery: delivered (with the proven receipt), refused, or still
    pending (with the reason)."""

    submission_id: str
    status: Literal["delivered", "refused", "pending"]
    message: str = ""
    receipt: Receipt | None = None
    hub_unreachable: bool = False


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _hub_error(response: httpx.Response) -> dict[str, Any] | None:
    """The hub's ``{"error": {"code", "message", ...}}`` body, or None if it is not one."""
    try:
        err = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(err, dict) and isinstance(err.get("code"), str) \
            and isinstance(err.get("message"), str):
        return err
    return None


def post(signed: Signed, hub_url: str, client: httpx.Client | None = None) -> httpx.Response:
    """POST the envelope file's exact bytes to the endpoint for its kind."""
    url = hub_url.rstrip("/") + ENDPOINTS[kind_of(signed.doc)]
    try:
        body = signed.path.read_bytes()
    except OSError as exc:
        raise NotProven(f"cannot read {signed.path}: {exc.strerror}",
                        signed.submission_id) from exc
    try:
        if client is None:
            with httpx.Client(timeout=TIMEOUT) as own:
                return own.post(url, content=body,
                                headers={"content-type": "application/json"})
        return client.post(url, content=body, headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        raise HubUnavailable(f"cannot reach the hub at {url}: {exc or type(exc).__name__}",
                             signed.submission_id) from exc


def interpret(response: httpx.Response, signed: Signed,
              hub_key: Ed25519PublicKey) -> tuple[Receipt, dict[str, Any]]:
    """The proven receipt and its envelope from the hub's answer, or the right error."""
    sid, status = signed.submission_id, response.status_code
    err = _hub_error(response)
    if status >= 500 or status == 429:
        what = f" ({err['code']}): {err['message']}" if err else ""
        raise HubUnavailable(f"the hub answered {status}{what}", sid,
                             retry_after=retry_after_seconds(response.headers.get("retry-after")))
    if 400 <= status < 500:
        if err is None:
            raise NotProven(f"the server answered {status} without a hub error, so it is "
                            "probably not the hub: check hub_url in node.toml", sid)
        problems = [p for p in err.get("problems") or [] if isinstance(p, dict)]
        shown = "; ".join(f"{p.get('code')}: {p.get('message')}"
                          for p in problems[:MAX_PROBLEMS_SHOWN])
        more = f" (+{len(problems) - MAX_PROBLEMS_SHOWN} more)" \
            if len(problems) > MAX_PROBLEMS_SHOWN else ""
        refusal = Refusal(status, err["code"], _one_line(err["message"]))
        text = f"the hub refused {sid} ({status} {err['code']}): {refusal.message}"
        raise HubRefused(text + (f" [{shown}{more}]" if shown else ""), sid, refusal)
    if status not in (200, 201):
        raise NotProven(f"the hub answered {status}, not 200 or 201 with a receipt", sid)
    try:
        envelope = response.json()["signed_receipt"]
    except (ValueError, KeyError, TypeError) as exc:
        raise NotProven(f"the hub's answer for {sid} carries no signed receipt, so delivery "
                        "is not proven; it stays pending", sid) from exc
    try:
        receipt = check_receipt(envelope, hub_key, signed.doc, signed.payload_sha256)
    except ReceiptError as exc:
        raise NotProven(f"the hub's answer for {sid} does not prove delivery: {exc}; it "
                        "stays pending (check hub_key in node.toml)", sid) from exc
    return receipt, envelope


def deliver(signed: Signed, hub_url: str, hub_key: Ed25519PublicKey,
            client: httpx.Client | None = None) -> Receipt:
    """One attempt: POST, check the answer, and record a receipt or a refusal beside the
    envelope."""
    response = post(signed, hub_url, client)
    try:
        receipt, envelope = interpret(response, signed, hub_key)
    except HubRefused as exc:
        problems = (_hub_error(response) or {}).get("problems")
        write_refusal(signed.path.parent, signed.submission_id, exc.refusal,
                      problems if isinstance(problems, list) else None, hub_url)
        raise
    write_receipt(signed.path.parent, signed.submission_id, envelope)
    return receipt


def deliver_recorded(signed: Signed, hub_url: str, hub_key: Ed25519PublicKey,
                     audit_log: Path, client: httpx.Client | None = None) -> Receipt:
    """``deliver``, with its outcome appended to the node's audit log."""
    sid = signed.submission_id
    try:
        receipt = deliver(signed, hub_url, hub_key, client)
    except HubRefused as exc:
        audit.append(audit_log, "refused", {"submission_id": sid, "hub_url": hub_url,
                                            "status": exc.refusal.status,
                                            "code": exc.refusal.code})
        raise
    except DeliveryError as exc:
        audit.append(audit_log, "send_failed", {"submission_id": sid, "hub_url": hub_url,
                                                "error": str(exc)})
        raise
    audit.append(audit_log, "delivered", {
        "submission_id": sid, "hub_url": hub_url,
        "received_at": receipt.received_at.isoformat(), "audit_seq": receipt.audit_seq,
        "audit_hash": receipt.audit_hash})
    return receipt


def attempt(signed: Signed, hub_url: str, hub_key: Ed25519PublicKey, audit_log: Path, *,
            retry_follows: bool = False, client: httpx.Client | None = None) -> Outcome:
    """One recorded delivery attempt as an outcome.

    A transient failure is raised (``HubUnavailable``) when ``retry_follows``, so the
    caller's retry policy takes over; on the last attempt it becomes a pending outcome.
    """
    sid = signed.submission_id
    try:
        receipt = deliver_recorded(signed, hub_url, hub_key, audit_log, client)
    except HubUnavailable as exc:
        if retry_follows:
            raise
        return Outcome(sid, "pending", str(exc), hub_unreachable=True)
    except HubRefused as exc:
        return Outcome(sid, "refused", str(exc))
    except DeliveryError as exc:
        return Outcome(sid, "pending", str(exc))
    return Outcome(sid, "delivered", receipt=receipt)
