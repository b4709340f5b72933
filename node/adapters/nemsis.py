"""NEMSIS v3.5 input adapter (US node): the public-release research data set's tables.

``path`` is a folder of tables, each ``<name>.txt`` (pipe-delimited, header row, read as
text) or ``<name>.parquet``; names match case-insensitively (``Pub_PCRevents.txt`` works).
Every table is keyed by ``PcrKey``; columns are NEMSIS element ids with ``_`` for ``.``;
values are NEMSIS codes. Only ``pub_pcrevents`` is required; a missing table leaves the
model columns read only from it empty and listed as missing.

=============================  ==========================================================
table                          columns read
=============================  ==========================================================
pub_pcrevents (one row/PCR)    PcrKey, eResponse_05, eResponse_23, eDispatch_01, _02, _05,
                               eTimes_01, _03, _05, _06, _07, _09, _11, eScene_18,
                               eScene_21, Urbanicity (computed by the public release),
                               eDisposition_21, _25, _27, _30, ePatient_13, _15, _16, _25,
                               eSituation_11, _18, eArrest_01, _02, _07, _11, _20,
                               eOutcome_02
factpcrsecondaryimpression     eSituation_12
factpcrvital                   eVitals_01 (time), _03, _04, _19, _20, _21, _23, _26, _29, _30
factpcrmedication              eMedications_01 (time), _02, _03 (RxNorm)
factpcrprocedure               eProcedures_01 (time), eProcedures_03 (SNOMED CT)
factpcrarrestresuscitation     eArrest_03
factpcrarrestwitness           eArrest_04
factpcrarrestrosc              eArrest_12
factpcrdestinationteam         eDisposition_24
factpcrhospitalcapability      eDisposition_23
factpcrhospitalprocedure       eOutcome_12 (ICD-10-PCS), eOutcome_20 (time)
=============================  ==========================================================

Rules. NEMSIS NOT values (7701001/3/5) and pertinent negatives (8801xxx) read as empty.
``mission_id`` is ``PcrKey`` (one PCR = one unit's response; eResponse.03 is shared by the
units of an incident and is not in the public release). Urgency follows the US rows of
the urgency crosswalk: ``urgency_native`` is eDispatch.05, ``urgency_level`` its level;
eResponse.23 gives ``lights_sirens`` only (the crosswalk has no eResponse.23 rows). Codes
are crosswalked with ``model.nemsis_codes`` (avpu, stroke scale, destination) or the CSV
files of ``emsbench/data/codesets/nemsis/``; a code without a mapping passes through
unchanged, so validation empties or rejects it and counts it. Age is converted from
ePatient.16 units to whole years; other units pass through as text (unparseable, counted).
Repeating groups, "first" in time order (eVitals.01; ties and missing times in file order):

- impression_secondary: the first eSituation.12 row;
- gcs_total: the first recorded (eVitals.23, else eVitals.19 + .20 + .21 of one row), and
  avpu the first recorded eVitals.26: the model keeps the first assessment;
- stroke_scale_result/_type: both from the first row with either;
- stemi_ecg12_time: the earliest 12-lead vitals row (eVitals.04) or 12-lead ECG procedure;
  stemi_positive: any 12-lead row read STEMI, else false if any 12-lead rhythm;
- med_aspirin_given: any aspirin (eMedications.03) given by this unit (eMedications.02 not
  Yes), else false when patient contact was made (eDisposition.27 4227001), else empty;
  med_aspirin_time the earliest such eMedications.01;
- ca_resus_attempted: any attempted, else false; ca_rosc_arrival: any 3012003, else false;
  ca_witnessed_by: ems when eArrest.01 is 3001005, else healthcare_provider, family,
  bystander, unwitnessed in that order; stroke_prenotified: any Yes-Stroke, else false;
- stemi_prealert_time: eDisposition.25 when any eDisposition.24 is Yes-STEMI;
- destination_type: eDisposition.21 a hospital → by the capabilities (eDisposition.23);
  another EMS unit (4221015/4221017) → empty, as the model says;
- stemi_device_time: the earliest eOutcome.20 of a coronary intervention (eOutcome.12).
A code without a mapping anywhere in a repeating group makes the value that code.
ca_dispatcher_recognised, ca_telephone_cpr, ca_survived and ca_survival_endpoint
(``discharge``) are read on cardiac arrests (eArrest.01 yes) only.

Not carried by NEMSIS: call_ring_start, call_answered (no element), stroke_scale_done
(the node completes it from result/type; false cannot be said), the values
ca_first_rhythm ``unknown`` and ca_survival_endpoint ``30d``.
"""

