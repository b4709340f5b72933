"""Hub storage: accept/duplicate/conflict/stale-revision rules, atomicity, durability across
a reopen and across processes, the busy-database refusal and the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from emsbench import chain, dsse
from emsbench.wire import (
    RECEIPT_TYPE,
    SUBMISSION_TYPE,
    WITHDRAWAL_TYPE,
    DataQuality,
    Period,
    Receipt,
    Submission,
    Withdrawal,
)
from hub.signing import sign_receipt
from hub.store import DatabaseBusy, Store, StoreRefusal

CATALOGUE = "c" * 64
NODE_KEY = dsse.generate_key()
HUB_KEY = dsse.generate_key()


def make_submission(sid: str = "NO-2024-0001", country: str = "NO", year: int = 2024,
                    revision: int = 1, threshold: int = 5,
                    catalogue: str = CATALOGUE) -> Submission:
    # The store does not check content (intake and the ledger do), so no indicators needed.
    return Submission(
        submission_id=sid, country=country, period=Period(year=year), catalogue=catalogue,
        revision=revision, created_at=datetime(2025, 1, 15, 12, 0, tzinfo=UTC),
        software_version="0.1.0", model_version="1", disclosure_threshold=threshold,
        data_quality=DataQuality(rows_read=10, rows_accepted=10), indicators=[])


def make_withdrawal(sid: str = "NO-2024-w001", revision: int = 2) -> Withdrawal:
    return Withdrawal(submission_id=sid, country="NO", period=Period(year=2024),
                      catalogue=CATALOGUE, revision=revision,
                      created_at=datetime(2025, 2, 1, tzinfo=UTC), reason="recalled")


def sign(receipt: Receipt) -> dict[str, Any]:
    return sign_receipt(receipt, HUB_KEY)


def accept(store: Store, doc: Submission | Withdrawal, remote: str = "10.0.0.1"
           ) -> tuple[dict[str, Any], bool]:
    payload = doc.to_bytes()
    ptype = WITHDRAWAL_TYPE if isinstance(doc, Withdrawal) else SUBMISSION_TYPE
    envelope = dsse.envelope_bytes(dsse.sign(payload, NODE_KEY, payload_type=ptype)).decode()
    return store.accept(doc, envelope, payload, NODE_KEY.keyid, remote, sign)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "hub.duckdb")
    yield s
    s.close()


def test_accept_returns_a_signed_receipt_and_stores(store: Store) -> None:
    sub = make_submission()
    response, created = accept(store, sub)
    assert created is True
    receipt = response["receipt"]
    sha = hashlib.sha256(sub.to_bytes()).hexdigest()
    assert (receipt["status"], receipt["kind"], receipt["submission_id"], receipt["country"],
            receipt["year"], receipt["revision"], receipt["catalogue"]) == \
        ("accepted", "submission", "NO-2024-0001", "NO", 2024, 1, CATALOGUE)
    assert receipt["payload_sha256"] == sha
    payload, keyid = dsse.verify(response["signed_receipt"],
                                 {HUB_KEY.keyid: HUB_KEY.public_key}, payload_type=RECEIPT_TYPE)
    assert keyid == HUB_KEY.keyid
    assert Receipt.model_validate_json(payload) == Receipt.model_validate_json(json.dumps(receipt))
    assert store.count_documents() == 1
    assert store.response(sub.submission_id) == response
    assert store.response("NO-2024-absent") is None
    [entry] = store.audit_entries()
    assert (entry["outcome"], entry["code"], entry["remote"], entry["country"],
            entry["submission_id"]) == ("accepted", "accepted", "10.0.0.1", "NO",
                                        sub.submission_id)
    # The receipt anchors the audit entry it was written with.
    assert (receipt["audit_seq"], receipt["audit_hash"]) == (entry["seq"], entry["hash"])
    [record] = store.records()
    assert (record.kind, record.keyid, record.payload_sha256, record.revision) == \
        ("submission", NODE_KEY.keyid, sha, 1)
    assert record.received_at.utcoffset() is not None
    assert record.response == response
    assert json.loads(record.envelope)["signatures"][0]["keyid"] == NODE_KEY.keyid


def test_withdrawal_is_stored_as_a_revision(store: Store) -> None:
    accept(store, make_submission())
    response, created = accept(store, make_withdrawal())
    assert created and response["receipt"]["kind"] == "withdrawal"
    assert [(r.kind, r.revision) for r in store.records(2024)] == \
        [("submission", 1), ("withdrawal", 2)]


def test_identical_resubmission_is_a_duplicate(store: Store) -> None:
    sub = make_submission()
    first, _ = accept(store, sub)
    second, created = accept(store, sub, remote="10.0.0.9")
    assert created is False and second == first
    assert store.count_documents() == 1
    assert [(e["outcome"], e["code"]) for e in store.audit_entries()] == \
        [("accepted", "accepted"), ("duplicate", "duplicate")]


def test_same_id_other_payload_conflicts_and_keeps_the_original(store: Store) -> None:
    original, _ = accept(store, make_submission(threshold=5))
    with pytest.raises(StoreRefusal, match="another payload") as info:
        accept(store, make_submission(threshold=11, revision=2))
    assert info.value.code == "conflict"
    assert store.count_documents() == 1
    assert store.response("NO-2024-0001") == original
    last = store.audit_entries()[-1]
    assert (last["outcome"], last["code"]) == ("rejected", "conflict")


def test_only_a_higher_revision_is_stored(store: Store) -> None:
    accept(store, make_submission("NO-2024-0002", revision=2))
    for sid, revision in (("NO-2024-0001", 1), ("NO-2024-0003", 2)):
        with pytest.raises(StoreRefusal, match="not newer than revision 2") as info:
            accept(store, make_submission(sid, revision=revision, threshold=7))
        assert info.value.code == "stale_revision"
    assert store.count_documents() == 1
    # Revisions count per country, year and catalogue.
    assert accept(store, make_submission("SE-2024-0001", country="SE"))[1]
    assert accept(store, make_submission("NO-2023-0001", year=2023))[1]
    assert accept(store, make_submission("NO-2024-c001", catalogue="d" * 64))[1]
    assert accept(store, make_submission("NO-2024-0004", revision=3))[1]
    outcomes = [(e["outcome"], e["code"]) for e in store.audit_entries()]
    assert outcomes.count(("rejected", "stale_revision")) == 2
    assert chain.verify(store.audit_links()) == []


def test_reject_writes_only_an_audit_row(store: Store) -> None:
    store.reject("bad_signature", "the signature does not verify", "10.0.0.2",
                 country="SE", submission_id="SE-1-abcdef")
    assert store.count_documents() == 0
    [entry] = store.audit_entries()
    assert (entry["outcome"], entry["code"], entry["country"]) == \
        ("rejected", "bad_signature", "SE")
    assert datetime.fromisoformat(entry["at"]).utcoffset() is not None
    store.reject("invalid_json", "x" * 5000, None)
    assert len(store.audit_entries()[-1]["message"]) == 2000  # bounded


def test_records_are_ordered_and_filtered_by_year(store: Store) -> None:
    accept(store, make_submission("SE-2024-0001", country="SE"))
    accept(store, make_submission("NO-2024-0001", revision=1, threshold=6))
    accept(store, make_submission("NO-2024-0002", revision=2))
    accept(store, make_submission("DK-2023-0001", country="DK", year=2023))
    assert [(r.country, r.revision) for r in store.records(2024)] == \
        [("NO", 1), ("NO", 2), ("SE", 1)]
    assert [r.country for r in store.records(2023)] == ["DK"]
    assert store.records(2022) == []
    assert len(store.records()) == 4


def test_failing_signer_leaves_neither_document_nor_audit_entry(store: Store) -> None:
    accept(store, make_submission("SE-2024-0001", country="SE"))
    before = store.audit_entries()

    def boom(receipt: Receipt) -> dict[str, Any]:
        raise RuntimeError("hub key unreadable")

    sub = make_submission()
    payload = sub.to_bytes()
    envelope = dsse.envelope_bytes(dsse.sign(payload, NODE_KEY)).decode()
    with pytest.raises(RuntimeError, match="hub key unreadable"):
        store.accept(sub, envelope, payload, NODE_KEY.keyid, "10.0.0.1", boom)
    assert store.count_documents() == 1
    assert store.response(sub.submission_id) is None
    assert store.audit_entries() == before
    # The id and the revision are still free, and the chain continues cleanly.
    assert accept(store, sub)[1] is True
    assert chain.verify(store.audit_links()) == []


def test_accepted_data_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "hub.duckdb"
    with Store(path) as first:
        response, _ = accept(first, make_submission())
        first.reject("unsigned", "no signature", "10.0.0.3")
        records = first.records()
    with Store(path) as reopened:  # re-creating the schema is harmless
        assert reopened.count_documents() == 1
        assert reopened.response("NO-2024-0001") == response
        assert reopened.records() == records
        assert len(reopened.audit_entries()) == 2
        assert chain.verify(reopened.audit_links()) == []
        # and it goes on writing where the first one stopped
        assert accept(reopened, make_submission("NO-2024-0002", revision=2))[1]
    with Store(path, read_only=True) as reader:
        assert [r.revision for r in reader.records(2024)] == [1, 2]
        assert chain.verify(reader.audit_links()) == []


def test_another_process_reads_after_the_writer_closed(tmp_path: Path) -> None:
    path = tmp_path / "hub.duckdb"
    with Store(path) as writer:
        response, _ = accept(writer, make_submission())
    code = ("import sys; from emsbench import chain; from hub.store import Store; "
            "s = Store(sys.argv[1], read_only=True); [r] = s.records(2024); "
            "print(s.count_documents(), r.submission_id, r.response['receipt']"
            "['payload_sha256'], len(chain.verify(s.audit_links())))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.split() == ["1", "NO-2024-0001", response["receipt"]["payload_sha256"], "0"]


def test_a_database_held_by_another_process_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "hub.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hub.store import Store; "
         "s = Store(sys.argv[1]); print('ready', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseBusy, match="held by another process"):
            Store(path, read_only=True)
        with pytest.raises(DatabaseBusy):
            Store(path)
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    with Store(path, read_only=True) as reader:  # free again once the holder is gone
        assert reader.count_documents() == 0


def test_read_only_needs_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Store(tmp_path / "absent.duckdb", read_only=True)
    assert not (tmp_path / "absent.duckdb").exists()


def test_a_wire_v1_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE submissions (submission_id VARCHAR)")
    con.close()
    with pytest.raises(RuntimeError, match="older hub"):
        Store(path)


def test_stored_envelope_is_kept_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "hub.duckdb"
    sub = make_submission()
    envelope = dsse.envelope_bytes(dsse.sign(sub.to_bytes(), NODE_KEY)).decode()
    with Store(path) as store:
        store.accept(sub, envelope, sub.to_bytes(), NODE_KEY.keyid, None, sign)
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute("SELECT envelope, keyid, country, year, kind FROM documents"
                          ).fetchone()
    finally:
        con.close()
    assert row == (envelope, NODE_KEY.keyid, "NO", 2024, "submission")


# --- the audit chain ------------------------------------------------------------------


def _filled(path: Path) -> list[dict[str, Any]]:
    """Five audit entries (accepted, duplicate, rejected, conflict, accepted); closed."""
    with Store(path) as store:
        accept(store, make_submission())
        accept(store, make_submission())
        store.reject("bad_signature", "altered", "10.0.0.5")
        with pytest.raises(StoreRefusal):
            accept(store, make_submission(threshold=9))
        accept(store, make_submission("NO-2024-0002", revision=2))
        assert chain.verify(store.audit_links()) == []
        return store.audit_entries()


def _tamper(path: Path, *sql: str) -> list[str]:
    con = duckdb.connect(str(path))
    try:
        for statement in sql:
            con.execute(statement)
    finally:
        con.close()
    with Store(path, read_only=True) as store:
        return chain.verify(store.audit_links())


def test_audit_chain_verifies_and_anchors_match_receipts(tmp_path: Path) -> None:
    path = tmp_path / "hub.duckdb"
    entries = _filled(path)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    with Store(path, read_only=True) as store:
        anchors = {r.response["receipt"]["audit_seq"]: r.response["receipt"]["audit_hash"]
                   for r in store.records()}
        assert sorted(anchors) == [1, 5]
        assert chain.verify(store.audit_links(), anchors) == []


@pytest.mark.parametrize(("sql", "needle"), [
    (["UPDATE audit SET message = 'all fine' WHERE seq = 3"], "edited"),
    (["UPDATE audit SET outcome = 'accepted' WHERE seq = 4"], "edited"),
    (["UPDATE audit SET remote = NULL WHERE seq = 1"], "edited"),
    (["DELETE FROM audit WHERE seq = 3"], "entry 4: expected sequence number 3"),
    (["DELETE FROM audit WHERE seq = 1"], "entry 2: does not link"),
    # swap entries 2 and 3 (rows keep their hashes, so the links break)
    (["UPDATE audit SET seq = 100 WHERE seq = 2", "UPDATE audit SET seq = 2 WHERE seq = 3",
      "UPDATE audit SET seq = 3 WHERE seq = 100"], "does not link"),
], ids=["edit-message", "edit-outcome", "edit-remote", "delete-middle", "delete-first",
        "reorder"])
def test_audit_chain_detects_tampering(tmp_path: Path, sql: list[str], needle: str) -> None:
    path = tmp_path / "hub.duckdb"
    _filled(path)
    problems = _tamper(path, *sql)
    assert problems, "tampering went unnoticed"
    assert any(needle in p for p in problems), problems


def test_audit_chain_detects_an_inserted_entry(tmp_path: Path) -> None:
    path = tmp_path / "hub.duckdb"
    entries = _filled(path)
    # A forged entry with a correct hash of its own, squeezed in after entry 2.
    e2 = entries[1]
    fields = {"at": e2["at"], "remote": None, "country": "NO", "submission_id": "NO-x-forged",
              "outcome": "accepted", "code": "accepted", "message": "forged"}
    digest = chain.entry_hash(e2["hash"], 3, fields)
    problems = _tamper(
        path, "UPDATE audit SET seq = seq + 10 WHERE seq >= 3",
        "UPDATE audit SET seq = seq - 9 WHERE seq >= 13",
        "INSERT INTO audit (seq, \"at\", remote, country, submission_id, outcome, code, "
        f"message, prev_hash, hash) VALUES (3, '{e2['at']}', NULL, 'NO', 'NO-x-forged', "
        f"'accepted', 'accepted', 'forged', '{e2['hash']}', '{digest}')")
    assert any("does not link" in p for p in problems), problems


def test_cutting_the_tail_is_detected_only_with_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "hub.duckdb"
    entries = _filled(path)
    last = entries[-1]
    assert _tamper(path, "DELETE FROM audit WHERE seq = 5") == []  # a valid shorter chain
    with Store(path, read_only=True) as store:
        problems = chain.verify(store.audit_links(), {last["seq"]: last["hash"]})
    assert problems and "cut off" in problems[0]
