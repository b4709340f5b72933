"""Proof of delivery: a hub receipt counts only if the hub's key signed it and it names
exactly the document that was sent.

A receipt is a DSSE envelope (payload type ``RECEIPT_TYPE``) whose payload is a
``emsbench.wire.Receipt``. It proves delivery of one document when its signature verifies
against the hub's public key from ``node.toml`` and its submission id, kind, country, year,
catalogue, revision and payload hash are those of the envelope the node sent. Anything
less (another key, another document, a hash of other bytes) proves nothing, and the entry
stays pending.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from emsbench import dsse
from emsbench.wire import RECEIPT_TYPE, Document, Receipt, kind_of


class ReceiptError(ValueError):
    """The receipt does not prove delivery of the document (the reason is the message)."""


def load_hub_key(path: Path) -> Ed25519PublicKey:
    """The hub's public key from its ``.pub`` file (base64 of the raw 32 bytes)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read hub_key {path}: {exc.strerror}; ask the hub operator "
                         "for the hub's public key file (hub-key.pub)") from exc
    try:
        return dsse.public_key_from_b64(text)
    except ValueError as exc:
        raise ValueError(f"hub_key {path} is not a base64 Ed25519 public key (44 characters, "
                         "as in the hub's hub-key.pub); ask the hub operator for that file"
                         ) from exc


def payload_sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def check_receipt(envelope: Any, hub_key: Ed25519PublicKey | None, doc: Document,
                  sent_sha256: str) -> Receipt:
    """The receipt in ``envelope`` if it proves that ``doc`` (payload hash ``sent_sha256``)
    was stored; raise ``ReceiptError`` otherwise.

    ``hub_key`` None skips the signature check: only for reading back a receipt file the
    node itself wrote after verifying it, when no hub key is configured.
    """
    try:
        if hub_key is None:
            payload = _unverified_payload(envelope)
        else:
            payload, _ = dsse.verify(envelope, {dsse.key_id(hub_key): hub_key},
                                     payload_type=RECEIPT_TYPE)
    except dsse.SignatureError as exc:
        reason = {"untrusted_key": "it is not signed by the hub key in node.toml (hub_key)",
                  "bad_signature": "its signature does not verify (altered in transit?)",
                  "unsigned": "it carries no signature"}.get(exc.code, str(exc))
        raise ReceiptError(f"the receipt is not valid: {reason}") from exc
    try:
        receipt = Receipt.model_validate_json(payload)
    except ValidationError as exc:
        raise ReceiptError(f"the receipt is not valid: its payload is not a receipt "
                           f"({exc.error_count()} error(s), first: {exc.errors()[0]['msg']})"
                           ) from exc
    want = {"submission_id": doc.submission_id, "kind": kind_of(doc), "country": doc.country,
            "year": doc.period.year, "catalogue": doc.catalogue, "revision": doc.revision,
            "payload_sha256": sent_sha256}
    wrong = [k for k, v in want.items() if getattr(receipt, k) != v]
    if wrong:
        raise ReceiptError(f"the receipt is for another document: its {', '.join(wrong)} "
                           f"differ(s) from what was sent")
    return receipt


def _unverified_payload(envelope: Any) -> bytes:
    """The payload of a receipt envelope, its form checked but its signature not."""
    if not isinstance(envelope, dict) or envelope.get("payloadType") != RECEIPT_TYPE:
        raise dsse.SignatureError(f"payloadType must be {RECEIPT_TYPE!r}")
    try:
        return base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise dsse.SignatureError("payload is missing or not base64") from exc