from __future__ import annotations

import codecs
import csv
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb

from emsbench import model
from emsbench.crosswalk import codes_for
from node.source import InputError, Source, check_utf8, literal, quote

DESCRIPTION = ("NEMSIS v3.5 public-release research data set: a folder of PcrKey tables "
               "(pub_pcrevents, factpcrvital, ...) as pipe-delimited .txt or .parquet")

KEY = "PcrKey"
EVENTS = "pub_pcrevents"
TABLES: dict[str, tuple[str, ...]] = {
    EVENTS: ("eResponse_05", "eResponse_23", "eDispatch_01", "eDispatch_02", "eDispatch_05",
             "eTimes_01", "eTimes_03", "eTimes_05", "eTimes_06", "eTimes_07", "eTimes_09",
             "eTimes_11", "eScene_18", "eScene_21", "Urbanicity", "eDisposition_21",
             "eDisposition_25", "eDisposition_27", "eDisposition_30", "ePatient_13",
             "ePatient_15", "ePatient_16", "ePatient_25", "eSituation_11", "eSituation_18",
             "eArrest_01", "eArrest_02", "eArrest_07", "eArrest_11", "eArrest_20",
             "eOutcome_02"),
    "factpcrsecondaryimpression": ("eSituation_12",),
    "factpcrvital": ("eVitals_01", "eVitals_03", "eVitals_04", "eVitals_19", "eVitals_20",
                     "eVitals_21", "eVitals_23", "eVitals_26", "eVitals_29", "eVitals_30"),
    "factpcrmedication": ("eMedications_01", "eMedications_02", "eMedications_03"),
    "factpcrprocedure": ("eProcedures_01", "eProcedures_03"),
    "factpcrarrestresuscitation": ("eArrest_03",),
    "factpcrarrestwitness": ("eArrest_04",),
    "factpcrarrestrosc": ("eArrest_12",),
    "factpcrdestinationteam": ("eDisposition_24",),
    "factpcrhospitalcapability": ("eDisposition_23",),
    "factpcrhospitalprocedure": ("eOutcome_12", "eOutcome_20"),
}
_NOT_VALUES = ("7701001", "7701003", "7701005")
_HANDOVER = ("4221015", "4221017")  # to another EMS unit: the model leaves the type empty
_US_URGENCY = "NEMSIS eDispatch.05"
_AGE_UNITS = {"years": "2516009", "months": "2516007", "days": "2516001",
              "hours": "2516003", "minutes": "2516005"}
CODESETS = "data/codesets/nemsis"


# --- code sets ----------------------------------------------------------------------


@cache
def codeset(name: str) -> tuple[tuple[str, str, str | None, str, str], ...]:
    """Rows (element, native code, common code or None, label, unmapped reason) of
    ``emsbench/data/codesets/nemsis/<name>.csv``, in file order."""
    text = resources.files("emsbench").joinpath(f"{CODESETS}/{name}.csv").read_text("utf-8")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    return tuple((r["element"], r["native_code"], r["common_code"] or None, r["native_label"],
                  r["unmapped_reason"]) for r in csv.DictReader(body))


def mapping(name: str, element: str | None = None) -> dict[str, str]:
    """Native code → common code of the mapped rows (of one element, if given)."""
    return {code: common for el, code, common, _, _ in codeset(name)
            if common is not None and element in (None, el)}


