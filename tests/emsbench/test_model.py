"""The information model: one definition, everything else derived from it."""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from pydantic import ValidationError

from emsbench import model
from emsbench.crosswalk import common_level, crosswalk
from emsbench.model_doc import DOC_PATH, NEMSIS_PATH, model_elements, nemsis_extract, render


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


# --- model v2 ---------------------------------------------------------------------------

V2_FIELDS = {  # issue 6 item 2: column -> NEMSIS v3.5.1 element
    "med_aspirin_given": "eMedications.03", "med_aspirin_time": "eMedications.01",
    "gcs_total": "eVitals.23", "avpu": "eVitals.26", "stroke_scale_result": "eVitals.29",
    "stroke_scale_type": "eVitals.30", "destination_type": "eDisposition.23",
    "at_destination": "eTimes.11", "call_ring_start": None, "call_answered": None,
    "age_band": "ePatient.15", "call_month": "eTimes.01",
}


def test_version_2_has_the_new_columns_with_their_nemsis_ids() -> None:
    assert model.MODEL_VERSION == "2"
    for name, element in V2_FIELDS.items():
        assert model.nemsis(name) == element, name
    schema = model.arrow_schema()
    assert schema.field("gcs_total").type == pa.int32()
    assert schema.field("med_aspirin_time").type == pa.timestamp("us")
    assert schema.field("med_aspirin_given").metadata == {b"nemsis": b"eMedications.03"}


def test_new_code_sets_are_strata_and_gcs_has_a_range() -> None:
    for name in ("avpu", "stroke_scale_result", "stroke_scale_type", "destination_type",
                 "age_band", "call_month"):
        assert name in model.ENUMS, name
    assert model.ENUMS["age_band"] == ("0-17", "18-44", "45-64", "65-79", "80+")
    assert model.ENUMS["call_month"] == tuple(f"{m:02d}" for m in range(1, 13))
    assert model.RANGES == {"patient_age": (0, 120), "gcs_total": (3, 15)}
    assert model.ENUMS["age_band"] == tuple(code for code, _, _ in model.AGE_BANDS)


def test_derived_columns_are_in_the_table_but_not_in_an_input_file() -> None:
    assert set(model.DERIVED) == {"age_band", "call_month"}
    assert set(model.COMPLETED) == {"stroke_scale_done"}
    assert model.input_columns() == [c for c in model.columns() if c not in model.DERIVED]
    assert model.input_schema().names == model.input_columns()
    assert set(model.arrow_schema().names) - set(model.input_schema().names) == {
        "age_band", "call_month"}
    assert not any(model.is_required(c) for c in {*model.DERIVED, *model.COMPLETED})


def test_mission_derives_like_the_node() -> None:
    m = model.Mission(mission_id="NO-3", call_received=datetime(2025, 7, 9, 23, 59),
                      urgency_level="U1", service_type="emergency", patient_age=80,
                      age_band="0-17", stroke_scale_type="fast")
    assert (m.age_band, m.call_month, m.stroke_scale_done) == ("80+", "07", True)
    plain = model.Mission(mission_id="NO-4", call_received=datetime(2025, 1, 1),
                          urgency_level="U2", service_type="emergency", stroke_scale_done=False)
    assert (plain.age_band, plain.call_month, plain.stroke_scale_done) == (None, "01", False)
    with pytest.raises(ValidationError, match="gcs_total"):
        model.Mission(mission_id="NO-5", call_received=datetime(2025, 1, 1),
                      urgency_level="U1", service_type="emergency", gcs_total=2)
    with pytest.raises(ValidationError, match="avpu"):
        model.Mission(mission_id="NO-6", call_received=datetime(2025, 1, 1),
                      urgency_level="U1", service_type="emergency", avpu="asleep")


def test_sql_and_python_derivations_agree() -> None:
    con = duckdb.connect()
    rows = [(age, datetime(2025, 1 + i % 12, 28, 12), result, kind, done)
            for i, age in enumerate([*range(0, 121), None])
            for result, kind, done in [(None, None, None), ("positive", None, False),
                                       (None, "nihss", None), (None, None, False)]]
    con.execute("CREATE TABLE t (patient_age INTEGER, call_received TIMESTAMP, "
                "stroke_scale_result VARCHAR, stroke_scale_type VARCHAR, "
                "stroke_scale_done BOOLEAN)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    rules = {**model.DERIVED, **model.COMPLETED}
    got = con.execute("SELECT " + ", ".join(f"({sql}) AS {c}" for c, sql in rules.items())
                      + " FROM t").fetchall()
    for (age, received, result, kind, done), values in zip(rows, got, strict=True):
        want = model.derive({"patient_age": age, "call_received": received,
                             "stroke_scale_result": result, "stroke_scale_type": kind,
                             "stroke_scale_done": done})
        assert values == tuple(want[c] for c in rules), (age, received, result, kind, done)
    assert model.age_band(17) == "0-17" and model.age_band(18) == "18-44"
    assert model.age_band(79) == "65-79" and model.age_band(80) == "80+"


def _nemsis_extract() -> tuple[set[str], set[tuple[str, str]]]:
    path = NEMSIS_PATH
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {r["element"] for r in rows}, {(r["element"], r["code"]) for r in rows if r["code"]}


def test_nemsis_ids_and_codes_exist_in_nemsis_3_5_1() -> None:
    elements, codes = _nemsis_extract()
    assert elements == set(model_elements()), "regenerate: python -m emsbench.model_doc --nemsis"
    for name in model.columns():
        assert model.nemsis(name) is None or model.nemsis(name) in elements, name
        mapping = model.nemsis_codes(name)
        assert set(mapping) <= set(model.ENUMS.get(name, ())), name
        for values in mapping.values():
            for value in values:
                element, code = value.split("=")
                assert (element, code) in codes, (name, value)
    # every NEMSIS value of these elements has a model value
    for name, element in (("avpu", "eVitals.26"), ("stroke_scale_result", "eVitals.29"),
                          ("stroke_scale_type", "eVitals.30")):
        mapped = {v.split("=")[1] for vs in model.nemsis_codes(name).values() for v in vs}
        assert mapped == {c for e, c in codes if e == element}, name


def test_nemsis_extract_matches_the_shared_element_list() -> None:
    shared = Path(os.environ.get("EMSBENCH_NEMSIS_JSON",
                                 "/work/shared/reference/nemsis-v3.5.1-elements.json"))
    if not shared.is_file():
        pytest.skip("the shared NEMSIS element list is not on this machine")
    assert NEMSIS_PATH.read_text(encoding="utf-8") == nemsis_extract(shared)
