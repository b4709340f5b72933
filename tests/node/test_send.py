"""``emsbench node send``, ``withdraw`` and the delivery at the end of ``run`` (Prefect
flows) against a fake hub that is overloaded, refusing, or not there at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emsbench import dsse
from emsbench.wire import WITHDRAWAL_TYPE, Withdrawal
from node import audit
from node import flow as node_flow
from node import submission as sub
from node.outbox import Signed, read_outbox


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry policy as shipped (4 retries, transient failures only), without the
    backoff's seconds of waiting."""
    fast = node_flow.deliver_task.with_options(retry_delay_seconds=0)
    assert fast.retries == node_flow.RETRIES == 4
    monkeypatch.setattr(node_flow, "deliver_task", fast)


def _withdrawal(node: Any, specs: Any, year: int) -> Signed:
    return sub.seal_next_revision(
        lambda c, r: sub.build_withdrawal("NO", year, c, r, "figures were wrong"), "NO", year,
        specs, node.cfg)


def _events(node: Any) -> list[str]:
    return [str(link.fields["event"]) for link in audit.read_log(node.cfg.audit_log)[0]]


def test_send_rides_out_overload_delivers_once_and_never_retries_a_refusal(
        tmp_path: Path, fake_hub: Any, node_factory: Any, computed: Any, cli: Any,
        prefect_ready: None) -> None:
    node = node_factory(tmp_path, hub_url=fake_hub.url,
                        hub_key=fake_hub.write_pub(tmp_path / "hub-key.pub"))
    old = _withdrawal(node, computed[2], 2024)
    new = _withdrawal(node, computed[2], 2025)
    # The hub already holds a higher revision for 2025 (say, from a lost outbox).
    fake_hub.highest[("NO", 2025, new.doc.catalogue)] = 3
    fake_hub.queue(503, "overloaded", "too many submissions", **{"Retry-After": "1"})
    fake_hub.queue(503, "overloaded", "too many submissions", **{"Retry-After": "1"})
    result = cli("node", "send", "--config", str(node.config_path))
    # Oldest first: 2024 took three POSTs (503, 503, 201), 2025 one (409, not retried).
    assert [body for _, body in fake_hub.posts] == [old.path.read_bytes()] * 3 + \
        [new.path.read_bytes()]
    assert fake_hub.post_times[1] - fake_hub.post_times[0] >= 1.0  # Retry-After honoured
    assert len(fake_hub.answers) == 1  # stored exactly once
    lines = result.out.splitlines()
    assert lines[0].startswith(f"{old.submission_id}  delivered  hub receipt at")
    assert lines[1] == (f"{new.submission_id}  refused    the hub refused {new.submission_id} "
                        "(409 stale_revision): the hub holds revision 3 for NO 2025")
    assert result.code == 2 and "refused 1 document(s)" in result.error
    status = {e.submission_id: e.status for e in read_outbox(node.cfg.outbox,
                                                             fake_hub.key.public_key)}
    assert status == {old.submission_id: "delivered", new.submission_id: "refused"}
    assert _events(node) == ["signed", "signed", "send_failed", "send_failed", "delivered",
                             "refused"]
    assert audit.verify_log(node.cfg.audit_log)[1] == []
    # Nothing is pending any more: a second send sends nothing.
    again = cli("node", "send", "--config", str(node.config_path))
    assert again.code == 0 and "nothing to send" in again.out
    assert len(fake_hub.posts) == 4


def test_run_with_the_hub_down_keeps_the_submission_pending_then_send_delivers_it(
        tmp_path: Path, fake_hub: Any, node_factory: Any, synthetic_data: Path, cli: Any,
        prefect_ready: None) -> None:
    node = node_factory(tmp_path, hub_url=fake_hub.url, data=synthetic_data,
                        hub_key=fake_hub.write_pub(tmp_path / "hub-key.pub"))
    config = str(node.config_path)
    port = fake_hub.server.server_address[1]
    fake_hub.stop()
    run = cli("node", "run", "--config", config)
    assert run.code == 2
    assert "Traceback" not in run.err.split("emsbench: error:")[-1]
    assert run.error.startswith("emsbench: error: cannot reach the hub at ")
    assert run.error.endswith(f"as pending: run `emsbench node send --config {config}` to "
                              "deliver it")
    [entry] = read_outbox(node.cfg.outbox)
    assert entry.status == "pending" and entry.revision == 1
    assert list(node.cfg.workdir.iterdir()) == []
    # One try and four retries, each logged.
    assert _events(node) == ["signed"] + ["send_failed"] * 5

    fake_hub.start(port)
    status = cli("node", "status", "--config", config)
    assert "1 pending" in status.out and f"`emsbench node send --config {config}`" in status.out
    sent = cli("node", "send", "--config", config)
    assert sent.code == 0, sent.err
    assert sent.out.startswith(f"{entry.submission_id}  delivered  hub receipt at")
    assert len(fake_hub.posts) == 1
    [entry] = read_outbox(node.cfg.outbox, fake_hub.key.public_key)
    assert entry.status == "delivered" and entry.receipt is not None
    status = cli("node", "status", "--config", config)
    assert f"received {entry.receipt.received_at.isoformat()}" in status.out
    assert _events(node)[-1] == "delivered"
    verify = cli("node", "audit", "verify", "--config", config)
    assert verify.code == 0 and "OK, 7 entries" in verify.out


def test_withdraw_signs_a_withdrawal_and_delivers_it(
        tmp_path: Path, fake_hub: Any, node_factory: Any, computed: Any, cli: Any,
        prefect_ready: None) -> None:
    node = node_factory(tmp_path, hub_url=fake_hub.url,
                        hub_key=fake_hub.write_pub(tmp_path / "hub-key.pub"))
    node_key = dsse.public_key_from_b64(node.pub)
    fake_hub.trusted = {dsse.key_id(node_key): node_key}  # the hub checks the signature
    earlier = _withdrawal(node, computed[2], 2025)  # pending, and about to be superseded
    bad = cli("node", "withdraw", "--config", str(node.config_path), "--year", "2025",
              "--reason", "  ")
    assert bad.code == 2 and "--reason must say" in bad.error
    result = cli("node", "withdraw", "--config", str(node.config_path), "--year", "2025",
                 "--reason", "urgency codes were mapped wrongly")
    assert result.code == 0, result.err
    [(path, body)] = fake_hub.posts  # only the new withdrawal; the superseded one is not sent
    assert path == "/v1/withdrawals"
    payload, keyid = dsse.verify(json.loads(body), {dsse.key_id(node_key): node_key},
                                 payload_type=WITHDRAWAL_TYPE)
    doc = Withdrawal.from_bytes(payload)
    assert (doc.country, doc.period.year, doc.revision) == ("NO", 2025, 2)
    assert doc.reason == "urgency codes were mapped wrongly"
    assert doc.catalogue == earlier.doc.catalogue
    assert f"withdrawal {doc.submission_id} of NO 2025 (revision 2)" in result.out
    assert f"{doc.submission_id}  delivered" in result.out
    status = {e.submission_id: e.status for e in read_outbox(node.cfg.outbox,
                                                             fake_hub.key.public_key)}
    assert status == {earlier.submission_id: "superseded", doc.submission_id: "delivered"}
