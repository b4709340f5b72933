"""The node's audit log: every way of rewriting history is found, appends never fork."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from node import audit


def _log(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "audit.jsonl"
    for i in range(n):
        audit.append(path, "signed", {"submission_id": f"NO-2025-{i:016x}", "revision": i + 1,
                                      "kind": "submission"})
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_appended_events_are_chained_in_order_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "a" / "audit.jsonl"
    audit.append(path, "signed", {"submission_id": "NO-2025-1", "revision": 1})
    audit.append(path, "send_failed", {"submission_id": "NO-2025-1", "error": "down"})
    last = audit.append(path, "delivered", {"submission_id": "NO-2025-1", "audit_seq": 9})
    entries = [json.loads(line) for line in _lines(path)]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert [e["event"] for e in entries] == ["signed", "send_failed", "delivered"]
    assert entries[0]["prev_hash"] == "0" * 64
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    assert last == entries[2]
    assert audit.verify_log(path) == (3, [])


def test_edited_field_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    lines[1] = lines[1].replace('"revision":2', '"revision":7')
    path.write_text("".join(lines), encoding="utf-8")
    _, problems = audit.verify_log(path)
    assert problems == ["entry 2: its content does not match its hash (the entry was edited)"]


def test_edited_hash_to_match_is_still_detected_by_the_next_link(tmp_path: Path) -> None:
    # The careful forger recomputes the edited entry's hash; the next entry's link breaks.
    from emsbench.chain import entry_hash

    path = _log(tmp_path)
    lines = _lines(path)
    e = json.loads(lines[1])
    e["revision"] = 7
    fields = {k: v for k, v in e.items() if k not in ("seq", "prev_hash", "hash")}
    e["hash"] = entry_hash(e["prev_hash"], e["seq"], fields)
    lines[1] = json.dumps(e) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    _, problems = audit.verify_log(path)
    assert any("entry 3: does not link" in p for p in problems)


def test_deleted_middle_line_is_detected(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    del lines[1]
    path.write_text("".join(lines), encoding="utf-8")
    count, problems = audit.verify_log(path)
    assert count == 3
    assert any("entry 3: expected sequence number 2" in p for p in problems)
    assert any("entry 3: does not link" in p for p in problems)


def test_swapped_lines_are_detected(tmp_path: Path) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("".join(lines), encoding="utf-8")
    _, problems = audit.verify_log(path)
    assert any("entry 3: expected sequence number 2" in p for p in problems)


@pytest.mark.parametrize("where", [1, 3])  # a middle line, and the last line
def test_truncated_line_is_detected(tmp_path: Path, where: int) -> None:
    path = _log(tmp_path)
    lines = _lines(path)
    lines[where] = lines[where][:40] + ("\n" if where < 3 else "")
    path.write_text("".join(lines), encoding="utf-8")
    _, problems = audit.verify_log(path)
    assert any(f"line {where + 1}: " in p for p in problems), problems


def test_a_damaged_last_line_stops_further_appends(tmp_path: Path) -> None:
    path = _log(tmp_path, 2)
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"seq": 3, "ev')
    before = path.read_bytes()
    with pytest.raises(audit.AuditError, match="last line.*damaged.*audit verify"):
        audit.append(path, "signed", {"submission_id": "x"})
    assert path.read_bytes() == before


def test_values_that_do_not_hash_deterministically_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with pytest.raises(TypeError, match="float"):
        audit.append(path, "signed", {"ratio": 0.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="may not be named"):
        audit.append(path, "signed", {"hash": "0" * 64})
    with pytest.raises(ValueError, match="unknown audit event"):
        audit.append(path, "deleted", {})
    assert not path.exists() or path.read_bytes() == b""


def test_a_line_with_an_injected_float_or_list_is_reported_not_crashed(tmp_path: Path) -> None:
    path = _log(tmp_path, 2)
    lines = _lines(path)
    lines[1] = lines[1].replace('"revision":2', '"revision":2.0')
    lines.append('["not", "an", "entry"]\n')
    path.write_text("".join(lines), encoding="utf-8")
    _, problems = audit.verify_log(path)
    assert any(p.startswith("line 2: not an audit entry") for p in problems)
    assert any(p.startswith("line 3: not an audit entry") for p in problems)


def test_concurrent_appends_do_not_fork_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    def write(k: int) -> None:
        for i in range(25):
            audit.append(path, "send_failed", {"submission_id": f"{k}-{i}", "error": "x" * 300})

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert audit.verify_log(path) == (100, [])


def test_a_long_last_line_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit.append(path, "send_failed", {"submission_id": "a", "error": "é" * 10_000})
    audit.append(path, "send_failed", {"submission_id": "b", "error": "x"})
    assert audit.verify_log(path) == (2, [])


def _sealed_node(tmp_path: Path, node_factory: Any, computed: Any, n: int = 3) -> Any:
    from node import submission as sub

    node = node_factory(tmp_path)
    for _ in range(n):
        sub.seal_next_revision(
            lambda c, r: sub.build_withdrawal("NO", 2025, c, r, "audit test"), "NO", 2025,
            computed[2], node.cfg)
    return node


def test_audit_verify_command_says_ok_or_lists_each_problem(
        tmp_path: Path, node_factory: Any, computed: Any, cli: Any) -> None:
    node = _sealed_node(tmp_path, node_factory, computed)
    config = str(node.config_path)
    ok = cli("node", "audit", "verify", "--config", config)
    assert ok.code == 0 and ok.out == f"audit log {node.cfg.audit_log}: OK, 3 entries\n"
    lines = _lines(node.cfg.audit_log)
    lines[0] = lines[0].replace('"revision":1', '"revision":5')
    node.cfg.audit_log.write_text("".join(lines), encoding="utf-8")
    bad = cli("node", "audit", "verify", "--config", config)
    assert bad.code == 2
    assert "entry 1: its content does not match its hash" in bad.out
    assert "does not verify: 1 problem(s) above" in bad.error


def test_audit_verify_finds_entries_cut_off_the_end_or_a_deleted_log(
        tmp_path: Path, node_factory: Any, computed: Any, cli: Any) -> None:
    # Cutting the last lines leaves a valid shorter chain; the outbox still remembers.
    node = _sealed_node(tmp_path, node_factory, computed)
    config = str(node.config_path)
    lines = _lines(node.cfg.audit_log)
    last = json.loads(lines[-1])["submission_id"]
    node.cfg.audit_log.write_text("".join(lines[:-1]), encoding="utf-8")
    cut = cli("node", "audit", "verify", "--config", config)
    assert cut.code == 2 and f"{last}: signed (it is in the outbox) but the log has no" in cut.out
    node.cfg.audit_log.unlink()
    gone = cli("node", "audit", "verify", "--config", config)
    assert gone.code == 2 and "is missing, but the outbox holds 3 signed" in gone.error


def test_nothing_is_signed_when_the_log_could_not_record_it(
        tmp_path: Path, node_factory: Any, computed: Any) -> None:
    from node.outbox import read_outbox

    node = _sealed_node(tmp_path, node_factory, computed, n=1)
    with node.cfg.audit_log.open("a", encoding="utf-8") as fh:
        fh.write('{"seq": 2, "hash": ')  # a crash mid-write, or a hand edit
    with pytest.raises(audit.AuditError, match="last line"):
        _sealed_node(tmp_path, lambda _: node, computed, n=1)
    assert len(read_outbox(node.cfg.outbox)) == 1


def test_audit_verify_on_a_fresh_node(tmp_path: Path, node_factory: Any, cli: Any) -> None:
    node = node_factory(tmp_path)
    fresh = cli("node", "audit", "verify", "--config", str(node.config_path))
    assert fresh.code == 0 and "nothing has been signed" in fresh.out
