"""Common information model v2: one ambulance mission as a flat record.

The pydantic class ``Mission`` is the single definition. Everything else is derived from
it: the Arrow schemas of the missions table (``arrow_schema``) and of an input file
(``input_schema``, what the synthetic generator writes and the node reads), the DuckDB
column types used to cast and validate input (``duckdb_types``), the enumerated code sets
(``ENUMS``), the numeric ranges (``RANGES``, from the fields' ``ge``/``le``), the columns the
node derives itself (``DERIVED``, ``COMPLETED``) and the documentation table in
``docs/information-model.md`` (``field_table``).

The record is flat (one row per mission, clinical blocks as prefixed columns ``ca_``,
``stemi_``, ``stroke_`` and ``med_``) because indicator specs are SQL over one table.
Timestamps are naive local time of the dispatch centre. Each field carries the NEMSIS v3.5.1
element id it corresponds to, where one exists, in ``json_schema_extra["nemsis"]``; code-set
fields that map to NEMSIS code values carry them in ``json_schema_extra["nemsis_codes"]``
(``{value: ("element=code", ...)}``).

Derived columns (``age_band``, ``call_month``) are never read from an input file: the node
computes them at ingest from the column they depend on, with the SQL in ``DERIVED``, so
there is one source of truth and every node bands ages the same way. ``Mission`` computes
them the same way in Python (``derive``). Changing the model: ``docs/model-changes.md``.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

MODEL_VERSION = "2"

UrgencyLevel = Literal["U1", "U2", "U3"]
Urbanicity = Literal["urban", "rural"]
ServiceType = Literal["emergency", "intercept", "mutual_aid", "interfacility", "standby", "other"]
Sex = Literal["female", "male", "unknown"]
WitnessedBy = Literal["unwitnessed", "bystander", "family", "healthcare_provider", "ems"]
PresumedCause = Literal["cardiac", "trauma", "drowning", "respiratory", "overdose", "other"]
FirstRhythm = Literal[
    "vf", "vt", "shockable_aed", "pea", "asystole", "non_shockable_aed", "unknown"]
SurvivalEndpoint = Literal["30d", "discharge"]
AgeBand = Literal["0-17", "18-44", "45-64", "65-79", "80+"]
CallMonth = Literal["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"]
Avpu = Literal["alert", "verbal", "painful", "unresponsive"]
StrokeScaleResult = Literal["positive", "negative", "non_conclusive"]
StrokeScaleType = Literal["cincinnati", "los_angeles", "nihss", "fast", "befast", "fast_ed",
                          "race", "lams", "van", "other"]
DestinationType = Literal["pci_centre", "stroke_centre", "pci_and_stroke_centre",
                          "other_hospital", "non_hospital"]

# Age bands: (code, lowest age, highest age) in years; the last band is open. The same
# bands stratify missions and the official population (``emsbench.reference``).
AGE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("0-17", 0, 17), ("18-44", 18, 44), ("45-64", 45, 64), ("65-79", 65, 79), ("80+", 80, None))

# Block each column belongs to, for the documentation and for the synthetic generator.
BLOCKS = ("mission", "patient", "medication", "cardiac_arrest", "stemi", "stroke")


def _f(nemsis: str | None, block: str, doc: str, **kw: Any) -> Any:
    """A model field with its NEMSIS element id and block kept as schema metadata.

    ``codes`` maps code values to NEMSIS code values; ``derive`` is the DuckDB SQL that
    computes the column at ingest (over the typed input columns); ``read=False`` means the
    column is never read from input (a derived column), ``read=True`` with ``derive`` that
    the input value is read and then completed by the rule.
    """
    extra: dict[str, Any] = {"nemsis": nemsis, "block": block}
    if "codes" in kw:
        extra["nemsis_codes"] = {k: list(v) for k, v in kw.pop("codes").items()}
    if "derive" in kw:
        extra["derive"] = " ".join(kw.pop("derive").split())
        extra["read"] = kw.pop("read", False)
    return Field(default=kw.pop("default", None), description=doc,
                 json_schema_extra=extra, **kw)


def _age_band_sql() -> str:
    whens = " ".join(f"WHEN patient_age <= {hi} THEN '{code}'"
                     for code, _, hi in AGE_BANDS if hi is not None)
    return f"CASE WHEN patient_age IS NULL THEN NULL {whens} ELSE '{AGE_BANDS[-1][0]}' END"


def _codes(element: str, **values: str | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``{value: ("element=code", ...)}`` from ``value="code"`` or ``value=("c1", "c2")``."""
    return {k: tuple(f"{element}={c}" for c in ((v,) if isinstance(v, str) else v))
            for k, v in values.items()}


