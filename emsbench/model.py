"""Common information model v1: one ambulance mission as a flat record.

The pydantic class ``Mission`` is the single definition. Everything else is derived from
it: the Arrow schema that the synthetic generator writes and the node reads
(``arrow_schema``), the DuckDB column types used to cast and validate input
(``duckdb_types``), the enumerated code sets (``ENUMS``) and the documentation table in
``docs/information-model.md`` (``field_table``).

The record is flat (one row per mission, clinical blocks as prefixed columns ``ca_``,
``stemi_`` and ``stroke_``) because indicator specs are SQL over one table. Timestamps are
naive local time of the dispatch centre. Each field carries the NEMSIS v3.5.1 element id it
corresponds to, where one exists, in ``json_schema_extra["nemsis"]``.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

MODEL_VERSION = "1"

UrgencyLevel = Literal["U1", "U2", "U3"]
Urbanicity = Literal["urban", "rural"]
ServiceType = Literal["emergency", "intercept", "mutual_aid", "interfacility", "standby", "other"]
Sex = Literal["female", "male", "unknown"]
WitnessedBy = Literal["unwitnessed", "bystander", "family", "healthcare_provider", "ems"]
PresumedCause = Literal["cardiac", "trauma", "drowning", "respiratory", "overdose", "other"]
FirstRhythm = Literal[
    "vf", "vt", "shockable_aed", "pea", "asystole", "non_shockable_aed", "unknown"]
SurvivalEndpoint = Literal["30d", "discharge"]

# Block each column belongs to, for the documentation and for the synthetic generator.
BLOCKS = ("mission", "patient", "cardiac_arrest", "stemi", "stroke")


def _f(nemsis: str | None, block: str, doc: str, **kw: Any) -> Any:
    """A model field with its NEMSIS element id and block kept as schema metadata."""
    return Field(default=kw.pop("default", None), description=doc,
                 json_schema_extra={"nemsis": nemsis, "block": block}, **kw)


class Mission(BaseModel):
    """One ambulance mission (incident response) in the common model, version 1."""

    model_config = ConfigDict(extra="forbid")

    # --- mission / dispatch -------------------------------------------------------------
    mission_id: str = _f("eResponse.03", "mission", "Unique id of the mission within the country",
                         default=...)
    call_received: datetime = _f(
        "eTimes.01", "mission", "Call received at the emergency medical communication centre",
        default=...)
    call_answered: datetime | None = _f(
        None, "mission", "Call answered (hand-over to the medical dispatcher; Danish start time)")
    unit_notified: datetime | None = _f("eTimes.03", "mission", "First unit notified by dispatch")
    unit_en_route: datetime | None = _f("eTimes.05", "mission", "Unit en route")
    arrived_scene: datetime | None = _f("eTimes.06", "mission", "First unit arrived on scene")
    at_patient: datetime | None = _f(
        "eTimes.07", "mission", "Arrived at patient (first medical contact)")
    left_scene: datetime | None = _f("eTimes.09", "mission", "Unit left scene")
    at_destination: datetime | None = _f("eTimes.11", "mission", "Patient arrived at destination")
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
    patient_sex: Sex | None = _f("ePatient.13", "patient", "Sex")
    impression_primary: str | None = _f(
        "eSituation.11", "patient", "Provider's primary impression, ICD-10 code")
    impression_secondary: str | None = _f(
        "eSituation.12", "patient", "Provider's secondary impression, ICD-10 code")

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
        "eVitals.29", "stroke", "Stroke scale assessed (result or type recorded)")
    stroke_prenotified: bool | None = _f(
        "eDisposition.24", "stroke", "Hospital pre-notified of suspected stroke (4224015)")
    stroke_last_known_well: datetime | None = _f(
        "eSituation.18", "stroke", "Date/time the patient was last known well")


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


def columns() -> list[str]:
    """Column names in model order."""
    return list(Mission.model_fields)


def arrow_schema() -> pa.Schema:
    """Arrow schema of a mission table, with NEMSIS ids as field metadata."""
    fields = []
    for name, info in Mission.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        meta = {"nemsis": str(extra.get("nemsis") or "")}
        fields.append(pa.field(name, _ARROW[_scalar(info.annotation)],
                               nullable=not is_required(name), metadata=meta))
    return pa.schema(fields)


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

RANGES: dict[str, tuple[int, int]] = {"patient_age": (0, 120)}


def field_table() -> list[dict[str, str]]:
    """One row per column for documentation: name, type, required, NEMSIS, block, text."""
    rows = []
    for name, info in Mission.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        kind = duckdb_types()[name]
        if name in ENUMS:
            kind += " (" + ", ".join(ENUMS[name]) + ")"
        rows.append({
            "column": name, "type": kind, "required": "yes" if is_required(name) else "",
            "nemsis": str(extra.get("nemsis") or ""), "block": str(extra.get("block")),
            "description": info.description or "",
        })
    return rows
