"""The outbox: every document this node signed, and what became of it, told by files.

For each signed document ``<id>`` the outbox folder holds

* ``<id>.json``: the DSSE envelope exactly as signed (what is sent, byte for byte);
* ``<id>.receipt.json``: the hub's signed receipt, written only after it verified;
* ``<id>.refused.json``: the hub's final refusal (a 4xx), so the document is not resent;
* ``<id>.hold.json``: written *before* the envelope when the node reviews before release
  (``review = true``), so no crash can leave a held document looking sendable;
* ``<id>.approved.json``: the operator's approval, naming the SHA-256 of the payload they
  approved (``emsbench node approve``).

The status of an entry is derived from these files alone, never stored separately, so it
cannot drift from them: ``delivered`` (a receipt that proves it), ``refused``,
``superseded`` (not delivered, and a higher revision of the same country, year and
catalogue exists), ``awaiting_approval`` (held for review, and no approval names exactly
these payload bytes), ``pending`` (to be sent), or ``unreadable`` (the envelope file is
damaged; it is reported, never sent). Every file is written atomically (temporary file,
fsync, rename), so a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from emsbench import dsse
from emsbench.files import write_atomic
from emsbench.wire import PAYLOAD_MODELS, Document, Receipt, kind_of
from node.receipt import ReceiptError, check_receipt, payload_sha256

Status = Literal["pending", "delivered", "refused", "superseded", "awaiting_approval",
                 "unreadable"]
RECEIPT_SUFFIX = ".receipt.json"
REFUSED_SUFFIX = ".refused.json"
HOLD_SUFFIX = ".hold.json"
APPROVAL_SUFFIX = ".approved.json"
_SIDE_FILES = (RECEIPT_SUFFIX, REFUSED_SUFFIX, HOLD_SUFFIX, APPROVAL_SUFFIX)


class OutboxError(ValueError):
    """An outbox file cannot be read as what it should be."""


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Signed:
    """A signed document as read back from its envelope file."""

    path: Path
    envelope: dict[str, Any]
    doc: Document
    payload_sha256: str

    @property
    def submission_id(self) -> str:
        return self.doc.submission_id

    @property
    def period(self) -> tuple[str, int, str]:
        """What revisions count within: (country, year, catalogue)."""
        return self.doc.country, self.doc.period.year, self.doc.catalogue


@dataclass(frozen=True)
class Entry:
    submission_id: str
    path: Path
    status: Status
    signed: Signed | None = None
    receipt: Receipt | None = None
    refusal: Refusal | None = None
    detail: str = ""  # why unreadable, or why a receipt file proves nothing
    sort_time: datetime = datetime.min.replace(tzinfo=UTC)

    @property
    def kind(self) -> str:
        return kind_of(self.signed.doc) if self.signed else "?"

    @property
    def year(self) -> int | None:
        return self.signed.doc.period.year if self.signed else None

    @property
    def revision(self) -> int | None:
        return self.signed.doc.revision if self.signed else None


@contextmanager
def locked(outbox: Path) -> Iterator[None]:
    """Hold the outbox exclusively, so two node commands cannot both take revision n.

    The lock is on the folder itself (``flock``), so no lock file is left behind.
    """
    outbox.mkdir(parents=True, exist_ok=True)
    fd = os.open(outbox, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def envelope_path(outbox: Path, submission_id: str) -> Path:
    return outbox / f"{submission_id}.json"


def receipt_path(outbox: Path, submission_id: str) -> Path:
    return outbox / f"{submission_id}{RECEIPT_SUFFIX}"


def refused_path(outbox: Path, submission_id: str) -> Path:
    return outbox / f"{submission_id}{REFUSED_SUFFIX}"


def hold_path(outbox: Path, submission_id: str) -> Path:
    return outbox / f"{submission_id}{HOLD_SUFFIX}"


def approval_path(outbox: Path, submission_id: str) -> Path:
    return outbox / f"{submission_id}{APPROVAL_SUFFIX}"


def write_hold(outbox: Path, submission_id: str, preview: str = "") -> Path:
    """Mark ``submission_id`` as held for review; call before its envelope is written."""
    body = {"submission_id": submission_id, "held_at": datetime.now(UTC).isoformat(),
            "preview": preview}
    outbox.mkdir(parents=True, exist_ok=True)
    return write_atomic(hold_path(outbox, submission_id),
                        json.dumps(body, indent=2).encode("utf-8"))


def write_approval(outbox: Path, signed: Signed, by: str) -> Path:
    """Record that ``by`` approved exactly the payload of ``signed`` for release."""
    body = {"submission_id": signed.submission_id, "payload_sha256": signed.payload_sha256,
            "approved_by": by, "approved_at": datetime.now(UTC).isoformat()}
    return write_atomic(approval_path(outbox, signed.submission_id),
                        json.dumps(body, indent=2).encode("utf-8"))


def _approved_sha(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_bytes())["payload_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_envelope(outbox: Path, envelope: dict[str, Any], submission_id: str) -> Path:
    return write_atomic(envelope_path(outbox, submission_id), dsse.envelope_bytes(envelope),
                        exclusive=True)


def write_receipt(outbox: Path, submission_id: str, envelope: dict[str, Any]) -> Path:
    """Keep the hub's signed receipt; call only once it has been checked."""
    return write_atomic(receipt_path(outbox, submission_id), dsse.envelope_bytes(envelope))


