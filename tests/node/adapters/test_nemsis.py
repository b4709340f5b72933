"""The NEMSIS input adapter and its writer: round trip, STROKE-01 on hand-written tables,
unmapped codes counted, and the NEMSIS crosswalk files checked against the element list."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from emsbench import model
from emsbench.cli import main
from emsbench.model_doc import NEMSIS_PATH
from node.adapters import nemsis
from node.ingest import IngestReport, InputError, open_missions
from node.synth.generator import generate
from node.synth.nemsis_writer import write

YEAR = 2025
# Model columns NEMSIS has no element for: always empty from a NEMSIS input.
NOT_CARRIED = ("call_ring_start", "call_answered")


def _missions(data: Path, work: Path, fmt: str) -> tuple[dict[str, dict[str, Any]], IngestReport]:
    work.mkdir()
    con, report = open_missions(data, YEAR, work, fmt=fmt)
    try:
        cur = con.execute("SELECT * FROM missions")
        names = [d[0] for d in cur.description]
        rows = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    finally:
        con.close()
    return rows, report


def _write_tables(folder: Path, tables: dict[str, list[dict[str, str]]]) -> Path:
    """NEMSIS tables as pipe-delimited text, written by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        header = list(dict.fromkeys(k for r in rows for k in r))
        lines = ["|".join(header)] + ["|".join(r.get(h, "") for h in header) for r in rows]
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("table_format", ["txt", "parquet"])
def test_round_trip_gives_the_generated_missions(tmp_path: Path, table_format: str) -> None:
    common = tmp_path / "common.parquet"
    generate("US", YEAR, common, rows=20_000 if table_format == "txt" else 3_000, seed=11)
    folder = write(common, tmp_path / "nemsis", fmt="nemsis", country="US",
                   table_format=table_format)
    want, want_report = _missions(common, tmp_path / "w1", "common")
    got, got_report = _missions(folder, tmp_path / "w2", "nemsis")
    # validation sees the same values on both sides, so it rejects and empties the same
    assert got_report.rows_read == want_report.rows_read
    assert got_report.rows_accepted == want_report.rows_accepted
    assert got_report.rejected_by_reason == want_report.rejected_by_reason
    assert got_report.nulled_by_reason == want_report.nulled_by_reason
    assert got_report.out_of_order == want_report.out_of_order
    assert set(got_report.missing_optional_columns) == {*NOT_CARRIED, "stroke_scale_done"}
    assert got.keys() == want.keys()
    for col in model.columns():
        for key, w in want.items():
            expected, actual = w[col], got[key][col]
            if col in NOT_CARRIED:
                expected = None
            elif col == "stroke_scale_done" and expected is False:
                expected = None  # NEMSIS records a scale done, never one not done
            elif col == "ca_first_rhythm" and expected == "unknown":
                expected = None  # no NEMSIS code; written as Not Recorded (7701003)
            elif (col == "stroke_prenotified" and expected is None
                  and w["stemi_prealert_time"] is not None):
                # an eDisposition.24 group holding Yes-STEMI says the stroke team was not
                # alerted: false, where the generator leaves non-stroke missions empty
                expected = False
            assert actual == expected, (col, key, w[col], actual)
    for col in model.columns():
        if col not in (*NOT_CARRIED, "ca_survived", "stemi_device_time"):
            assert any(r[col] is not None for r in got.values()), f"{col} never filled"


def _stroke_tables(service: str) -> dict[str, list[dict[str, str]]]:
    """nemsqar's stroke_01 case as NEMSIS tables: five PCRs."""
    primary = ["I60", "I60", "I60", "I61", "I61"]
    secondary = ["I63", "I63", "I64", "I64", "I64"]
    gcs = ["15", "15", "14", "13", "12"]
    avpu = ["3326001", "3326005", "3326003", "3326007", "3326001"]  # A, P, V, U, A
    keys = [f"P{i}" for i in range(5)]
    vitals = [{"PcrKey": k, "eVitals_01": "2025-03-01T10:20:00", "eVitals_23": g,
               "eVitals_26": a, "eVitals_29": "3329005"} for k, g, a in zip(keys, gcs, avpu,
                                                                         strict=True)]
    # a later assessment of P3 with GCS 3: the first assessment (GCS 13) counts, so P3
    # stays in the population (the lowest GCS would exclude it with AVPU unresponsive)
    vitals.append({"PcrKey": "P3", "eVitals_01": "2025-03-01T10:40:00", "eVitals_23": "3",
                   "eVitals_26": "3326007"})
    return {
        "pub_pcrevents": [{"PcrKey": k, "eResponse_05": service, "eDispatch_05": "2305001",
                           "eTimes_01": "2025-03-01T10:00:00", "eSituation_11": p,
                           "eDisposition_27": "4227001"} for k, p in zip(keys, primary,
                                                                         strict=True)],
        "factpcrsecondaryimpression": [{"PcrKey": k, "eSituation_12": s}
                                       for k, s in zip(keys, secondary, strict=True)],
        "factpcrvital": vitals,
    }


