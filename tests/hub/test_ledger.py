"""The ledger re-checks every stored record from the signed bytes up: a bad record that got
into the database (an older, laxer hub; a direct write; tampering) is set aside with a note
naming the problem, and every other country's figures are still published."""

from __future__ import annotations

import base64
import csv
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from emsbench import dsse
from emsbench.conformance import Policy
from emsbench.wire import SUBMISSION_TYPE, WITHDRAWAL_TYPE, Cell, Submission, Withdrawal
from hub.ledger import PeriodView, period_view, recheck
from hub.report import build_report, export_csv
from hub.signing import sign_receipt
from hub.store import Record, Store
from hub.trust import TrustRegistry
from hub.trust_file import write_registry
from tests.hub.conftest import YEAR, Hub


def store_directly(hub: Hub, doc: Submission | Withdrawal, signer: str = "NO"
                   ) -> dict[str, Any]:
    """Store a signed document bypassing intake (``Store.accept`` runs no conformance)."""
    payload = doc.to_bytes()
    ptype = WITHDRAWAL_TYPE if isinstance(doc, Withdrawal) else SUBMISSION_TYPE
    key = hub.keys[signer]
    envelope = dsse.envelope_bytes(dsse.sign(payload, key, payload_type=ptype)).decode()
    response, created = hub.store.accept(doc, envelope, payload, key.keyid, "test",
                                         lambda r: sign_receipt(r, hub.hub_key))
    assert created
    return response


def with_alpha(hub: Hub, numerator: int, denominator: int, **submission: Any) -> Submission:
    sub = hub.submission(**submission)
    first = sub.indicators[0].model_copy(update={"cells": [
        Cell(numerator=numerator, denominator=denominator)]})
    return sub.model_copy(update={"indicators": [first, *sub.indicators[1:]]})


def accept_se(hub: Hub) -> None:
    r = hub.post(hub.envelope(hub.submission(country="SE", sid="SE-2024-0001"), "SE"))
    assert r.status_code == 201, r.text


def view_from(hub: Hub, records: list[Record], policy: Policy | None = None) -> PeriodView:
    return period_view(records, YEAR, TrustRegistry.load(hub.config.trust_registry), hub.catalogues,
                       policy or hub.config.policy.policy())


def publish(hub: Hub, view: PeriodView, out: Path) -> tuple[str, list[dict[str, str]]]:
    html = build_report(view, hub.catalogues, out / "report").read_text(encoding="utf-8")
    with export_csv(view, hub.catalogues, out / "figures.csv").open(encoding="utf-8") as fh:
        return html, list(csv.DictReader(fh))


def countries_in(rows: list[dict[str, str]]) -> set[str]:
    return {r["country"] for r in rows}


def tamper_db(hub: Hub, sql: str, args: list[Any]) -> list[Record]:
    """Close the hub's store, change the documents table directly, read it back."""
    hub.store.close()
    con = duckdb.connect(str(hub.config.database))
    try:
        con.execute(sql, args)
    finally:
        con.close()
    with Store(hub.config.database, read_only=True) as store:
        return store.records(YEAR)


def test_a_bad_stored_submission_is_set_aside_and_the_rest_publishes(hub: Hub,
                                                                     tmp_path: Path) -> None:
    accept_se(hub)
    store_directly(hub, with_alpha(hub, 50, 10))  # numerator > denominator, signed by NO
    view = view_from(hub, hub.store.records(YEAR))
    assert [s.country for s in view.submissions] == ["SE"]
    [note] = view.set_aside
    assert (note.country, note.submission_id, note.revision) == ("NO", "NO-2024-0001", 1)
    assert "numerator_exceeds_denominator" in note.reason
    html, rows = publish(hub, view, tmp_path)
    assert "Set aside" in html and "numerator_exceeds_denominator" in html
    assert "NO-2024-0001" in html
    assert "NO" not in countries_in(rows) and "SE" in countries_in(rows)
    se = [r for r in rows if r["country"] == "SE" and r["indicator_id"] == "T-ALPHA"]
    assert [(r["numerator"], r["denominator"]) for r in se] == [("40", "100")]


