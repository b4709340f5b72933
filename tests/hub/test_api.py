"""The hub API end to end through FastAPI's TestClient: what is accepted, what is refused
with which status and code, and that every refusal is audited and stores nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from emsbench import dsse
from emsbench.specs import IndicatorSpec, load_specs
from emsbench.wire import Cell, DataQuality, IndicatorResult, Period, Submission
from hub.api import create_app
from hub.config import HubConfig, load_hub_config, write_hub_config
from hub.store import Store
from hub.trust import write_registry

SPEC_YAML = """\
id: {id}
version: {version}
title: Test indicator {id}
description: Share of missions driven with lights and sirens (test spec).
unit: percent
direction: descriptive
type: share
population: "true"
numerator: "lights_sirens"
strata: []
tests:
  - name: one mission
    rows: [{{lights_sirens: true}}]
    expect: [{{numerator: 1, denominator: 1}}]
"""


class Hub:
    """A hub under test: client, store, specs and the keys of two trusted countries."""

    def __init__(self, tmp: Path, max_body_bytes: int = 5_000_000) -> None:
        spec_dir = tmp / "specs"
        spec_dir.mkdir()
        for sid in ("T-ALPHA", "T-BETA"):
            (spec_dir / f"{sid}.yaml").write_text(SPEC_YAML.format(id=sid, version="1.0.0"))
        self.specs: list[IndicatorSpec] = load_specs(spec_dir)
        self.keys = {"NO": dsse.generate_key(), "SE": dsse.generate_key()}
        write_registry(tmp / "trust.toml",
                       {c: [dsse.public_key_b64(k.public_key)] for c, k in self.keys.items()})
        self.config = HubConfig(database=tmp / "hub.duckdb", trust_registry=tmp / "trust.toml",
                                specs=spec_dir, max_body_bytes=max_body_bytes)
        self.client = TestClient(create_app(self.config))
        self.store = Store(self.config.database)

    def submission(self, country: str = "NO", sid: str = "NO-2024-0001",
                   threshold: int = 5, **indicator_overrides: Any) -> Submission:
        results = [IndicatorResult(
            spec_id=s.id, spec_version=s.version, spec_sha256=s.sha256, type="share",
            strata=[], cells=[Cell(numerator=40, denominator=100, suppressed=False)],
        ).model_copy(update=indicator_overrides) for s in self.specs]
        return Submission(
            submission_id=sid, country=country, period=Period(year=2024),
            created_at=datetime(2025, 1, 15, 12, 0, tzinfo=UTC), software_version="0.1.0",
            model_version="1", disclosure_threshold=threshold,
            data_quality=DataQuality(rows_read=100, rows_accepted=100), indicators=results)

    def envelope(self, sub: Submission, signer: str | dsse.KeyPair = "NO") -> dict[str, Any]:
        key = self.keys[signer] if isinstance(signer, str) else signer
        return dsse.sign(sub.to_bytes(), key)

    def post(self, body: dict[str, Any] | bytes) -> httpx.Response:
        content = body if isinstance(body, bytes) else dsse.envelope_bytes(body)
        return self.client.post("/v1/submissions", content=content,
                                headers={"content-type": "application/json"})


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return Hub(tmp_path)


def test_health_reports_version_and_count(hub: Hub) -> None:
    r = hub.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": "0.1.0", "submissions": 0}


def test_valid_submission_is_accepted_and_stored(hub: Hub) -> None:
    sub = hub.submission()
    env = hub.envelope(sub)
    r = hub.post(env)
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["status"] == "accepted"
    assert (receipt["submission_id"], receipt["country"], receipt["year"]) == \
        ("NO-2024-0001", "NO", 2024)
    assert receipt["payload_sha256"] == hashlib.sha256(sub.to_bytes()).hexdigest()
    assert datetime.fromisoformat(receipt["received_at"]).utcoffset() is not None
    assert receipt["hub_version"] == "0.1.0"
    assert hub.store.count_submissions() == 1
    assert hub.store.latest_submissions(2024) == [sub]
    assert hub.store.receipt(sub.submission_id) == receipt
    last = hub.store.audit_entries()[-1]
    assert (last["outcome"], last["country"], last["submission_id"]) == \
        ("accepted", "NO", sub.submission_id)
    assert hub.client.get("/v1/health").json()["submissions"] == 1


def test_identical_resubmission_returns_same_receipt(hub: Hub) -> None:
    env = hub.envelope(hub.submission())
    first = hub.post(env)
    second = hub.post(env)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    assert hub.store.count_submissions() == 1
    assert [a["outcome"] for a in hub.store.audit_entries()] == ["accepted", "duplicate"]


def test_same_id_different_payload_is_a_conflict(hub: Hub) -> None:
    assert hub.post(hub.envelope(hub.submission(threshold=5))).status_code == 201
    r = hub.post(hub.envelope(hub.submission(threshold=10)))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert hub.store.latest_submissions(2024)[0].disclosure_threshold == 5
    entries = hub.store.audit_entries()
    assert len(entries) == 2 and (entries[-1]["outcome"], entries[-1]["code"]) == \
        ("rejected", "conflict")


def _tampered(hub: Hub) -> bytes:
    env = hub.envelope(hub.submission(threshold=5))
    payload = base64.b64decode(env["payload"])
    altered = payload.replace(b'"disclosure_threshold":5', b'"disclosure_threshold":6')
    assert altered != payload
    env["payload"] = base64.b64encode(altered).decode()
    return dsse.envelope_bytes(env)


def _unsigned(hub: Hub) -> bytes:
    env = hub.envelope(hub.submission())
    env["signatures"] = []
    return dsse.envelope_bytes(env)


def _unknown_key(hub: Hub) -> bytes:
    return dsse.envelope_bytes(hub.envelope(hub.submission(), dsse.generate_key()))


def _other_country(hub: Hub) -> bytes:
    # A Norwegian payload signed with the Swedish key: SE must not speak for NO.
    return dsse.envelope_bytes(hub.envelope(hub.submission(country="NO"), "SE"))


def _not_a_submission(hub: Hub) -> bytes:
    payload = json.dumps({"country": "NO", "hello": "world"}).encode()
    return dsse.envelope_bytes(dsse.sign(payload, hub.keys["NO"]))


def _unknown_spec(hub: Hub) -> bytes:
    return dsse.envelope_bytes(hub.envelope(hub.submission(spec_id="T-GAMMA")))


def _spec_hash_mismatch(hub: Hub) -> bytes:
    return dsse.envelope_bytes(hub.envelope(hub.submission(spec_sha256="0" * 64)))


def _spec_version_mismatch(hub: Hub) -> bytes:
    return dsse.envelope_bytes(hub.envelope(hub.submission(spec_version="0.9.0")))


def _strata_differ_from_spec(hub: Hub) -> bytes:
    return dsse.envelope_bytes(hub.envelope(hub.submission(
        strata=["urbanicity"],
        cells=[Cell(stratum={"urbanicity": "urban"}, numerator=1, denominator=2,
                    suppressed=False)])))


def _wrong_payload_type(hub: Hub) -> bytes:
    return dsse.envelope_bytes(dsse.sign(hub.submission().to_bytes(), hub.keys["NO"],
                                         payload_type="text/plain"))


REJECTIONS = [
    (b"{not json", 400, "invalid_json"),
    (b"\xff\xfe\x00garbage", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_envelope"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),  # nesting bomb, not a 500
    (_wrong_payload_type, 400, "invalid_envelope"),
    (_tampered, 401, "bad_signature"),
    (_unsigned, 401, "unsigned"),
    (_unknown_key, 403, "untrusted_key"),
    (_other_country, 403, "country_mismatch"),
    (_not_a_submission, 422, "invalid_payload"),
    (_unknown_spec, 422, "unknown_spec"),
    (_spec_hash_mismatch, 409, "spec_mismatch"),
    (_spec_version_mismatch, 409, "spec_mismatch"),
    (_strata_differ_from_spec, 422, "invalid_payload"),
]


@pytest.mark.parametrize(("make", "status", "code"), REJECTIONS,
                         ids=[r[2] + f"-{i}" for i, r in enumerate(REJECTIONS)])
def test_rejections_store_nothing_and_are_audited(hub: Hub, make: Any, status: int,
                                                  code: str) -> None:
    # One accepted submission first, so "nothing stored" is checked against a non-empty hub.
    assert hub.post(hub.envelope(hub.submission(sid="NO-2023-0001"))).status_code == 201
    before_count, before_audit = hub.store.count_submissions(), len(hub.store.audit_entries())
    body = make if isinstance(make, bytes) else make(hub)
    r = hub.post(body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"}
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]
    assert hub.store.count_submissions() == before_count
    audit = hub.store.audit_entries()
    assert len(audit) == before_audit + 1
    assert (audit[-1]["outcome"], audit[-1]["code"]) == ("rejected", code)


def test_spec_mismatch_message_guides_the_operator(hub: Hub) -> None:
    r = hub.post(_spec_version_mismatch(hub))
    message = r.json()["error"]["message"]
    assert "T-ALPHA" in message and "0.9.0" in message and "1.0.0" in message
    assert "update" in message


def test_invalid_payload_lists_the_problems(hub: Hub) -> None:
    message = hub.post(_not_a_submission(hub)).json()["error"]["message"]
    assert "submission_id" in message and "hello" in message


def test_country_mismatch_is_audited_under_the_key_country(hub: Hub) -> None:
    hub.post(_other_country(hub))
    assert hub.store.audit_entries()[-1]["country"] == "SE"


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
    assert hub.store.count_submissions() == 0
    assert hub.store.audit_entries()[-1]["code"] == "payload_too_large"


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/nowhere", 404, "not_found"),
    ("GET", "/v1/submissions", 405, "method_not_allowed"),
    ("DELETE", "/v1/health", 405, "method_not_allowed"),
])
def test_framework_errors_use_the_error_body(hub: Hub, method: str, path: str, status: int,
                                             code: str) -> None:
    r = hub.client.request(method, path)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert isinstance(r.json()["error"]["message"], str)


def test_bad_trust_registry_stops_app_creation(tmp_path: Path) -> None:
    hub = Hub(tmp_path)
    hub.config.trust_registry.write_text('[countries.NO]\nkeys = ["not-base64!"]\n')
    with pytest.raises(ValueError, match="NO"):
        create_app(hub.config)


def test_config_resolves_relative_paths_against_its_folder(tmp_path: Path) -> None:
    cfg_file = tmp_path / "etc" / "hub.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text('[hub]\nport = 9000\ndatabase = "data/hub.duckdb"\n'
                        'trust_registry = "trust.toml"\nspecs = ""\n')
    cfg = load_hub_config(cfg_file)
    assert cfg.database == tmp_path / "etc" / "data" / "hub.duckdb"
    assert cfg.trust_registry == tmp_path / "etc" / "trust.toml"
    assert cfg.specs is None and cfg.port == 9000 and cfg.host == "127.0.0.1"
    write_hub_config(tmp_path / "copy.toml", cfg)
    assert load_hub_config(tmp_path / "copy.toml") == cfg


@pytest.mark.parametrize(("text", "needle"), [
    ('[hub]\nport = "eighty"\ndatabase = "a"\ntrust_registry = "b"\n', "hub.port"),
    ('[hub]\nport = 70000\ndatabase = "a"\ntrust_registry = "b"\n', "hub.port"),
    ('[hub]\ndatabase = "a"\n', "hub.trust_registry"),
    ('[hub]\ndatabase = "a"\ntrust_registry = "b"\ntrust_regsitry = "c"\n', "trust_regsitry"),
    ('[hub]\ndatabase = "a"\ntrust_registry = "b"\nmax_body_bytes = 0\n', "hub.max_body_bytes"),
    ('port = 1\n', "[hub]"),
    ('[hub\n', "TOML"),
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
    cfg = hub.config.model_copy(update={"port": _free_port()})
    write_hub_config(tmp_path / "hub.toml", cfg)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from hub.server import serve; serve(Path(sys.argv[1]))", str(tmp_path / "hub.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(f"{cfg.url}/v1/submissions", timeout=2,
                               content=dsse.envelope_bytes(hub.envelope(hub.submission())))
                break
            except httpx.TransportError:
                assert proc.poll() is None, "the server exited early"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert r.status_code == 201
        assert httpx.get(f"{cfg.url}/v1/health").json()["submissions"] == 1
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert cfg.url in out