@pytest.mark.parametrize(("service", "numerator", "denominator"),
                         [("2205001", 5, 5), ("2205005", 0, 0)])
def test_stroke_01_on_nemsis_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    service: str, numerator: int, denominator: int) -> None:
    folder = _write_tables(tmp_path / "tables", _stroke_tables(service))
    assert main(["specs", "run", "STROKE-01", "--data", str(folder), "--format", "nemsis",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["year"] == YEAR and doc["ingest"]["rows_accepted"] == 5
    [cell] = doc["result"]["cells"]
    assert (cell["numerator"], cell["denominator"]) == (numerator, denominator)


def test_unmapped_codes_are_counted_not_hidden(tmp_path: Path) -> None:
    base = {"eDispatch_05": "2305003", "eTimes_01": "2025-05-01T08:00:00",
            "eResponse_05": "2205001", "eDisposition_27": "4227001"}
    events = [
        {**base, "PcrKey": "ok", "ePatient_25": "7701003", "eResponse_23": "2223001"},
        {**base, "PcrKey": "bad-service", "eResponse_05": "2205999"},
        {**base, "PcrKey": "bad-mode", "eResponse_23": "2223999"},
        {**base, "PcrKey": "bad-urgency", "eDispatch_05": "2305999"},
        {**base, "PcrKey": "bad-age", "ePatient_15": "3", "ePatient_16": "2516999"},
        {**base, "PcrKey": "months", "ePatient_15": "30", "ePatient_16": "2516007"},
    ]
    folder = _write_tables(tmp_path / "tables", {
        "pub_pcrevents": events,
        "factpcrvital": [{"PcrKey": "ok", "eVitals_26": "3326999"}],
        "factpcrarrestwitness": [{"PcrKey": "ok", "eArrest_04": "3004003"},
                                 {"PcrKey": "ok", "eArrest_04": "3004999"}]})
    rows, report = _missions(folder, tmp_path / "w", "nemsis")
    # service_type is required: an unknown code rejects the PCR, by reason
    assert report.rejected_by_reason == {"invalid_code:service_type": 1,
                                         "invalid_code:urgency_level": 1}
    assert report.nulled_by_reason == {"unparseable:lights_sirens": 1, "invalid_code:avpu": 1,
                                       "unparseable:patient_age": 1,
                                       "invalid_code:ca_witnessed_by": 1}
    assert set(rows) == {"ok", "bad-mode", "bad-age", "months"}
    assert rows["ok"]["patient_sex"] is None  # a NOT value is empty, and not counted
    assert rows["ok"]["lights_sirens"] is True and rows["ok"]["avpu"] is None
    assert rows["months"]["patient_age"] == 2
    assert rows["ok"]["med_aspirin_given"] is None  # no medication table: not filled
    assert "med_aspirin_given" in report.missing_optional_columns


def test_repeating_group_rules(tmp_path: Path) -> None:
    event = {"PcrKey": "a", "eResponse_05": "2205001", "eDispatch_05": "2305001",
             "eTimes_01": "2025-02-01T09:00:00", "eDisposition_27": "4227001",
             "eDisposition_21": "4221003", "eArrest_01": "3001003", "eOutcome_02": "20"}
    folder = _write_tables(tmp_path / "tables", {
        "pub_pcrevents": [event, {**event, "PcrKey": "b", "eArrest_01": "3001005"}],
        "factpcrmedication": [
            {"PcrKey": "a", "eMedications_01": "2025-02-01T09:30:00", "eMedications_02": "9923001",
             "eMedications_03": "1191"},
            {"PcrKey": "a", "eMedications_01": "2025-02-01T09:20:00", "eMedications_02": "9923003",
             "eMedications_03": "1191"},  # given before this unit's care: not counted
            {"PcrKey": "a", "eMedications_01": "2025-02-01T09:25:00", "eMedications_02": "",
             "eMedications_03": "1191"}],
        "factpcrvital": [
            {"PcrKey": "a", "eVitals_01": "2025-02-01T09:12:00", "eVitals_19": "3",
             "eVitals_20": "4", "eVitals_21": "6"},
            {"PcrKey": "a", "eVitals_01": "2025-02-01T09:15:00", "eVitals_04": "3304001",
             "eVitals_03": "9901051"},  # a 3-lead: not a 12-lead ECG
            {"PcrKey": "a", "eVitals_01": "2025-02-01T09:18:00", "eVitals_04": "3304007",
             "eVitals_03": "9901047", "eVitals_30": "3330013"}],
        "factpcrprocedure": [{"PcrKey": "a", "eProcedures_01": "2025-02-01T09:16:00",
                              "eProcedures_03": "268400002"}],
        "factpcrarrestresuscitation": [{"PcrKey": "a", "eArrest_03": "3003007"},
                                       {"PcrKey": "a", "eArrest_03": "3003005"}],
        "factpcrarrestwitness": [{"PcrKey": "a", "eArrest_04": "3004007"},
                                 {"PcrKey": "a", "eArrest_04": "3004003"},
                                 {"PcrKey": "b", "eArrest_04": "3004001"}],
        "factpcrarrestrosc": [{"PcrKey": "a", "eArrest_12": "3012005"},
                              {"PcrKey": "a", "eArrest_12": "3012003"}],
        "factpcrhospitalcapability": [{"PcrKey": "a", "eDisposition_23": "9908033"},
                                      {"PcrKey": "a", "eDisposition_23": "9908043"}],
    })
    rows, _ = _missions(folder, tmp_path / "w", "nemsis")
    a, b = rows["a"], rows["b"]
    assert a["med_aspirin_given"] is True and str(a["med_aspirin_time"]) == "2025-02-01 09:25:00"
    assert b["med_aspirin_given"] is False  # patient contact, no aspirin
    assert a["gcs_total"] == 13  # eye + verbal + motor of the first assessment
    assert str(a["stemi_ecg12_time"]) == "2025-02-01 09:16:00"  # the ECG procedure
    assert a["stemi_positive"] is False
    assert a["stroke_scale_type"] == "fast" and a["stroke_scale_done"] is True
    assert a["ca_resus_attempted"] is True and a["ca_witnessed_by"] == "family"
    assert b["ca_witnessed_by"] == "ems" and a["ca_rosc_arrival"] is True
    assert a["destination_type"] == "pci_and_stroke_centre"
    assert a["ca_survived"] is False and a["ca_survival_endpoint"] == "discharge"


def test_input_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="a folder of tables"):
        _missions(tmp_path / "none", tmp_path / "w1", "nemsis")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no pub_pcrevents"):
        _missions(tmp_path / "empty", tmp_path / "w2", "nemsis")


# --- the crosswalk files -----------------------------------------------------------

# Files that are filters or code lists of their own, not a model column's crosswalk.
_FILTERS = ("ecg_12_lead", "ecg_12_lead_procedure", "aspirin", "pci_procedure")
# Model values NEMSIS has no code for (the adapter derives or cannot carry them).
_NO_CODE = {"ca_first_rhythm": {"unknown"}, "ca_witnessed_by": {"ems"}}


def _element_codes() -> dict[str, set[str]]:
    """Element → its NEMSIS code values: the packaged extract, plus the shared element
    list where it is on this machine (for elements the model itself does not name)."""
    out: dict[str, set[str]] = {}
    with NEMSIS_PATH.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["code"]:
                out.setdefault(r["element"], set()).add(r["code"])
    shared = Path(os.environ.get("EMSBENCH_NEMSIS_JSON",
                                 "/work/shared/reference/nemsis-v3.5.1-elements.json"))
    if shared.is_file():
        for element, info in json.loads(shared.read_text(encoding="utf-8")).items():
            if info["codes"]:
                out.setdefault(element, {c for c, _ in info["codes"]})
    return out


def test_every_nemsis_code_maps_to_one_common_code_or_says_why() -> None:
    folder = Path(__file__).resolve().parents[3] / "emsbench" / nemsis.CODESETS
    files = sorted(folder.glob("*.csv"))
    assert files
    elements = _element_codes()
    checked = set()
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# version: "), path.name
        name = path.stem
        rows = nemsis.codeset(name)
        allowed = (("true", "false") if name in _FILTERS
                   or model.duckdb_types().get(name) == "BOOLEAN" else model.ENUMS[name])
        seen: set[tuple[str, str]] = set()
        for element, code, common, _label, reason in rows:
            assert (element, code) not in seen, (name, element, code)
            seen.add((element, code))
            if common is None:
                assert reason, f"{name}: {element} {code} unmapped without a reason"
            else:
                assert common in allowed, (name, code, common)
                assert not reason, (name, code, "mapped and unmapped")
        mapped = {c for _, _, c, _, _ in rows if c is not None}
        if name not in _FILTERS:
            assert mapped | _NO_CODE.get(name, set()) == set(allowed), name
            # the writer's code per value: one, and it maps back to the value
            assert {v: nemsis.mapping(name, el)[c]
                    for v, (el, c) in nemsis.canonical(name).items()} == {v: v for v in mapped}
        for element in {e for e, *_ in rows}:
            if element in elements:
                codes = {c for e, c, *_ in rows if e == element}
                assert codes == elements[element], (name, element, codes ^ elements[element])
                checked.add(element)
    assert {"eResponse.05", "eResponse.23", "eArrest.04", "eOutcome.02"} <= checked
