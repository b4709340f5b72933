"""Outbox status, told by files: what a careless operator or a damaged disk does to them
never makes the node crash, resend a refused document, or take a bad receipt as proof."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from emsbench import dsse
from emsbench.wire import RECEIPT_TYPE, Receipt
from node import submission as sub
from node.outbox import (
    Refusal,
    Signed,
    next_revision,
    pending,
    read_outbox,
    receipt_path,
    write_envelope,
    write_receipt,
    write_refusal,
)

CAT = "c" * 64


def _seal(node: Any, specs: Any, year: int = 2025) -> Signed:
    return sub.seal_next_revision(
        lambda c, r: sub.build_withdrawal("NO", year, c, r, "test withdrawal"), "NO", year,
        specs, node.cfg)


def _receipt_for(signed: Signed, key: dsse.KeyPair, **change: Any) -> dict[str, Any]:
    doc = signed.doc
    fields = {"kind": "withdrawal", "submission_id": doc.submission_id, "country": "NO",
              "year": doc.period.year, "catalogue": doc.catalogue, "revision": doc.revision,
              "payload_sha256": signed.payload_sha256, "received_at": "2025-06-01T10:00:00Z",
              "hub_version": "t", "audit_seq": 3, "audit_hash": "a" * 64, **change}
    receipt = Receipt.model_validate_json(json.dumps(fields))
    return dsse.sign(receipt.to_bytes(), key, payload_type=RECEIPT_TYPE)


def test_pending_delivered_superseded_refused(tmp_path: Path, node_factory: Any,
                                              computed: Any) -> None:
    node, specs, hub = node_factory(tmp_path), computed[2], dsse.generate_key()
    r1, r2, r3 = (_seal(node, specs) for _ in range(3))
    other_year = _seal(node, specs, 2024)
    status = {e.submission_id: e.status for e in read_outbox(node.cfg.outbox)}
    assert status == {r1.submission_id: "superseded", r2.submission_id: "superseded",
                      r3.submission_id: "pending", other_year.submission_id: "pending"}
    write_receipt(node.cfg.outbox, r1.submission_id, _receipt_for(r1, hub))
    write_refusal(node.cfg.outbox, r3.submission_id, Refusal(422, "invalid_payload", "no"))
    entries = read_outbox(node.cfg.outbox, hub.public_key)
    status = {e.submission_id: e.status for e in entries}
    # A delivered revision stays delivered; r2 is still below r3 even though r3 was refused.
    assert status == {r1.submission_id: "delivered", r2.submission_id: "superseded",
                      r3.submission_id: "refused", other_year.submission_id: "pending"}
    delivered = next(e for e in entries if e.status == "delivered")
    assert delivered.receipt is not None and delivered.receipt.audit_seq == 3
    refused = next(e for e in entries if e.status == "refused")
    assert refused.refusal == Refusal(422, "invalid_payload", "no")
    assert [e.submission_id for e in pending(entries)] == [other_year.submission_id]
    # Oldest first: the order of signing.
    assert [e.submission_id for e in entries] == [r1.submission_id, r2.submission_id,
                                                  r3.submission_id, other_year.submission_id]


def test_a_receipt_file_that_does_not_prove_delivery_leaves_the_entry_pending(
        tmp_path: Path, node_factory: Any, computed: Any) -> None:
    node, hub = node_factory(tmp_path), dsse.generate_key()
    a, b = _seal(node, computed[2]), _seal(node, computed[2], 2024)
    outbox = node.cfg.outbox
    # Forged with another key.
    write_receipt(outbox, a.submission_id, _receipt_for(a, dsse.generate_key()))
    # The genuine receipt of a, copied beside b.
    write_receipt(outbox, b.submission_id, _receipt_for(a, hub))
    entries = {e.submission_id: e for e in read_outbox(outbox, hub.public_key)}
    assert entries[a.submission_id].status == "pending"
    assert "not signed by the hub key" in entries[a.submission_id].detail
    assert entries[b.submission_id].status == "pending"
    assert "another document" in entries[b.submission_id].detail
    # Without the hub key the signature cannot be checked, but the match still is.
    assert {e.submission_id: e.status for e in read_outbox(outbox)} == {
        a.submission_id: "delivered", b.submission_id: "pending"}
    receipt_path(outbox, a.submission_id).write_text("{not json", encoding="utf-8")
    entry = read_outbox(outbox, hub.public_key)[0]
    assert entry.status == "pending" and "damaged" in entry.detail


def test_damaged_or_foreign_files_are_reported_not_sent_and_do_not_crash(
        tmp_path: Path, node_factory: Any, computed: Any) -> None:
    node = node_factory(tmp_path)
    good = _seal(node, computed[2])
    outbox = node.cfg.outbox
    (outbox / "NO-2025-truncated.json").write_bytes(good.path.read_bytes()[:100])
    (outbox / "NO-2025-notenvelope.json").write_text("[1, 2]", encoding="utf-8")
    (outbox / "NO-2025-wrongtype.json").write_text(json.dumps(
        {"payloadType": "text/plain", "payload": "", "signatures": []}), encoding="utf-8")
    (outbox / "NO-2025-badpayload.json").write_text(json.dumps(
        {"payloadType": good.envelope["payloadType"], "payload": "e30=", "signatures": []}),
        encoding="utf-8")
    shutil.copy(good.path, outbox / "copy-of-good.json")  # renamed by hand
    (outbox / "notes.txt").write_text("not an entry", encoding="utf-8")
    (outbox / ".NO-2025-x.json.123.tmp").write_text("half written", encoding="utf-8")
    (outbox / "subfolder.json").mkdir()
    entries = read_outbox(outbox)
    status = {e.submission_id: (e.status, e.detail) for e in entries}
    assert status[good.submission_id] == ("pending", "")
    bad = {k: v for k, v in status.items() if k != good.submission_id}
    assert set(bad) == {"NO-2025-truncated", "NO-2025-notenvelope", "NO-2025-wrongtype",
                        "NO-2025-badpayload", "copy-of-good"}
    assert all(s == "unreadable" for s, _ in bad.values())
    assert "not JSON" in bad["NO-2025-truncated"][1]
    assert "unknown payloadType" in bad["NO-2025-wrongtype"][1]
    assert "not a valid withdrawal" in bad["NO-2025-badpayload"][1]
    assert "file name differs" in bad["copy-of-good"][1]
    assert pending(entries) == [e for e in entries if e.submission_id == good.submission_id]


def test_a_signed_envelope_is_never_rewritten(tmp_path: Path, node_factory: Any,
                                              computed: Any) -> None:
    node = node_factory(tmp_path)
    good = _seal(node, computed[2])
    before = good.path.read_bytes()
    with pytest.raises(FileExistsError, match="never rewritten"):
        write_envelope(node.cfg.outbox, {"payloadType": "x"}, good.submission_id)
    assert good.path.read_bytes() == before
    assert [p.name for p in node.cfg.outbox.iterdir()] == [good.path.name]  # no temp file


def test_next_revision_counts_only_the_same_country_year_and_catalogue(
        tmp_path: Path, node_factory: Any, computed: Any) -> None:
    node = node_factory(tmp_path)
    specs = computed[2]
    for _ in range(2):
        _seal(node, specs)
    entries = read_outbox(node.cfg.outbox)
    cat = entries[0].signed.doc.catalogue if entries[0].signed else ""
    assert next_revision(entries, "NO", 2025, cat) == 3
    assert next_revision(entries, "SE", 2025, cat) == 1
    assert next_revision(entries, "NO", 2024, cat) == 1
    assert next_revision(entries, "NO", 2025, CAT) == 1
    assert next_revision([], "NO", 2025, cat) == 1
    assert read_outbox(tmp_path / "no-such-outbox") == []
