"""Hub storage: every accepted revision and a hash-chained audit log, in one DuckDB file.

Two tables:

* ``documents``: one row per accepted submission or withdrawal, keeping the signed envelope
  exactly as received (so anyone can re-verify it later), its payload and the signed receipt
  returned. Rows are never updated or deleted: the history keeps every revision, and
  ``hub.ledger`` decides which revision of a period stands.
* ``audit``: one row per request outcome (``accepted``, ``duplicate`` or ``rejected``),
  chained by ``emsbench.chain`` so an edited, deleted or reordered entry is detected.

The server holds **one** connection for its lifetime: DuckDB admits one writing process per
file, and closing a connection per request made DuckDB checkpoint each time (intake fell
from 12 to 3 submissions/s as the file grew). Other processes (the CLI) therefore read
through the running hub (``hub.source``) or open the file read-only when the hub is down.

Writes go through a queue with group commit (``Store._submit``): whichever request thread
finds the writer free writes every write then waiting, in queue order, in one transaction.
Each write is still decided on its own (the earlier ones of its batch count as stored) and
gets its own audit entry; what the batch shares is the cost of a transaction, which is most
of a write's cost (2-core machine: a one-row insert 0.6 ms, a commit 0.8 ms; both inserts
and the commit for 8 writes 2.6 ms, against 1.6 ms for one). A write's document row and
audit row are in one transaction: after ``commit`` both are durable (DuckDB's write-ahead
log survives a killed process), and a failure before it leaves neither; a write that fails
alone (its receipt cannot be signed, the database refuses its row) leaves its batch to be
stored without it. The audit chain's tail is kept in memory, read once at open: this store
is the file's only writer.

Reads take a cursor of their own (a connection to the same database): each sees one
snapshot (DuckDB's MVCC) and neither waits for the writer nor holds it up, however long an
export reads.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


class _Write:
    """One request's write, queued for the writer (``Store._submit``): ``done`` once its
    batch committed (``result``) or it failed (``error``, a ``StoreRefusal`` included)."""

    def __init__(self) -> None:
        self.done = False
        self.result: tuple[dict[str, Any], bool] | None = None
        self.error: BaseException | None = None

    def finish(self, result: tuple[dict[str, Any], bool] | None) -> None:
        self.result, self.done = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True


class _Reject(_Write):
    def __init__(self, code: str, message: str, remote: str | None, country: str | None,
                 submission_id: str | None) -> None:
        super().__init__()
        self.code, self.message, self.remote = code, message, remote
        self.country, self.submission_id = country, submission_id


class _Accept(_Write):
    def __init__(self, doc: Document, envelope_text: str, payload: bytes, keyid: str,
                 remote: str | None, sign: Callable[[Receipt], dict[str, Any]],
                 received_at: datetime | None,
                 counts: Callable[[str, datetime], bool] | None) -> None:
        super().__init__()
        self.doc, self.envelope_text, self.keyid, self.remote = doc, envelope_text, keyid, remote
        self.sign, self.received_at, self.counts = sign, received_at, counts
        self.sha = hashlib.sha256(payload).hexdigest()  # in the caller's thread, unlocked
        self.period = (doc.country, doc.period.year, doc.catalogue)


PeriodKey = tuple[str, int, str]  # country, year, catalogue


@dataclass
class _Batch:
    """One write transaction being planned: the audit chain's tail, the rows to insert, and
    what the store holds for the ids and periods of its documents (the batch's own
    documents added as they are decided, so a later one in the batch sees them)."""

    tail: tuple[int, str]  # (seq, hash) of the last audit entry; (0, GENESIS) when none
    stored: dict[str, tuple[str, str]]  # submission id → (payload sha256, response JSON)
    periods: dict[PeriodKey, list[tuple[int, str, datetime]]]  # → (revision, keyid, received)
    audit: list[list[Any]] = field(default_factory=list)
    documents: list[list[Any]] = field(default_factory=list)

    def audit_entry(self, outcome: Outcome, code: str, message: str, remote: str | None,
                    country: str | None, submission_id: str | None,
                    at: datetime | None = None) -> tuple[list[Any], tuple[int, str]]:
        """The next audit row and the tail it makes; the batch is unchanged (``add``)."""
        seq, prev = self.tail[0] + 1, self.tail[1]
        values = ((at or utcnow()).isoformat(), remote, country, submission_id, outcome, code,
                  message[:2000])
        fields = dict(zip(AUDIT_FIELDS, (_storable(v) for v in values), strict=True))
        digest = chain.entry_hash(prev, seq, fields)
        return [seq, *fields.values(), prev, digest], (seq, digest)

    def add(self, entry: tuple[list[Any], tuple[int, str]]) -> None:
        self.audit.append(entry[0])
        self.tail = entry[1]


# Most writes one transaction takes: with many requests waiting, each still has its answer
# within one transaction of bounded size.
MAX_BATCH = 64
_READ_ROWS = 500  # rows converted to Python per step of a long read
_AUDIT_INSERT = ('INSERT INTO audit (seq, "at", remote, country, submission_id, outcome, code, '
                 "message, prev_hash, hash) VALUES ")
_DOCUMENT_INSERT = f"INSERT INTO documents ({_RECORD_COLUMNS}) VALUES "


def _values(rows: list[list[Any]]) -> tuple[str, list[Any]]:
    """``(?, ?, …), (?, ?, …)`` for ``rows`` and their values in one flat list."""
    marks = "(" + ", ".join("?" * len(rows[0])) + ")"
    return ", ".join([marks] * len(rows)), [v for row in rows for v in row]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class Store:
    """Documents and audit log in the DuckDB file at ``path`` (created if missing).

    ``read_only`` opens an existing file without the write lock (for the CLI while no hub
    runs); a file held by a running hub raises ``DatabaseBusy``.

    Writes (``accept``, ``reject``) are queued and written by one thread at a time, in
    batches (group commit): the thread that finds the writer free writes every write
    waiting, up to ``MAX_BATCH``, in one transaction, and each caller gets its own answer
    once that transaction committed. Each request still gets its own decision and audit
    entry, in queue order; batching shares only the fixed cost of a transaction. The
    audit chain's tail is kept in memory (this store is the file's only writer), so
    appending an entry reads nothing. Reads (``records``, ``audit_entries``, …) use a
    connection of their own per call: each reads one consistent snapshot (DuckDB's MVCC)
    without waiting for the writer or holding it up, however long it takes.
    """

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path)
        # Held while a batch is written (and by close): the connection itself is the
        # writer's alone. Reads take their own cursor and no lock.
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Write] = []
        self._tail: tuple[int, str] = (0, chain.GENESIS)
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
            # The only read of the tail: from here on this store is the file's only writer.
            # (ORDER BY seq DESC LIMIT 1 sorted the whole table: 0.8 ms at 5,000 entries,
            # 2.7 ms at 50,000, on every write until this was cached.)
            last = self._con.execute("SELECT seq, hash FROM audit WHERE seq = "
                                     "(SELECT max(seq) FROM audit)").fetchone()
            if last is not None:
                self._tail = (int(last[0]), str(last[1]))

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
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one read: its own transaction over the same database,
        so the read sees one snapshot and neither waits for nor blocks the writer."""
        cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    # --- writing ------------------------------------------------------------------------

    def _submit(self, job: _Write) -> tuple[dict[str, Any], bool] | None:
        """Queue ``job``; write batches until it is done; its result, or raise its error."""
        with self._queue_lock:
            self._queue.append(job)
        while not job.done:
            with self._lock:
                if job.done:  # a thread that held the writer took it into its batch
                    break
                with self._queue_lock:
                    batch = self._queue[:MAX_BATCH]
                    del self._queue[:MAX_BATCH]
                self._write(batch)
        if job.error is not None:
            raise job.error
        return job.result

    def _write(self, jobs: list[_Write]) -> None:
        """Write ``jobs`` in one transaction; each one ends done, whatever happens."""
        try:
            try:
                self._write_batch(jobs)
            except Exception as exc:
                if len(jobs) == 1:
                    jobs[0].fail(exc)
                else:
                    # Nothing of the batch was written. Write each on its own, so a write
                    # the database refuses fails alone.
                    for job in jobs:
                        try:
                            self._write_batch([job])
                        except Exception as one:
                            job.fail(one)
        finally:
            for job in jobs:
                if not job.done:
                    job.fail(RuntimeError("the write was interrupted; it was not stored"))

    def _write_batch(self, jobs: list[_Write]) -> None:
        jobs = [j for j in jobs if not j.done]
        if not jobs:
            return
        con = self._con
        con.begin()
        try:
            stored, periods = self._lookup(con, [j for j in jobs if isinstance(j, _Accept)])
            batch = _Batch(self._tail, stored, periods)
            decided: list[tuple[_Write, tuple[dict[str, Any], bool] | StoreRefusal | None]] = []
            for job in jobs:
                try:
                    decided.append((job, self._plan(batch, job)))
                except Exception as exc:  # e.g. the signer: this write alone fails
                    job.fail(exc)
            if batch.audit:
                marks, values = _values(batch.audit)
                con.execute(_AUDIT_INSERT + marks, values)
            if batch.documents:
                marks, values = _values(batch.documents)
                con.execute(_DOCUMENT_INSERT + marks, values)
            con.commit()
        except BaseException:
            try:
                con.rollback()
            except duckdb.Error:
                pass  # nothing open any more (the commit itself failed)
            raise
        self._tail = batch.tail
        for job, outcome in decided:
            if isinstance(outcome, StoreRefusal):
                job.fail(outcome)  # its audit entry is committed; the caller answers 409
            else:
                job.finish(outcome)

    @staticmethod
    def _lookup(con: duckdb.DuckDBPyConnection, jobs: list[_Accept]
                ) -> tuple[dict[str, tuple[str, str]],
                           dict[PeriodKey, list[tuple[int, str, datetime]]]]:
        """What the store holds for the documents' ids and periods (one query each)."""
        if not jobs:
            return {}, {}
        sids = sorted({j.doc.submission_id for j in jobs})
        rows = con.execute("SELECT submission_id, payload_sha256, response FROM documents "
                           f"WHERE submission_id IN ({_marks(len(sids))})", sids).fetchall()
        stored = {str(r[0]): (str(r[1]), str(r[2])) for r in rows}
        wanted = {j.period for j in jobs}
        countries = sorted({p[0] for p in wanted})
        years = sorted({p[1] for p in wanted})
        catalogues = sorted({p[2] for p in wanted})
        rows = con.execute(
            "SELECT country, year, catalogue, revision, keyid, received_at FROM documents "
            f"WHERE country IN ({_marks(len(countries))}) AND year IN ({_marks(len(years))}) "
            f"AND catalogue IN ({_marks(len(catalogues))})",
            [*countries, *years, *catalogues]).fetchall()
        periods: dict[PeriodKey, list[tuple[int, str, datetime]]] = {}
        for country, year, catalogue, revision, keyid, at in rows:
            key = (str(country), int(year), str(catalogue))
            if key in wanted:
                periods.setdefault(key, []).append(
                    (int(revision), str(keyid), datetime.fromisoformat(at)))
        return stored, periods

    def _plan(self, batch: _Batch, job: _Write
              ) -> tuple[dict[str, Any], bool] | StoreRefusal | None:
        """Decide one write and add its rows to ``batch``. Raises, leaving the batch as it
        was, when it cannot be written (e.g. the receipt cannot be signed)."""
        if isinstance(job, _Reject):
            batch.add(batch.audit_entry("rejected", job.code, job.message, job.remote,
                                        job.country, job.submission_id))
            return None
        assert isinstance(job, _Accept)
        doc, remote, sha = job.doc, job.remote, job.sha
        sid, country, year = doc.submission_id, doc.country, doc.period.year
        stored = batch.stored.get(sid)
        if stored is not None and stored[0] == sha:
            batch.add(batch.audit_entry("duplicate", "duplicate", "identical resubmission; "
                                        "stored receipt returned", remote, country, sid))
            return json.loads(stored[1]), False
        refusal: StoreRefusal | None = None
        if stored is not None:
            refusal = StoreRefusal("conflict", f"{sid} is already stored with another "
                                   f"payload (sha256 {stored[0][:12]}…); a correction needs "
                                   "a new submission id and a higher revision")
        else:
            counts = job.counts
            highest = max((rev for rev, kid, at in batch.periods.get(job.period, ())
                           if counts is None or counts(kid, at)), default=0)
            if doc.revision <= highest:
                refusal = StoreRefusal(
                    "stale_revision", f"{country} {year} revision {doc.revision} is not newer "
                    f"than revision {highest} already stored; the hub keeps the newer one (to "
                    f"correct it, run the node again: it signs revision {highest + 1} or "
                    "higher)" if highest < MAX_REVISION else
                    f"{country} {year} has reached the last revision number {MAX_REVISION}; "
                    "correct it under the next catalogue release")
        if refusal is not None:
            # Committed with the batch; the caller answers 409 without auditing again.
            batch.add(batch.audit_entry("rejected", refusal.code, str(refusal), remote,
                                        country, sid))
            return refusal
        received = job.received_at or utcnow()
        entry = batch.audit_entry("accepted", "accepted", f"{kind_of(doc)} revision "
                                  f"{doc.revision}, sha256 {sha}", remote, country, sid,
                                  at=received)
        seq, digest = entry[1]
        receipt = Receipt(kind=kind_of(doc), submission_id=sid, country=country, year=year,
                          catalogue=doc.catalogue, revision=doc.revision, payload_sha256=sha,
                          received_at=received, hub_version=HUB_VERSION, audit_seq=seq,
                          audit_hash=digest)
        response = {"receipt": receipt.model_dump(mode="json"),
                    "signed_receipt": job.sign(receipt)}
        text = json.dumps(response, sort_keys=True)
        # Decided: from here on nothing raises, and the batch takes the document.
        batch.add(entry)
        batch.documents.append([sid, kind_of(doc), country, year, doc.catalogue, doc.revision,
                                sha, job.keyid, received.isoformat(), job.envelope_text, text])
        batch.stored[sid] = (sha, text)
        batch.periods.setdefault(job.period, []).append((doc.revision, job.keyid, received))
        return response, True

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

        Writes queued before this one are decided first (a document earlier in the same
        batch counts as stored). The answer comes once the transaction holding the
        document and its audit entry committed; a failure before that leaves neither.

        ``received_at`` is the time the caller checked the document at (default now).
        ``counts(keyid, received_at)`` says whether a stored revision counts, i.e. whether
        its key could sign when it arrived (``TrustRegistry.may_sign``): a thief who signed
        a huge revision with a stolen key cannot lock the country out of its period once
        the key is revoked as of the theft.
        """
        result = self._submit(_Accept(doc, envelope_text, payload, keyid, remote, sign,
                                      received_at, counts))
        assert result is not None
        return result

    def reject(self, code: str, message: str, remote: str | None,
               country: str | None = None, submission_id: str | None = None) -> None:
        """Record a refused request; nothing but the audit entry is written."""
        self._submit(_Reject(code, message, remote, country, submission_id))

    # --- reading ------------------------------------------------------------------------

    def records(self, year: int | None = None) -> list[Record]:
        """Stored revisions (of ``year``, or all), by country, year, catalogue, revision."""
        where, args = ("WHERE year = ?", [year]) if year is not None else ("", [])
        out: list[Record] = []
        with self._reading() as cur:
            cur.execute(f"SELECT {_RECORD_COLUMNS} FROM documents {where} "
                        "ORDER BY country, year, catalogue, revision", args)
            # In pieces: converting rows holds the GIL, so intake runs between the pieces.
            while rows := cur.fetchmany(_READ_ROWS):
                out += [_record(r) for r in rows]
        return out

    def response(self, submission_id: str) -> dict[str, Any] | None:
        with self._reading() as cur:
            row = cur.execute("SELECT response FROM documents WHERE submission_id = ?",
                              [submission_id]).fetchone()
        return None if row is None else json.loads(row[0])

    def count_documents(self) -> int:
        with self._reading() as cur:
            row = cur.execute("SELECT count(*) FROM documents").fetchone()
        return int(row[0]) if row else 0

    def audit_links(self) -> list[chain.Link]:
        """The audit log as chain links, in stored order."""
        return audit_links(self.audit_entries())

    def audit_entries(self) -> list[dict[str, Any]]:
        """Every audit entry, in sequence order, as dicts keyed by column name."""
        with self._reading() as cur:
            cur.execute('SELECT seq, "at", remote, country, submission_id, outcome, code, '
                        "message, prev_hash, hash FROM audit ORDER BY seq")
            names = [d[0] for d in cur.description]
            out: list[dict[str, Any]] = []
            while rows := cur.fetchmany(_READ_ROWS):
                out += [dict(zip(names, r, strict=True)) for r in rows]
        return out
