"""One delivery attempt against a hub that may be honest, overloaded, wrong or forged.

Only a receipt signed by the hub key in node.toml, naming the exact bytes sent, counts as
delivery; everything else leaves the entry pending (or refused, if the hub said no).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from emsbench import dsse
from emsbench.wire import RECEIPT_TYPE, Submission
from node import audit
from node import submission as sub
from node.delivery import (
    HubRefused,
    HubUnavailable,
    NotProven,
    attempt,
    deliver,
    deliver_recorded,
    retry_after_seconds,
)
from node.outbox import Signed, read_outbox, receipt_path, refused_path
from node.receipt import load_hub_key


@pytest.fixture
def node(tmp_path: Path, fake_hub: Any, node_factory: Any) -> Any:
    pub = fake_hub.write_pub(tmp_path / "hub-key.pub")
    return node_factory(tmp_path / "node", hub_url=fake_hub.url, hub_key=pub)


def _submission(node: Any, computed: Any) -> Signed:
    report, results, specs = computed

    def build(catalogue: str, revision: int) -> Submission:
        return sub.build_submission("NO", 2025, 5, report, results, catalogue=catalogue,
                                    revision=revision)
    return sub.seal_next_revision(build, "NO", 2025, specs, node.cfg)


def _withdrawal(node: Any, computed: Any, year: int = 2025) -> Signed:
    return sub.seal_next_revision(
        lambda c, r: sub.build_withdrawal("NO", year, c, r, "figures were wrong"), "NO", year,
        computed[2], node.cfg)


def _send(node: Any, signed: Signed, **kw: Any) -> Any:
    assert node.cfg.hub_key is not None
    return deliver_recorded(signed, node.cfg.hub_url, load_hub_key(node.cfg.hub_key),
                            node.cfg.audit_log, **kw)


def _events(node: Any) -> list[str]:
    return [str(link.fields["event"]) for link in audit.read_log(node.cfg.audit_log)[0]]


def _status(node: Any, hub: Any) -> dict[str, str]:
    return {e.submission_id: e.status for e in read_outbox(node.cfg.outbox, hub.key.public_key)}


def test_a_verified_receipt_is_kept_and_logged_and_a_resend_gets_the_same(
        node: Any, fake_hub: Any, computed: Any) -> None:
    signed = _submission(node, computed)
    receipt = _send(node, signed)
    assert receipt.submission_id == signed.submission_id and receipt.revision == 1
    assert receipt.payload_sha256 == signed.payload_sha256
    path, body = fake_hub.posts[0]
    assert path == "/v1/submissions" and body == signed.path.read_bytes()  # the exact bytes
    kept = json.loads(receipt_path(node.cfg.outbox, signed.submission_id).read_bytes())
    assert kept == fake_hub.answers[signed.submission_id]["signed_receipt"]
    assert _status(node, fake_hub) == {signed.submission_id: "delivered"}
    again = _send(node, signed)  # 200: the same stored receipt
    assert again == receipt and len(fake_hub.posts) == 2
    assert _events(node) == ["signed", "delivered", "delivered"]
    delivered = audit.read_log(node.cfg.audit_log)[0][1].fields
    assert delivered["audit_seq"] == receipt.audit_seq
    assert delivered["received_at"] == receipt.received_at.isoformat()
    assert delivered["hub_url"] == fake_hub.url


def test_a_withdrawal_goes_to_its_own_endpoint(node: Any, fake_hub: Any,
                                               computed: Any) -> None:
    signed = _withdrawal(node, computed)
    assert _send(node, signed).kind == "withdrawal"
    assert fake_hub.posts[0][0] == "/v1/withdrawals"


def test_a_receipt_signed_by_another_key_proves_nothing(node: Any, fake_hub: Any,
                                                        computed: Any) -> None:
    fake_hub.signing_key = dsse.generate_key()  # a man in the middle, or the wrong hub
    signed = _withdrawal(node, computed)
    with pytest.raises(NotProven, match=r"does not prove delivery: .*not signed by the hub "
                                        r"key in node.toml.*stays pending"):
        _send(node, signed)
    assert not receipt_path(node.cfg.outbox, signed.submission_id).exists()
    assert _status(node, fake_hub) == {signed.submission_id: "pending"}
    assert _events(node) == ["signed", "send_failed"]


@pytest.mark.parametrize("field,value", [
    ("payload_sha256", "0" * 64), ("submission_id", "NO-2025-someoneelse"),
    ("revision", 9), ("kind", "submission"), ("catalogue", "f" * 64)])
def test_a_receipt_for_another_document_proves_nothing(node: Any, fake_hub: Any,
                                                       computed: Any, field: str,
                                                       value: Any) -> None:
    fake_hub.tamper = lambda fields: {**fields, field: value}
    signed = _withdrawal(node, computed)
    with pytest.raises(NotProven, match=f"receipt is for another document: its {field}"):
        _send(node, signed)
    assert _status(node, fake_hub) == {signed.submission_id: "pending"}


def test_an_answer_without_a_signed_receipt_proves_nothing(node: Any, fake_hub: Any,
                                                           computed: Any) -> None:
    signed = _withdrawal(node, computed)
    fake_hub.queue(201, body={"receipt": {"status": "accepted"}})
    with pytest.raises(NotProven, match="carries no signed receipt"):
        _send(node, signed)
    # A receipt envelope of the wrong payload type (e.g. a submission echoed back).
    fake_hub.queue(201, body={"signed_receipt": json.loads(signed.path.read_bytes())})
    with pytest.raises(NotProven, match="receipt is not valid"):
        _send(node, signed)
    # Validly signed by the hub, but not a receipt inside.
    bogus = dsse.sign(b'{"status": "accepted"}', fake_hub.key, payload_type=RECEIPT_TYPE)
    fake_hub.queue(200, body={"signed_receipt": bogus})
    with pytest.raises(NotProven, match="payload is not a receipt"):
        _send(node, signed)
    assert _status(node, fake_hub) == {signed.submission_id: "pending"}


def test_a_refusal_is_final_recorded_and_said_in_one_line(node: Any, fake_hub: Any,
                                                          computed: Any) -> None:
    signed = _withdrawal(node, computed)
    fake_hub.queue(409, "stale_revision", "the hub holds revision 4\nfor NO 2025")
    with pytest.raises(HubRefused) as info:
        _send(node, signed)
    assert str(info.value) == (f"the hub refused {signed.submission_id} (409 stale_revision): "
                               "the hub holds revision 4 for NO 2025")
    stored = json.loads(refused_path(node.cfg.outbox, signed.submission_id).read_bytes())
    assert (stored["status"], stored["code"]) == (409, "stale_revision")
    entry = read_outbox(node.cfg.outbox, fake_hub.key.public_key)[0]
    assert entry.status == "refused" and entry.refusal is not None
    assert entry.refusal.code == "stale_revision"
    assert _events(node) == ["signed", "refused"]
    assert audit.read_log(node.cfg.audit_log)[0][1].fields["code"] == "stale_revision"


def test_a_refusal_lists_the_hubs_problems(node: Any, fake_hub: Any, computed: Any) -> None:
    signed = _withdrawal(node, computed)
    problems = [{"code": "disclosure_violation", "message": f"cell {i}"} for i in range(7)]
    fake_hub.queue(422, body={"error": {"code": "invalid_payload", "message": "bad",
                                        "problems": problems}})
    with pytest.raises(HubRefused, match=r"\(422 invalid_payload\): bad \[disclosure_violation"
                                         r": cell 0; .*cell 4 \(\+2 more\)\]"):
        _send(node, signed)
    stored = json.loads(refused_path(node.cfg.outbox, signed.submission_id).read_bytes())
    assert stored["problems"] == problems


@pytest.mark.parametrize("status,headers,retry_after", [
    (503, {"Retry-After": "2"}, 2.0), (500, {}, None), (502, {}, None),
    (429, {"Retry-After": "1"}, 1.0)])
def test_overload_and_server_errors_are_transient(node: Any, fake_hub: Any, computed: Any,
                                                  status: int, headers: dict[str, str],
                                                  retry_after: float | None) -> None:
    signed = _withdrawal(node, computed)
    fake_hub.queue(status, "overloaded" if status == 503 else None, "busy", **headers)
    with pytest.raises(HubUnavailable, match=f"the hub answered {status}") as info:
        _send(node, signed)
    assert info.value.retry_after == retry_after
    assert not refused_path(node.cfg.outbox, signed.submission_id).exists()
    assert _status(node, fake_hub) == {signed.submission_id: "pending"}
    assert _events(node) == ["signed", "send_failed"]


def test_a_4xx_that_is_not_the_hub_speaking_does_not_mark_the_entry_refused(
        node: Any, fake_hub: Any, computed: Any) -> None:
    # A wrong hub_url: some other web server answers 404 with an HTML page.
    signed = _withdrawal(node, computed)
    fake_hub.queue(404, body=b"<html>Not Found</html>")
    with pytest.raises(NotProven, match="probably not the hub: check hub_url"):
        _send(node, signed)
    assert _status(node, fake_hub) == {signed.submission_id: "pending"}


def test_an_unreachable_hub_is_transient(node: Any, fake_hub: Any, computed: Any) -> None:
    signed = _withdrawal(node, computed)
    hub_key = fake_hub.key.public_key
    with pytest.raises(HubUnavailable, match="cannot reach the hub at http://127.0.0.1:9/"):
        deliver(signed, "http://127.0.0.1:9", hub_key)

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with httpx.Client(transport=httpx.MockTransport(timeout)) as client, \
            pytest.raises(HubUnavailable, match="timed out"):
        deliver(signed, fake_hub.url, hub_key, client)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True),
                               now) == 90.0
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True),
                               now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("-5") is None


def test_hub_key_file_errors_say_what_to_get(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read hub_key .*ask the hub operator"):
        load_hub_key(tmp_path / "missing.pub")
    bad = tmp_path / "hub-key.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a base64 Ed25519 public key"):
        load_hub_key(bad)
    bad.write_text("aGVsbG8=\n", encoding="utf-8")  # base64, but not 32 bytes
    with pytest.raises(ValueError, match="not a base64 Ed25519 public key"):
        load_hub_key(bad)


def test_attempt_raises_a_transient_failure_only_when_a_retry_follows(
        node: Any, fake_hub: Any, computed: Any) -> None:
    signed = _withdrawal(node, computed)
    key, log = fake_hub.key.public_key, node.cfg.audit_log
    fake_hub.queue(503, "overloaded", "busy", **{"Retry-After": "3"})
    with pytest.raises(HubUnavailable):
        attempt(signed, fake_hub.url, key, log, retry_follows=True)
    fake_hub.queue(503, "overloaded", "busy")
    last = attempt(signed, fake_hub.url, key, log)
    assert (last.status, last.hub_unreachable) == ("pending", True)
    assert "the hub answered 503 (overloaded): busy" in last.message
    fake_hub.queue(403, "untrusted_key", "no signature is by a trusted key")
    refused = attempt(signed, fake_hub.url, key, log, retry_follows=True)  # never raised
    assert refused.status == "refused" and "(403 untrusted_key)" in refused.message
    assert _status(node, fake_hub) == {signed.submission_id: "refused"}
