"""Reading and validating a country's file against the common model."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from emsbench import model
from node.ingest import InputError, ingest

GOOD = {"urgency_level": "U1", "service_type": "emergency",
        "call_received": "2025-02-01 10:00:00", "patient_age": 50}


def _ingest(path: Path, year: int = 2025):  # type: ignore[no-untyped-def]
    con = duckdb.connect()
    return con, ingest(con, path, year)


@pytest.mark.parametrize("name", ["m.parquet", "m.csv"])
def test_rejected_rows_are_counted_by_first_failing_check(write_missions, name) -> None:  # type: ignore[no-untyped-def]
    rows = [GOOD, GOOD,
            {**GOOD, "urgency_level": None},
            {**GOOD, "urgency_level": "U7"},
            {**GOOD, "patient_age": 121},
            {**GOOD, "call_received": "2024-12-31 23:59:59"},
            {**GOOD, "urgency_level": None, "patient_age": 200}]
    con, report = _ingest(write_missions(rows, name))
    assert report.rows_read == 7
    assert report.rows_accepted == 2
    assert report.rejected_by_reason == {
        "missing:urgency_level": 2, "invalid_code:urgency_level": 1,
        "out_of_range:patient_age": 1, "outside_period": 1}
    assert con.execute("SELECT count(*) FROM missions").fetchone() == (2,)
    types = dict(con.execute("SELECT column_name, column_type FROM "
                             "(DESCRIBE missions)").fetchall())
    assert types == model.duckdb_types()


def test_csv_text_that_does_not_parse_rejects_its_row(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("mission_id,call_received,urgency_level,service_type,patient_age\n"
                   "a,2025-01-01 10:00:00,U1,emergency,44\n"
                   "b,yesterday,U1,emergency,44\n"
                   "c,2025-01-01 10:00:00,U2,emergency,forty\n", encoding="utf-8")
    con, report = _ingest(csv)
    assert report.rows_accepted == 1
    assert report.rejected_by_reason == {"unparseable:call_received": 1,
                                         "unparseable:patient_age": 1}
    assert "arrived_scene" in report.missing_optional_columns
    row = con.execute("SELECT mission_id, patient_age, arrived_scene FROM missions").fetchone()
    assert row == ("a", 44, None)


def test_missing_required_column_stops_with_a_clear_error(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("mission_id,call_received\na,2025-01-01 10:00:00\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"lacks required column.*urgency_level"):
        _ingest(csv)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        _ingest(tmp_path / "nope.parquet")
    other = tmp_path / "m.xlsx"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="unsupported input format"):
        _ingest(other)
