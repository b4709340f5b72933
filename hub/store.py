"""Hub storage: accepted submissions and the audit trail in one DuckDB file.

Two tables:

* ``submissions``: one row per accepted submission, keeping the signed envelope exactly as
  received (so anyone can re-verify it later), the payload JSON and the receipt returned.
* ``audit``: one row per request outcome, ``accepted``, ``duplicate`` or ``rejected``, with
  a machine-readable code and a human message.

Every operation opens its own connection and closes it afterwards. DuckDB lets only one
process open a file for writing, so holding a connection for the server's lifetime would
lock the CLI report out even while the hub is idle. Accepting a submission writes the
submission row and its audit row in one transaction: after ``commit`` both are durable,
and a failure before it leaves neither.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb

from emsbench import __version__ as HUB_VERSION
from emsbench.wire import Submission

Outcome = Literal["accepted", "duplicate", "rejected"]

# "at" is a reserved word in DuckDB, hence the quotes wherever the column is named.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    submission_id  VARCHAR PRIMARY KEY,
    country        VARCHAR NOT NULL,
    year           INTEGER NOT NULL,
    payload_sha256 VARCHAR NOT NULL,
    keyid          VARCHAR NOT NULL,
    received_at    TIMESTAMP NOT NULL,   -- UTC
    envelope       VARCHAR NOT NULL,     -- JSON text, exactly as received
    payload        VARCHAR NOT NULL,     -- JSON text, the signed bytes decoded as UTF-8
    receipt        VARCHAR NOT NULL      -- JSON text, returned again on resubmission
);
CREATE SEQUENCE IF NOT EXISTS audit_id_seq;
CREATE TABLE IF NOT EXISTS audit (
    id            BIGINT PRIMARY KEY DEFAULT nextval('audit_id_seq'),
    "at"          TIMESTAMP NOT NULL,    -- UTC
    remote        VARCHAR,
    country       VARCHAR,
    submission_id VARCHAR,
    outcome       VARCHAR NOT NULL CHECK (outcome IN ('accepted', 'duplicate', 'rejected')),
    code          VARCHAR NOT NULL,
    message       VARCHAR NOT NULL
);
"""


class SubmissionConflict(Exception):
    """A submission id is already stored with a different payload."""

    code = "conflict"


def _utcnow() -> datetime:
    # Naive UTC in the database (TIMESTAMP); the receipt carries the explicit offset.
    return datetime.now(UTC).replace(tzinfo=None)


class Store:
    """Submissions and audit trail in the DuckDB file at ``path`` (created if missing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The server runs handlers in a thread pool. Serialising writes inside the process
        # makes "look up the id, then insert" atomic without relying on DuckDB's
        # optimistic concurrency to raise on the second of two identical submissions.
        self._lock = threading.Lock()
        with self._connect() as con:
            con.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(str(self.path))
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock, self._connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def _write_audit(self, con: duckdb.DuckDBPyConnection, outcome: Outcome, code: str,
                     message: str, remote: str | None, country: str | None,
                     submission_id: str | None) -> None:
        con.execute(
            'INSERT INTO audit ("at", remote, country, submission_id, outcome, code, message) '
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [_utcnow(), remote, country, submission_id, outcome, code, message])

    def accept(self, envelope_text: str, payload_bytes: bytes, submission: Submission,
               keyid: str, remote: str | None) -> tuple[dict[str, Any], bool]:
        """Store a verified submission; return ``(receipt, created)``.

        An identical resubmission (same id, same payload hash) returns the stored receipt
        with ``created`` False and is audited as ``duplicate``. The same id with another
        payload is audited as rejected and raises SubmissionConflict: submissions are
        immutable, a correction needs a new id.
        """
        sha = hashlib.sha256(payload_bytes).hexdigest()
        sid = submission.submission_id
        with self._transaction() as con:
            row = con.execute("SELECT payload_sha256, receipt FROM submissions "
                              "WHERE submission_id = ?", [sid]).fetchone()
            if row is not None:
                if row[0] == sha:
                    self._write_audit(con, "duplicate", "duplicate",
                                      "identical resubmission; stored receipt returned",
                                      remote, submission.country, sid)
                    return json.loads(row[1]), False
                message = (f"submission {sid} is already stored with a different payload "
                           f"(sha256 {row[0][:12]}…); use a new submission_id for a correction")
                self._write_audit(con, "rejected", SubmissionConflict.code, message, remote,
                                  submission.country, sid)
                # Leaving the block commits the audit row before the error propagates.
                conflict = SubmissionConflict(message)
            else:
                conflict = None
                received = _utcnow()
                receipt = {
                    "status": "accepted",
                    "submission_id": sid,
                    "country": submission.country,
                    "year": submission.period.year,
                    "payload_sha256": sha,
                    "received_at": received.replace(tzinfo=UTC).isoformat(),
                    "hub_version": HUB_VERSION,
                }
                con.execute("INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [sid, submission.country, submission.period.year, sha, keyid,
                             received, envelope_text, payload_bytes.decode("utf-8"),
                             json.dumps(receipt, sort_keys=True)])
                self._write_audit(con, "accepted", "accepted", f"stored, sha256 {sha}",
                                  remote, submission.country, sid)
        if conflict is not None:
            raise conflict
        return receipt, True

    def reject(self, code: str, message: str, remote: str | None,
               country: str | None = None, submission_id: str | None = None) -> None:
        """Record a refused request; nothing but the audit row is written."""
        with self._transaction() as con:
            self._write_audit(con, "rejected", code, message, remote, country, submission_id)

    def latest_submissions(self, year: int) -> list[Submission]:
        """Per country, the most recently received accepted submission for ``year``."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT payload FROM submissions WHERE year = ? "
                "QUALIFY row_number() OVER (PARTITION BY country "
                "ORDER BY received_at DESC, submission_id DESC) = 1 "
                "ORDER BY country", [year]).fetchall()
        return [Submission.from_bytes(r[0].encode("utf-8")) for r in rows]

    def receipt(self, submission_id: str) -> dict[str, Any] | None:
        with self._connect() as con:
            row = con.execute("SELECT receipt FROM submissions WHERE submission_id = ?",
                              [submission_id]).fetchone()
        return None if row is None else json.loads(row[0])

    def count_submissions(self) -> int:
        with self._connect() as con:
            row = con.execute("SELECT count(*) FROM submissions").fetchone()
        return int(row[0]) if row else 0

    def audit_entries(self) -> list[dict[str, Any]]:
        """Every audit row, oldest first, as dicts keyed by column name."""
        with self._connect() as con:
            cur = con.execute('SELECT id, "at", remote, country, submission_id, outcome, '
                              "code, message FROM audit ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
