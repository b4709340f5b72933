"""Hash-chained, append-only logs: one rule for the hub's audit table and the node's file.

Each entry carries ``seq`` (1, 2, 3… with no gap), ``prev_hash`` (the previous entry's hash,
``GENESIS`` for the first) and ``hash`` = SHA-256 of ``prev_hash`` and the entry's fields.
Editing a field changes its hash; deleting or reordering entries breaks the ``seq`` run and
the ``prev_hash`` links. Cutting entries off the *end* leaves a valid shorter chain: that is
what the anchors are for: the hub puts ``(audit_seq, audit_hash)`` into every signed
receipt, so a node holding a receipt can prove the hub's log once reached that entry, and
``verify`` takes such anchors.

Fields are strings, integers, booleans or None only, so the encoding below (JSON with sorted
keys, no spaces, no ASCII escaping) is deterministic; floats, whose text form varies, are
never hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENESIS = "0" * 64
Scalar = str | int | bool | None


def entry_hash(prev_hash: str, seq: int, fields: Mapping[str, Scalar]) -> str:
    """The hash of entry ``seq`` with ``fields`` after the entry whose hash is ``prev_hash``."""
    for key, value in fields.items():
        if not isinstance(value, str | int | bool | type(None)):  # float is not hashed
            raise TypeError(f"audit field {key!r} must be str, int, bool or None, "
                            f"not {type(value).__name__}")
    body = json.dumps({"seq": seq, "fields": dict(fields)}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Link:
    """One stored entry as read back: its position, its fields and the two hashes."""

    seq: int
    fields: Mapping[str, Scalar]
    prev_hash: str
    hash: str


def verify(entries: Iterable[Link], anchors: Mapping[int, str] | None = None) -> list[str]:
    """Every problem in the chain (an empty list means it verifies).

    ``anchors`` maps a sequence number to the hash it must have (from signed receipts);
    an anchor beyond the end of the chain means entries were cut off.
    """
    problems: list[str] = []
    prev, expected_seq = GENESIS, 1
    seen: dict[int, str] = {}
    for e in entries:
        if e.seq != expected_seq:
            problems.append(f"entry {e.seq}: expected sequence number {expected_seq} "
                            "(an entry was deleted, inserted or moved)")
        if e.prev_hash != prev:
            problems.append(f"entry {e.seq}: does not link to the entry before it "
                            "(an entry was deleted, inserted or moved)")
        if entry_hash(e.prev_hash, e.seq, e.fields) != e.hash:
            problems.append(f"entry {e.seq}: its content does not match its hash "
                            "(the entry was edited)")
        seen[e.seq] = e.hash
        prev, expected_seq = e.hash, e.seq + 1
    for seq, want in sorted((anchors or {}).items()):
        if seq not in seen:
            problems.append(f"anchor {seq}: the log has no such entry (entries were cut off "
                            f"after entry {expected_seq - 1})")
        elif seen[seq] != want:
            problems.append(f"anchor {seq}: the entry's hash differs from the one the "
                            "receipt recorded")
    return problems
