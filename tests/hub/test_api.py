"""The hub API end to end through FastAPI's TestClient: acceptance with a signed receipt,
idempotency, conflicts, JSON errors for everything (framework errors, body limits, faults,
overload), the hub's own read endpoints, app creation, configuration and a real server.

The catalogue of refused submissions is ``test_intake_attacks.py``."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import hub.api as hub_api
from emsbench import __version__, chain, dsse
from emsbench.wire import RECEIPT_TYPE, Receipt
from hub.api import create_app
from hub.config import PolicyConfig, load_hub_config, write_hub_config
from hub.signing import public_key_path
from hub.store import Store
from tests.hub.conftest import Hub


def verify_receipt(hub: Hub, body: dict[str, Any]) -> Receipt:
    """The signed receipt verifies with the hub's key and says what ``receipt`` says."""
    payload, keyid = dsse.verify(body["signed_receipt"],
                                 {hub.hub_key.keyid: hub.hub_key.public_key},
                                 payload_type=RECEIPT_TYPE)
    assert keyid == hub.hub_key.keyid
    signed = Receipt.model_validate_json(payload)
    assert signed == Receipt.model_validate_json(json.dumps(body["receipt"]))
    return signed


def test_health_reports_version_count_and_catalogue(hub: Hub) -> None:
    r = hub.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__, "submissions": 0,
                        "catalogue": hub.catalogue, "trust_reloads": 0, "trust_error": None,
                        "catalogues": [{"id": hub.catalogue, "name": "unreleased"}]}


def test_valid_submission_is_accepted_with_a_signed_receipt(hub: Hub) -> None:
    sub = hub.submission()
    env = hub.envelope(sub)
    r = hub.post(env)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"receipt", "signed_receipt"}
    receipt = verify_receipt(hub, body)
    assert (receipt.status, receipt.kind, receipt.submission_id, receipt.country,
            receipt.year, receipt.revision, receipt.catalogue) == \
        ("accepted", "submission", "NO-2024-0001", "NO", 2024, 1, hub.catalogue)
    assert receipt.payload_sha256 == hashlib.sha256(sub.to_bytes()).hexdigest()
    assert receipt.received_at.utcoffset() is not None
    assert receipt.hub_version == __version__
    # The hub publishes its public key beside the private one for the nodes.
    assert public_key_path(hub.config.key_path).read_text().strip() == \
        dsse.public_key_b64(hub.hub_key.public_key)
    [record] = hub.store.records(2024)
    assert (record.submission_id, record.keyid, record.payload_sha256) == \
        (sub.submission_id, hub.keys["NO"].keyid, receipt.payload_sha256)
    assert json.loads(record.envelope) == env  # kept as received
    last = hub.store.audit_entries()[-1]
    assert (last["outcome"], last["country"], last["submission_id"]) == \
        ("accepted", "NO", sub.submission_id)
    assert (receipt.audit_seq, receipt.audit_hash) == (last["seq"], last["hash"])
    assert chain.verify(hub.store.audit_links(), {receipt.audit_seq: receipt.audit_hash}) == []
    assert hub.client.get("/v1/health").json()["submissions"] == 1


def test_identical_resubmission_returns_the_same_receipt(hub: Hub) -> None:
    env = hub.envelope(hub.submission())
    first = hub.post(env)
    second = hub.post(env)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    assert hub.store.count_documents() == 1
    assert [a["outcome"] for a in hub.store.audit_entries()] == ["accepted", "duplicate"]


def test_same_id_different_payload_is_a_conflict(hub: Hub) -> None:
    first = hub.post(hub.envelope(hub.submission(threshold=5)))
    assert first.status_code == 201
    r = hub.post(hub.envelope(hub.submission(threshold=6, revision=2)))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert "NO-2024-0001" in r.json()["error"]["message"]
    [record] = hub.store.records(2024)
    assert record.payload_sha256 == first.json()["receipt"]["payload_sha256"]
    entries = hub.store.audit_entries()
    assert len(entries) == 2  # the store audits the conflict once; the API adds nothing
    assert (entries[-1]["outcome"], entries[-1]["code"]) == ("rejected", "conflict")