_CAPABLE_PCI = ("9908031", "9908033")
_CAPABLE_STROKE = ("9908037", "9908039", "9908041", "9908043")


class Mission(BaseModel):
    """One ambulance mission (incident response) in the common model, version 2."""

    model_config = ConfigDict(extra="forbid")

    # --- mission / dispatch -------------------------------------------------------------
    mission_id: str = _f("eResponse.03", "mission", "Unique id of the mission within the country",
                         default=...)
    call_received: datetime = _f(
        "eTimes.01", "mission", "Call received at the emergency medical communication centre",
        default=...)
    call_month: CallMonth | None = _f(
        "eTimes.01", "mission", "Month of call_received, '01'..'12' (a stratum for seasonality)",
        derive="strftime(call_received, '%m')")
    call_ring_start: datetime | None = _f(
        None, "mission",
        "The call starts ringing at the medical dispatcher's position (telephony log), at or "
        "after call_received: equal where the medical emergency number rings there directly, "
        "later where another answering point transfers the call. Ring to call_answered is the "
        "call-answering time (Norway: at least 90 % within 10 s)")
    call_answered: datetime | None = _f(
        None, "mission", "Call answered (hand-over to the medical dispatcher; Danish start time)")
    unit_notified: datetime | None = _f("eTimes.03", "mission", "First unit notified by dispatch")
    unit_en_route: datetime | None = _f("eTimes.05", "mission", "Unit en route")
    arrived_scene: datetime | None = _f("eTimes.06", "mission", "First unit arrived on scene")
    at_patient: datetime | None = _f(
        "eTimes.07", "mission", "Arrived at patient (first medical contact)")
    left_scene: datetime | None = _f("eTimes.09", "mission", "Unit left scene")
    at_destination: datetime | None = _f("eTimes.11", "mission", "Patient arrived at destination")
    destination_type: DestinationType | None = _f(
        "eDisposition.23", "mission",
        "What the destination of a transported patient can do, a property of the place and "
        "not of the patient: PCI centre, stroke centre (acute stroke treatment: a Nordic "
        "stroke unit with thrombolysis; NEMSIS ASRH, PSC, TSC or CSC), both, another "
        "hospital, or not a hospital (eDisposition.21); empty when the patient was handed "
        "over to another EMS unit",
        codes={"pci_centre": tuple(f"eDisposition.23={c}" for c in _CAPABLE_PCI),
               "stroke_centre": tuple(f"eDisposition.23={c}" for c in _CAPABLE_STROKE),
               "other_hospital": tuple(f"eDisposition.21={c}"
                                       for c in ("4221003", "4221005", "4221023")),
               # every other type but a hand-over to another EMS unit (4221015/4221017)
               "non_hospital": tuple(f"eDisposition.21=42210{c}" for c in (
                   "01", "07", "09", "13", "19", "21", "25", "27", "29", "31", "33", "35",
                   "37", "39", "41"))})
    urgency_native: str | None = _f(
        "eDispatch.05", "mission", "National dispatch urgency code (see urgency crosswalk)")
    urgency_level: UrgencyLevel = _f(
        None, "mission", "Common urgency level U1 (most urgent) .. U3, from the crosswalk",
        default=...)
    lights_sirens: bool | None = _f("eResponse.23", "mission", "Response with lights and sirens")
    urbanicity: Urbanicity | None = _f(
        None, "mission", "Scene area urban or rural (NEMSIS: derived from eScene.19/eScene.21)")
    municipality: str | None = _f("eScene.21", "mission", "Municipality (US: county) of the scene")
    region: str | None = _f("eScene.18", "mission", "Region (health region; US: state)")
    service_type: ServiceType = _f(
        "eResponse.05", "mission",
        "Type of service requested; 'emergency' = 2205001, 'intercept' = 2205003, "
        "'mutual_aid' = 2205009, 'interfacility' = 2205005", default=...)
    cancelled: bool = _f(
        "eDisposition.27", "mission", "Cancelled before arrival (4227003/4227005)", default=False)
    transported: bool | None = _f(
        "eDisposition.30", "mission", "Patient transported by this unit (4230001/4230003)")

    # --- patient --------------------------------------------------------------------------
    patient_age: int | None = _f("ePatient.15", "patient", "Age in years", ge=0, le=120)
    age_band: AgeBand | None = _f(
        "ePatient.15", "patient",
        "Age band of patient_age (years): the stratum for rates per 100,000 with the "
        "official population, which uses the same bands", derive=_age_band_sql())
    patient_sex: Sex | None = _f("ePatient.13", "patient", "Sex")
    impression_primary: str | None = _f(
        "eSituation.11", "patient", "Provider's primary impression, ICD-10 code")
    impression_secondary: str | None = _f(
        "eSituation.12", "patient", "Provider's secondary impression, ICD-10 code")
    gcs_total: int | None = _f(
        "eVitals.23", "patient",
        "Total Glasgow Coma Scale of the first assessment (or the sum of eVitals.19-.21)",
        ge=3, le=15)
    avpu: Avpu | None = _f(
        "eVitals.26", "patient", "Level of responsiveness (AVPU) of the first assessment",
        codes=_codes("eVitals.26", alert="3326001", verbal="3326003", painful="3326005",
                     unresponsive="3326007"))

    # --- medication --------------------------------------------------------------------
    med_aspirin_given: bool | None = _f(
        "eMedications.03", "medication",
        "Aspirin given by EMS (eMedications.03 = RxNorm 1191, not 'prior to this unit's care' "
        "in eMedications.02); false: patient seen and no aspirin given; empty: no patient "
        "contact")
    med_aspirin_time: datetime | None = _f(
        "eMedications.01", "medication", "Time aspirin was first given by EMS")

    # --- cardiac arrest (Utstein) ------------------------------------------------------
    ca_arrest: bool | None = _f(
        "eArrest.01", "cardiac_arrest", "Cardiac arrest before or after EMS arrival")
    ca_resus_attempted: bool | None = _f(
        "eArrest.03", "cardiac_arrest", "Resuscitation attempted by EMS (EMS-treated arrest)")
    ca_witnessed_by: WitnessedBy | None = _f("eArrest.04", "cardiac_arrest", "Arrest witnessed by")
    ca_presumed_cause: PresumedCause | None = _f(
        "eArrest.02", "cardiac_arrest", "Presumed aetiology")
    ca_first_rhythm: FirstRhythm | None = _f(
        "eArrest.11", "cardiac_arrest", "First monitored rhythm")
    ca_bystander_cpr: bool | None = _f(
        "eArrest.20", "cardiac_arrest", "CPR by bystander, family or off-duty provider")
    ca_bystander_aed: bool | None = _f(
        "eArrest.07", "cardiac_arrest", "Defibrillation by bystander (AED) before EMS")
    ca_dispatcher_recognised: bool | None = _f(
        "eDispatch.01", "cardiac_arrest", "Arrest recognised by the dispatcher during the call")
    ca_telephone_cpr: bool | None = _f(
        "eDispatch.02", "cardiac_arrest", "Telephone-guided CPR instructions given")
    ca_rosc_arrival: bool | None = _f(
        "eArrest.12", "cardiac_arrest", "ROSC at arrival at hospital (3012003)")
    ca_survived: bool | None = _f(
        "eOutcome.02", "cardiac_arrest", "Alive at the survival endpoint")
    ca_survival_endpoint: SurvivalEndpoint | None = _f(
        None, "cardiac_arrest",
        "Endpoint of ca_survived: '30d' (Nordic registry linkage) or 'discharge' (US)")

    # --- STEMI -------------------------------------------------------------------------
    stemi_ecg12_time: datetime | None = _f("eVitals.01", "stemi", "Time of first 12-lead ECG")
    stemi_positive: bool | None = _f(
        "eVitals.03", "stemi", "12-lead interpreted as STEMI (9901051..9901057)")
    stemi_prealert_time: datetime | None = _f(
        "eDisposition.25", "stemi", "Time the hospital was pre-alerted for STEMI (4224013)")
    stemi_device_time: datetime | None = _f(
        "eOutcome.20", "stemi", "Time of first device (PCI) at the destination")

    # --- stroke ------------------------------------------------------------------------
    stroke_scale_done: bool | None = _f(
        "eVitals.29", "stroke",
        "Stroke scale assessed. Kept from v1 for sources with only a yes/no flag; the node "
        "sets it true wherever stroke_scale_result or stroke_scale_type is recorded",
        derive="CASE WHEN stroke_scale_result IS NOT NULL OR stroke_scale_type IS NOT NULL "
               "THEN TRUE ELSE stroke_scale_done END", read=True)
    stroke_scale_result: StrokeScaleResult | None = _f(
        "eVitals.29", "stroke", "Result of the first stroke scale",
        codes=_codes("eVitals.29", positive="3329005", negative="3329001",
                     non_conclusive="3329003"))
    stroke_scale_type: StrokeScaleType | None = _f(
        "eVitals.30", "stroke",
        "Stroke scale used; 'other' includes the national scales NEMSIS does not list "
        "(e.g. PreSS, A2L, FASTER)",
        codes=_codes("eVitals.30", cincinnati="3330001", los_angeles="3330004",
                     nihss="3330009", fast="3330013", befast="3330029", fast_ed="3330027",
                     race="3330021", lams="3330023", van="3330025",
                     other=("3330011", "3330005", "3330007", "3330015", "3330017",
                            "3330019")))
    stroke_prenotified: bool | None = _f(
        "eDisposition.24", "stroke", "Hospital pre-notified of suspected stroke (4224015)")
    stroke_last_known_well: datetime | None = _f(
        "eSituation.18", "stroke", "Date/time the patient was last known well")

    @model_validator(mode="after")
    def _derive(self) -> Mission:
        """Fill the derived columns exactly as the node's ingest does (``DERIVED``)."""
        for name, value in derive(self.__dict__).items():
            object.__setattr__(self, name, value)
        return self


