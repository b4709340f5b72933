"""The information model: one definition, everything else derived from it."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest
from pydantic import ValidationError

from emsbench import model
from emsbench.crosswalk import common_level, crosswalk
from emsbench.model_doc import DOC_PATH, render


def test_arrow_schema_and_duckdb_types_follow_the_model() -> None:
    schema = model.arrow_schema()
    assert schema.names == model.columns() == list(model.duckdb_types())
    assert schema.field("call_received").type == pa.timestamp("us")
    assert not schema.field("mission_id").nullable and schema.field("ca_arrest").nullable
    assert schema.field("arrived_scene").metadata == {b"nemsis": b"eTimes.06"}


def test_record_validation() -> None:
    ok = model.Mission(mission_id="NO-1", call_received=datetime(2025, 1, 1),
                       urgency_level="U1", service_type="emergency")
    assert ok.cancelled is False and ok.ca_arrest is None
    with pytest.raises(ValidationError):
        model.Mission(mission_id="NO-2", call_received=datetime(2025, 1, 1),
                      urgency_level="U4", service_type="emergency", patient_age=130)


def test_crosswalk_covers_all_six_countries() -> None:
    assert {c.country for c in crosswalk()} == {"NO", "SE", "DK", "FI", "IS", "US"}
    assert {c.common_level for c in crosswalk()} == set(model.ENUMS["urgency_level"])
    assert common_level("NO", "A") == "U1" and common_level("FI", "B") == "U1"
    with pytest.raises(KeyError, match="'Z'"):
        common_level("SE", "Z")


def test_information_model_document_is_current() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), \
        "regenerate with: python -m emsbench.model_doc"