def test_withdrawal_is_accepted_on_its_own_endpoint(hub: Hub) -> None:
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    r = hub.post(hub.envelope(hub.withdrawal(revision=2)), path="/v1/withdrawals")
    assert r.status_code == 201, r.text
    receipt = verify_receipt(hub, r.json())
    assert (receipt.kind, receipt.revision) == ("withdrawal", 2)
    # A submission envelope is not a withdrawal.
    r = hub.post(hub.envelope(hub.submission(sid="NO-2024-0003", revision=3)),
                 path="/v1/withdrawals")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_envelope")
    assert [r.kind for r in hub.store.records(2024)] == ["submission", "withdrawal"]


def test_conformance_errors_list_every_problem(hub: Hub) -> None:
    sub = hub.submission(threshold=2, data_quality=hub.submission().data_quality.model_copy(
        update={"rows_read": 3, "rows_accepted": 0, "rejected_by_reason": {}}))
    r = hub.post(hub.envelope(sub))
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "threshold_too_low"
    codes = [p["code"] for p in error["problems"]]
    assert codes[0] == "threshold_too_low" and "disclosure_violation" in codes
    assert all(p["message"] for p in error["problems"])
    assert "node.toml" in error["message"]


def test_spec_mismatch_message_guides_the_operator(hub: Hub) -> None:
    sub = hub.submission()
    sub = sub.model_copy(update={"indicators": [
        sub.indicators[0].model_copy(update={"spec_version": "0.9.0"}), *sub.indicators[1:]]})
    r = hub.post(hub.envelope(sub))
    assert r.status_code == 409
    message = r.json()["error"]["message"]
    assert "T-ALPHA" in message and "0.9.0" in message and "1.0.0" in message
    assert "update" in message


def test_invalid_payload_names_the_fields(hub: Hub) -> None:
    doc = json.loads(hub.submission().to_bytes())
    del doc["submission_id"]
    doc["hello"] = "world"
    r = hub.post(dsse.sign(json.dumps(doc).encode(), hub.keys["NO"]))
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_payload")
    message = r.json()["error"]["message"]
    assert "submission_id" in message and "hello" in message


def test_country_mismatch_is_audited_under_the_key_country(hub: Hub) -> None:
    r = hub.post(hub.envelope(hub.submission(country="NO"), "SE"))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "country_mismatch")
    assert hub.store.audit_entries()[-1]["country"] == "SE"


def test_hub_policy_raises_the_threshold(tmp_path: Path) -> None:
    hub = Hub(tmp_path, min_disclosure_threshold=10)
    r = hub.post(hub.envelope(hub.submission(threshold=5)))
    assert (r.status_code, r.json()["error"]["code"]) == (422, "threshold_too_low")
    assert "10" in r.json()["error"]["message"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_limit_is_refused(tmp_path: Path, chunked: bool) -> None:
    hub = Hub(tmp_path, max_body_bytes=1000)
    body = dsse.envelope_bytes(hub.envelope(hub.submission()))
    assert len(body) > 1000
    # A generator body is sent chunked, without Content-Length: the streaming check.
    content: Any = (body[i:i + 256] for i in range(0, len(body), 256)) if chunked else body
    r = hub.client.post("/v1/submissions", content=content)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert hub.store.count_documents() == 0
    assert hub.store.audit_entries()[-1]["code"] == "payload_too_large"


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/nowhere", 404, "not_found"),
    ("GET", "/v1/submissions", 405, "method_not_allowed"),
    ("DELETE", "/v1/health", 405, "method_not_allowed"),
    ("GET", "/v1/records?year=soon", 422, "invalid_request"),
])
def test_framework_errors_use_the_error_body(hub: Hub, method: str, path: str, status: int,
                                             code: str) -> None:
    r = hub.client.request(method, path, headers={"authorization": f"Bearer {_token(hub)}"})
    assert r.status_code == status
    assert set(r.json()) == {"error"}
    assert r.json()["error"]["code"] == code
    assert isinstance(r.json()["error"]["message"], str)