def age_band(age: int | None) -> str | None:
    """The age band of an age in years (None for None)."""
    if age is None:
        return None
    for code, _, hi in AGE_BANDS:
        if hi is None or age <= hi:
            return code
    raise AssertionError("the last band is open")  # pragma: no cover


def derive(row: dict[str, Any]) -> dict[str, Any]:
    """Values of the derived and completed columns for one row (Python twin of the SQL)."""
    received = row.get("call_received")
    done = row.get("stroke_scale_done")
    if row.get("stroke_scale_result") is not None or row.get("stroke_scale_type") is not None:
        done = True
    return {"call_month": None if received is None else f"{received.month:02d}",
            "age_band": age_band(row.get("patient_age")),
            "stroke_scale_done": done}


def _base_type(annotation: Any) -> Any:
    """Strip ``| None`` from an annotation."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def _is_optional(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)


_ARROW = {str: pa.string(), datetime: pa.timestamp("us"), bool: pa.bool_(), int: pa.int32()}
_DUCKDB = {str: "VARCHAR", datetime: "TIMESTAMP", bool: "BOOLEAN", int: "INTEGER"}


def _scalar(annotation: Any) -> type:
    base = _base_type(annotation)
    return str if get_origin(base) is Literal else base  # type: ignore[no-any-return]


def _extra(name: str) -> dict[str, Any]:
    extra = Mission.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def columns() -> list[str]:
    """Column names of the missions table, in model order (derived columns included)."""
    return list(Mission.model_fields)


# Columns the node computes at ingest and never reads from input, with their DuckDB SQL
# over the typed input columns; and input columns completed at ingest by a rule.
DERIVED: dict[str, str] = {n: str(_extra(n)["derive"]) for n in Mission.model_fields
                           if "derive" in _extra(n) and not _extra(n)["read"]}
COMPLETED: dict[str, str] = {n: str(_extra(n)["derive"]) for n in Mission.model_fields
                             if "derive" in _extra(n) and _extra(n)["read"]}


def input_columns() -> list[str]:
    """Columns read from a node's input file, in model order (no derived column)."""
    return [n for n in Mission.model_fields if n not in DERIVED]


