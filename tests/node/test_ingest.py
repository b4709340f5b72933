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
    assert report.rows_accepted == 3
    assert report.rejected_by_reason == {
        "missing:urgency_level": 2, "invalid_code:urgency_level": 1, "outside_period": 1}
    # an optional field out of range is set to NULL and counted, not a reason to reject
    assert report.nulled_by_reason == {"out_of_range:patient_age": 1}
    assert con.execute("SELECT count(*) FROM missions").fetchone() == (3,)
    assert con.execute("SELECT count(*) FROM missions WHERE patient_age IS NULL").fetchone() == (1,)
    types = dict(con.execute("SELECT column_name, column_type FROM "
                             "(DESCRIBE missions)").fetchall())
    assert types == model.duckdb_types()


def test_the_sandbox_holds_the_valid_rows_and_nothing_else(write_missions, tmp_path: Path  # type: ignore[no-untyped-def]
                                                           ) -> None:
    """Nothing is copied: ``missions`` is a view over the input that leaves rejected rows
    out, and the only table in the sandbox holds the row numbers of duplicate ids."""
    from node.ingest import open_missions

    secret = {**GOOD, "mission_id": "REJECTED-ROW", "urgency_level": "U7"}
    con, report = open_missions(write_missions([GOOD, secret], "m.parquet"), 2025, tmp_path)
    assert report.rows_accepted == 1
    objects = con.execute("SELECT table_name, 'table' FROM duckdb_tables() UNION ALL "
                          "SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal "
                          "ORDER BY 1").fetchall()
    assert objects == [("_excluded", "table"), ("missions", "view")]
    assert con.execute("SELECT * FROM _excluded").fetchall() == []
    assert con.execute("SELECT count(*) FROM missions").fetchone() == (1,)
    assert "_reject_reason" not in [r[0] for r in con.execute("DESCRIBE missions").fetchall()]
    assert con.execute("SELECT count(*) FROM missions WHERE mission_id = 'REJECTED-ROW'"
                       ).fetchone() == (0,)