def test_a_bad_newest_revision_falls_back_to_the_previous_one(hub: Hub,
                                                              tmp_path: Path) -> None:
    accept_se(hub)
    assert hub.post(hub.envelope(with_alpha(hub, 40, 100))).status_code == 201
    # Disclosure violation in revision 2 (a small cell), stored past intake.
    store_directly(hub, with_alpha(hub, 2, 3, sid="NO-2024-0002", revision=2))
    view = view_from(hub, hub.store.records(YEAR))
    [no] = [s for s in view.standing if s.record.country == "NO"]
    assert no.record.revision == 1
    [note] = view.set_aside
    assert note.revision == 2 and "disclosure_violation" in note.reason
    html, rows = publish(hub, view, tmp_path)
    assert {"NO", "SE", "NORDIC"} <= countries_in(rows)
    assert "Set aside" in html


def test_a_set_aside_withdrawal_leaves_the_submission_standing(hub: Hub) -> None:
    accept_se(hub)
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    future = datetime(2999, 1, 1, tzinfo=UTC)
    store_directly(hub, hub.withdrawal(revision=2).model_copy(update={"created_at": future}))
    view = view_from(hub, hub.store.records(YEAR))
    assert sorted(s.country for s in view.submissions) == ["NO", "SE"]
    assert view.withdrawals == []
    [note] = view.set_aside
    assert note.revision == 2 and "created_at_out_of_window" in note.reason


def test_a_withdrawal_for_another_catalogue_does_not_hide_the_country(hub: Hub) -> None:
    accept_se(hub)
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    store_directly(hub, hub.withdrawal(revision=2).model_copy(update={"catalogue": "0" * 64}))
    view = view_from(hub, hub.store.records(YEAR))
    assert sorted(s.country for s in view.submissions) == ["NO", "SE"]
    assert view.withdrawals == []
    # the unknown release's withdrawal is named, not silently dropped
    [note] = view.set_aside
    assert note.country == "NO" and "no longer accepts" in note.reason


