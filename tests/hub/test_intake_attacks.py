"""Acceptance suite for the hub's intake: every class of bad submission found by a real
attack is refused with a 4xx JSON error and its stable code, stores nothing, writes exactly
one audit entry (the chain still verifies), and the report and export still work afterwards.

Also here: revisions only move forward (a resent old envelope is harmless history, a
withdrawal hides a country, a later revision publishes it again), and the stolen-key story
(a key revoked as of its theft discredits what it signed afterwards).
"""

from __future__ import annotations

import base64
import csv
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from emsbench import chain, dsse
from emsbench.wire import SUBMISSION_TYPE, WITHDRAWAL_TYPE, Cell, Submission
from hub.ledger import PeriodView, period_view
from hub.report import build_report, export_csv
from hub.trust import TrustRegistry
from hub.trust_file import add_key, revoke_key, write_registry
from tests.hub.conftest import YEAR, Hub

ALPHA, BETA, TIME = 0, 1, 2  # indicator positions in Hub.results()
Body = bytes | tuple[bytes, str]
Builder = Callable[[Hub], Body]
Edit = Callable[[dict[str, Any]], None]


# --- building attack bodies -----------------------------------------------------------


def signed(hub: Hub, raw: bytes, signer: str | dsse.KeyPair = "NO",
           payload_type: str = SUBMISSION_TYPE) -> bytes:
    """Sign raw payload bytes exactly as given (no model in between)."""
    key = hub.keys[signer] if isinstance(signer, str) else signer
    return dsse.envelope_bytes(dsse.sign(raw, key, payload_type=payload_type))


def edited(*edits: Edit, **submission: Any) -> Builder:
    """A valid NO submission, edited at the JSON level, then signed by NO."""

    def build(hub: Hub) -> bytes:
        doc = json.loads(hub.submission(**submission).to_bytes())
        for edit in edits:
            edit(doc)
        return signed(hub, json.dumps(doc).encode())

    return build


def cell(indicator: int, index: int, **values: Any) -> Edit:
    return lambda doc: doc["indicators"][indicator]["cells"][index].update(values)


def add_cell(indicator: int, **values: Any) -> Edit:
    return lambda doc: doc["indicators"][indicator]["cells"].append(
        {"stratum": {}, "numerator": None, "denominator": None, "bins": None,
         "suppressed": False, **values})


def indicator(index: int, **values: Any) -> Edit:
    return lambda doc: doc["indicators"][index].update(values)


def quality(**values: Any) -> Edit:
    return lambda doc: doc["data_quality"].update(values)


def top(**values: Any) -> Edit:
    return lambda doc: doc.update(values)


def envelope_edit(change: Callable[[dict[str, Any]], None]) -> Builder:
    def build(hub: Hub) -> bytes:
        env = hub.envelope(hub.submission())
        change(env)
        return dsse.envelope_bytes(env)

    return build