def nemsis(name: str) -> str | None:
    """NEMSIS v3.5.1 element id of a column, or None."""
    value = _extra(name).get("nemsis")
    return str(value) if value else None


def nemsis_codes(name: str) -> dict[str, tuple[str, ...]]:
    """NEMSIS code values of each value of a code-set column (``"element=code"`` strings)."""
    return {k: tuple(v) for k, v in dict(_extra(name).get("nemsis_codes") or {}).items()}


def arrow_schema() -> pa.Schema:
    """Arrow schema of the missions table, with NEMSIS ids as field metadata."""
    fields = []
    for name, info in Mission.model_fields.items():
        meta = {"nemsis": nemsis(name) or ""}
        fields.append(pa.field(name, _ARROW[_scalar(info.annotation)],
                               nullable=not is_required(name), metadata=meta))
    return pa.schema(fields)


def input_schema() -> pa.Schema:
    """Arrow schema of an input file: ``arrow_schema()`` without the derived columns."""
    schema = arrow_schema()
    return pa.schema([schema.field(n) for n in input_columns()])


def duckdb_types() -> dict[str, str]:
    """DuckDB column type for every model column."""
    return {n: _DUCKDB[_scalar(i.annotation)] for n, i in Mission.model_fields.items()}


def is_required(name: str) -> bool:
    """A column is required when the model gives it no null and no default."""
    info = Mission.model_fields[name]
    return not _is_optional(info.annotation) and info.is_required()