def canonical(name: str) -> dict[str, tuple[str, str]]:
    """Common code → (element, native code) a writer exports: the first listed."""
    out: dict[str, tuple[str, str]] = {}
    for el, code, common, _, _ in codeset(name):
        if common is not None:
            out.setdefault(common, (el, code))
    return out


def model_mapping(column: str, element: str | None = None) -> dict[str, str]:
    """Native code → model value from ``model.nemsis_codes(column)``."""
    out: dict[str, str] = {}
    for value, refs in model.nemsis_codes(column).items():
        for ref in refs:
            el, _, code = ref.partition("=")
            if element in (None, el):
                out[code] = value
    return out


def urgency_levels() -> dict[str, str]:
    """eDispatch.05 code → common urgency level (US rows of the urgency crosswalk)."""
    return {c.native_code: c.common_level for c in codes_for("US", _US_URGENCY)}


# --- SQL helpers --------------------------------------------------------------------



def _in(values: object) -> str:
    return "(" + ", ".join(literal(str(v)) for v in values) + ")"  # type: ignore[attr-defined]


def _map(value: str, codes: dict[str, str], passthrough: bool = True) -> str:
    """``value`` crosswalked; an unmapped code passes through (or NULL)."""
    whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in codes.items())
    return f"(CASE {value} {whens} ELSE {value if passthrough else 'NULL'} END)"


def _group(value: str, codes: dict[str, str], order: tuple[str, ...]) -> str:
    """Aggregate over a repeating group: the first unmapped code if any (so it is counted),
    else the first of ``order`` any row maps to."""
    mapped = _map(value, codes, passthrough=False)
    unmapped = f"{value} IS NOT NULL AND {mapped} IS NULL"
    whens = " ".join(f"WHEN bool_or({mapped} = {literal(o)}) THEN {literal(o)}" for o in order)
    return (f"CASE WHEN bool_or({unmapped}) THEN arg_min({value}, _line) FILTER "
            f"(WHERE {unmapped}) {whens} END")


def _clean(col: str) -> str:
    """A text field with NOT values and pertinent negatives as NULL."""
    t = f"nullif(trim(CAST({quote(col)} AS VARCHAR)), '')"
    return (f"CASE WHEN {t} IN {_in(_NOT_VALUES)} OR ({t} LIKE '8801%' AND length({t}) = 7) "
            f"THEN NULL ELSE {t} END")


def _ts(value: str) -> str:
    return f"TRY_CAST({value} AS TIMESTAMPTZ)"


def _first(value: str, when: str | None = None) -> str:
    """The ``value`` of the first row in time order (then file order) where it is set."""
    cond = f"{value} IS NOT NULL" + (f" AND ({when})" if when else "")
    return f"arg_min({value}, {{'t': {_ts('_time')}, 'l': _line}}) FILTER (WHERE {cond})"


# --- reading the folder -------------------------------------------------------------


