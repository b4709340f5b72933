"""A messy export, as a registry analyst gets it from a dispatch system, damages nothing.

Planted: a header in the wrong case, a duplicated mission id, times with ``Z`` and
``+01:00`` offsets, ``ja``/``nei`` and ``ukjent`` in optional fields, times out of order, a
missing arrival, unknown codes in a required and an optional field, a Windows-1252 file.
Each problem is reported with its row and column, nothing is shifted or counted twice, and
the rejects file lists every rejected row and every emptied value.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest

from node.ingest import InputError, open_missions

YEAR = 2025
HEADER = ("mission_id;call_received;Urgency_Level;SERVICE_TYPE;Urbanicity;patient_age;"
          "lights_sirens;unit_notified;arrived_scene;patient_sex;Kommentar")
ROWS = [
    # 1: clean
    "a1;2025-03-01 10:00:00;U1;emergency;urban;44;true;2025-03-01 10:01:00;"
    "2025-03-01 10:09:00;female;",
    # 2: UTC "Z": 09:00Z is 10:00 in Oslo in March
    "a2;2025-03-01T09:00:00Z;U1;emergency;rural;61;false;2025-03-01T09:02:00Z;2025-03-01T09:20:00Z;male;",
    # 3: +01:00 offset, summer: 10:00+01:00 is 11:00 in Oslo (UTC+2)
    "a3;2025-07-01T10:00:00+01:00;U2;emergency;urban;30;true;;;female;",
    # 4: ja/nei and ukjent in optional fields: emptied, row kept
    "a4;2025-03-02 08:00:00;U2;emergency;urban;ukjent;ja;;;female;",
    # 5: the same mission id again: rejected, not counted twice
    "a1;2025-03-01 10:00:00;U1;emergency;urban;44;true;2025-03-01 10:01:00;"
    "2025-03-01 10:09:00;female;",
    # 6: arrival before notification: kept, reported out of order
    "a6;2025-03-03 12:00:00;U1;emergency;urban;50;true;2025-03-03 12:05:00;"
    "2025-03-03 12:02:00;male;",
    # 7: unknown urgency code (required): rejected
    "a7;2025-03-04 12:00:00;A;emergency;urban;50;true;;;male;",
    # 8: unknown sex code (optional): emptied
    "a8;2025-03-05 12:00:00;U3;emergency;urban;50;true;;;x;",
    # 9: no call time (required): rejected
    "a9;;U3;emergency;urban;50;true;;;male;",
    # 10: Norwegian letters in an ignored column, for the encoding test
    "a10;2025-03-06 12:00:00;U3;emergency;rural;70;false;;;female;Åsane, Tromsø",
]


def write(path: Path, rows: list[str] = ROWS, encoding: str = "utf-8",
          header: str = HEADER) -> Path:
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode(encoding))
    return path


def read(tmp: Path, data: Path, **kw: object):  # type: ignore[no-untyped-def]
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    return open_missions(data, YEAR, work, timezone="Europe/Oslo",
                         rejects=tmp / "reports" / "rejects.csv", **kw)  # type: ignore[arg-type]


def rejects(tmp: Path) -> list[dict[str, str]]:
    with (tmp / "reports" / "rejects.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def messy(tmp_path: Path):  # type: ignore[no-untyped-def]
    return read(tmp_path, write(tmp_path / "export.csv"))


def test_counts_every_row_once(messy) -> None:  # type: ignore[no-untyped-def]
    con, report = messy
    assert report.rows_read == 10 and report.rows_accepted == 7
    assert report.rejected_by_reason == {"duplicate:mission_id": 1,
                                         "invalid_code:urgency_level": 1,
                                         "missing:call_received": 1}
    ids = [r[0] for r in con.execute("SELECT mission_id FROM missions").fetchall()]
    assert sorted(ids) == ["a1", "a10", "a2", "a3", "a4", "a6", "a8"]  # a1 once


def test_headers_match_whatever_their_case(messy) -> None:  # type: ignore[no-untyped-def]
    con, report = messy
    assert report.renamed_columns == {"Urgency_Level": "urgency_level",
                                      "SERVICE_TYPE": "service_type",
                                      "Urbanicity": "urbanicity"}
    assert report.ignored_columns == ("Kommentar",)
    # urbanicity was read, not left empty (which sent every figure to "unknown")
    assert con.execute("SELECT count(*) FROM missions WHERE urbanicity IS NULL"
                       ).fetchone() == (0,)


def test_offsets_are_converted_to_local_time_never_cut_off(messy) -> None:  # type: ignore[no-untyped-def]
    con, _ = messy
    times = dict(con.execute("SELECT mission_id, call_received FROM missions").fetchall())
    assert times["a2"] == datetime(2025, 3, 1, 10, 0)   # 09:00Z, Oslo winter time
    assert times["a3"] == datetime(2025, 7, 1, 11, 0)   # 10:00+01:00, Oslo summer time
    assert times["a1"] == datetime(2025, 3, 1, 10, 0)   # no offset: already local
    a2 = con.execute("SELECT date_diff('second', call_received, arrived_scene) FROM missions "
                     "WHERE mission_id = 'a2'").fetchone()
    assert a2 == (20 * 60,)


def test_bad_optional_values_are_emptied_and_counted(messy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, report = messy
    assert report.nulled_by_reason == {"invalid_code:patient_sex": 1,
                                       "unparseable:lights_sirens": 1,
                                       "unparseable:patient_age": 1}
    a4 = con.execute("SELECT patient_age, lights_sirens, urgency_level FROM missions "
                     "WHERE mission_id = 'a4'").fetchone()
    assert a4 == (None, None, "U2")


def test_times_out_of_order_are_reported(messy) -> None:  # type: ignore[no-untyped-def]
    _, report = messy
    # a6: notified 12:05, arrived 12:02, no en-route time between them: the gap in the
    # record does not hide it
    assert report.out_of_order == {"arrived_scene before an earlier step": 1}


def test_the_rejects_file_lists_every_rejected_row_and_emptied_value(
        messy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = rejects(tmp_path)
    got = [(r["row"], r["line"], r["mission_id"], r["column"], r["reason"], r["value"],
            r["action"]) for r in rows]
    assert got == [
        ("4", "5", "a4", "lights_sirens", "unparseable:lights_sirens", "ja",
         "value set to empty"),
        ("4", "5", "a4", "patient_age", "unparseable:patient_age", "ukjent",
         "value set to empty"),
        ("5", "6", "a1", "mission_id", "duplicate:mission_id", "a1", "row rejected"),
        ("7", "8", "a7", "urgency_level", "invalid_code:urgency_level", "A", "row rejected"),
        ("8", "9", "a8", "patient_sex", "invalid_code:patient_sex", "x", "value set to empty"),
        ("9", "10", "a9", "call_received", "missing:call_received", "", "row rejected"),
    ]
    assert oct((tmp_path / "reports" / "rejects.csv").stat().st_mode & 0o777) == "0o600"


def test_a_windows_1252_file_is_refused_naming_the_encoding(tmp_path: Path) -> None:
    data = write(tmp_path / "ansi.csv", encoding="cp1252")
    with pytest.raises(InputError, match=r"is not UTF-8: byte 0xC5 on line 11 .*'Å'.*"
                       r'encoding = "windows-1252"'):
        read(tmp_path, data)


def test_a_windows_1252_file_reads_exactly_with_its_encoding(tmp_path: Path) -> None:
    utf8 = read(tmp_path / "u", write((tmp_path / "u").mkdir() or tmp_path / "u" / "a.csv"))
    ansi = read(tmp_path / "w", write((tmp_path / "w").mkdir() or tmp_path / "w" / "a.csv",
                                      encoding="cp1252"), encoding="windows-1252")
    assert ansi[1].rows_accepted == utf8[1].rows_accepted == 7
    assert ansi[1].encoding == "windows-1252"
    # the UTF-8 copy is a working file: the node's workspace removes it after the run
    assert [p.name for p in (tmp_path / "w" / "work").iterdir()
            if not p.name.startswith("missions.duckdb")] == []
    query = "SELECT * FROM missions ORDER BY mission_id"
    assert ansi[0].execute(query).fetchall() == utf8[0].execute(query).fetchall()


def test_a_near_miss_header_is_an_error_with_a_hint(tmp_path: Path) -> None:
    data = write(tmp_path / "x.csv", header=HEADER.replace("Urbanicity", "urbancity"))
    with pytest.raises(InputError, match=r"column 'urbancity' is not in the common model; "
                       r"did you mean 'urbanicity'\?"):
        read(tmp_path, data)


def test_a_missing_strata_column_is_an_error(tmp_path: Path) -> None:
    data = write(tmp_path / "x.csv", header=HEADER.replace("Urbanicity", "Bydel"))
    read(tmp_path, data)  # without a spec that stratifies on it, the column is optional
    with pytest.raises(InputError, match=r"required column\(s\) \['urbanicity'\] are missing"):
        read(tmp_path, data, required=("urgency_level", "urbanicity"))
    # a derived stratum needs the column it is derived from
    no_age = write(tmp_path / "y.csv", header=HEADER.replace("patient_age", "alder_x"))
    with pytest.raises(InputError, match=r"\['patient_age'\] are missing"):
        read(tmp_path, no_age, required=("age_band",))


def test_two_headers_for_one_column_are_an_error(tmp_path: Path) -> None:
    data = write(tmp_path / "x.csv", header=HEADER.replace("Kommentar", "URBANICITY"))
    with pytest.raises(InputError, match=r"columns 'Urbanicity' and 'URBANICITY' are both "
                       r"'urbanicity'"):
        read(tmp_path, data)
