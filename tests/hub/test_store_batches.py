"""The store's group commit: writes that wait while another is written go into one
transaction, and each is still decided on its own, in the order it was queued.

Every test here holds the writer (``Store._lock``) while a few threads call ``accept`` or
``reject``, so their writes queue in a known order and the first thread to get the writer
writes them all as one batch. Checked: a later write of a batch sees the earlier ones
(revision rule, duplicate, conflict), the audit chain has no gap and every receipt anchors
its own entry, and a write that cannot be written (a signer that fails, a value the
database refuses) fails alone while the rest of its batch is stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emsbench import chain, dsse
from emsbench.wire import RECEIPT_TYPE, Receipt, Submission
from hub.store import MAX_BATCH, Store, StoreRefusal, _Write
from tests.hub.test_store import HUB_KEY, NODE_KEY, accept, make_submission, sign


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "hub.duckdb")
    yield s
    s.close()


def queued(store: Store, monkeypatch: pytest.MonkeyPatch, calls: list[Callable[[], Any]]
           ) -> tuple[list[Any], list[int]]:
    """Run each call in its own thread while the writer is held, one after the other into
    the queue; then free the writer. Returns each call's result (or the exception it
    raised), in order, and the size of every batch written."""
    batches: list[int] = []
    write_batch = store._write_batch

    def spy(jobs: list[_Write]) -> None:
        batches.append(sum(not j.done for j in jobs))
        write_batch(jobs)

    monkeypatch.setattr(store, "_write_batch", spy)
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            results[i] = exc

    threads = []
    with store._lock:
        for i in range(len(calls)):
            t = threading.Thread(target=run, args=(i,), daemon=True)
            t.start()
            threads.append(t)
            deadline = time.monotonic() + 10
            while len(store._queue) < i + 1:
                assert time.monotonic() < deadline, "the write never queued"
                time.sleep(0.001)
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    return results, batches


def test_queued_writes_share_one_transaction_and_keep_their_order(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    first = make_submission("NO-2024-0001", revision=1)
    calls: list[Callable[[], Any]] = [
        lambda: accept(store, first),
        lambda: accept(store, make_submission("NO-2024-0002", revision=2)),  # newer: stored
        lambda: accept(store, make_submission("NO-2024-0003", revision=2, threshold=6)),
        lambda: accept(store, first),  # identical resend of the first: its receipt again
        lambda: accept(store, make_submission("NO-2024-0001", threshold=9)),  # conflict
        lambda: store.reject("bad_signature", "altered", "10.0.0.7"),
        lambda: accept(store, make_submission("SE-2024-0001", country="SE")),
    ]
    results, batches = queued(store, monkeypatch, calls)
    assert batches == [len(calls)]  # one transaction for all seven
    (r1, c1), (r2, c2), stale, (again, c4), conflict, rejected, (r7, c7) = results
    assert (c1, c2, c4, c7) == (True, True, False, True)
    assert again == r1
    assert isinstance(stale, StoreRefusal) and stale.code == "stale_revision"
    assert "not newer than revision 2" in str(stale)
    assert isinstance(conflict, StoreRefusal) and conflict.code == "conflict"
    assert rejected is None
    entries = store.audit_entries()
    assert [(e["seq"], e["outcome"], e["code"]) for e in entries] == [
        (1, "accepted", "accepted"), (2, "accepted", "accepted"),
        (3, "rejected", "stale_revision"), (4, "duplicate", "duplicate"),
        (5, "rejected", "conflict"), (6, "rejected", "bad_signature"),
        (7, "accepted", "accepted")]
    anchors = {r["receipt"]["audit_seq"]: r["receipt"]["audit_hash"] for r in (r1, r2, r7)}
    assert sorted(anchors) == [1, 2, 7]
    assert chain.verify(store.audit_links(), anchors) == []
    assert [(r.submission_id, r.revision) for r in store.records()] == [
        ("NO-2024-0001", 1), ("NO-2024-0002", 2), ("SE-2024-0001", 1)]
    # The next write continues the chain from the batch's last entry.
    store.reject("unsigned", "no signature", None)
    assert store.audit_entries()[-1]["seq"] == 8
    assert chain.verify(store.audit_links()) == []


def test_a_failing_signer_fails_alone_in_its_batch(store: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(receipt: Receipt) -> dict[str, Any]:
        raise RuntimeError("hub key unreadable")

    def with_signer(doc: Submission, signer: Callable[[Receipt], dict[str, Any]]
                    ) -> tuple[dict[str, Any], bool]:
        payload = doc.to_bytes()
        envelope = dsse.envelope_bytes(dsse.sign(payload, NODE_KEY)).decode()
        return store.accept(doc, envelope, payload, NODE_KEY.keyid, "10.0.0.1", signer)

    results, batches = queued(store, monkeypatch, [
        lambda: accept(store, make_submission("NO-2024-0001")),
        lambda: with_signer(make_submission("SE-2024-0001", country="SE"), boom),
        lambda: accept(store, make_submission("DK-2024-0001", country="DK")),
    ])
    assert batches == [3]
    assert isinstance(results[1], RuntimeError)
    assert results[0][1] is True and results[2][1] is True
    # No entry for the failed write, and no gap: the third write has entry 2.
    assert [(e["seq"], e["country"]) for e in store.audit_entries()] == [(1, "NO"), (2, "DK")]
    assert results[2][0]["receipt"]["audit_seq"] == 2
    assert chain.verify(store.audit_links()) == []
    assert [r.country for r in store.records()] == ["DK", "NO"]
    assert with_signer(make_submission("SE-2024-0001", country="SE"), sign)[1] is True


def test_a_write_the_database_refuses_fails_alone(store: Store,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's transaction fails as a whole; each of its writes is then written on its
    own, so only the one the database refuses fails."""
    bad = make_submission("SE-2024-0001", country="SE")
    payload = bad.to_bytes()

    def refused() -> tuple[dict[str, Any], bool]:
        # A lone surrogate cannot be stored as UTF-8 (intake's text never has one).
        return store.accept(bad, "{\"payload\": \"\udc80\"}", payload, NODE_KEY.keyid,
                            "10.0.0.1", sign)

    results, batches = queued(store, monkeypatch, [
        lambda: accept(store, make_submission("NO-2024-0001")),
        refused,
        lambda: accept(store, make_submission("DK-2024-0001", country="DK")),
    ])
    assert batches[0] == 3 and batches[1:] == [1, 1, 1]  # the batch, then one by one
    assert isinstance(results[1], Exception) and not isinstance(results[1], StoreRefusal)
    assert results[0][1] is True and results[2][1] is True
    assert [r.country for r in store.records()] == ["DK", "NO"]
    assert chain.verify(store.audit_links(), {
        r[0]["receipt"]["audit_seq"]: r[0]["receipt"]["audit_hash"]
        for r in (results[0], results[2])}) == []