def test_tampered_envelope_in_the_database_is_set_aside(hub: Hub, tmp_path: Path) -> None:
    accept_se(hub)
    env = hub.envelope(hub.submission())
    assert hub.post(env).status_code == 201
    payload = bytearray(base64.b64decode(env["payload"]))
    payload[len(payload) // 3] ^= 0x01
    env["payload"] = base64.b64encode(bytes(payload)).decode()
    records = tamper_db(hub, "UPDATE documents SET envelope = ? WHERE submission_id = ?",
                        [json.dumps(env), "NO-2024-0001"])
    view = view_from(hub, records)
    [note] = view.set_aside
    assert note.country == "NO" and "does not verify" in note.reason
    html, rows = publish(hub, view, tmp_path)
    assert "Set aside" in html and "does not verify" in html
    assert "NO" not in countries_in(rows) and "SE" in countries_in(rows)


@pytest.mark.parametrize(("sql", "args", "needle"), [
    ("UPDATE documents SET payload_sha256 = ? WHERE country = 'NO'", ["0" * 64],
     "hash mismatch"),
    ("UPDATE documents SET envelope = ? WHERE country = 'NO'", ["not json at all"],
     "does not verify"),
    ("UPDATE documents SET envelope = ? WHERE country = 'NO'", ["[1, 2, 3]"],
     "unknown payload type"),
    ("UPDATE documents SET revision = ? WHERE country = 'NO'", [7],
     "index columns differ"),
    ("UPDATE documents SET keyid = ? WHERE country = 'NO'", ["f" * 64],
     "another key than the one recorded"),
], ids=["payload-hash", "envelope-not-json", "envelope-not-an-object", "index-columns",
        "keyid"])
def test_edited_database_columns_are_set_aside(hub: Hub, tmp_path: Path, sql: str,
                                               args: list[Any], needle: str) -> None:
    accept_se(hub)
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    view = view_from(hub, tamper_db(hub, sql, args))
    [note] = view.set_aside
    assert note.country == "NO" and needle in note.reason, note.reason
    assert [s.country for s in view.submissions] == ["SE"]
    html, _ = publish(hub, view, tmp_path)
    assert "Set aside" in html


def test_unknown_payload_type_in_the_stored_envelope(hub: Hub) -> None:
    accept_se(hub)
    env = hub.envelope(hub.submission())
    assert hub.post(env).status_code == 201
    env["payloadType"] = "text/plain"
    view = view_from(hub, tamper_db(hub, "UPDATE documents SET envelope = ? WHERE "
                                    "country = 'NO'", [json.dumps(env)]))
    [note] = view.set_aside
    assert "unknown payload type 'text/plain'" in note.reason


def test_a_key_dropped_from_the_registry_discredits_its_documents(hub: Hub) -> None:
    accept_se(hub)
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    write_registry(hub.config.trust_registry,
                   {"SE": [dsse.public_key_b64(hub.keys["SE"].public_key)]})
    view = view_from(hub, hub.store.records(YEAR))
    [note] = view.set_aside
    assert note.country == "NO" and "does not verify" in note.reason


def test_a_document_for_another_country_than_its_key_is_set_aside(hub: Hub) -> None:
    accept_se(hub)
    store_directly(hub, hub.submission(country="DK", sid="DK-2024-0001"), signer="NO")
    view = view_from(hub, hub.store.records(YEAR))
    [note] = view.set_aside
    # The ledger runs intake's own country check (hub.verification), with its wording.
    assert note.country == "DK" and "country_mismatch" in note.reason
    assert "payload is for country 'DK' but the signing key is trusted for NO only" in note.reason


def test_a_stricter_policy_catches_what_a_laxer_hub_accepted(tmp_path: Path) -> None:
    hub = Hub(tmp_path)  # policy minimum 5
    se = hub.submission(country="SE", sid="SE-2024-0001", threshold=6)
    assert hub.post(hub.envelope(se, "SE")).status_code == 201
    assert hub.post(hub.envelope(hub.submission(threshold=5))).status_code == 201
    view = view_from(hub, hub.store.records(YEAR), Policy(min_disclosure_threshold=6))
    [note] = view.set_aside
    assert note.country == "NO" and "threshold_too_low" in note.reason
    assert [s.country for s in view.submissions] == ["SE"]


def test_revisions_of_another_catalogue_are_named(hub: Hub, tmp_path: Path) -> None:
    accept_se(hub)
    store_directly(hub, hub.submission().model_copy(update={"catalogue": "d" * 64}))
    view = view_from(hub, hub.store.records(YEAR))
    [note] = view.set_aside
    assert note.country == "NO" and "release this hub no longer accepts" in note.reason
    html, rows = publish(hub, view, tmp_path)
    assert "release this hub no longer accepts" in html and "NO" not in countries_in(rows)


def test_set_aside_notes_are_escaped_in_the_report(hub: Hub, tmp_path: Path) -> None:
    accept_se(hub)
    script = "<script>alert(1)</script>"
    sub = hub.submission()
    beta = sub.indicators[1].model_copy(update={"cells": [
        Cell(stratum={"urbanicity": script}, numerator=30, denominator=60)]})
    store_directly(hub, sub.model_copy(update={"indicators": [
        sub.indicators[0], beta, sub.indicators[2]]}))
    view = view_from(hub, hub.store.records(YEAR))
    [note] = view.set_aside
    assert "unknown_stratum_value" in note.reason and script in note.reason
    html, rows = publish(hub, view, tmp_path)
    assert "Set aside" in html
    assert script not in html and "&lt;script&gt;" in html
    assert all(script not in v for r in rows for v in r.values())


def test_recheck_of_a_sound_record(hub: Hub) -> None:
    assert hub.post(hub.envelope(hub.submission())).status_code == 201
    [record] = hub.store.records(YEAR)
    trust = TrustRegistry.load(hub.config.trust_registry)
    doc, problems = recheck(record, trust, hub.catalogues, hub.config.policy.policy())
    assert problems == [] and doc == hub.submission()
    # A record read back through the API (to_json/from_json) rechecks the same.
    again = Record.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record
    assert recheck(again, trust, hub.catalogues, hub.config.policy.policy()) == (doc, [])
    # A record claiming to be received before its document was created is caught.
    early = replace(record, received_at=record.received_at.replace(year=2024))
    assert any("created_at_out_of_window" in p for p in recheck(
        early, trust, hub.catalogues, hub.config.policy.policy())[1])


def test_a_raised_max_count_does_not_break_the_report(tmp_path: Path) -> None:
    hub = Hub(tmp_path, max_count=3_000_000_000)
    accept_se(hub)
    big = with_alpha(hub, 2_000_000_000, 2_000_000_010)
    r = hub.post(hub.envelope(big))
    assert r.status_code == 201, r.text
    view = view_from(hub, hub.store.records(YEAR))
    assert view.set_aside == [] and len(view.submissions) == 2
    _, rows = publish(hub, view, tmp_path / "out")
    assert {"NO", "SE"} <= countries_in(rows)
