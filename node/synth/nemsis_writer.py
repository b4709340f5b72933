"""Write common-model missions as NEMSIS v3.5 public-release tables (the US export).

The inverse of ``node.adapters.nemsis`` (whose docstring describes the layout and the
reading rules): ``pub_pcrevents`` with one row per mission (``PcrKey`` = ``mission_id``)
and one table per repeating group, written by DuckDB straight from the common-model
Parquet (one vectorised ``COPY`` per table, so the US yearly volume stays fast). Common
codes become NEMSIS codes by the canonical code of each crosswalk (the first listed in
``emsbench/data/codesets/nemsis/``, or of ``model.nemsis_codes``); times are written as
local ISO times without an offset (the common model's times are local).

What NEMSIS cannot say is written as near as it can: a first rhythm ``unknown`` as the
NOT value Not Recorded (7701003), a missing urgency level as eDispatch.05 Not Recorded.
Each vital-signs group is one row at ``at_patient`` (GCS, AVPU, stroke scale) plus one
12-lead ECG row at ``stemi_ecg12_time``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from emsbench import model
from emsbench.crosswalk import codes_for
from node.adapters.nemsis import EVENTS, KEY, canonical, mapping
from node.source import literal

__all__ = ["write"]

# Unit disposition of a mission neither cancelled nor with patient contact (standby).
_NO_CONTACT = "4227007"
# A coronary dilation, percutaneous (ICD-10-PCS), written for a first device time.
_PCI_CODE = "02703ZZ"
_TWELVE_LEAD = "3304007"  # eVitals.04 12 Lead-Left Sided (Normal)



def _ts(col: str) -> str:
    """A timestamp as ISO text, ``2025-01-01T10:00:00``."""
    return f"replace(CAST({col} AS VARCHAR), ' ', 'T')"


def _code(col: str, codes: dict[str, str]) -> str:
    """Common value → NEMSIS code (NULL for a value without one)."""
    whens = " ".join(f"WHEN {literal(v)} THEN {literal(c)}" for v, c in codes.items())
    return f"(CASE CAST({col} AS VARCHAR) {whens} END)"


def _canon(name: str, element: str | None = None) -> dict[str, str]:
    return {v: code for v, (el, code) in canonical(name).items() if element in (None, el)}


def _model_canon(column: str) -> dict[str, str]:
    """Value → the first NEMSIS code ``model.nemsis_codes`` lists for it."""
    return {v: refs[0].partition("=")[2] for v, refs in model.nemsis_codes(column).items()}


def _events() -> str:
    us = codes_for("US", "NEMSIS eDispatch.05")
    level_code: dict[str, str] = {}
    for c in us:
        level_code.setdefault(c.common_level, c.native_code)
    known = ", ".join(literal(c.native_code) for c in us)
    dest = _model_canon("destination_type")
    hospital = dest["other_hospital"]
    cancelled = _canon("cancelled")
    rhythm = _code("ca_first_rhythm", _canon("ca_first_rhythm"))
    cols = {
        KEY: "mission_id",
        "eResponse_05": _code("service_type", _canon("service_type")),
        "eResponse_23": _code("lights_sirens", _canon("lights_sirens")),
        "eDispatch_01": _code("ca_dispatcher_recognised", _canon("ca_dispatcher_recognised")),
        "eDispatch_02": _code("ca_telephone_cpr", _canon("ca_telephone_cpr")),
        # a missing level cannot be said by a code that has one: Not Recorded
        "eDispatch_05": (f"CASE WHEN urgency_level IS NULL THEN '7701003' WHEN urgency_native "
                         f"IN ({known}) THEN urgency_native ELSE "
                         f"{_code('urgency_level', level_code)} END"),
        "eTimes_01": _ts("call_received"), "eTimes_03": _ts("unit_notified"),
        "eTimes_05": _ts("unit_en_route"), "eTimes_06": _ts("arrived_scene"),
        "eTimes_07": _ts("at_patient"), "eTimes_09": _ts("left_scene"),
        "eTimes_11": _ts("at_destination"),
        "eScene_18": "region", "eScene_21": "municipality",
        "Urbanicity": _code("urbanicity", _canon("urbanicity")),
        "eDisposition_21": (f"CASE WHEN destination_type = 'non_hospital' THEN "
                            f"{literal(dest['non_hospital'])} WHEN destination_type IS NOT NULL "
                            f"THEN {literal(hospital)} END"),
        "eDisposition_25": _ts("stemi_prealert_time"),
        # patient contact (4227001) is what makes "no aspirin" false rather than empty
        "eDisposition_27": (f"CASE WHEN cancelled THEN {literal(cancelled['true'])} WHEN "
                            f"med_aspirin_given IS NOT NULL THEN {literal(cancelled['false'])} "
                            f"WHEN cancelled IS NOT NULL THEN {literal(_NO_CONTACT)} END"),
        "eDisposition_30": _code("transported", _canon("transported")),
        "ePatient_15": "CAST(patient_age AS VARCHAR)",
        "ePatient_16": "CASE WHEN patient_age IS NOT NULL THEN '2516009' END",
        "ePatient_25": _code("patient_sex", _canon("patient_sex", "ePatient.25")),
        "eSituation_11": "impression_primary",
        "eSituation_18": _ts("stroke_last_known_well"),
        "eArrest_01": (f"CASE WHEN ca_arrest AND ca_witnessed_by = 'ems' THEN '3001005' ELSE "
                       f"{_code('ca_arrest', _canon('ca_arrest'))} END"),
        "eArrest_02": _code("ca_presumed_cause", _canon("ca_presumed_cause")),
        "eArrest_07": _code("ca_bystander_aed", _canon("ca_bystander_aed")),
        "eArrest_11": f"CASE WHEN ca_first_rhythm = 'unknown' THEN '7701003' ELSE {rhythm} END",
        "eArrest_20": _code("ca_bystander_cpr", _canon("ca_bystander_cpr")),
        "eOutcome_02": _code("ca_survived", _canon("ca_survived")),
    }
    return "SELECT " + ", ".join(f"{sql} AS {name}" for name, sql in cols.items()) + " FROM m"


def _rows(columns: dict[str, str], where: str) -> str:
    return ("SELECT mission_id AS PcrKey, "
            + ", ".join(f"{sql} AS {name}" for name, sql in columns.items())
            + f" FROM m WHERE {where}")


def tables() -> dict[str, str]:
    """Table name → the SELECT over the common missions ``m`` that writes it."""
    dest = model.nemsis_codes("destination_type")
    pci = dest["pci_centre"][0].partition("=")[2]
    stroke = dest["stroke_centre"][0].partition("=")[2]
    vital_cols = ("eVitals_01", "eVitals_03", "eVitals_04", "eVitals_23", "eVitals_26",
                  "eVitals_29", "eVitals_30")
    assessment = dict(zip(vital_cols, (
        _ts("at_patient"), "NULL", "NULL", "CAST(gcs_total AS VARCHAR)",
        _code("avpu", _model_canon("avpu")),
        _code("stroke_scale_result", _model_canon("stroke_scale_result")),
        _code("stroke_scale_type", _model_canon("stroke_scale_type"))), strict=True))
    ecg = dict(zip(vital_cols, (
        _ts("stemi_ecg12_time"), _code("stemi_positive", _canon("stemi_positive")),
        literal(_TWELVE_LEAD), "NULL", "NULL", "NULL", "NULL"), strict=True))
    team = canonical("stroke_prenotified")
    aspirin = next(iter(mapping("aspirin")))
    return {
        EVENTS: _events(),
        "factpcrsecondaryimpression": _rows({"eSituation_12": "impression_secondary"},
                                            "impression_secondary IS NOT NULL"),
        "factpcrvital": (
            _rows(assessment, "gcs_total IS NOT NULL OR avpu IS NOT NULL OR "
                  "stroke_scale_result IS NOT NULL OR stroke_scale_type IS NOT NULL")
            + " UNION ALL "
            + _rows(ecg, "stemi_ecg12_time IS NOT NULL OR stemi_positive IS NOT NULL")),
        "factpcrmedication": _rows(
            {"eMedications_01": _ts("med_aspirin_time"), "eMedications_02": "'9923001'",
             "eMedications_03": literal(aspirin)}, "med_aspirin_given"),
        "factpcrarrestresuscitation": _rows(
            {"eArrest_03": _code("ca_resus_attempted", _canon("ca_resus_attempted"))},
            "ca_resus_attempted IS NOT NULL"),
        "factpcrarrestwitness": _rows(
            {"eArrest_04": _code("ca_witnessed_by", _canon("ca_witnessed_by"))},
            "ca_witnessed_by IS NOT NULL AND ca_witnessed_by <> 'ems'"),
        "factpcrarrestrosc": _rows(
            {"eArrest_12": _code("ca_rosc_arrival", _canon("ca_rosc_arrival"))},
            "ca_rosc_arrival IS NOT NULL"),
        "factpcrdestinationteam": (
            _rows({"eDisposition_24": "'4224013'"}, "stemi_prealert_time IS NOT NULL")
            + " UNION ALL "
            + _rows({"eDisposition_24": _code("stroke_prenotified",
                                              {v: c for v, (_, c) in team.items()})},
                    "stroke_prenotified IS NOT NULL")),
        "factpcrhospitalcapability": (
            _rows({"eDisposition_23": literal(pci)},
                  "destination_type IN ('pci_centre', 'pci_and_stroke_centre')")
            + " UNION ALL "
            + _rows({"eDisposition_23": literal(stroke)},
                    "destination_type IN ('stroke_centre', 'pci_and_stroke_centre')")),
        "factpcrhospitalprocedure": _rows(
            {"eOutcome_12": literal(_PCI_CODE), "eOutcome_20": _ts("stemi_device_time")},
            "stemi_device_time IS NOT NULL"),
    }


def write(common: Path, out: Path, *, fmt: str = "nemsis", country: str = "US",
          table_format: str = "txt") -> Path:
    """Write the missions of ``common`` as NEMSIS tables into folder ``out``; return it.

    ``table_format`` is ``txt`` (pipe-delimited, the default) or ``parquet``. ``fmt`` and
    ``country`` are the writer interface's; the tables are the same for every country.
    """
    if table_format not in ("txt", "parquet"):
        raise ValueError(f"table_format must be txt or parquet, not {table_format!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = ("FORMAT parquet, COMPRESSION zstd" if table_format == "parquet"
               else "HEADER, DELIMITER '|', QUOTE '\"'")
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"CREATE VIEW m AS SELECT * FROM read_parquet({literal(str(common))})")
        for table, sql in tables().items():
            for stale in (out / f"{table}.txt", out / f"{table}.parquet"):
                stale.unlink(missing_ok=True)  # one file per table (the adapter insists)
            target = out / f"{table}.{table_format}"
            con.execute(f"COPY ({sql}) TO {literal(str(target))} ({options})")
    finally:
        con.close()
    return out
