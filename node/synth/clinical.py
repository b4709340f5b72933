"""Patient, case type, transport and the STEMI and stroke blocks of a synthetic record.

Each mission is first given a case type (arrest, STEMI, stroke, other chest pain, other)
with per-mission probabilities from the country's yearly counts; everything clinical and
the time on scene follow from it. Shares not in the reference figures are marked assumed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from emsbench.model import ENUMS
from node.synth.dispatch import Times
from node.synth.draw import (
    Bools,
    Ints,
    ages,
    bools,
    chance,
    int32s,
    lognormal,
    lognormal_by,
    pick,
    pick_by,
    seconds,
    strings,
    timestamps,
)
from node.synth.params import Country, Lognormal

OTHER, ARREST, STEMI, STROKE, CHEST = range(5)
CHEST_PAIN_SHARE = 0.06  # non-STEMI chest pain among missions (assumed: no published figure)

# Primary impressions per case, ICD-10 with weights (assumed mixes).
_IMPRESSIONS: dict[int, dict[str, float]] = {
    ARREST: {"I46.9": 1.0},
    STEMI: {"I21.0": 0.35, "I21.1": 0.35, "I21.2": 0.10, "I21.3": 0.20},
    STROKE: {"I63.9": 0.65, "I61.9": 0.12, "G45.9": 0.23},
    CHEST: {"R07.4": 0.80, "I20.0": 0.20},
    OTHER: {"R06.0": 0.12, "R55": 0.10, "S72.0": 0.06, "T14.9": 0.12, "R10.4": 0.08,
            "J44.1": 0.06, "E16.2": 0.04, "R56.8": 0.06, "F10.0": 0.08, "R53": 0.10,
            "R41.0": 0.06, "A41.9": 0.04, "I48.9": 0.04, "T50.9": 0.04},
}
_SECONDARY = {"I10": 0.4, "E11.9": 0.25, "I48.9": 0.15, "J44.9": 0.1, "F03": 0.1}
CODES = tuple(dict.fromkeys(c for mix in _IMPRESSIONS.values() for c in mix))
SECONDARY = tuple(_SECONDARY)

# Age (mean, sd, minimum) and share male per case (assumed: typical registry profiles).
_AGE = {OTHER: (60.0, 22.0, 18), ARREST: (68.0, 16.0, 0), STEMI: (66.0, 12.0, 25),
        STROKE: (74.0, 12.0, 20), CHEST: (58.0, 17.0, 18)}
_MALE = {OTHER: 0.49, ARREST: 0.66, STEMI: 0.72, STROKE: 0.52, CHEST: 0.52}
CHILD_SHARE = 0.08  # of 'other' missions, ages 0-17 (assumed)

# Minutes on scene per case (assumed), and transport shares for emergency service types.
_ON_SCENE = (Lognormal(14, 30), Lognormal(35, 55), Lognormal(18, 30), Lognormal(14, 25),
             Lognormal(16, 28))
_TRANSPORT = {OTHER: 0.72, STEMI: 0.99, STROKE: 0.96, CHEST: 0.93}
_TRANSPORT_SERVICE = {"interfacility": 0.98, "standby": 0.0, "other": 0.3}
_ARREST_TRANSPORT_NO_ROSC = 0.15  # ongoing CPR transported (assumed)

_ECG_MEDIAN_MIN = 6.0  # first 12-lead after patient contact (assumed median)


def cases(rng: np.random.Generator, country: Country, n: int) -> Ints:
    """Case type of each mission."""
    p_arrest = country.p_treated_arrest / country.ohca.resus_attempted
    p = [0.0, p_arrest, country.p_stemi, country.p_stroke, CHEST_PAIN_SHARE]
    p[OTHER] = 1.0 - sum(p)
    return pick(rng, p, n)


def on_scene(rng: np.random.Generator, case: Ints) -> Ints:
    return seconds(lognormal_by(rng, _ON_SCENE, case), minimum=60)


def patient(rng: np.random.Generator, case: Ints,
            has_patient: Bools) -> tuple[Ints, dict[str, pa.Array]]:
    """Age (numeric, for the caller to spoil bad rows) and the sex and impression columns.

    Columns are null where there is no patient (cancelled, standby).
    """
    n = len(case)
    age = np.zeros(n, dtype=np.int64)
    male = np.zeros(n, dtype=np.float64)
    primary = np.zeros(n, dtype=np.int64)
    for c, (mean, sd, low) in _AGE.items():
        rows = np.flatnonzero(case == c)
        age[rows] = ages(rng, mean, sd, low, len(rows))
        male[rows] = _MALE[c]
        mix = _IMPRESSIONS[c]
        primary[rows] = np.asarray([CODES.index(k) for k in mix])[
            pick(rng, list(mix.values()), len(rows))]
    child = (case == OTHER) & chance(rng, CHILD_SHARE, n)
    age = np.where(child, rng.integers(0, 18, n), age)
    u = rng.random(n)
    sex = np.where(u < 0.01, 2, np.where(u < 0.01 + 0.99 * male, 1, 0))  # 1 % unknown
    secondary = pick(rng, list(_SECONDARY.values()), n)
    has_secondary = has_patient & chance(rng, 0.15, n)  # assumed
    return age, {
        "patient_sex": strings(("female", "male", "unknown"), sex, has_patient),
        "impression_primary": strings(CODES, primary, has_patient),
        "impression_secondary": strings(SECONDARY, secondary, has_secondary),
    }


def transported(rng: np.random.Generator, case: Ints, service: tuple[str, ...],
                service_idx: Ints, cancelled: Bools, arrest_rosc: Bools,
                resus: Bools) -> Bools:
    """Whether this unit transported the patient."""
    n = len(case)
    p = np.array([_TRANSPORT.get(c, 0.0) for c in range(5)])[case]
    p_service = np.array([_TRANSPORT_SERVICE.get(s, -1.0) for s in service])[service_idx]
    p = np.where(p_service >= 0, p_service, p)
    # arrests: those with ROSC always, ongoing CPR sometimes, not-attempted never
    p = np.where(case == ARREST, np.where(arrest_rosc, 1.0, _ARREST_TRANSPORT_NO_ROSC), p)
    p = np.where((case == ARREST) & ~resus, 0.0, p)
    return chance(rng, p, n) & ~cancelled


def stemi_block(rng: np.random.Generator, country: Country, case: Ints, age: Ints,
                t: Times, moved: Bools) -> tuple[dict[str, pa.Array], Bools]:
    """First 12-lead time, STEMI interpretation, pre-alert and device time; and per row
    whether a device time is recorded (the patient went directly to a PCI centre)."""
    n = len(case)
    chest = (case == STEMI) | (case == CHEST)
    p_ecg = np.where(case == STEMI, 0.99, np.where(age >= 35, 0.90, 0.60))  # assumed
    ecg = chest & t.arrived & chance(rng, p_ecg, n)
    delay = Lognormal.within(_ECG_MEDIAN_MIN, 10.0, country.ecg_within_10)
    ecg_time = t.at_patient + seconds(lognormal(rng, delay, n), minimum=30)
    positive = ecg & (case == STEMI) & chance(rng, 0.93, n)  # assumed ECG sensitivity
    prealert = positive & moved & chance(rng, 0.85, n)  # assumed
    prealert_time = ecg_time + seconds(lognormal(rng, Lognormal(3.0, 12.0), n))
    device = positive & moved & chance(rng, 0.75, n)  # direct to PCI (assumed)
    device_time = t.at_destination + seconds(lognormal(rng, Lognormal(25.0, 60.0), n))
    return {
        "stemi_ecg12_time": timestamps(ecg_time, ecg),
        "stemi_positive": bools(positive, ecg),
        "stemi_prealert_time": timestamps(prealert_time, prealert),
        "stemi_device_time": timestamps(device_time, device),
    }, device


def stroke_block(rng: np.random.Generator, country: Country, case: Ints, t: Times,
                 moved: Bools) -> tuple[dict[str, pa.Array], Bools]:
    """Stroke scale, pre-notification of the transported, last known well before the call;
    and per row whether a stroke scale was done."""
    n = len(case)
    stroke = (case == STROKE) & t.arrived
    scale = chance(rng, 0.85, n)  # assumed: no published figure
    prenote = chance(rng, country.stroke_prenotified, n)
    lkw = stroke & chance(rng, 0.80, n)  # documented (assumed)
    lkw_time = t.call_received - seconds(lognormal(rng, Lognormal(90.0, 720.0), n))
    return {
        "stroke_scale_done": bools(scale, stroke),
        "stroke_prenotified": bools(prenote, stroke & moved),
        "stroke_last_known_well": timestamps(lkw_time, lkw),
    }, stroke & scale


# --- model v2 columns ------------------------------------------------------------------
# Drawn after every v1 column (``generator._block``), so a seed still gives the v1 columns
# their v1 values. All shares below are assumed: no published figure.

AVPU = ENUMS["avpu"]  # alert, verbal, painful, unresponsive
_AVPU_MIX = {OTHER: (0.86, 0.08, 0.04, 0.02), ARREST: (0.0, 0.0, 0.0, 1.0),
             STEMI: (0.95, 0.04, 0.007, 0.003), STROKE: (0.62, 0.24, 0.10, 0.04),
             CHEST: (0.97, 0.025, 0.004, 0.001)}
# GCS total by AVPU level: alert 13-15, verbal 9-13, painful 6-10, unresponsive 3-7, so an
# unresponsive patient always has GCS <= 8 and GCS <= 8 means painful or unresponsive.
_GCS = tuple(range(3, 16))
_GCS_BY_AVPU = ({15: 0.80, 14: 0.15, 13: 0.05},
                {13: 0.30, 12: 0.25, 11: 0.20, 10: 0.15, 9: 0.10},
                {10: 0.10, 9: 0.20, 8: 0.30, 7: 0.25, 6: 0.15},
                {3: 0.60, 4: 0.15, 5: 0.10, 6: 0.10, 7: 0.05})
_AVPU_RECORDED, _GCS_RECORDED = 0.92, 0.85  # of patients seen; always for arrests
# Aspirin by EMS to patients seen who can swallow (alert or verbal), by case.
_ASPIRIN = {STEMI: 0.90, CHEST: 0.60}
_ASPIRIN_DELAY = Lognormal(7.0, 18.0)  # minutes after patient contact
STROKE_RESULTS = ENUMS["stroke_scale_result"]
STROKE_TYPES = ENUMS["stroke_scale_type"]
_STROKE_RESULT_MIX = {"positive": 0.70, "negative": 0.22, "non_conclusive": 0.08}
_STROKE_TYPE_RECORDED = 0.95  # of strokes with a scale done
DESTINATIONS = ENUMS["destination_type"]
# Destination of the transported by case: pci_centre, stroke_centre, pci_and_stroke_centre,
# other_hospital, non_hospital. STEMI rows with a device time go to a PCI centre; these
# weights are for the rest, so about 85 % of transported STEMI reach a PCI centre.
_DESTINATION_MIX = {OTHER: (0.02, 0.22, 0.33, 0.38, 0.05), ARREST: (0.10, 0.10, 0.55, 0.25, 0.0),
                    STEMI: (0.10, 0.05, 0.40, 0.45, 0.0), STROKE: (0.01, 0.40, 0.47, 0.12, 0.0),
                    CHEST: (0.05, 0.15, 0.40, 0.37, 0.03)}
_DEVICE_PCI_ONLY = 0.20  # of device rows, PCI centres without a stroke centre
_DESTINATION_RECORDED = 0.98


def assessment(rng: np.random.Generator, case: Ints,
               seen: Bools) -> tuple[dict[str, pa.Array], Bools]:
    """AVPU and GCS total of the patients seen; and per row whether the patient can
    swallow (alert or verbal)."""
    n = len(case)
    avpu = pick_by(rng, [_AVPU_MIX[c] for c in range(5)], case)
    table = [[mix.get(g, 0.0) for g in _GCS] for mix in _GCS_BY_AVPU]
    arrest = case == ARREST
    gcs = np.where(arrest, 3, np.asarray(_GCS)[pick_by(rng, table, avpu)])
    avpu_rec = seen & (arrest | chance(rng, _AVPU_RECORDED, n))
    gcs_rec = seen & (arrest | chance(rng, _GCS_RECORDED, n))
    return {"gcs_total": int32s(gcs, gcs_rec), "avpu": strings(AVPU, avpu, avpu_rec)}, avpu <= 1


def aspirin(rng: np.random.Generator, case: Ints, t: Times, seen: Bools, moved: Bools,
            swallows: Bools) -> dict[str, pa.Array]:
    """Aspirin given by EMS and when: after patient contact, before arrival at the
    destination (or leaving the scene when not transported)."""
    # drawn for the candidates only (a few percent of rows), then scattered
    rows = np.flatnonzero(seen & swallows & np.isin(case, list(_ASPIRIN)))
    p = np.array([_ASPIRIN.get(c, 0.0) for c in range(5)])[case[rows]]
    rows = rows[chance(rng, p, len(rows))]
    given = np.zeros(len(case), dtype=bool)
    given[rows] = True
    end = np.where(moved[rows], t.at_destination[rows], t.left_scene[rows]) - 30
    delay = seconds(lognormal(rng, _ASPIRIN_DELAY, len(rows)), minimum=30)
    when = np.zeros(len(case), dtype=np.int64)
    when[rows] = np.minimum(t.at_patient[rows] + delay, end)
    return {"med_aspirin_given": bools(given, seen), "med_aspirin_time": timestamps(when, given)}


def stroke_scale(rng: np.random.Generator, country: Country,
                 done: Bools) -> dict[str, pa.Array]:
    """Result and type of the stroke scales done (the country's scale mix)."""
    rows = np.flatnonzero(done)  # about 1 % of rows: draw for them only, then scatter
    m = len(rows)
    mix = dict(country.stroke_scale_types)
    result = np.zeros(len(done), dtype=np.int64)
    kind = np.zeros(len(done), dtype=np.int64)
    typed = np.zeros(len(done), dtype=bool)
    result[rows] = pick(rng, [_STROKE_RESULT_MIX[r] for r in STROKE_RESULTS], m)
    kind[rows] = pick(rng, [mix.get(k, 0.0) for k in STROKE_TYPES], m)
    typed[rows] = chance(rng, _STROKE_TYPE_RECORDED, m)
    return {"stroke_scale_result": strings(STROKE_RESULTS, result, done),
            "stroke_scale_type": strings(STROKE_TYPES, kind, typed)}


def destination(rng: np.random.Generator, case: Ints, moved: Bools,
                device: Bools) -> dict[str, pa.Array]:
    """What kind of place the transported patients were taken to."""
    n = len(case)
    dest = pick_by(rng, [_DESTINATION_MIX[c] for c in range(5)], case)
    pci_only = chance(rng, _DEVICE_PCI_ONLY, n)
    dest = np.where(device, np.where(pci_only, DESTINATIONS.index("pci_centre"),
                                     DESTINATIONS.index("pci_and_stroke_centre")), dest)
    recorded = moved & chance(rng, _DESTINATION_RECORDED, n)
    return {"destination_type": strings(DESTINATIONS, dest, recorded)}