def _files(folder: Path) -> dict[str, Path]:
    """Table name (lower case) → its file; InputError when one table has two files."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in (".txt", ".parquet"):
            name = p.stem.lower()
            if name in found:
                raise InputError(f"{folder}: table {name} is there twice ({found[name].name}, "
                                 f"{p.name}); keep one")
            found[name] = p
    return found


def _utf8(path: Path, encoding: str | None, workdir: Path) -> tuple[Path, str]:
    """``path`` as UTF-8: checked, or transcoded into ``workdir``."""
    wanted = (encoding or "utf-8").lower().replace("_", "-")
    if wanted in ("utf-8", "utf8", "utf-8-sig"):
        check_utf8(path)
        return path, "utf-8"
    try:
        codecs.lookup(wanted)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} in node.toml") from None
    out = workdir / f"nemsis-{path.stem.lower()}-utf8.txt"
    try:
        with path.open("r", encoding=wanted, newline="") as src, \
                out.open("w", encoding="utf-8", newline="") as dst:
            for line in src:
                dst.write(line)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not {wanted}: {exc.reason}") from None
    return out, wanted


def _reader(path: Path, encoding: str | None, workdir: Path) -> tuple[str, str]:
    if path.suffix.lower() == ".parquet":
        return f"read_parquet({literal(str(path))})", "parquet"
    text, used = _utf8(path, encoding, workdir)
    return (f"read_csv({literal(str(text))}, header = true, all_varchar = true, delim = '|', "
            f"quote = '\"', escape = '\"')", used)


def _tables(con: duckdb.DuckDBPyConnection, folder: Path, encoding: str | None,
            workdir: Path) -> tuple[dict[str, str], set[str], list[str], str]:
    """Per table a SELECT of PcrKey, ``_line`` and the cleaned fields (NULL where absent);
    the fields present as ``table.field``; ignored names; the encoding."""
    if not folder.is_dir():
        raise InputError(f"{folder}: NEMSIS input is a folder of tables ({EVENTS}.txt, ...); "
                         "check 'data' in node.toml")
    files = _files(folder)
    if EVENTS not in files:
        raise InputError(f"{folder}: no {EVENTS}.txt or {EVENTS}.parquet (one row per PCR)")
    selects: dict[str, str] = {}
    present: set[str] = set()
    ignored = [p.name for n, p in files.items() if n not in TABLES]
    used = "utf-8"
    for table, fields in TABLES.items():
        if table not in files:
            empty = ", ".join(f"CAST(NULL AS VARCHAR) AS {f}" for f in (KEY, *fields))
            selects[table] = f"SELECT 0 AS _line, {empty} LIMIT 0"
            continue
        sql, enc = _reader(files[table], encoding, workdir)
        used = enc if table == EVENTS else used
        try:
            headers = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()]
        except duckdb.Error as exc:
            raise InputError(f"cannot read {files[table]}: {str(exc).splitlines()[0]}") from exc
        by_lower = {h.lower(): h for h in headers}
        if KEY.lower() not in by_lower:
            raise InputError(f"{files[table]}: no {KEY} column")
        cols = [f"trim(CAST({quote(by_lower[KEY.lower()])} AS VARCHAR)) AS {KEY}"]
        for f in fields:
            if f.lower() in by_lower:
                present.add(f"{table}.{f}")
                cols.append(f"{_clean(by_lower[f.lower()])} AS {f}")
            else:
                cols.append(f"CAST(NULL AS VARCHAR) AS {f}")
        wanted = {f.lower() for f in (KEY, *fields)}
        ignored += [f"{files[table].name}:{h}" for h in headers if h.lower() not in wanted]
        selects[table] = f"SELECT row_number() OVER () AS _line, {', '.join(cols)} FROM {sql}"
    return selects, present, ignored, used


# --- the model columns --------------------------------------------------------------


def _groups() -> dict[str, tuple[str, str]]:
    """One aggregate per repeating-group table, one row per PcrKey (rules: docstring)."""
    ecg12 = _in(c for c, v in mapping("ecg_12_lead").items() if v == "true")
    gcs_parts = ["eVitals_19", "eVitals_20", "eVitals_21"]
    gcs_sum = " + ".join(f"TRY_CAST({p} AS INTEGER)" for p in gcs_parts)
    gcs = (f"coalesce(eVitals_23, CAST({gcs_sum} AS VARCHAR))")
    stroke = "eVitals_29 IS NOT NULL OR eVitals_30 IS NOT NULL"
    stemi = _group("_rhythm12", mapping("stemi_positive"), ("true", "false"))
    aspirin = _in(mapping("aspirin"))
    given = f"eMedications_03 IN {aspirin} AND coalesce(eMedications_02, '') <> '9923003'"
    ecg_proc = _in(mapping("ecg_12_lead_procedure"))
    pci = " OR ".join(f"starts_with(eOutcome_12, {literal(p)})" for p in mapping("pci_procedure"))
    dest = model_mapping("destination_type", "eDisposition.23")
    return {
        "factpcrsecondaryimpression": (
            "arg_min(eSituation_12, _line) FILTER (WHERE eSituation_12 IS NOT NULL) AS v", ""),
        "factpcrvital": (
            f"{_first('_gcs')} AS gcs, {_first('eVitals_26')} AS avpu, "
            f"{_first('eVitals_29', stroke)} AS stroke_r, "
            f"{_first('eVitals_30', stroke)} AS stroke_t, "
            f"{_first('eVitals_01', f'eVitals_04 IN {ecg12}')} AS ecg_time, {stemi} AS stemi",
            f"eVitals_01 AS _time, {gcs} AS _gcs, "
            f"CASE WHEN eVitals_04 IN {ecg12} THEN eVitals_03 END AS _rhythm12"),
        "factpcrmedication": (
            f"bool_or({given}) AS aspirin, {_first('eMedications_01', given)} AS aspirin_time",
            "eMedications_01 AS _time"),
        "factpcrprocedure": (f"{_first('eProcedures_01', f'eProcedures_03 IN {ecg_proc}')} "
                             "AS ecg_time", "eProcedures_01 AS _time"),
        "factpcrarrestresuscitation": (
            _group("eArrest_03", mapping("ca_resus_attempted"), ("true", "false")) + " AS v", ""),
        "factpcrarrestwitness": (_group(
            "eArrest_04", mapping("ca_witnessed_by"),
            ("healthcare_provider", "family", "bystander", "unwitnessed")) + " AS v", ""),
        "factpcrarrestrosc": (
            _group("eArrest_12", mapping("ca_rosc_arrival"), ("true", "false")) + " AS v", ""),
        "factpcrdestinationteam": (
            _group("eDisposition_24", mapping("stroke_prenotified"), ("true", "false"))
            + " AS prenotified, bool_or(eDisposition_24 = '4224013') AS stemi_alert", ""),
        "factpcrhospitalcapability": (
            f"bool_or(eDisposition_23 IN {_in(c for c, v in dest.items() if 'pci' in v)}) "
            f"AS pci, bool_or(eDisposition_23 IN "
            f"{_in(c for c, v in dest.items() if 'stroke' in v)}) AS stroke", ""),
        "factpcrhospitalprocedure": (f"{_first('eOutcome_20', pci)} AS device",
                                     "eOutcome_20 AS _time"),
    }


_ALIAS = {"pub_pcrevents": "ev", "factpcrsecondaryimpression": "sec", "factpcrvital": "vit",
          "factpcrmedication": "med", "factpcrprocedure": "proc",
          "factpcrarrestresuscitation": "resus", "factpcrarrestwitness": "wit",
          "factpcrarrestrosc": "rosc", "factpcrdestinationteam": "team",
          "factpcrhospitalcapability": "cap", "factpcrhospitalprocedure": "hproc"}


def _age() -> str:
    """Age in whole years from ePatient.15 and its units; other units pass through."""
    age, units, u = "ev.ePatient_15", "ev.ePatient_16", _AGE_UNITS
    num = f"TRY_CAST({age} AS DOUBLE)"
    per_year = {u["months"]: 12, u["days"]: 365.25, u["hours"]: 8766, u["minutes"]: 525960}
    whens = " ".join(f"WHEN {units} = {literal(code)} AND {num} IS NOT NULL THEN "
                     f"CAST(CAST(floor({num} / {n}) AS BIGINT) AS VARCHAR)"
                     for code, n in per_year.items())
    return (f"CASE WHEN {age} IS NULL THEN NULL WHEN {units} = {literal(u['years'])} THEN {age} "
            f"{whens} ELSE {age} || ' (age units ' || coalesce({units}, 'missing') || ')' END")


def columns() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Model column → (SQL over the joined tables, NEMSIS fields it is read from). A column
    is filled when at least one of its fields is in the input."""
    arrest = f"{_map('ev.eArrest_01', mapping('ca_arrest'))} = 'true'"
    dest = model_mapping("destination_type")
    dest21 = "ev.eDisposition_21"
    hospital = _in(c for c, v in dest.items() if v == "other_hospital")
    destination = (
        f"CASE WHEN {dest21} IN {hospital} OR ({dest21} IS NULL AND (cap.pci OR cap.stroke)) "
        "THEN CASE WHEN cap.pci AND cap.stroke THEN 'pci_and_stroke_centre' WHEN cap.pci THEN "
        "'pci_centre' WHEN cap.stroke THEN 'stroke_centre' ELSE 'other_hospital' END "
        f"WHEN {dest21} IN {_in(c for c, v in dest.items() if v == 'non_hospital')} "
        f"THEN 'non_hospital' WHEN {dest21} IN {_in(_HANDOVER)} THEN NULL ELSE {dest21} END")
    urban = {k.lower(): v for k, v in mapping("urbanicity").items()}
    ecg = ("CASE WHEN proc.ecg_time IS NULL OR "
           f"{_ts('vit.ecg_time')} <= {_ts('proc.ecg_time')} THEN coalesce(vit.ecg_time, "
           "proc.ecg_time) ELSE proc.ecg_time END")

    def ev(field: str, name: str | None = None) -> tuple[str, tuple[str, ...]]:
        expr = f"ev.{field}"
        return (_map(expr, mapping(name)) if name else expr), (f"{EVENTS}.{field}",)

    def on_arrest(field: str, name: str) -> tuple[str, tuple[str, ...]]:
        return (f"CASE WHEN {arrest} THEN {_map(f'ev.{field}', mapping(name))} END",
                (f"{EVENTS}.{field}",))

    return {
        "mission_id": ("ev.PcrKey", (f"{EVENTS}.{KEY}",)),
        "call_received": ev("eTimes_01"), "unit_notified": ev("eTimes_03"),
        "unit_en_route": ev("eTimes_05"), "arrived_scene": ev("eTimes_06"),
        "at_patient": ev("eTimes_07"), "left_scene": ev("eTimes_09"),
        "at_destination": ev("eTimes_11"),
        "destination_type": (destination, (f"{EVENTS}.eDisposition_21",
                                           "factpcrhospitalcapability.eDisposition_23")),
        "urgency_native": ev("eDispatch_05"),
        "urgency_level": (_map("ev.eDispatch_05", urgency_levels()),
                          (f"{EVENTS}.eDispatch_05",)),
        "lights_sirens": ev("eResponse_23", "lights_sirens"),
        "urbanicity": ("(CASE lower(ev.Urbanicity) "
                       + " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in urban.items())
                       + " ELSE ev.Urbanicity END)", (f"{EVENTS}.Urbanicity",)),
        "municipality": ev("eScene_21"), "region": ev("eScene_18"),
        "service_type": ev("eResponse_05", "service_type"),
        "cancelled": ev("eDisposition_27", "cancelled"),
        "transported": ev("eDisposition_30", "transported"),
        "patient_age": (_age(), (f"{EVENTS}.ePatient_15",)),
        "patient_sex": (f"coalesce({_map('ev.ePatient_25', mapping('patient_sex', 'ePatient.25'))}"
                        f", {_map('ev.ePatient_13', mapping('patient_sex', 'ePatient.13'))})",
                        (f"{EVENTS}.ePatient_25", f"{EVENTS}.ePatient_13")),
        "impression_primary": ev("eSituation_11"),
        "impression_secondary": ("sec.v", ("factpcrsecondaryimpression.eSituation_12",)),
        "gcs_total": ("vit.gcs", tuple(f"factpcrvital.eVitals_{n}" for n in (23, 19, 20, 21))),
        "avpu": (_map("vit.avpu", model_mapping("avpu")), ("factpcrvital.eVitals_26",)),
        "med_aspirin_given": ("CASE WHEN med.aspirin THEN 'true' WHEN ev.eDisposition_27 = "
                              "'4227001' THEN 'false' END", ("factpcrmedication.eMedications_03",)),
        "med_aspirin_time": ("med.aspirin_time", ("factpcrmedication.eMedications_01",)),
        "ca_arrest": ev("eArrest_01", "ca_arrest"),
        "ca_resus_attempted": ("resus.v", ("factpcrarrestresuscitation.eArrest_03",)),
        "ca_witnessed_by": ("CASE WHEN ev.eArrest_01 = '3001005' THEN 'ems' ELSE wit.v END",
                            ("factpcrarrestwitness.eArrest_04",)),
        "ca_presumed_cause": ev("eArrest_02", "ca_presumed_cause"),
        "ca_first_rhythm": ev("eArrest_11", "ca_first_rhythm"),
        "ca_bystander_cpr": ev("eArrest_20", "ca_bystander_cpr"),
        "ca_bystander_aed": ev("eArrest_07", "ca_bystander_aed"),
        "ca_dispatcher_recognised": on_arrest("eDispatch_01", "ca_dispatcher_recognised"),
        "ca_telephone_cpr": on_arrest("eDispatch_02", "ca_telephone_cpr"),
        "ca_rosc_arrival": ("rosc.v", ("factpcrarrestrosc.eArrest_12",)),
        "ca_survived": on_arrest("eOutcome_02", "ca_survived"),
        "ca_survival_endpoint": (f"CASE WHEN {arrest} THEN 'discharge' END",
                                 (f"{EVENTS}.eOutcome_02",)),
        "stemi_ecg12_time": (ecg, ("factpcrvital.eVitals_04", "factpcrprocedure.eProcedures_03")),
        "stemi_positive": ("vit.stemi", ("factpcrvital.eVitals_04",)),
        "stemi_prealert_time": ("CASE WHEN team.stemi_alert THEN ev.eDisposition_25 END",
                                (f"{EVENTS}.eDisposition_25",)),
        "stemi_device_time": ("hproc.device", ("factpcrhospitalprocedure.eOutcome_20",)),
        "stroke_scale_result": (_map("vit.stroke_r", model_mapping("stroke_scale_result")),
                                ("factpcrvital.eVitals_29",)),
        "stroke_scale_type": (_map("vit.stroke_t", model_mapping("stroke_scale_type")),
                              ("factpcrvital.eVitals_30",)),
        "stroke_prenotified": ("team.prenotified", ("factpcrdestinationteam.eDisposition_24",)),
        "stroke_last_known_well": ev("eSituation_18"),
    }


