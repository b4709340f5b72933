"""Hub storage: accept/duplicate/conflict semantics, atomicity, durability across
processes, the audit trail and the per-country latest submission."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emsbench.wire import DataQuality, Period, Submission
from hub.store import Store, SubmissionConflict


def make_submission(sid: str = "NO-2024-0001", country: str = "NO", year: int = 2024,
                    threshold: int = 5) -> Submission:
    # The store does not check specs, so a submission without indicators is enough here.
    return Submission(
        submission_id=sid, country=country, period=Period(year=year),
        created_at=datetime(2025, 1, 15, 12, 0, tzinfo=UTC), software_version="0.1.0",
        model_version="1", disclosure_threshold=threshold,
        data_quality=DataQuality(rows_read=10, rows_accepted=9), indicators=[])


def accept(store: Store, sub: Submission) -> tuple[dict[str, Any], bool]:
    payload = sub.to_bytes()
    envelope = json.dumps({"payload": "stand-in for the DSSE envelope", "id": sub.submission_id})
    return store.accept(envelope, payload, sub, keyid="k" * 64, remote="10.0.0.1")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "hub.duckdb")


def test_accept_returns_receipt_and_stores(store: Store) -> None:
    sub = make_submission()
    receipt, created = accept(store, sub)
    assert created is True
    assert receipt["status"] == "accepted"
    assert receipt["payload_sha256"] == hashlib.sha256(sub.to_bytes()).hexdigest()
    assert receipt["received_at"].endswith("+00:00")
    assert store.count_submissions() == 1
    assert store.receipt(sub.submission_id) == receipt
    [entry] = store.audit_entries()
    assert entry["outcome"] == "accepted" and entry["remote"] == "10.0.0.1"
    assert entry["country"] == "NO" and entry["submission_id"] == sub.submission_id


def test_identical_resubmission_is_a_duplicate(store: Store) -> None:
    sub = make_submission()
    first, _ = accept(store, sub)
    second, created = accept(store, sub)
    assert created is False and second == first
    assert store.count_submissions() == 1
    assert [e["outcome"] for e in store.audit_entries()] == ["accepted", "duplicate"]


def test_same_id_other_payload_conflicts_and_keeps_the_original(store: Store) -> None:
    accept(store, make_submission(threshold=5))
    with pytest.raises(SubmissionConflict, match="different payload"):
        accept(store, make_submission(threshold=11))
    assert store.count_submissions() == 1
    assert store.latest_submissions(2024)[0].disclosure_threshold == 5
    last = store.audit_entries()[-1]
    assert (last["outcome"], last["code"]) == ("rejected", "conflict")


def test_reject_writes_only_an_audit_row(store: Store) -> None:
    store.reject("bad_signature", "the signature does not verify", "10.0.0.2",
                 country="SE", submission_id="SE-1-abcdef")
    assert store.count_submissions() == 0
    [entry] = store.audit_entries()
    assert entry["outcome"] == "rejected" and entry["code"] == "bad_signature"
    assert entry["country"] == "SE" and isinstance(entry["at"], datetime)


def test_latest_submission_per_country_and_year(store: Store) -> None:
    accept(store, make_submission("NO-2024-0001", "NO", 2024, threshold=5))
    time.sleep(0.002)  # received_at orders submissions; keep the timestamps apart
    accept(store, make_submission("NO-2024-0002", "NO", 2024, threshold=7))
    accept(store, make_submission("SE-2024-0001", "SE", 2024))
    accept(store, make_submission("DK-2023-0001", "DK", 2023))
    latest = store.latest_submissions(2024)
    assert [(s.country, s.submission_id) for s in latest] == \
        [("NO", "NO-2024-0002"), ("SE", "SE-2024-0001")]
    assert latest[0] == make_submission("NO-2024-0002", "NO", 2024, threshold=7)
    assert [s.country for s in store.latest_submissions(2023)] == ["DK"]
    assert store.latest_submissions(2022) == []


def test_failure_inside_accept_leaves_no_submission(store: Store,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # The audit insert runs after the submission insert in the same transaction; making
    # it fail must roll the submission back too.
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "_write_audit", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        accept(store, make_submission())
    monkeypatch.undo()
    assert store.count_submissions() == 0
    assert store.audit_entries() == []
    # And the id is still free: the rolled-back row left nothing behind.
    assert accept(store, make_submission())[1] is True


def test_accepted_data_survives_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "hub.duckdb"
    receipt, _ = accept(Store(path), make_submission())
    reopened = Store(path)  # also checks that re-creating the schema is harmless
    assert reopened.count_submissions() == 1
    assert reopened.receipt("NO-2024-0001") == receipt
    assert len(reopened.audit_entries()) == 1


def test_another_process_can_read_while_the_store_is_open(store: Store) -> None:
    # The server keeps its Store object for its lifetime; because each operation closes
    # its connection, another process (the CLI report) can open the file in between.
    receipt, _ = accept(store, make_submission())
    code = ("import sys; from hub.store import Store; s = Store(sys.argv[1]); "
            "print(s.count_submissions(), s.latest_submissions(2024)[0].submission_id, "
            "s.receipt('NO-2024-0001')['payload_sha256'])")
    out = subprocess.run([sys.executable, "-c", code, str(store.path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == ["1", "NO-2024-0001", str(receipt["payload_sha256"])]
    assert store.count_submissions() == 1  # and this process can still use it afterwards


def test_stored_envelope_and_payload_are_kept_verbatim(store: Store) -> None:
    import duckdb

    sub = make_submission()
    accept(store, sub)
    con = duckdb.connect(str(store.path))
    try:
        row = con.execute("SELECT envelope, payload, keyid, country, year "
                          "FROM submissions").fetchone()
    finally:
        con.close()
    assert row is not None
    assert json.loads(row[0])["id"] == sub.submission_id
    assert row[1].encode("utf-8") == sub.to_bytes()
    assert row[2:] == ("k" * 64, "NO", 2024)