def write_refusal(outbox: Path, submission_id: str, refusal: Refusal,
                  problems: list[dict[str, Any]] | None = None, hub_url: str = "") -> Path:
    body = {"status": refusal.status, "code": refusal.code, "message": refusal.message,
            "problems": problems or [], "hub_url": hub_url,
            "at": datetime.now(UTC).isoformat()}
    return write_atomic(refused_path(outbox, submission_id),
                        json.dumps(body, indent=2, ensure_ascii=False).encode("utf-8"))


def read_signed(path: Path) -> Signed:
    """The envelope at ``path`` and the document inside it."""
    try:
        envelope = json.loads(path.read_bytes())
    except OSError as exc:
        raise OutboxError(f"cannot read it: {exc.strerror}") from exc
    except (ValueError, RecursionError) as exc:
        raise OutboxError("it is not JSON (damaged or cut short)") from exc
    if not isinstance(envelope, dict):
        raise OutboxError("it is not a DSSE envelope")
    model = PAYLOAD_MODELS.get(str(envelope.get("payloadType")))
    if model is None:
        raise OutboxError(f"unknown payloadType {envelope.get('payloadType')!r}")
    try:
        payload = base64.b64decode(str(envelope["payload"]), validate=True)
    except (KeyError, binascii.Error) as exc:
        raise OutboxError("its payload is missing or not base64") from exc
    try:
        doc = model.model_validate_json(payload)
    except ValidationError as exc:
        raise OutboxError(f"its payload is not a valid {model.__name__.lower()} "
                          f"({exc.errors()[0]['msg']})") from exc
    if path.name != f"{doc.submission_id}.json":
        raise OutboxError(f"the file name differs from its submission id {doc.submission_id}")
    return Signed(path=path, envelope=envelope, doc=doc, payload_sha256=payload_sha256(payload))


def _read_refusal(path: Path) -> Refusal:
    try:
        body = json.loads(path.read_bytes())
        return Refusal(int(body["status"]), str(body["code"]), str(body["message"]))
    except (OSError, ValueError, KeyError, TypeError):
        # Still a refusal: the file exists only because the hub said no.
        return Refusal(0, "unreadable_refusal_file", f"{path.name} is damaged")


def _is_envelope_file(path: Path) -> bool:
    name = path.name
    return (not name.startswith(".") and name.endswith(".json")
            and not name.endswith(_SIDE_FILES))


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return datetime.min.replace(tzinfo=UTC)


def _entry(path: Path, hub_key: Ed25519PublicKey | None) -> Entry:
    try:
        signed = read_signed(path)
    except OutboxError as exc:
        return Entry(path.name.removesuffix(".json"), path, "unreadable",
                     detail=f"{path.name}: {exc}", sort_time=_mtime(path))
    sid, outbox = signed.submission_id, path.parent
    base = Entry(sid, path, "pending", signed=signed,
                 sort_time=signed.doc.created_at.astimezone(UTC))
    rpath = receipt_path(outbox, sid)
    detail = ""
    if rpath.exists():
        try:
            envelope = json.loads(rpath.read_bytes())
            receipt = check_receipt(envelope, hub_key, signed.doc, signed.payload_sha256)
            return replace(base, status="delivered", receipt=receipt)
        except (OSError, ValueError, RecursionError) as exc:  # ReceiptError is a ValueError
            why = exc if isinstance(exc, ReceiptError) else "it is damaged"
            detail = f"{rpath.name} proves nothing ({why}); sending again fetches a new one"
    fpath = refused_path(outbox, sid)
    if fpath.exists():
        return replace(base, status="refused", refusal=_read_refusal(fpath))
    if hold_path(outbox, sid).exists():
        apath = approval_path(outbox, sid)
        if not apath.exists():
            return replace(base, status="awaiting_approval",
                           detail="review the release preview, then `node approve`")
        if _approved_sha(apath) != signed.payload_sha256:
            # An approval proves consent to the bytes it names, not to whatever is here now.
            return replace(base, status="awaiting_approval",
                           detail=f"{apath.name} approves other bytes than {path.name} "
                                  "holds; review and approve again")
    return replace(base, detail=detail)


def _order(entry: Entry) -> tuple[datetime, int, str]:
    return entry.sort_time, entry.revision or 0, entry.submission_id


def read_outbox(outbox: Path, hub_key: Ed25519PublicKey | None = None) -> list[Entry]:
    """Every entry of the outbox with its status, oldest first.

    With ``hub_key`` every receipt file is verified again; without it (no hub configured)
    a receipt file is trusted to have been verified when it was written, but must still
    name this very document.
    """
    if not outbox.is_dir():
        return []
    entries = [_entry(p, hub_key) for p in sorted(outbox.iterdir())
               if p.is_file() and _is_envelope_file(p)]
    highest: dict[tuple[str, int, str], int] = {}
    for e in entries:
        if e.signed:
            highest[e.signed.period] = max(highest.get(e.signed.period, 0), e.signed.doc.revision)
    out = []
    for e in entries:
        if e.status in ("pending", "awaiting_approval") and e.signed and \
                highest[e.signed.period] > e.signed.doc.revision:
            e = replace(e, status="superseded")
        out.append(e)
    return sorted(out, key=_order)


def next_revision(entries: list[Entry], country: str, year: int, catalogue: str) -> int:
    """1 + the highest revision in the outbox for (country, year, catalogue); 1 if none."""
    revisions = [e.signed.doc.revision for e in entries
                 if e.signed and e.signed.period == (country, year, catalogue)]
    return max(revisions, default=0) + 1


def pending(entries: list[Entry]) -> list[Entry]:
    """What ``node send`` delivers, oldest first (``entries`` is in that order already)."""
    return [e for e in entries if e.status == "pending"]
