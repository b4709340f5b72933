"""Wire model: round trip, published JSON Schema, refusal of malformed payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from emsbench.wire import (
    SCHEMA_PATH,
    Cell,
    DataQuality,
    IndicatorResult,
    Period,
    Submission,
    json_schema_text,
)


def _submission() -> Submission:
    return Submission(
        submission_id="NO-2025-abcdef01", country="NO", period=Period(year=2025),
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), software_version="0.1.0",
        model_version="1", disclosure_threshold=5,
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


def test_round_trip_is_exact() -> None:
    sub = _submission()
    data = sub.to_bytes()
    assert Submission.from_bytes(data) == sub
    assert Submission.from_bytes(data).to_bytes() == data


def test_published_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == json_schema_text(), \
        "regenerate with: python -m emsbench.wire"
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["title"] == "Submission" and "indicators" in schema["required"]


@pytest.mark.parametrize("change", [
    {"country": "Norway"},
    {"unexpected": 1},
    {"disclosure_threshold": 0},
])
def test_malformed_payloads_are_refused(change: dict) -> None:  # type: ignore[type-arg]
    body = json.loads(_submission().to_bytes()) | change
    with pytest.raises(ValidationError):
        Submission.model_validate(body)


def test_cells_must_match_their_indicator() -> None:
    with pytest.raises(ValidationError, match="stratum keys"):
        IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256="c" * 64, type="share",
                        strata=["urbanicity"], cells=[Cell(numerator=1, denominator=2)])
    with pytest.raises(ValidationError, match="needs bins"):
        IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256="c" * 64,
                        type="distribution", strata=[], cells=[Cell(numerator=1)])
    with pytest.raises(ValidationError, match="ascending, disjoint"):
        IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256="c" * 64,
                        type="distribution", strata=[], cells=[Cell(bins=[(2, 4, 5), (4, 6, 5)])])