def test_unexpected_fault_is_json_503_with_retry_after(hub: Hub,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(hub.store, "accept", broken)
    client = TestClient(hub.app, raise_server_exceptions=False)
    r = client.post("/v1/submissions",
                    content=dsse.envelope_bytes(hub.envelope(hub.submission())))
    assert r.status_code == 503
    assert r.headers["retry-after"] == str(hub_api.RETRY_AFTER_SECONDS)
    assert r.json()["error"]["code"] == "internal_error"
    assert "disk full" not in r.text  # no internals to the client
    assert hub.store.count_documents() == 0


def test_overload_is_refused_at_once_with_retry_after(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub(tmp_path)
    cfg = hub.config.model_copy(update={"max_concurrent": 1,
                                        "database": tmp_path / "one" / "hub.duckdb"})
    entered, release = threading.Event(), threading.Event()
    check = hub_api.judge

    def slow_check(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(20)
        return check(*args, **kwargs)

    monkeypatch.setattr(hub_api, "judge", slow_check)
    app = create_app(cfg)
    body = dsse.envelope_bytes(hub.envelope(hub.submission()))
    results: dict[str, httpx.Response] = {}
    with TestClient(app) as client:
        first = threading.Thread(target=lambda: results.setdefault(
            "first", client.post("/v1/submissions", content=body)))
        first.start()
        try:
            assert entered.wait(20)
            r = client.post("/v1/submissions", content=body)
        finally:
            release.set()
            first.join(30)
    assert r.status_code == 503
    assert r.headers["retry-after"] == str(hub_api.RETRY_AFTER_SECONDS)
    assert r.json()["error"]["code"] == "overloaded"
    assert results["first"].status_code == 201
    # The app closed its store when the client (its lifespan) ended: read the file back.
    with Store(cfg.database, read_only=True) as store:
        assert [(e["outcome"], e["code"]) for e in store.audit_entries()] == \
            [("rejected", "overloaded"), ("accepted", "accepted")]
    assert not cfg.token_path.exists()  # a stopped hub leaves no token behind


def _token(hub: Hub) -> str:
    return hub.config.token_path.read_text(encoding="ascii").strip()


def test_records_and_audit_need_the_hub_token(hub: Hub) -> None:
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    assert hub.config.token_path.stat().st_mode & 0o777 == 0o600
    for path in ("/v1/records", "/v1/audit"):
        for headers in ({}, {"authorization": "Bearer wrong"}):
            r = hub.client.get(path, headers=headers)
            assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
    auth = {"authorization": f"Bearer {_token(hub)}"}
    records = hub.client.get("/v1/records", params={"year": 2024}, headers=auth).json()
    assert [r["submission_id"] for r in records["records"]] == ["NO-2024-0001"]
    assert hub.client.get("/v1/records", params={"year": 2023}, headers=auth).json() == \
        {"records": []}
    entries = hub.client.get("/v1/audit", headers=auth).json()["entries"]
    assert [e["outcome"] for e in entries] == ["accepted"]


def test_bad_trust_registry_stops_app_creation(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    hub = Hub(tmp_path / "a")
    bad = tmp_path / "bad-trust.toml"
    bad.write_text('[countries.NO]\nkeys = ["not-base64!"]\n')
    cfg = hub.config.model_copy(update={"trust_registry": bad,
                                        "database": tmp_path / "b" / "hub.duckdb"})
    with pytest.raises(ValueError, match="NO"):
        create_app(cfg)


def test_config_resolves_relative_paths_against_its_folder(tmp_path: Path) -> None:
    cfg_file = tmp_path / "etc" / "hub.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text('[hub]\nport = 9000\ndatabase = "data/hub.duckdb"\n'
                        'trust_registry = "trust.toml"\nspecs = ""\nkey = "keys/hub.pem"\n'
                        "\n[policy]\nmin_disclosure_threshold = 7\nfirst_year = 2010\n")
    cfg = load_hub_config(cfg_file)
    assert cfg.database == tmp_path / "etc" / "data" / "hub.duckdb"
    assert cfg.trust_registry == tmp_path / "etc" / "trust.toml"
    assert cfg.key_path == tmp_path / "etc" / "keys" / "hub.pem"
    assert cfg.token_path == tmp_path / "etc" / "data" / "hub.duckdb.token"
    assert cfg.specs is None and cfg.port == 9000 and cfg.host == "127.0.0.1"
    assert cfg.policy == PolicyConfig(min_disclosure_threshold=7, first_year=2010)
    policy = cfg.policy.policy()
    assert (policy.min_disclosure_threshold, policy.first_year, policy.last_year) == \
        (7, 2010, None)  # last_year 0 means "the current year"
    write_hub_config(tmp_path / "copy.toml", cfg)
    assert load_hub_config(tmp_path / "copy.toml") == cfg


def test_config_without_policy_uses_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text('[hub]\ndatabase = "a"\ntrust_registry = "b"\n')
    cfg = load_hub_config(tmp_path / "hub.toml")
    assert cfg.policy == PolicyConfig()
    assert cfg.policy.policy().min_disclosure_threshold == 5
    assert cfg.key_path == tmp_path / "hub-key.pem"


HUB = '[hub]\ndatabase = "a"\ntrust_registry = "b"\n'


@pytest.mark.parametrize(("text", "needle"), [
    ('[hub]\nport = "eighty"\ndatabase = "a"\ntrust_registry = "b"\n', "hub.port"),
    ('[hub]\nport = 70000\ndatabase = "a"\ntrust_registry = "b"\n', "hub.port"),
    ('[hub]\ndatabase = "a"\n', "hub.trust_registry"),
    ('[hub]\ndatabase = ""\ntrust_registry = "b"\n', "hub.database"),
    (HUB + 'trust_regsitry = "c"\n', "trust_regsitry"),
    (HUB + "max_body_bytes = 0\n", "hub.max_body_bytes"),
    (HUB + "max_concurrent = 0\n", "hub.max_concurrent"),
    ("port = 1\n", "[hub]"),
    ("[hub\n", "TOML"),
    (HUB + "\n[policy]\nmin_disclosure_threshold = 2\n", "policy.min_disclosure_threshold"),
    (HUB + "\n[policy]\nmin_disclosure_threshold = 0\n", "policy.min_disclosure_threshold"),
    (HUB + "\n[policy]\nmin_threshold = 5\n", "policy.min_threshold: unknown key"),
    (HUB + "\n[policy]\nfirst_year = 1800\n", "policy.first_year"),
    (HUB + "\n[policy]\nmax_count = 0\n", "policy.max_count"),
    (HUB + "\n[polcy]\nfirst_year = 2001\n", "polcy"),
    ('[hub]\ndatabase = "a"\ntrust_registry = "b"\npolicy = {first_year = 2001}\n'
     "\n[policy]\nfirst_year = 2002\n", "[policy] table"),
])
def test_config_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "hub.toml").write_text(text)
    with pytest.raises(ValueError) as info:
        load_hub_config(tmp_path / "hub.toml")
    assert needle in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_hub_config(tmp_path / "absent.toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_a_real_server(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    # The test's own app holds hub.duckdb; the server gets a database of its own (and
    # therefore its own key and token beside it).
    cfg = hub.config.model_copy(update={"port": _free_port(),
                                        "database": tmp_path / "served" / "hub.duckdb"})
    write_hub_config(tmp_path / "hub.toml", cfg)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from hub.server import serve; serve(Path(sys.argv[1]))", str(tmp_path / "hub.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.post(f"{cfg.url}/v1/submissions", timeout=5,
                               content=dsse.envelope_bytes(hub.envelope(hub.submission())))
                break
            except httpx.TransportError:
                assert proc.poll() is None, "the server exited early"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert r.status_code == 201, r.text
        served_key = dsse.public_key_from_b64(
            public_key_path(cfg.key_path).read_text().strip())
        dsse.verify(r.json()["signed_receipt"], {dsse.key_id(served_key): served_key},
                    payload_type=RECEIPT_TYPE)
        assert httpx.get(f"{cfg.url}/v1/health").json()["submissions"] == 1
        # Errors from the real server are JSON too.
        bad = httpx.post(f"{cfg.url}/v1/submissions", content=b"{not json")
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_json")
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert cfg.url in out


def test_received_at_is_utc(hub: Hub) -> None:
    r = hub.post(hub.envelope(hub.submission()))
    received = datetime.fromisoformat(r.json()["receipt"]["received_at"].replace("Z", "+00:00"))
    assert received.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_the_record_is_stamped_with_the_time_it_was_checked_at(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Key validity and conformance are judged at one instant, and that instant is the
    record's received_at, which the ledger re-checks at: a key expiring in between can
    not give a receipt for a record the report would then set aside."""
    checked = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    monkeypatch.setattr(hub_api, "utcnow", lambda: checked)
    r = hub.post(hub.envelope(hub.submission()))
    assert r.status_code == 201, r.text
    [record] = hub.store.records()
    assert record.received_at == checked
    assert datetime.fromisoformat(r.json()["receipt"]["received_at"]) == checked