def _flip_payload(env: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(env["payload"]))
    raw[len(raw) // 2] ^= 0x01
    env["payload"] = base64.b64encode(bytes(raw)).decode()


def _flip_signature(env: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[5] ^= 0x80
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


def raw(data: bytes) -> Builder:
    return lambda hub: data


def stale_lower(hub: Hub) -> bytes:
    assert hub.post(hub.envelope(hub.submission(sid="NO-2024-0002", revision=2))
                    ).status_code == 201
    return dsse.envelope_bytes(hub.envelope(hub.submission(sid="NO-2024-0001", revision=1,
                                                           threshold=6)))


def stale_equal(hub: Hub) -> bytes:
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    return dsse.envelope_bytes(hub.envelope(hub.submission(sid="NO-2024-0003", revision=1,
                                                           threshold=6)))


def stale_withdrawal(hub: Hub) -> Body:
    assert hub.post(hub.envelope(hub.submission(sid="NO-2024-0002", revision=2))
                    ).status_code == 201
    return dsse.envelope_bytes(hub.envelope(hub.withdrawal(revision=1))), "/v1/withdrawals"


def same_id_other_payload(hub: Hub) -> bytes:
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    return dsse.envelope_bytes(hub.envelope(hub.submission(revision=2, threshold=6)))


def _b64(hub: Hub, country: str) -> str:
    return dsse.public_key_b64(hub.keys[country].public_key)


def revoked_key(hub: Hub) -> bytes:
    revoke_key(hub.config.trust_registry, hub.keys["NO"].keyid,
               datetime.now(UTC) - timedelta(days=1), "laptop stolen")
    return dsse.envelope_bytes(hub.envelope(hub.submission()))


def _windowed_key(**window: datetime) -> Builder:
    def build(hub: Hub) -> bytes:
        write_registry(hub.config.trust_registry,
                       {"NO": [{"key": _b64(hub, "NO"), **window}], "SE": [_b64(hub, "SE")]})
        return dsse.envelope_bytes(hub.envelope(hub.submission()))

    return build


def withdrawal_body(signer: str = "NO", **changes: Any) -> Builder:
    def build(hub: Hub) -> Body:
        doc = hub.withdrawal(revision=1).model_copy(update=changes)
        return dsse.envelope_bytes(hub.envelope(doc, signer)), "/v1/withdrawals"

    return build


NOW = datetime.now(UTC)
NESTING_BOMB = b"[" * 100_000 + b"]" * 100_000
GOOD_RUNS = [[2, 2, 10], [3, 4, 25], [5, 10, 6]]

ATTACKS: list[Any] = [
    # --- what the numbers mean (emsbench.conformance), 422 unless a version conflict ----
    pytest.param(edited(cell(ALPHA, 0, numerator=50, denominator=10)),
                 422, "numerator_exceeds_denominator", id="numerator-over-denominator"),
    pytest.param(edited(cell(ALPHA, 0, numerator=2, denominator=3)),
                 422, "disclosure_violation", id="small-share-cell-2-of-3"),
    pytest.param(edited(cell(TIME, 0, bins=[[2, 2, 1], [3, 4, 2], [5, 10, 40]])),
                 422, "disclosure_violation", id="histogram-runs-of-1-and-2"),
    pytest.param(edited(cell(ALPHA, 0, numerator=98, denominator=100)),
                 422, "disclosure_violation", id="small-complement-98-of-100"),
    pytest.param(edited(quality(rejected_by_reason={"missing:urgency_level": 1})),
                 422, "disclosure_violation", id="rejected-rows-1"),
    pytest.param(edited(quality(rejected_by_reason={"missing:urgency_level": 17,
                                                    "invalid:patient_age": 3})),
                 422, "disclosure_violation", id="rejected-rows-3"),
    pytest.param(edited(quality(rows_read=3, rows_accepted=0, rejected_by_reason={})),
                 422, "disclosure_violation", id="rows-read-3"),
    # The demo's Iceland: read − accepted − released reasons = the one withheld reason (1).
    pytest.param(edited(quality(rejected_by_reason={"missing:urgency_level": 19,
                                                    "invalid_code:urgency_level": None})),
                 422, "disclosure_violation", id="withheld-reason-by-subtraction"),
    pytest.param(edited(quality(rejected_by_reason={"missing:urgency_level": 17,
                                                    "invalid_code:urgency_level": None,
                                                    "outside_period": None})),
                 422, "disclosure_violation", id="two-withheld-reasons-summing-to-3"),
    pytest.param(edited(quality(rows_accepted=None, rejected_by_reason={
        "missing:urgency_level": 20})), 422, "disclosure_violation",
                 id="withheld-accepted-by-subtraction"),
    pytest.param(edited(threshold=1), 422, "threshold_too_low", id="declared-threshold-1"),
    pytest.param(edited(threshold=2), 422, "threshold_too_low", id="declared-threshold-2"),
    pytest.param(edited(quality(rows_read=100, rows_accepted=120, rejected_by_reason={})),
                 422, "inconsistent_quality", id="accepted-over-read"),
    pytest.param(edited(quality(rejected_by_reason={"missing:urgency_level": 15,
                                                    "invalid:patient_age": 10})),
                 422, "inconsistent_quality", id="rejected-over-read-minus-accepted"),
    pytest.param(edited(cell(ALPHA, 0, numerator=2 * 10**9, denominator=2 * 10**9)),
                 422, "count_out_of_range", id="count-2e9"),
    pytest.param(edited(top(indicators=[])), 422, "empty_submission", id="zero-indicators"),
    pytest.param(edited(add_cell(BETA, stratum={"urbanicity": "urban"}, numerator=10,
                                 denominator=20)),
                 422, "duplicate_stratum", id="same-stratum-twice"),
    pytest.param(edited(lambda doc: doc["indicators"].append(doc["indicators"][ALPHA])),
                 422, "duplicate_indicator", id="same-indicator-twice"),
    pytest.param(edited(cell(BETA, 0, stratum={"urbanicity": '=HYPERLINK("http://x")'})),
                 422, "unknown_stratum_value", id="formula-as-stratum-value"),
    pytest.param(edited(cell(BETA, 0, stratum={"urbanicity": "suburban"})),
                 422, "unknown_stratum_value", id="stratum-value-outside-code-set"),
    # A stratum key the indicator does not declare is a malformed result (wire model); an
    # indicator that declares strata the spec does not have is the wrong shape.
    pytest.param(edited(cell(BETA, 0, stratum={"region": "urban"})),
                 422, "invalid_payload", id="stratum-key-not-in-strata"),
    pytest.param(edited(indicator(BETA, strata=["urgency_level"], cells=[
        {"stratum": {"urgency_level": "U1"}, "numerator": 10, "denominator": 20,
         "bins": None, "suppressed": False}])),
                 422, "wrong_shape", id="strata-not-in-spec"),
    pytest.param(edited(indicator(TIME, type="share", cells=[
        {"stratum": {"urgency_level": "U1"}, "numerator": 10, "denominator": 20,
         "bins": None, "suppressed": False}])),
                 422, "wrong_shape", id="distribution-sent-as-share"),
    pytest.param(edited(cell(TIME, 0, bins=[[5, 6, 10], [2, 3, 10]])),
                 422, "invalid_bins", id="bins-out-of-order"),
    pytest.param(edited(cell(TIME, 0, bins=[[2, 4, 10], [4, 6, 10]])),
                 422, "invalid_bins", id="bins-overlapping"),
    pytest.param(edited(cell(TIME, 0, bins=[[2, 2, 10], [3, 11, 10]])),
                 422, "invalid_bins", id="bins-beyond-last"),
    pytest.param(edited(cell(TIME, 0, bins=[[4, 3, 10]])),
                 422, "invalid_bins", id="bins-reversed-run"),
    pytest.param(edited(cell(BETA, 1, numerator=10, denominator=20)),
                 422, "suppression_inconsistent", id="suppressed-cell-with-counts"),
    pytest.param(edited(cell(ALPHA, 0, numerator=None, denominator=None)),
                 422, "suppression_inconsistent", id="released-cell-without-counts"),
    pytest.param(edited(cell(ALPHA, 0, numerator=None)),
                 422, "suppression_inconsistent", id="half-withheld-share"),
    pytest.param(edited(cell(TIME, 1, bins=GOOD_RUNS)),
                 422, "suppression_inconsistent", id="suppressed-histogram-with-bins"),
    pytest.param(edited(year=1990), 422, "year_out_of_window", id="year-1990"),
    pytest.param(edited(year=2100), 422, "year_out_of_window", id="year-2100"),
    pytest.param(edited(top(created_at="1970-01-01T00:00:00Z")),
                 422, "created_at_out_of_window", id="created-1970"),
    pytest.param(edited(top(created_at="2999-01-01T00:00:00Z")),
                 422, "created_at_out_of_window", id="created-2999"),
    pytest.param(edited(top(created_at=(NOW + timedelta(hours=1)).isoformat())),
                 422, "created_at_out_of_window", id="created-an-hour-ahead"),
    pytest.param(edited(top(created_at="2023-12-31T23:00:00+00:00")),
                 422, "created_at_out_of_window", id="created-before-the-period"),
    pytest.param(edited(indicator(ALPHA, spec_id="T-GAMMA")),
                 422, "unknown_spec", id="unknown-spec"),
    pytest.param(edited(indicator(ALPHA, spec_version="0.9.0")),
                 409, "spec_mismatch", id="spec-version-mismatch"),
    pytest.param(edited(indicator(ALPHA, spec_sha256="0" * 64)),
                 409, "spec_mismatch", id="spec-hash-mismatch"),
    pytest.param(edited(top(catalogue="0" * 64)), 409, "spec_mismatch",
                 id="catalogue-mismatch"),
    pytest.param(edited(lambda doc: doc["indicators"].pop(TIME)),
                 422, "missing_indicator", id="missing-indicator"),
    # --- strict wire model: 422 invalid_payload ---------------------------------------
    pytest.param(edited(cell(ALPHA, 0, numerator=10**30, denominator=10**30)),
                 422, "invalid_payload", id="count-beyond-json-safe-int"),
    pytest.param(edited(top(disclosure_threshold="5")), 422, "invalid_payload",
                 id="number-as-string"),
    pytest.param(edited(cell(ALPHA, 0, numerator=28.0)), 422, "invalid_payload",
                 id="float-count"),
    pytest.param(edited(cell(ALPHA, 0, numerator=-1)), 422, "invalid_payload",
                 id="negative-count"),
    pytest.param(edited(top(created_at="2025-01-15T12:00:00")), 422, "invalid_payload",
                 id="naive-created-at"),
    pytest.param(edited(top(sneaky="field")), 422, "invalid_payload", id="unknown-field"),
    pytest.param(edited(top(wire_version="1")), 422, "invalid_payload", id="wire-v1"),
    pytest.param(edited(top(submission_id="../../etc/passwd")), 422, "invalid_payload",
                 id="path-in-submission-id"),
    pytest.param(edited(cell(TIME, 0, numerator=10, denominator=20)), 422, "invalid_payload",
                 id="distribution-cell-with-numerator"),
    pytest.param(edited(top(revision=0)), 422, "invalid_payload", id="revision-0"),
    pytest.param(lambda hub: signed(hub, b"[1, 2]"), 422, "invalid_payload",
                 id="payload-is-an-array"),
    pytest.param(lambda hub: signed(hub, b"\xff\xfe" + hub.submission().to_bytes()),
                 422, "invalid_payload", id="payload-not-utf8"),
    pytest.param(lambda hub: signed(hub, NESTING_BOMB), 422, "invalid_payload",
                 id="payload-nesting-bomb"),
    # --- the store's revision rule: 409 --------------------------------------------------
    pytest.param(stale_lower, 409, "stale_revision", id="stale-lower-revision"),
    pytest.param(stale_equal, 409, "stale_revision", id="stale-equal-revision"),
    pytest.param(stale_withdrawal, 409, "stale_revision", id="stale-withdrawal"),
    pytest.param(same_id_other_payload, 409, "conflict", id="same-id-other-payload"),
    # --- signatures and keys: 401 / 403 ------------------------------------------------
    pytest.param(envelope_edit(_flip_payload), 401, "bad_signature", id="flipped-payload-byte"),
    pytest.param(envelope_edit(_flip_signature), 401, "bad_signature",
                 id="flipped-signature-byte"),
    pytest.param(envelope_edit(lambda env: env["signatures"][0].update(sig=5)),
                 401, "bad_signature", id="signature-not-a-string"),
    pytest.param(envelope_edit(lambda env: env.update(signatures=[])), 401, "unsigned",
                 id="unsigned"),
    pytest.param(envelope_edit(lambda env: env.pop("signatures")), 401, "unsigned",
                 id="no-signatures-field"),
    pytest.param(lambda hub: dsse.envelope_bytes(hub.envelope(hub.submission(),
                                                              dsse.generate_key())),
                 403, "untrusted_key", id="unknown-key"),
    pytest.param(revoked_key, 403, "revoked_key", id="revoked-key"),
    pytest.param(_windowed_key(valid_until=NOW - timedelta(days=1)), 403, "expired_key",
                 id="expired-key"),
    pytest.param(_windowed_key(valid_from=NOW + timedelta(days=1)), 403, "key_not_yet_valid",
                 id="not-yet-valid-key"),
    pytest.param(lambda hub: dsse.envelope_bytes(hub.envelope(hub.submission(), "SE")),
                 403, "country_mismatch", id="other-country-key"),
    pytest.param(withdrawal_body(signer="SE"), 403, "country_mismatch",
                 id="withdrawal-by-other-country"),
    # --- envelope and body: 400 / 413 ---------------------------------------------------
    pytest.param(lambda hub: signed(hub, hub.submission().to_bytes(),
                                    payload_type="text/plain"),
                 400, "invalid_envelope", id="wrong-payload-type"),
    pytest.param(lambda hub: dsse.envelope_bytes(hub.envelope(hub.withdrawal())),
                 400, "invalid_envelope", id="withdrawal-posted-as-submission"),
    pytest.param(envelope_edit(lambda env: env.update(payload="not base64!!")),
                 400, "invalid_envelope", id="payload-not-base64"),
    pytest.param(envelope_edit(lambda env: env.pop("payloadType")),
                 400, "invalid_envelope", id="no-payload-type"),
    pytest.param(raw(b"[1, 2]"), 400, "invalid_envelope", id="envelope-is-an-array"),
    pytest.param(raw(b'"hello"'), 400, "invalid_envelope", id="envelope-is-a-string"),
    pytest.param(raw(b'{"payload": "' + b"A" * 5_000_001 + b'"}'), 413, "payload_too_large",
                 id="oversized-body"),
    pytest.param(raw(b"{not json"), 400, "invalid_json", id="malformed-json"),
    pytest.param(raw(b"\xff\xfe\x00garbage"), 400, "invalid_json", id="non-utf8"),
    pytest.param(lambda hub: json.dumps(hub.envelope(hub.submission())).encode("utf-16"),
                 400, "invalid_json", id="utf16-json"),
    pytest.param(raw(NESTING_BOMB), 400, "invalid_json", id="nesting-bomb"),
    pytest.param(raw(b""), 400, "invalid_json", id="empty-body"),
    # --- withdrawals are checked too -----------------------------------------------------
    pytest.param(withdrawal_body(catalogue="0" * 64), 409, "spec_mismatch",
                 id="withdrawal-other-catalogue"),
    pytest.param(withdrawal_body(created_at=datetime(2999, 1, 1, tzinfo=UTC)),
                 422, "created_at_out_of_window", id="withdrawal-from-the-future"),
]


# --- helpers shared by the tests ------------------------------------------------------


def view_of(hub: Hub) -> PeriodView:
    return period_view(hub.store.records(YEAR), YEAR, TrustRegistry.load(
        hub.config.trust_registry), hub.catalogues, hub.config.policy.policy())


def publish(hub: Hub, out: Path) -> tuple[PeriodView, str, list[dict[str, str]]]:
    """Build the report and the CSV from the ledger; return the view, HTML and CSV rows."""
    view = view_of(hub)
    html = build_report(view, hub.catalogues, out / "report").read_text(encoding="utf-8")
    path = export_csv(view, hub.catalogues, out / "figures.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return view, html, rows


def alpha_row(rows: list[dict[str, str]], country: str) -> dict[str, str] | None:
    found = [r for r in rows if r["indicator_id"] == "T-ALPHA" and r["country"] == country]
    assert len(found) <= 1
    return found[0] if found else None


def with_alpha(hub: Hub, numerator: int, **submission: Any) -> Submission:
    """A valid submission whose T-ALPHA share is ``numerator``/100."""
    sub = hub.submission(**submission)
    first = sub.indicators[ALPHA].model_copy(update={"cells": [
        Cell(numerator=numerator, denominator=100)]})
    return sub.model_copy(update={"indicators": [first, *sub.indicators[1:]]})


# --- the acceptance test --------------------------------------------------------------


def test_the_suite_covers_at_least_25_classes() -> None:
    assert len({p.values[2] for p in ATTACKS}) >= 25
    assert len(ATTACKS) >= 50


@pytest.mark.parametrize(("build", "status", "code"), ATTACKS)
def test_attack_is_refused_and_changes_nothing(hub: Hub, tmp_path: Path, build: Builder,
                                               status: int, code: str) -> None:
    # One good submission first, from SE, so no attack collides with its revisions.
    good = hub.post(hub.envelope(hub.submission(country="SE", sid="SE-2024-0001"), "SE"))
    assert good.status_code == 201, good.text
    made = build(hub)  # may store NO revisions first (stale, conflict)
    body, path = made if isinstance(made, tuple) else (made, "/v1/submissions")
    documents, audit = hub.store.count_documents(), len(hub.store.audit_entries())

    r = hub.post(body, path)

    assert r.status_code == status, r.text
    assert 400 <= r.status_code < 500
    assert set(r.json()) == {"error"}
    error = r.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert hub.store.count_documents() == documents
    entries = hub.store.audit_entries()
    assert len(entries) == audit + 1
    assert (entries[-1]["outcome"], entries[-1]["code"]) == ("rejected", code)
    assert chain.verify(hub.store.audit_links()) == []

    view, html, rows = publish(hub, tmp_path / "out")
    assert "SE" in {s.country for s in view.submissions}
    assert view.set_aside == []  # nothing bad got in
    se = alpha_row(rows, "SE")
    assert se is not None and (se["numerator"], se["denominator"], se["value"]) == \
        ("40", "100", "40.0")
    assert "Sweden" in html
    assert "HYPERLINK" not in html and all("HYPERLINK" not in v for r in rows
                                           for v in r.values())


# --- revisions ------------------------------------------------------------------------


def test_revisions_move_forward_and_a_withdrawal_hides_a_country(hub: Hub,
                                                                 tmp_path: Path) -> None:
    se = hub.post(hub.envelope(hub.submission(country="SE", sid="SE-2024-0001"), "SE"))
    assert se.status_code == 201
    rev1 = hub.envelope(with_alpha(hub, 40, sid="NO-2024-0001", revision=1))
    first = hub.post(rev1)
    assert first.status_code == 201
    rev2 = hub.envelope(with_alpha(hub, 45, sid="NO-2024-0002", revision=2))
    assert hub.post(rev2).status_code == 201

    # The old envelope again (a retry, or a replay): stored history, answered idempotently,
    # but it does not become the standing revision.
    again = hub.post(rev1)
    assert again.status_code == 200 and again.json() == first.json()
    view, _, rows = publish(hub, tmp_path / "r2")
    [no] = [s for s in view.standing if s.record.country == "NO"]
    assert (no.record.submission_id, no.record.revision) == ("NO-2024-0002", 2)
    assert alpha_row(rows, "NO")["numerator"] == "45"  # type: ignore[index]

    # A signed withdrawal (revision 3) removes NO from what is published.
    w = hub.post(hub.envelope(hub.withdrawal(revision=3)), path="/v1/withdrawals")
    assert w.status_code == 201, w.text
    assert hub.post(rev2).status_code == 200  # resending rev 2 does not undo it
    view, html, rows = publish(hub, tmp_path / "r3")
    assert [s.country for s in view.submissions] == ["SE"]
    assert [(s.record.country, s.record.revision) for s in view.withdrawals] == [("NO", 3)]
    assert alpha_row(rows, "NO") is None
    assert alpha_row(rows, "SE") is not None
    assert "withdrawn: figures recalled for review" in html
    assert "NO-2024-w001" in html

    # A later revision publishes NO again.
    rev4 = hub.post(hub.envelope(with_alpha(hub, 50, sid="NO-2024-0004", revision=4)))
    assert rev4.status_code == 201
    view, _, rows = publish(hub, tmp_path / "r4")
    assert sorted(s.country for s in view.submissions) == ["NO", "SE"]
    assert view.withdrawals == []
    assert alpha_row(rows, "NO")["numerator"] == "50"  # type: ignore[index]
    assert [r.revision for r in hub.store.records(YEAR) if r.country == "NO"] == [1, 2, 3, 4]
    assert chain.verify(hub.store.audit_links()) == []


def test_a_stolen_key_discredits_what_it_signed_after_the_theft(hub: Hub,
                                                                tmp_path: Path) -> None:
    assert hub.post(hub.envelope(hub.submission(country="SE", sid="SE-2024-0001"), "SE")
                    ).status_code == 201
    assert hub.post(hub.envelope(with_alpha(hub, 40, sid="NO-2024-0001"))).status_code == 201
    time.sleep(0.05)
    # The thief signs a "correction" with the stolen key; the hub cannot tell yet.
    forged = hub.post(hub.envelope(with_alpha(hub, 90, sid="NO-2024-0666", revision=2)))
    assert forged.status_code == 201
    legit, stolen = hub.store.records(YEAR)[:2]
    assert (legit.revision, stolen.revision) == (1, 2)

    # The operator learns of the theft and revokes the key as of before the forgery.
    theft = legit.received_at + (stolen.received_at - legit.received_at) / 2
    revoke_key(hub.config.trust_registry, hub.keys["NO"].keyid[:16], theft, "laptop stolen")

    view, html, rows = publish(hub, tmp_path / "out")
    [no] = [s for s in view.standing if s.record.country == "NO"]
    assert no.record.submission_id == "NO-2024-0001"  # the previous valid revision stands
    [note] = view.set_aside
    assert (note.country, note.submission_id, note.revision) == ("NO", "NO-2024-0666", 2)
    assert "revoked_key" in note.reason
    assert "Set aside" in html and "NO-2024-0666" in html
    assert alpha_row(rows, "NO")["numerator"] == "40"  # type: ignore[index]
    assert "laptop stolen" not in html  # the operator's note stays private

    # The running hub reloaded the registry: the key is refused at intake now...
    r = hub.post(hub.envelope(with_alpha(hub, 95, sid="NO-2024-0667", revision=3)))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "revoked_key")
    assert "laptop stolen" not in r.text
    assert hub.client.get("/v1/health").json()["trust_reloads"] == 1
    # ...and the node's new key publishes the next revision.
    new = dsse.generate_key()
    add_key(hub.config.trust_registry, "NO", dsse.public_key_b64(new.public_key))
    r = hub.post(hub.envelope(with_alpha(hub, 42, sid="NO-2024-0003", revision=3), new))
    assert r.status_code == 201, r.text
    view = view_of(hub)
    [no] = [s for s in view.standing if s.record.country == "NO"]
    assert no.record.submission_id == "NO-2024-0003"


def test_a_thief_cannot_lock_a_country_out_of_its_period(hub: Hub) -> None:
    assert hub.post(hub.envelope(with_alpha(hub, 40, sid="NO-2024-0001"))).status_code == 201
    time.sleep(0.05)
    forged = hub.post(hub.envelope(with_alpha(hub, 90, sid="NO-2024-0666",
                                              revision=1_000_000)))
    assert forged.status_code == 201
    legit, stolen = hub.store.records(YEAR)
    theft = legit.received_at + (stolen.received_at - legit.received_at) / 2
    revoke_key(hub.config.trust_registry, hub.keys["NO"].keyid, theft, "laptop stolen")
    new = dsse.generate_key()
    add_key(hub.config.trust_registry, "NO", dsse.public_key_b64(new.public_key))
    # The node corrects with its new key: whatever revision it picks must be storable.
    r = hub.post(hub.envelope(with_alpha(hub, 41, sid="NO-2024-0002", revision=2), new))
    assert r.status_code == 201, r.text
    [no] = [s for s in view_of(hub).standing if s.record.country == "NO"]
    assert no.record.submission_id == "NO-2024-0002"


def test_withdrawal_payload_type_is_checked_on_its_endpoint(hub: Hub) -> None:
    body = signed(hub, hub.withdrawal().to_bytes(), payload_type=SUBMISSION_TYPE)
    r = hub.post(body, path="/v1/withdrawals")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_envelope")
    ok = signed(hub, hub.withdrawal(revision=1).to_bytes(), payload_type=WITHDRAWAL_TYPE)
    assert hub.post(ok, path="/v1/withdrawals").status_code == 201
