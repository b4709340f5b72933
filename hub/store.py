"""Hub storage: every accepted revision and a hash-chained audit log, in one DuckDB file.

Two tables:

* ``documents``: one row per accepted submission or withdrawal, keeping the signed envelope
  exactly as received (so anyone can re-verify it later), its payload and the signed receipt
  returned. Rows are never updated or deleted: the history keeps every revision, and
  ``hub.ledger`` decides which revision of a period stands.
* ``audit``: one row per request outcome (``accepted``, ``duplicate`` or ``rejected``),
  chained by ``emsbench.chain`` so an edited, deleted or reordered entry is detected.

The server holds **one** connection for its lifetime, serialised by a lock: DuckDB admits
one writing process per file, and closing a connection per request made DuckDB checkpoint
each time (intake fell from 12 to 3 submissions/s as the file grew). Other processes (the
CLI) therefore read through the running hub (``hub.client``) or open the file read-only
when the hub is down. Accepting writes the document row and its audit row in one
transaction: after ``commit`` both are durable (DuckDB's write-ahead log survives a killed
process), and a failure before it leaves neither.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from emsbench import __version__ as HUB_VERSION
from emsbench import chain
from emsbench.wire import MAX_REVISION, Document, Receipt, kind_of

Outcome = Literal["accepted", "duplicate", "rejected"]
AUDIT_FIELDS = ("at", "remote", "country", "submission_id", "outcome", "code", "message")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    submission_id  VARCHAR PRIMARY KEY,
    kind           VARCHAR NOT NULL CHECK (kind IN ('submission', 'withdrawal')),
    country        VARCHAR NOT NULL,
    year           INTEGER NOT NULL,
    catalogue      VARCHAR NOT NULL,
    revision       INTEGER NOT NULL,
    payload_sha256 VARCHAR NOT NULL,
    keyid          VARCHAR NOT NULL,
    received_at    VARCHAR NOT NULL,     -- ISO 8601 UTC with offset
    envelope       VARCHAR NOT NULL,     -- JSON text, exactly as received
    response       VARCHAR NOT NULL,     -- JSON text: receipt and signed receipt
    -- No UNIQUE (country, year, catalogue, revision): a revision signed by a key revoked
    -- since may be reused by the country's legitimate correction (see Store.accept).
);
CREATE TABLE IF NOT EXISTS audit (
    seq           BIGINT PRIMARY KEY,
    "at"          VARCHAR NOT NULL,      -- ISO 8601 UTC with offset
    remote        VARCHAR,
    country       VARCHAR,
    submission_id VARCHAR,
    outcome       VARCHAR NOT NULL,
    code          VARCHAR NOT NULL,
    message       VARCHAR NOT NULL,
    prev_hash     VARCHAR NOT NULL,
    hash          VARCHAR NOT NULL
);
"""