def test_csv_text_that_does_not_parse_rejects_its_row(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("mission_id,call_received,urgency_level,service_type,patient_age\n"
                   "a,2025-01-01 10:00:00,U1,emergency,44\n"
                   "b,yesterday,U1,emergency,44\n"
                   "c,2025-01-01 10:00:00,U2,emergency,forty\n", encoding="utf-8")
    con, report = _ingest(csv)
    assert report.rows_accepted == 2
    assert report.rejected_by_reason == {"unparseable:call_received": 1}
    assert report.nulled_by_reason == {"unparseable:patient_age": 1}  # optional: set to NULL
    assert "arrived_scene" in report.missing_optional_columns
    rows = con.execute("SELECT mission_id, patient_age, arrived_scene FROM missions "
                       "ORDER BY mission_id").fetchall()
    assert rows == [("a", 44, None), ("c", None, None)]


def test_missing_required_column_stops_with_a_clear_error(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("mission_id,call_received\na,2025-01-01 10:00:00\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"required column\(s\) \['urgency_level', "
                       r"'service_type'\] are missing"):
        _ingest(csv)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        _ingest(tmp_path / "nope.parquet")
    other = tmp_path / "m.xlsx"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="unsupported input format"):
        _ingest(other)


@pytest.mark.parametrize("name", ["m.parquet", "m.csv"])
def test_v2_columns_are_validated(write_missions, name) -> None:  # type: ignore[no-untyped-def]
    rows = [{**GOOD, "gcs_total": 3, "avpu": "unresponsive", "destination_type": "pci_centre",
             "stroke_scale_result": "positive", "stroke_scale_type": "befast",
             "med_aspirin_given": True, "med_aspirin_time": "2025-02-01 10:20:00"},
            {**GOOD, "gcs_total": 16},
            {**GOOD, "gcs_total": 2},
            {**GOOD, "avpu": "asleep"},
            {**GOOD, "destination_type": "pci"},
            {**GOOD, "stroke_scale_type": "fast_track"}]
    con, report = _ingest(write_missions(rows, name))
    # optional fields: a failing value is set to NULL and counted; the rows stay
    assert report.rows_accepted == 6 and report.rejected_by_reason == {}
    assert report.nulled_by_reason == {
        "out_of_range:gcs_total": 2, "invalid_code:avpu": 1,
        "invalid_code:destination_type": 1, "invalid_code:stroke_scale_type": 1}
    rows = con.execute("SELECT gcs_total, avpu, destination_type, stroke_scale_type "
                       "FROM missions ORDER BY gcs_total NULLS LAST").fetchall()
    assert rows == [(3, "unresponsive", "pci_centre", "befast")] + [(None,) * 4] * 5


def test_derived_columns_come_from_their_source_never_from_the_file(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text(
        "mission_id,call_received,urgency_level,service_type,patient_age,age_band,"
        "stroke_scale_done,stroke_scale_result\n"
        "a,2025-03-01 10:00:00,U1,emergency,17,80+,false,negative\n"
        "b,2025-12-31 23:00:00,U1,emergency,80,nonsense,,\n"
        "c,2025-06-15 08:00:00,U2,emergency,,,false,\n", encoding="utf-8")
    con, report = _ingest(csv)
    assert report.rows_accepted == 3 and report.rejected_by_reason == {}
    assert report.ignored_columns == ("age_band",)  # a derived column is never read
    assert "call_month" not in report.missing_optional_columns
    assert "stroke_scale_type" in report.missing_optional_columns
    rows = con.execute("SELECT mission_id, age_band, call_month, stroke_scale_done "
                       "FROM missions ORDER BY mission_id").fetchall()
    # stroke_scale_done is completed: a recorded result means a scale was done
    assert rows == [("a", "0-17", "03", True), ("b", "80+", "12", None),
                    ("c", None, "06", False)]
    columns = [r[0] for r in con.execute("DESCRIBE missions").fetchall()]
    assert columns == model.columns()


def test_synthetic_file_ingests_with_every_column(tmp_path: Path) -> None:
    from node.synth.generator import generate

    path = tmp_path / "no.parquet"
    generate("NO", 2025, path, rows=5_000, seed=11)
    con, report = _ingest(path)
    assert report.missing_optional_columns == () and report.ignored_columns == ()
    bands, months, unknown = con.execute(
        "SELECT count(DISTINCT age_band), count(DISTINCT call_month), "
        "count(*) FILTER (WHERE age_band IS NULL AND patient_age IS NOT NULL) "
        "FROM missions").fetchone() or (0, 0, 0)
    assert (bands, months, unknown) == (5, 12, 0)


def test_codes_match_whatever_their_case_and_spaces(tmp_path: Path) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("mission_id,call_received,urgency_level,service_type,urbanicity\n"
                   "a,2025-01-01 10:00:00,u1,Emergency,URBAN\n"
                   "b,2025-01-01 10:00:00, U2 ,emergency, rural\n"
                   "c,2025-01-01 10:00:00,U 2,emergency,town\n", encoding="utf-8")
    con, report = _ingest(csv)
    assert report.rows_accepted == 2
    assert report.rejected_by_reason == {"invalid_code:urgency_level": 1}
    rows = con.execute("SELECT mission_id, urgency_level, service_type, urbanicity "
                       "FROM missions ORDER BY mission_id").fetchall()
    assert rows == [("a", "U1", "emergency", "urban"), ("b", "U2", "emergency", "rural")]


def test_the_light_values_are_the_checked_values(tmp_path: Path) -> None:
    """``values_sql`` (the view's and the quality pass's projection) gives every value as
    ``checked_sql`` leaves it, on messy text: codes in other case, bad codes, bad numbers,
    ages out of range, times with offsets."""
    import duckdb

    from emsbench import model
    from node.ingest import checked_sql, stage, values_sql
    from node.source import open_source

    csv = tmp_path / "m.csv"
    csv.write_text(
        "mission_id,call_received,urgency_level,service_type,urbanicity,patient_age,"
        "patient_sex,gcs_total,arrived_scene\n"
        "a,2025-01-01 10:00:00,U1,emergency,Urban ,44,f,15,2025-01-01T09:10:00Z\n"
        "b,2025-01-02 10:00:00, u2 ,Emergency,nowhere,300,x,99,not a time\n"
        "c,2025-01-03 10:00:00,U9,emergency,rural,-1,,3,\n"
        "d,2024-12-31 23:00:00,U3,intercept,RURAL,abc,m,,2025-01-01 00:10:00\n",
        encoding="utf-8")
    con = duckdb.connect()
    source = stage(con, open_source(con, csv, encoding=None, workdir=tmp_path), tmp_path)
    types = {str(r[0]): str(r[1])
             for r in con.execute(f"DESCRIBE SELECT * FROM {source.sql}").fetchall()}
    cols = ", ".join(["_row"] + model.input_columns())
    checked = con.execute(f"SELECT {cols} FROM ({checked_sql(source, types, 2025, 'Europe/Oslo')}) "
                          "ORDER BY _row").fetchall()
    light = con.execute(f"SELECT {cols} FROM ({values_sql(source, types, 'Europe/Oslo')}) "
                        "ORDER BY _row").fetchall()
    assert light == checked
    assert [r[1 + model.input_columns().index("urbanicity")] for r in light] == \
        ["urban", None, "rural", "rural"]


DUPLICATES = [{**GOOD, "mission_id": "a", "urgency_level": "U7"},  # rejected: not counted
              {**GOOD, "mission_id": "a", "patient_age": 1},  # the first accepted a: kept
              {**GOOD, "mission_id": "b"},
              {**GOOD, "mission_id": "a", "patient_age": 2},
              {**GOOD, "mission_id": "c"},
              {**GOOD, "mission_id": "b", "patient_age": 500},  # also has a value emptied
              {**GOOD, "mission_id": "a", "patient_age": 3}]


@pytest.mark.parametrize("name", ["m.parquet", "m.csv"])
def test_a_duplicate_id_keeps_the_first_accepted_row(write_missions, name) -> None:  # type: ignore[no-untyped-def]
    con, report = _ingest(write_missions(DUPLICATES, name))
    assert report.rejected_by_reason == {"duplicate:mission_id": 3,
                                         "invalid_code:urgency_level": 1}
    assert report.rows_accepted == 3
    rows = con.execute("SELECT mission_id, patient_age FROM missions ORDER BY 1").fetchall()
    assert rows == [("a", 1), ("b", 50), ("c", 50)]


def test_a_collision_of_the_id_hash_never_rejects_a_row(write_missions, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Duplicates are found on a hash of the id, then checked exactly: with a hash that
    collides for half of all ids, distinct ids stay, and only the real duplicates go."""
    import node.ingest

    monkeypatch.setattr(node.ingest, "ID_HASH", "hash({}) % 2")
    distinct = [{**GOOD, "mission_id": f"m{i}"} for i in range(40)]
    con, report = _ingest(write_missions(distinct, "m.parquet"))
    assert report.rows_accepted == 40 and report.rejected_by_reason == {}
    con, report = _ingest(write_missions(distinct + DUPLICATES, "n.parquet"))
    assert report.rejected_by_reason == {"duplicate:mission_id": 3,
                                         "invalid_code:urgency_level": 1}
    assert con.execute("SELECT count(*), count(DISTINCT mission_id) FROM missions"
                       ).fetchall() == [(43, 43)]


def test_completeness_counts_the_values_the_input_records(tmp_path: Path) -> None:
    """Completeness is of the national data as recorded: a value the model's completion
    rule adds (a stroke scale result means a scale was done) is not counted, and the
    data-quality page says so."""
    from node.quality_report import render

    csv = tmp_path / "m.csv"
    csv.write_text("mission_id,call_received,urgency_level,service_type,stroke_scale_done,"
                   "stroke_scale_result\n"
                   "a,2025-03-01 10:00:00,U1,emergency,false,\n"
                   "b,2025-03-01 10:00:00,U1,emergency,,positive\n"
                   "c,2025-03-01 10:00:00,U1,emergency,true,negative\n"
                   "d,2025-03-01 10:00:00,U9,emergency,true,negative\n", encoding="utf-8")
    con, report = _ingest(csv)
    assert con.execute("SELECT count(stroke_scale_done) FROM missions").fetchall() == [(3,)]
    assert report.completeness["stroke_scale_done"] == 2  # b's comes from the rule
    assert report.completeness["stroke_scale_result"] == 2  # d was rejected
    page = render(report, "m.csv", "NO", 2025)
    row = page.split("<td>stroke_scale_done</td>", 1)[1].split("</tr>", 1)[0]
    assert "the model completes it by a rule" in row


def test_the_duplicate_check_splits_a_large_input_by_hash(write_missions, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Past what one GROUP BY holds within the memory limit, ids are checked in passes
    chosen by their hash: every duplicate is still found, with the weak hash too."""
    import node.ingest
    from node.ingest import id_passes

    assert id_passes(200_000_000, "488.2 MiB") == 2  # 512 MB, as DuckDB writes it
    assert id_passes(500_000_000, "488.2 MiB") == 4
    assert id_passes(500_000_000, "2.7 GiB") == 1
    assert id_passes(0, "488.2 MiB") == id_passes(10, "1.0 KiB") == 1
    monkeypatch.setattr(node.ingest, "id_passes", lambda rows, limit: 3)
    rows = [{**GOOD, "mission_id": f"m{i}"} for i in range(40)] + DUPLICATES
    for weak in ("hash({})", "hash({}) % 2"):
        monkeypatch.setattr(node.ingest, "ID_HASH", weak)
        con, report = _ingest(write_missions(rows, "m.parquet"))
        assert report.rejected_by_reason == {"duplicate:mission_id": 3,
                                             "invalid_code:urgency_level": 1}
        assert report.rows_accepted == 43
