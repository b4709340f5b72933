"""Opening and judging a signed document: the hub's checks, written once.

The API runs them on every request, at the time it receives it; the ledger runs the very
same functions on every stored record, at the time the hub received it, so a record that
passed under an older catalogue, policy or trust registry is caught later by the same rule.

``open_document`` checks, in this order, the cheap and unauthenticated things first: the
signature against the trust registry (retired keys included), the key's validity at that
time, the country the key signs for, and the wire model. ``judge`` then applies
``emsbench.conformance``. Both raise ``ApiError`` (an HTTP status, a stable code and a
message for the node's operator); the ledger turns it into the reason a record is set
aside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from emsbench import dsse
from emsbench.conformance import CONFLICT_CODES, Policy, Problem, check_document
from emsbench.wire import PAYLOAD_MODELS, Document
from hub.catalogues import Catalogues
from hub.trust import KeyRefused, TrustRegistry

# Status for each reason dsse.verify gives. Unsigned and bad signatures are
# authentication failures (401); a well-signed envelope by a key we do not trust is
# authenticated but not authorised (403).
_SIGNATURE_STATUS = {"invalid_envelope": 400, "unsigned": 401, "untrusted_key": 403,
                     "bad_signature": 401}


class ApiError(Exception):
    """A refusal with an HTTP status, a stable code and a message for the node operator.

    ``audited`` says the refusal already has its audit entry (the store writes it in the
    same transaction as its decision).
    """

    def __init__(self, status: int, code: str, message: str, *, country: str | None = None,
                 submission_id: str | None = None,
                 problems: list[dict[str, str]] | None = None, audited: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.country, self.submission_id = country, submission_id
        self.problems = problems or []
        self.audited = audited

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Opened:
    """A document whose signature, key and model checked out."""

    doc: Document
    payload: bytes
    keyid: str
    country: str


def open_document(envelope: Any, trust: TrustRegistry, at: datetime,
                  payload_type: str | None = None) -> Opened:
    """Verify ``envelope`` as the hub does at time ``at``; ``payload_type`` is what the
    route expects (None: whichever document type the envelope names)."""
    if payload_type is None:
        named = envelope.get("payloadType") if isinstance(envelope, dict) else None
        if named not in PAYLOAD_MODELS:
            raise ApiError(400, "invalid_envelope", f"unknown payload type {named!r}")
        payload_type = str(named)
    try:
        payload, keyid = dsse.verify(envelope, trust.public_keys, payload_type=payload_type)
    except dsse.SignatureError as exc:
        raise ApiError(_SIGNATURE_STATUS.get(exc.code, 400), exc.code, str(exc)) from exc
    key_country = trust.country_of(keyid)
    try:
        trust.check_valid(keyid, at)
    except KeyRefused as exc:
        raise ApiError(403, exc.code, str(exc), country=key_country) from exc
    # Check the claimed country before the full schema: a node signing for another
    # country is a trust problem and must be reported as such, even if the payload is
    # also malformed.
    try:
        claimed = json.loads(payload).get("country")
    except (ValueError, AttributeError, RecursionError):
        claimed = None
    if isinstance(claimed, str) and claimed != key_country:
        # The claim is attacker text: quoted, cut short and ASCII before it is echoed or
        # audited (a lone surrogate once broke the audit write).
        raise ApiError(403, "country_mismatch", f"the payload is for country "
                       f"{ascii(claimed[:8])} but the signing key is trusted for "
                       f"{key_country} only", country=key_country)
    model = PAYLOAD_MODELS[payload_type]
    try:
        doc: Document = model.model_validate_json(payload)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                  for e in exc.errors()[:10]]
        more = f" (+{exc.error_count() - 10} more)" if exc.error_count() > 10 else ""
        raise ApiError(422, "invalid_payload", f"the payload is not a valid {model.__name__}: "
                       + "; ".join(errors) + more, country=key_country) from exc
    if doc.country != key_country:  # e.g. the raw JSON could not be read above
        raise ApiError(403, "country_mismatch", f"the payload is for country {doc.country} "
                       f"but the signing key is trusted for {key_country} only",
                       country=key_country, submission_id=doc.submission_id)
    return Opened(doc, payload, keyid, key_country)


def judge(doc: Document, catalogues: Catalogues, policy: Policy, at: datetime) -> None:
    """Raise ``ApiError`` listing every conformance problem of ``doc`` (none: return).

    ``doc`` is judged by the release it names; one the hub does not accept is refused,
    with the problems it has against the current release listed after that headline."""
    release = catalogues.get(doc.catalogue)
    judged_by = release or catalogues.current
    problems = check_document(doc, judged_by.specs, judged_by.id, policy, at)
    if release is None:
        problems.insert(0, Problem(
            "spec_mismatch", f"catalogue {doc.catalogue[:12]}… is not a release this hub "
            f"accepts (it accepts {catalogues.describe()}); run the node on one of them"))
    if problems:
        first = problems[0]
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ApiError(409 if first.code in CONFLICT_CODES else 422, first.code, shown + more,
                       country=doc.country, submission_id=doc.submission_id,
                       problems=[{"code": p.code, "message": p.message} for p in problems[:50]])