class StoreRefusal(Exception):
    """The store refused a document (already audited in the store's own transaction)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DatabaseBusy(RuntimeError):
    """Another process (normally the running hub) holds the database."""


@dataclass(frozen=True)
class Record:
    """One stored revision as read back."""

    submission_id: str
    kind: str
    country: str
    year: int
    catalogue: str
    revision: int
    payload_sha256: str
    keyid: str
    received_at: datetime
    envelope: str
    response: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "received_at": self.received_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        return cls(**{**data, "received_at": datetime.fromisoformat(data["received_at"])})


_RECORD_COLUMNS = ("submission_id, kind, country, year, catalogue, revision, payload_sha256, "
                   "keyid, received_at, envelope, response")


def _record(row: tuple[Any, ...]) -> Record:
    return Record(submission_id=row[0], kind=row[1], country=row[2], year=int(row[3]),
                  catalogue=row[4], revision=int(row[5]), payload_sha256=row[6], keyid=row[7],
                  received_at=datetime.fromisoformat(row[8]), envelope=row[9],
                  response=json.loads(row[10]))


def audit_links(entries: list[dict[str, Any]]) -> list[chain.Link]:
    """Audit entries (as ``Store.audit_entries`` or ``/v1/audit`` give them) as chain links."""
    return [chain.Link(e["seq"], {k: e[k] for k in AUDIT_FIELDS}, e["prev_hash"], e["hash"])
            for e in entries]


def _storable(text: str | None) -> str | None:
    """Text any UTF-8 store can hold: a lone surrogate (valid in a JSON string, not in
    UTF-8) from a hostile payload becomes its escape instead of failing the audit write."""
    if text is None:
        return None
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """Documents and audit log in the DuckDB file at ``path`` (created if missing).

    ``read_only`` opens an existing file without the write lock (for the CLI while no hub
    runs); a file held by a running hub raises ``DatabaseBusy``.
    """

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if read_only:
                if not self.path.exists():
                    raise FileNotFoundError(f"no hub database at {self.path}")
                self._con = duckdb.connect(str(self.path), read_only=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise DatabaseBusy(f"{self.path} is held by another process (a running hub)"
                                   ) from exc
            raise
        if not read_only:
            self._check_layout()
            self._con.execute(_SCHEMA)

    def _check_layout(self) -> None:
        old = self._con.execute("SELECT count(*) FROM information_schema.tables "
                                "WHERE table_name = 'submissions'").fetchone()
        if old and old[0]:
            raise RuntimeError(f"{self.path} was written by an older hub (wire v1); start the "
                               "hub with a new database file")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            con = self._con
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def _append_audit(self, con: duckdb.DuckDBPyConnection, outcome: Outcome, code: str,
                      message: str, remote: str | None, country: str | None,
                      submission_id: str | None, at: datetime | None = None
                      ) -> tuple[int, str]:
        last = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, chain.GENESIS)
        values = ((at or utcnow()).isoformat(), remote, country, submission_id, outcome, code,
                  message[:2000])
        fields = dict(zip(AUDIT_FIELDS, (_storable(v) for v in values), strict=True))
        digest = chain.entry_hash(prev, seq, fields)
        con.execute('INSERT INTO audit (seq, "at", remote, country, submission_id, outcome, '
                    "code, message, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [seq, *fields.values(), prev, digest])
        return seq, digest

    def accept(self, doc: Document, envelope_text: str, payload: bytes, keyid: str,
               remote: str | None, sign: Callable[[Receipt], dict[str, Any]], *,
               received_at: datetime | None = None,
               counts: Callable[[str, datetime], bool] | None = None
               ) -> tuple[dict[str, Any], bool]:
        """Store a verified, checked document; return ``(response, created)``.

        * same id, same payload: the stored response again, ``created`` False (``duplicate``);
        * same id, other payload: refused ``conflict``;
        * a revision not higher than every stored one of its period and catalogue: refused
          ``stale_revision`` (an old envelope resent, or a replay);
        * otherwise stored with its audit entry; the receipt names that entry.

        ``received_at`` is the time the caller checked the document at (default now).
        ``counts(keyid, received_at)`` says whether a stored revision counts, i.e. whether
        its key could sign when it arrived (``TrustRegistry.may_sign``): a thief who signed
        a huge revision with a stolen key cannot lock the country out of its period once
        the key is revoked as of the theft.
        """
        sha = hashlib.sha256(payload).hexdigest()
        sid, country, year = doc.submission_id, doc.country, doc.period.year
        refusal: StoreRefusal | None = None
        with self._transaction() as con:
            row = con.execute("SELECT payload_sha256, response FROM documents "
                              "WHERE submission_id = ?", [sid]).fetchone()
            if row is not None and row[0] == sha:
                self._append_audit(con, "duplicate", "duplicate", "identical resubmission; "
                                   "stored receipt returned", remote, country, sid)
                return json.loads(row[1]), False
            highest = 0 if row is not None else self._highest_revision(con, doc, counts)
            if row is not None:
                refusal = StoreRefusal("conflict", f"{sid} is already stored with another "
                                       f"payload (sha256 {row[0][:12]}…); a correction needs "
                                       "a new submission id and a higher revision")
            elif doc.revision <= highest:
                refusal = StoreRefusal(
                    "stale_revision", f"{country} {year} revision {doc.revision} is not newer "
                    f"than revision {highest} already stored; the hub keeps the newer one (to "
                    f"correct it, run the node again: it signs revision {highest + 1} or "
                    "higher)" if highest < MAX_REVISION else
                    f"{country} {year} has reached the last revision number {MAX_REVISION}; "
                    "correct it under the next catalogue release")
            if refusal is not None:
                # Committed with the block; the caller answers 409 without auditing again.
                self._append_audit(con, "rejected", refusal.code, str(refusal), remote,
                                   country, sid)
            else:
                received = received_at or utcnow()
                seq, digest = self._append_audit(
                    con, "accepted", "accepted", f"{kind_of(doc)} revision {doc.revision}, "
                    f"sha256 {sha}", remote, country, sid, at=received)
                receipt = Receipt(kind=kind_of(doc), submission_id=sid, country=country,
                                  year=year, catalogue=doc.catalogue, revision=doc.revision,
                                  payload_sha256=sha, received_at=received,
                                  hub_version=HUB_VERSION, audit_seq=seq, audit_hash=digest)
                response = {"receipt": receipt.model_dump(mode="json"),
                            "signed_receipt": sign(receipt)}
                con.execute(f"INSERT INTO documents ({_RECORD_COLUMNS}) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [sid, kind_of(doc), country, year, doc.catalogue, doc.revision,
                             sha, keyid, received.isoformat(), envelope_text,
                             json.dumps(response, sort_keys=True)])
        if refusal is not None:
            raise refusal
        return response, True

    @staticmethod
    def _highest_revision(con: duckdb.DuckDBPyConnection, doc: Document,
                          counts: Callable[[str, datetime], bool] | None) -> int:
        """The highest stored revision of the document's period that counts."""
        stored = con.execute("SELECT revision, keyid, received_at FROM documents WHERE "
                             "country = ? AND year = ? AND catalogue = ?",
                             [doc.country, doc.period.year, doc.catalogue]).fetchall()
        return max((int(rev) for rev, kid, at in stored
                    if counts is None or counts(kid, datetime.fromisoformat(at))), default=0)

    def reject(self, code: str, message: str, remote: str | None,
               country: str | None = None, submission_id: str | None = None) -> None:
        """Record a refused request; nothing but the audit entry is written."""
        with self._transaction() as con:
            self._append_audit(con, "rejected", code, message, remote, country, submission_id)

    def records(self, year: int | None = None) -> list[Record]:
        """Stored revisions (of ``year``, or all), by country, year, catalogue, revision."""
        where, args = ("WHERE year = ?", [year]) if year is not None else ("", [])
        with self._lock:
            rows = self._con.execute(
                f"SELECT {_RECORD_COLUMNS} FROM documents {where} "
                "ORDER BY country, year, catalogue, revision", args).fetchall()
        return [_record(r) for r in rows]

    def response(self, submission_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._con.execute("SELECT response FROM documents WHERE submission_id = ?",
                                    [submission_id]).fetchone()
        return None if row is None else json.loads(row[0])

    def count_documents(self) -> int:
        with self._lock:
            row = self._con.execute("SELECT count(*) FROM documents").fetchone()
        return int(row[0]) if row else 0

    def audit_links(self) -> list[chain.Link]:
        """The audit log as chain links, in stored order."""
        return audit_links(self.audit_entries())

    def audit_entries(self) -> list[dict[str, Any]]:
        """Every audit entry, in sequence order, as dicts keyed by column name."""
        with self._lock:
            cur = self._con.execute('SELECT seq, "at", remote, country, submission_id, '
                                    "outcome, code, message, prev_hash, hash FROM audit "
                                    "ORDER BY seq")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [dict(zip(names, r, strict=True)) for r in rows]
