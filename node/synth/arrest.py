"""Cardiac arrest (Utstein) block, filled only on the rows that are arrests.

The draws are made for the arrest rows alone (about half a percent of missions) and then
scattered into full-length columns. The structure follows the registries: the first rhythm
is more often shockable in bystander-witnessed cardiac arrests; bystander CPR is more
likely after telephone CPR; survivors all had ROSC at arrival. Rates are set so that the
marginal shares equal the country's calibration (see ``params.Ohca``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from emsbench.model import ENUMS
from node.synth.draw import Bools, Ints, bools, chance, pick, strings
from node.synth.params import Country

WITNESSED = ENUMS["ca_witnessed_by"]
CAUSES = ENUMS["ca_presumed_cause"]  # 'cardiac' first
RHYTHMS = ENUMS["ca_first_rhythm"]
ENDPOINTS = ENUMS["ca_survival_endpoint"]

# Among non-EMS-witnessed arrests with telephone CPR, the share that got bystander CPR
# (assumed: instructed callers nearly always start).
_BCPR_AFTER_TCPR = 0.95
# Cause mix of the non-cardiac 20 % (assumed: no published figure).
_OTHER_CAUSES = {"trauma": 0.25, "drowning": 0.05, "respiratory": 0.25, "overdose": 0.20,
                 "other": 0.25}
# Non-shockable rhythms when no AED was attached (assumed).
_NON_SHOCKABLE = {"pea": 0.32, "asystole": 0.60, "unknown": 0.08}


def arrest_block(rng: np.random.Generator, country: Country,
                 is_arrest: Bools) -> tuple[dict[str, pa.Array], Bools, Bools]:
    """Columns ``ca_*`` for all rows, and per row: resuscitation attempted, ROSC at arrival.

    The two flags drive transport (an arrest with ROSC is always transported).
    """
    o = country.ohca
    rows = np.flatnonzero(is_arrest)
    m = len(rows)
    resus = chance(rng, o.resus_attempted, m)

    # who witnessed, and why: the comparator group needs bystander/family + cardiac
    witness = pick(rng, [dict(o.witnessed)[w] for w in WITNESSED], m)
    # not-attempted arrests are mostly unwitnessed (found late, obviously dead)
    witness = np.where(resus, witness, np.where(chance(rng, 0.9, m), 0, 1))
    ems = witness == WITNESSED.index("ems")
    cardiac = chance(rng, o.presumed_cardiac, m)
    other_cause = 1 + pick(rng, [_OTHER_CAUSES[c] for c in CAUSES[1:]], m)
    cause = np.where(cardiac, 0, other_cause)
    by_layperson = np.isin(witness, [WITNESSED.index("bystander"), WITNESSED.index("family")])
    eligible = by_layperson & cardiac
    shockable = resus & chance(
        rng, np.where(eligible, o.shockable_comparator, o.shockable_other), m)

    # dispatch and bystanders, only for arrests before EMS arrival
    before_ems = resus & ~ems
    recognised = before_ems & chance(rng, o.dispatcher_recognised, m)
    tcpr = recognised & chance(rng, o.telephone_cpr / o.dispatcher_recognised, m)
    after_tcpr = min(_BCPR_AFTER_TCPR, o.bystander_cpr / o.telephone_cpr)
    without = (o.bystander_cpr - o.telephone_cpr * after_tcpr) / (1.0 - o.telephone_cpr)
    bcpr = before_ems & chance(rng, np.where(tcpr, after_tcpr, without), m)
    aed = before_ems & chance(rng, o.bystander_aed, m)

    rhythm = _rhythm(rng, shockable, aed, resus)

    comparator = eligible & shockable
    p_survive = np.where(comparator, o.survival_comparator,
                         np.where(shockable, o.survival_other(True), o.survival_other(False)))
    survived = resus & chance(rng, p_survive, m)
    # survivors had ROSC; the rest get it at the rate that makes the overall share right
    rosc = survived | (resus & chance(rng, (o.rosc_arrival - o.survival) / (1 - o.survival), m))

    def full_bool(values: Bools) -> pa.Array:
        out = np.zeros(len(is_arrest), dtype=bool)
        out[rows] = values
        return bools(out, is_arrest)

    def full_str(categories: tuple[str, ...], codes: Ints) -> pa.Array:
        out = np.zeros(len(is_arrest), dtype=np.int64)
        out[rows] = codes
        return strings(categories, out, is_arrest)

    endpoint = np.full(m, ENDPOINTS.index(o.endpoint))
    columns = {
        "ca_arrest": full_bool(np.ones(m, dtype=bool)),
        "ca_resus_attempted": full_bool(resus),
        "ca_witnessed_by": full_str(WITNESSED, witness),
        "ca_presumed_cause": full_str(CAUSES, cause),
        "ca_first_rhythm": full_str(RHYTHMS, rhythm),
        "ca_bystander_cpr": full_bool(bcpr),
        "ca_bystander_aed": full_bool(aed),
        "ca_dispatcher_recognised": full_bool(recognised),
        "ca_telephone_cpr": full_bool(tcpr),
        "ca_rosc_arrival": full_bool(rosc),
        "ca_survived": full_bool(survived),
        "ca_survival_endpoint": full_str(ENDPOINTS, endpoint),
    }
    flags = np.zeros((2, len(is_arrest)), dtype=bool)
    flags[0, rows] = resus
    flags[1, rows] = rosc
    return columns, flags[0], flags[1]


def _rhythm(rng: np.random.Generator, shockable: Bools, aed: Bools, resus: Bools) -> Ints:
    """First monitored rhythm code, consistent with the shockable and AED draws."""
    m = len(shockable)
    # a shockable rhythm found by the EMS monitor is mostly VF (assumed 92 % VF, 8 % VT)
    monitor_shock = np.where(chance(rng, 0.92, m), RHYTHMS.index("vf"), RHYTHMS.index("vt"))
    names = list(_NON_SHOCKABLE)
    non_shock = np.asarray([RHYTHMS.index(r) for r in names])[
        pick(rng, [_NON_SHOCKABLE[r] for r in names], m)]
    rhythm = np.where(shockable, np.where(aed, RHYTHMS.index("shockable_aed"), monitor_shock),
                      np.where(aed, RHYTHMS.index("non_shockable_aed"), non_shock))
    # no resuscitation attempted: nothing to analyse but asystole
    return np.where(resus, rhythm, RHYTHMS.index("asystole"))
