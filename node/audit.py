"""The node's audit log: an append-only, hash-chained JSONL file of what the node signed and
what became of it.

Each line is one event, ``{"seq", "at", "event", ...fields, "prev_hash", "hash"}``, chained
with ``emsbench.chain`` (the same rule as the hub's audit table), so an edited, deleted,
inserted or reordered line is found by ``verify_log``. Events: ``signed``, ``delivered``,
``refused``, ``send_failed``. Appending takes an exclusive lock on the file, reads the last
line for the previous hash and sequence number, and writes one line with flush and fsync,
so two node commands running at once cannot fork the chain and a crash loses at most the
line being written.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from emsbench.chain import GENESIS, Link, Scalar, entry_hash, verify

EVENTS = frozenset({"signed", "approved", "delivered", "refused", "send_failed"})
_RESERVED = frozenset({"seq", "prev_hash", "hash", "at", "event"})
_TAIL_CHUNK = 4096


class AuditError(RuntimeError):
    """The audit log cannot be appended to (unreadable, or its last line is damaged)."""


def _last_line(fh: IO[bytes]) -> bytes:
    """The file's last non-empty line, read backwards from the end (the log only grows)."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    buf = b""
    pos = end
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        fh.seek(pos)
        buf = fh.read(step) + buf
        stripped = buf.rstrip(b"\n")
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
    return buf.rstrip(b"\n")


def _tail_state(fh: IO[bytes], path: Path) -> tuple[int, str]:
    """(seq, hash) of the last entry; (0, GENESIS) for an empty log."""
    line = _last_line(fh)
    if not line.strip():
        return 0, GENESIS
    try:
        last = json.loads(line)
        seq, digest = last["seq"], last["hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(f"the last line of the audit log {path} is damaged, so nothing more "
                         "can be chained to it: run `emsbench node audit verify` and keep "
                         "the file for inspection") from exc
    if not isinstance(seq, int) or not isinstance(digest, str):
        raise AuditError(f"the last line of the audit log {path} is damaged: run "
                         "`emsbench node audit verify` and keep the file for inspection")
    return seq, digest


def check_appendable(path: Path) -> None:
    """Raise ``AuditError`` now if ``append`` would fail (checked before signing, so that
    nothing is signed that the log could not record)."""
    try:
        with path.open("rb") as fh:
            _tail_state(fh, path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AuditError(f"cannot read the audit log {path}: {exc.strerror}") from exc


def append(path: Path, event: str, fields: Mapping[str, Scalar],
           at: datetime | None = None) -> dict[str, Any]:
    """Append one event and return the line as written."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    clash = _RESERVED & set(fields)
    if clash:
        raise ValueError(f"audit fields may not be named {sorted(clash)}")
    body: dict[str, Scalar] = {"at": (at or datetime.now(UTC)).isoformat(), "event": event,
                               **fields}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fh = path.open("a+b")
    except OSError as exc:
        raise AuditError(f"cannot open the audit log {path}: {exc.strerror}") from exc
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        seq, prev = _tail_state(fh, path)
        digest = entry_hash(prev, seq + 1, body)
        line = {"seq": seq + 1, **body, "prev_hash": prev, "hash": digest}
        fh.seek(0, os.SEEK_END)
        fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                 + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    return line


def read_log(path: Path) -> tuple[list[Link], list[str]]:
    """Every readable entry as a chain link, and a problem for every line that is not one."""
    links: list[Link] = []
    problems: list[str] = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        problems.append(f"line {len(lines)}: has no line end (it was cut short)")
    for number, text in enumerate(lines, start=1):
        try:
            entry = json.loads(text)
            if not isinstance(entry, dict):
                raise TypeError("not an object")
            seq, prev, digest = entry.pop("seq"), entry.pop("prev_hash"), entry.pop("hash")
            if not (isinstance(seq, int) and isinstance(prev, str) and isinstance(digest, str)):
                raise TypeError("seq, prev_hash or hash has the wrong type")
            if any(isinstance(v, float | list | dict) for v in entry.values()):
                raise TypeError("a field is not a string, integer, boolean or null")
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"line {number}: not an audit entry ({exc}); it was cut short "
                            "or edited")
            continue
        links.append(Link(seq=seq, fields=entry, prev_hash=prev, hash=digest))
    return links, problems


def verify_log(path: Path) -> tuple[int, list[str]]:
    """(number of entries, every problem); no problem means the chain is intact."""
    links, problems = read_log(path)
    return len(links), problems + verify(links)
