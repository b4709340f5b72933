"""Wire model v2: exact round trips of Submission, Withdrawal and Receipt, the published JSON
Schemas kept current, and strict parsing (no coercion, no extra fields, aware times)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from emsbench.wire import (
    MAX_JSON_INT,
    PAYLOAD_MODELS,
    RECEIPT_TYPE,
    SCHEMA_DIR,
    SCHEMA_PATH,
    SUBMISSION_TYPE,
    WIRE_VERSION,
    WITHDRAWAL_TYPE,
    Cell,
    DataQuality,
    DataSource,
    IndicatorResult,
    Period,
    Receipt,
    Submission,
    Withdrawal,
    json_schema_text,
    kind_of,
    published_schemas,
)


def _submission() -> Submission:
    return Submission(
        submission_id="NO-2025-abcdef01", country="NO", period=Period(year=2025),
        catalogue="e" * 64, revision=3, created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        software_version="0.1.0", model_version="1", disclosure_threshold=5,
        data_quality=DataQuality(rows_read=10, rows_accepted=9,
                                 rejected_by_reason={"missing:urgency_level": None}),
        indicators=[
            IndicatorResult(spec_id="BCPR", spec_version="1.0.0", spec_sha256="a" * 64,
                            type="share", strata=[], cells=[Cell(numerator=5, denominator=9)]),
            IndicatorResult(spec_id="RESP-MED", spec_version="1.0.0", spec_sha256="b" * 64,
                            type="distribution", strata=["urgency_level"],
                            cells=[Cell(stratum={"urgency_level": "U1"},
                                        bins=[(0, 1, 7), (5, 5, 9)]),
                                   Cell(stratum={"urgency_level": "U2"}, suppressed=True)]),
        ])


def _withdrawal() -> Withdrawal:
    return Withdrawal(submission_id="NO-2025-w0000001", country="NO", period=Period(year=2025),
                      catalogue="e" * 64, revision=4,
                      created_at=datetime(2026, 2, 1, tzinfo=UTC), reason="figures recalled")


def _receipt() -> Receipt:
    return Receipt(kind="submission", submission_id="NO-2025-abcdef01", country="NO",
                   year=2025, catalogue="e" * 64, revision=3, payload_sha256="f" * 64,
                   received_at=datetime(2026, 1, 2, 3, 5, tzinfo=UTC), hub_version="0.1.0",
                   audit_seq=7, audit_hash="0" * 64)


def test_submission_round_trip_is_exact() -> None:
    sub = _submission()
    data = sub.to_bytes()
    assert Submission.from_bytes(data) == sub
    assert Submission.from_bytes(data).to_bytes() == data
    assert json.loads(data)["wire_version"] == WIRE_VERSION == "2.2"
    assert kind_of(sub) == "submission"


def test_data_source_round_trips_and_older_documents_have_none() -> None:
    sub = _submission().model_copy(update={"source": DataSource(
        format="nemsis", description="NEMSIS v3.5.1 national extract", synthetic=True)})
    assert Submission.from_bytes(sub.to_bytes()).source == sub.source
    older = json.loads(_submission().to_bytes())
    older["wire_version"] = "2.1"
    del older["source"]
    assert Submission.from_bytes(json.dumps(older).encode()).source is None
    with pytest.raises(ValidationError):  # synthetic is not optional inside a source
        Submission.from_bytes(json.dumps({**older, "source": {"format": "nemsis"}}).encode())


def test_withdrawal_round_trip_is_exact() -> None:
    w = _withdrawal()
    data = w.to_bytes()
    assert Withdrawal.from_bytes(data) == w
    assert Withdrawal.from_bytes(data).to_bytes() == data
    assert kind_of(w) == "withdrawal"


def test_receipt_round_trip_is_exact() -> None:
    r = _receipt()
    data = r.to_bytes()
    assert Receipt.model_validate_json(data) == r
    assert Receipt.model_validate_json(data).to_bytes() == data
    assert (r.status, r.receipt_version) == ("accepted", "1")


def test_payload_types_are_distinct() -> None:
    assert len({SUBMISSION_TYPE, WITHDRAWAL_TYPE, RECEIPT_TYPE}) == 3
    assert PAYLOAD_MODELS == {SUBMISSION_TYPE: Submission, WITHDRAWAL_TYPE: Withdrawal}


def test_a_submission_is_not_a_withdrawal_and_vice_versa() -> None:
    with pytest.raises(ValidationError):
        Withdrawal.from_bytes(_submission().to_bytes())
    with pytest.raises(ValidationError):
        Submission.from_bytes(_withdrawal().to_bytes())


def test_published_schemas_are_current() -> None:
    schemas = published_schemas()
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == {p.name for p in schemas} == \
        {"submission-v2.json", "withdrawal-v2.json", "receipt-v2.json"}
    for path, text in schemas.items():
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.name} is stale; regenerate with: python -m emsbench.wire"
        schema = json.loads(text)
        assert schema["$id"] == f"https://emsbench.org/schema/{path.name}"
        assert schema["additionalProperties"] is False
    assert SCHEMA_PATH.name == "submission-v2.json"
    assert json_schema_text() == schemas[SCHEMA_PATH]
    submission = json.loads(schemas[SCHEMA_PATH])
    assert submission["title"] == "Submission"
    assert {"indicators", "catalogue", "revision"} <= set(submission["required"])


def _refused(model: type[Submission] | type[Withdrawal], body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps(body))
    return str(info.value)


def _sub_json(**changes: Any) -> dict[str, Any]:
    return json.loads(_submission().to_bytes()) | changes


@pytest.mark.parametrize("change", [
    {"disclosure_threshold": "5"},
    {"disclosure_threshold": 5.0},
    {"revision": "3"},
    {"revision": 3.0},
    {"period": {"year": "2025"}},
    {"created_at": "2026-01-02T03:04:05"},  # naive: no offset
    {"created_at": "2026-01-02"},
    {"created_at": 1767323045},
    {"unexpected": 1},
    {"country": "Norway"},
    {"country": "no"},
    {"wire_version": "1"},
    {"disclosure_threshold": 0},
    {"revision": 0},
    {"revision": 1_000_001},
    {"catalogue": "E" * 64},
    {"submission_id": "short"},
    {"submission_id": "NO/2025/../../x"},
    {"period": {"year": 2025, "month": 1}},
    {"indicators": "none"},
], ids=lambda c: "-".join(f"{k}={v!r}" for k, v in c.items())[:40])
def test_malformed_submissions_are_refused(change: dict[str, Any]) -> None:
    _refused(Submission, _sub_json(**change))


@pytest.mark.parametrize(("path", "value"), [
    (("indicators", 0, "cells", 0, "numerator"), "5"),
    (("indicators", 0, "cells", 0, "numerator"), 28.0),
    (("indicators", 0, "cells", 0, "numerator"), -1),
    (("indicators", 0, "cells", 0, "numerator"), MAX_JSON_INT + 1),
    (("indicators", 0, "cells", 0, "numerator"), True),
    (("indicators", 0, "cells", 0, "suppressed"), "false"),
    (("indicators", 0, "cells", 0, "extra"), 1),
    (("indicators", 1, "cells", 0, "bins"), [[0, 1, "7"]]),
    (("indicators", 1, "cells", 0, "bins"), [[0, 1]]),
    (("indicators", 1, "cells", 0, "bins"), [[0, 1, 7.5]]),
    (("indicators", 0, "type"), "proportion"),
    (("indicators", 0, "spec_sha256"), "a" * 63),
    (("data_quality", "rows_read"), "10"),
    (("data_quality", "rows_read"), 10.0),
    (("data_quality", "rejected_by_reason"), {"Bad Reason!": 1}),
    (("data_quality", "rows_ignored"), 1),
])
def test_strict_parsing_inside_the_document(path: tuple[Any, ...], value: Any) -> None:
    body = _sub_json()
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _refused(Submission, body)


def test_largest_json_safe_count_is_accepted() -> None:
    body = _sub_json()
    body["indicators"][0]["cells"][0].update(numerator=MAX_JSON_INT, denominator=MAX_JSON_INT)
    assert Submission.model_validate_json(json.dumps(body)).indicators[0].cells[0].numerator \
        == MAX_JSON_INT


def test_times_with_any_offset_are_accepted() -> None:
    sub = Submission.model_validate_json(json.dumps(_sub_json(
        created_at="2026-01-02T05:04:05+02:00")))
    assert sub.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("change", [
    {"reason": "no"},  # too short to explain anything
    {"reason": "x" * 501},
    {"indicators": []},  # a withdrawal carries no data
    {"created_at": "2026-02-01T00:00:00"},
    {"revision": "4"},
])
def test_malformed_withdrawals_are_refused(change: dict[str, Any]) -> None:
    _refused(Withdrawal, json.loads(_withdrawal().to_bytes()) | change)


def test_cells_must_match_their_indicator() -> None:
    with pytest.raises(ValidationError, match="stratum keys"):
        IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256="c" * 64, type="share",
                        strata=["urbanicity"], cells=[Cell(numerator=1, denominator=2)])
    with pytest.raises(ValidationError, match="carries numerator and denominator only"):
        IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256="c" * 64, type="share",
                        strata=[], cells=[Cell(bins=[(0, 0, 5)])])
    with pytest.raises(ValidationError, match="not numerator or denominator"):
        IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256="c" * 64,
                        type="distribution", strata=[], cells=[Cell(numerator=1)])
    # Order and overlap of runs are conformance questions (emsbench.conformance), not
    # wire ones: the wire model only fixes their shape.
    IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256="c" * 64,
                    type="distribution", strata=[], cells=[Cell(bins=[(2, 4, 5), (4, 6, 5)])])


def test_models_are_frozen() -> None:
    sub = _submission()
    with pytest.raises(ValidationError):
        sub.revision = 9  # type: ignore[misc]