def test_many_threads_store_everything_once_with_an_unbroken_chain(tmp_path: Path) -> None:
    """More concurrent writers than one batch holds, each posting twice (a submission and
    its identical resend): every submission stored once, one accepted and one duplicate
    entry each, the chain unbroken, every receipt its own anchor."""
    countries = [f"{a}{b}" for a in "ABCDEFGH" for b in "ABCDEFGHIJ"][:MAX_BATCH + 16]
    results: dict[str, list[tuple[dict[str, Any], bool]]] = {}
    start = threading.Barrier(len(countries))

    with Store(tmp_path / "hub.duckdb") as store:
        def post(country: str) -> None:
            doc = make_submission(f"{country}-2024-0001", country=country)
            start.wait(10)
            results[country] = [accept(store, doc), accept(store, doc)]

        threads = [threading.Thread(target=post, args=(c,), daemon=True) for c in countries]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == len(countries)
        assert store.count_documents() == len(countries)
        entries = store.audit_entries()
        assert [e["seq"] for e in entries] == list(range(1, 2 * len(countries) + 1))
        anchors = {}
        for (first, created), (again, resent) in results.values():
            assert created and not resent and again == first
            anchors[first["receipt"]["audit_seq"]] = first["receipt"]["audit_hash"]
        assert len(anchors) == len(countries)
        assert chain.verify(store.audit_links(), anchors) == []
        outcomes = [e["outcome"] for e in entries]
        assert outcomes.count("accepted") == outcomes.count("duplicate") == len(countries)
        # Each receipt is signed by the hub and names its own submission.
        for country, ((first, _), _) in results.items():
            payload, _ = dsse.verify(first["signed_receipt"],
                                     {HUB_KEY.keyid: HUB_KEY.public_key},
                                     payload_type=RECEIPT_TYPE)
            assert Receipt.model_validate_json(payload).country == country


def test_the_chain_continues_after_a_reopen(tmp_path: Path) -> None:
    """The tail is read once when the store opens; a reopened store continues from it."""
    path = tmp_path / "hub.duckdb"
    with Store(path) as store:
        for i in range(3):
            accept(store, make_submission(f"NO-2024-000{i + 1}", revision=i + 1))
    with Store(path) as store:
        response, _ = accept(store, make_submission("NO-2024-0009", revision=9))
        assert response["receipt"]["audit_seq"] == 4
        assert chain.verify(store.audit_links()) == []
