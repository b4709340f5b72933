"""Review before release: with ``review = true`` a run signs and previews but sends nothing;
``node approve`` then ``node send`` sends exactly the previewed bytes, and nothing else."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from emsbench import dsse
from emsbench.wire import SUBMISSION_TYPE, Submission
from node.audit import read_log
from node.outbox import approval_path, read_outbox


def _held(tmp_path: Path, node_factory: Any, fake_hub: Any, synthetic_data: Path,
          cli: Any) -> Any:
    pub = fake_hub.write_pub(tmp_path / "hub-key.pub")
    node = node_factory(tmp_path / "node", hub_url=fake_hub.url, hub_key=pub,
                        data=synthetic_data, review=True)
    run = cli("node", "run", "--config", str(node.config_path))
    assert run.code == 0, run.err
    assert "review = true: nothing was sent" in run.out
    assert fake_hub.posts == []
    return node, run


def test_review_holds_until_approved_then_sends_exactly_the_preview(
        tmp_path: Path, node_factory: Any, fake_hub: Any, synthetic_data: Path,
        prefect_harness: None, cli: Any) -> None:
    node, run = _held(tmp_path, node_factory, fake_hub, synthetic_data, cli)
    config = str(node.config_path)
    [entry] = read_outbox(node.cfg.outbox)
    assert entry.status == "awaiting_approval" and entry.signed is not None
    sid, sha = entry.submission_id, entry.signed.payload_sha256

    # the preview is the payload: every cell, with the payload's hash
    html = (node.cfg.reports / f"preview-{sid}.html").read_text(encoding="utf-8")
    assert sha in html and f"preview-{sid}.html" in run.out
    with (node.cfg.reports / f"preview-{sid}.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert isinstance(entry.signed.doc, Submission)
    cells = [(r.spec_id, c) for r in entry.signed.doc.indicators for c in r.cells]
    assert len(rows) == len(cells) > 30
    withheld = [r for r in rows if r["withheld"] == "yes"]
    assert len(withheld) == sum(c.suppressed for _, c in cells)
    assert all(r["numerator"] == r["denominator"] == r["bins"] == "" for r in withheld)
    # and says why each was withheld: the flow hands the computation's reasons to the preview
    assert withheld and all(r["reason"] and "no reason recorded" not in r["reason"]
                            for r in withheld)

    # nothing leaves before approval, not even with `node send`
    send = cli("node", "send", "--config", config)
    assert send.code == 0 and "nothing to send" in send.out and fake_hub.posts == []
    assert "awaiting_approval" in cli("node", "status", "--config", config).out

    approve = cli("node", "approve", "--config", config, "--by", "registry analyst")
    assert approve.code == 0, approve.err
    assert f"approved {sid}" in approve.out
    links, problems = read_log(node.cfg.audit_log)
    assert problems == [] and links[-1].fields["event"] == "approved"
    assert links[-1].fields["payload_sha256"] == sha

    send = cli("node", "send", "--config", config)
    assert send.code == 0, send.err
    [(path, body)] = fake_hub.posts
    assert body == entry.path.read_bytes()  # the very bytes that were previewed
    assert path == "/v1/submissions"
    payload = base64.b64decode(json.loads(body)["payload"])
    assert hashlib.sha256(payload).hexdigest() == sha
    assert read_outbox(node.cfg.outbox)[0].status == "delivered"


def test_an_approval_of_other_bytes_releases_nothing(
        tmp_path: Path, node_factory: Any, fake_hub: Any, synthetic_data: Path,
        prefect_harness: None, cli: Any) -> None:
    """Approve, then swap the envelope for another signed by the node's own key: the
    approval names the old payload, so the new one waits and nothing is sent."""
    node, _ = _held(tmp_path, node_factory, fake_hub, synthetic_data, cli)
    config = str(node.config_path)
    assert cli("node", "approve", "--config", config).code == 0
    [entry] = read_outbox(node.cfg.outbox)
    assert entry.signed is not None and isinstance(entry.signed.doc, Submission)
    changed = entry.signed.doc.model_copy(update={"disclosure_threshold": 7})
    envelope = dsse.sign(changed.to_bytes(), dsse.load_private_key(node.cfg.key),
                         payload_type=SUBMISSION_TYPE)
    entry.path.write_bytes(dsse.envelope_bytes(envelope))
    [after] = read_outbox(node.cfg.outbox)
    assert after.status == "awaiting_approval" and "approves other bytes" in after.detail
    send = cli("node", "send", "--config", config)
    assert "nothing to send" in send.out and fake_hub.posts == []
    # a hand-written approval without the hash is no approval either
    approval_path(node.cfg.outbox, entry.submission_id).write_text("{}", encoding="utf-8")
    assert read_outbox(node.cfg.outbox)[0].status == "awaiting_approval"


def test_approve_needs_a_preview_and_names_the_choice(
        tmp_path: Path, node_factory: Any, fake_hub: Any, synthetic_data: Path,
        prefect_harness: None, cli: Any) -> None:
    node, _ = _held(tmp_path, node_factory, fake_hub, synthetic_data, cli)
    config = str(node.config_path)
    second = cli("node", "run", "--config", config)
    assert second.code == 0
    entries = read_outbox(node.cfg.outbox)
    # revision 2 supersedes revision 1, which can then no longer be approved
    assert [e.status for e in entries] == ["superseded", "awaiting_approval"]
    old = cli("node", "approve", "--config", config, "--submission", entries[0].submission_id)
    assert old.code == 2 and "is not awaiting approval" in old.err
    for preview in node.cfg.reports.glob(f"preview-{entries[1].submission_id}.*"):
        preview.unlink()
    missing = cli("node", "approve", "--config", config)
    assert missing.code == 2 and "no release preview" in missing.err
    assert not approval_path(node.cfg.outbox, entries[1].submission_id).exists()