ENUMS: dict[str, tuple[str, ...]] = {
    n: get_args(_base_type(i.annotation))
    for n, i in Mission.model_fields.items()
    if get_origin(_base_type(i.annotation)) is Literal
}


def _range(name: str) -> tuple[int, int] | None:
    lo: Any = None
    hi: Any = None
    for m in Mission.model_fields[name].metadata:
        if isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Le):
            hi = m.le
    return None if lo is None or hi is None else (int(lo), int(hi))


# Numeric ranges, from the fields' ``ge``/``le``: a value outside rejects its row.
RANGES: dict[str, tuple[int, int]] = {
    n: r for n in Mission.model_fields if (r := _range(n)) is not None}


def field_table() -> list[dict[str, str]]:
    """One row per column for documentation: name, type, required, NEMSIS, block, text."""
    rows = []
    for name, info in Mission.model_fields.items():
        kind = duckdb_types()[name]
        if name in ENUMS:
            kind += " (" + ", ".join(ENUMS[name]) + ")"
        if name in RANGES:
            kind += " {}..{}".format(*RANGES[name])
        text = info.description or ""
        codes = nemsis_codes(name)
        if codes:
            element = nemsis(name)
            shown = ["`{}` {}".format(v, ", ".join(c.removeprefix(f"{element}=")
                                                  for c in cs)) for v, cs in codes.items()]
            text += ". NEMSIS codes: " + "; ".join(shown)
        required = ("yes" if is_required(name) else "derived" if name in DERIVED
                    else "completed" if name in COMPLETED else "")
        rows.append({
            "column": name, "type": kind, "required": required,
            "nemsis": nemsis(name) or "", "block": str(_extra(name).get("block")),
            "description": text,
        })
    return rows