def source(con: duckdb.DuckDBPyConnection, path: Path, *, fmt: str = "",
           encoding: str | None, workdir: Path) -> Source:
    """The NEMSIS tables of folder ``path`` as one row per PCR in model input columns."""
    selects, present, ignored, used = _tables(con, Path(path), encoding, workdir)
    ctes = [f"ev AS ({selects[EVENTS]})"]
    joins = []
    for table, (outputs, extra) in _groups().items():
        inner = f"SELECT *{', ' + extra if extra else ''} FROM ({selects[table]})"
        ctes.append(f"{_ALIAS[table]} AS (SELECT {KEY}, {outputs} FROM ({inner}) "
                    f"GROUP BY {KEY})")
        joins.append(f"LEFT JOIN {_ALIAS[table]} USING ({KEY})")
    filled = {c: (sql, fields) for c, (sql, fields) in columns().items()
              if any(f in present or f == f"{EVENTS}.{KEY}" for f in fields)}
    select = ", ".join(f"{sql} AS {c}" for c, (sql, _) in filled.items())
    sql = (f"(WITH {', '.join(ctes)} SELECT {select} FROM ev {' '.join(joins)} "
           "ORDER BY ev._line)")
    origin = {c: fields[0].split(".", 1)[1].replace("_", ".", 1) if c != "mission_id" else KEY
              for c, (_, fields) in filled.items()}
    return Source(sql, {c: c for c in filled}, tuple(ignored), used, origin=origin,
                  text_lines=False)
