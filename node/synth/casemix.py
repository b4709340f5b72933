"""Case mix apart from quality: cardiac arrests whose survival depends on their case-mix
stratum alone, through one model that countries share.

``SurvivalModel`` gives an EMS-treated arrest its chance of survival from its age band, sex,
witnessed status and first rhythm (shockable or not) and nothing else: a logistic model
whose coefficients stand for the quality of care. ``CaseMix`` is how a country's arrests
fall into those strata. Two countries with the same model and different mixes survive at
different crude rates but at the same rate in every stratum, so indirect standardisation
(O/E, ``emsbench.kinds.ratio``) must find both at about 1. ``MIXES`` holds a ``standard``
mix (Utstein-typical, as the calibration's Nordic default) and a ``worse`` one (older, more
often unwitnessed, fewer shockable rhythms).

Two ways to use it:

* ``cohort``: only EMS-treated arrests, as a table of the common model (derived columns
  filled), fast enough for tens of thousands of arrests in a test;
* ``generate(..., case_mix="worse")`` (``emsbench synth --case-mix``): a full synthetic
  year whose EMS-treated arrests are redrawn by ``apply`` from their own random stream,
  after every other column is drawn, so everything else keeps its values for a seed and
  the default (no case mix) output is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from emsbench.model import AGE_BANDS, ENUMS, arrow_schema
from node.synth.draw import Bools, Floats, Ints, bools, chance, pick, strings

WITNESSED = ENUMS["ca_witnessed_by"]
RHYTHMS = ENUMS["ca_first_rhythm"]
SEXES = ("female", "male", "unknown")
BANDS = tuple(code for code, _, _ in AGE_BANDS)
_SHOCKABLE = ("vf", "vt", "shockable_aed")
_NON_SHOCKABLE = ("pea", "asystole", "non_shockable_aed")
# Rhythm within shockable / non-shockable (assumed, as in ``arrest``), and the share with
# no rhythm recorded ('unknown' first rhythm, its own stratum).
_SHOCK_MIX = (0.85, 0.07, 0.08)
_NON_SHOCK_MIX = (0.33, 0.60, 0.07)
UNKNOWN_RHYTHM = 0.03
UNKNOWN_SEX = 0.01
# The random stream of ``apply`` within a block's seed ``[seed, country, year, block]``.
STREAM = 7
_BAND_TOPS = np.array([hi for _, _, hi in AGE_BANDS if hi is not None], dtype=np.int64)


def bands(age: Ints) -> Ints:
    """Index into ``BANDS`` of each age, as ``emsbench.model.age_band``."""
    return np.searchsorted(_BAND_TOPS, age, side="left").astype(np.int64)


@dataclass(frozen=True)
class SurvivalModel:
    """Logit of survival = intercept + age band + sex + witnessed + shockable effects
    (assumed, of registry-typical size: a shockable rhythm and a witnessed arrest raise
    survival most, old age lowers it). Unknown values add nothing."""

    intercept: float = -3.4  # 45-64, female, unwitnessed, non-shockable: about 3 %
    age: tuple[tuple[str, float], ...] = (("0-17", 0.2), ("18-44", 0.3), ("45-64", 0.0),
                                          ("65-79", -0.45), ("80+", -1.1))
    male: float = -0.1
    witnessed: float = 1.0
    shockable: float = 2.2

    def probability(self, band: Ints, sex: Ints, witnessed: Ints, shockable: Ints) -> Floats:
        """Per arrest; ``band`` indexes ``BANDS`` (len: unknown), ``sex`` ``SEXES``,
        ``witnessed`` and ``shockable`` are 1 (true), 0 (false) or 2 (unknown)."""
        age = np.array([dict(self.age)[b] for b in BANDS] + [0.0])[band]
        logit = (self.intercept + age + self.male * (sex == 1)
                 + self.witnessed * (witnessed == 1) + self.shockable * (shockable == 1))
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


@dataclass(frozen=True)
class CaseMix:
    """How a country's EMS-treated arrests fall into the case-mix strata."""

    age_mean: float
    age_sd: float
    male: float
    witnessed: tuple[tuple[str, float], ...]  # ca_witnessed_by value -> share
    shockable_witnessed: float  # shockable first rhythm among witnessed arrests
    shockable_unwitnessed: float


MODEL = SurvivalModel()
MIXES = {
    "standard": CaseMix(age_mean=67.0, age_sd=16.0, male=0.66,
                        witnessed=(("unwitnessed", 0.30), ("bystander", 0.32), ("family", 0.22),
                                   ("healthcare_provider", 0.03), ("ems", 0.13)),
                        shockable_witnessed=0.28, shockable_unwitnessed=0.10),
    "worse": CaseMix(age_mean=74.0, age_sd=14.0, male=0.60,
                     witnessed=(("unwitnessed", 0.50), ("bystander", 0.20), ("family", 0.17),
                                ("healthcare_provider", 0.03), ("ems", 0.10)),
                     shockable_witnessed=0.20, shockable_unwitnessed=0.07),
}


def case_mix(name: str) -> CaseMix:
    try:
        return MIXES[name]
    except KeyError:
        raise ValueError(f"unknown case mix {name!r}; use one of {', '.join(MIXES)}") from None


@dataclass(frozen=True)
class Arrests:
    """Case-mix values and outcome of ``n`` EMS-treated arrests (codes index the tuples
    above; ``age`` in years)."""

    age: Ints
    sex: Ints
    witness: Ints  # into WITNESSED
    rhythm: Ints  # into RHYTHMS
    survived: Bools


def draw(rng: np.random.Generator, mix: CaseMix, n: int,
         model: SurvivalModel = MODEL) -> Arrests:
    """Case mix by ``mix``, survival by ``model`` from the case-mix stratum alone."""
    age = np.clip(np.rint(rng.normal(mix.age_mean, mix.age_sd, n)), 0, 100).astype(np.int64)
    u = rng.random(n)
    sex = np.where(u < UNKNOWN_SEX, 2, np.where(u < UNKNOWN_SEX + (1 - UNKNOWN_SEX) * mix.male,
                                                  1, 0))
    shares = dict(mix.witnessed)
    witness = pick(rng, [shares.get(w, 0.0) for w in WITNESSED], n)
    seen = witness != WITNESSED.index("unwitnessed")
    shockable = chance(rng, np.where(seen, mix.shockable_witnessed,
                                     mix.shockable_unwitnessed), n)
    shock = np.asarray([RHYTHMS.index(r) for r in _SHOCKABLE])[pick(rng, _SHOCK_MIX, n)]
    other = np.asarray([RHYTHMS.index(r) for r in _NON_SHOCKABLE])[pick(rng, _NON_SHOCK_MIX, n)]
    unknown = chance(rng, UNKNOWN_RHYTHM, n)
    rhythm = np.where(unknown, RHYTHMS.index("unknown"), np.where(shockable, shock, other))
    p = model.probability(bands(age), sex, seen.astype(np.int64),
                          np.where(unknown, 2, shockable.astype(np.int64)))
    return Arrests(age, sex, witness, rhythm, chance(rng, p, n))


def cohort(mix: CaseMix | str, n: int, *, seed: int = 2025, endpoint: str = "30d",
           model: SurvivalModel = MODEL, prefix: str = "AA") -> pa.Table:
    """``n`` EMS-treated arrests as a table of the common model (every column, nullable;
    the derived ``age_band`` filled as a node's ingest fills it)."""
    mix = case_mix(mix) if isinstance(mix, str) else mix
    a = draw(np.random.default_rng([seed, n, *prefix.encode()]), mix, n, model)
    yes = np.ones(n, dtype=bool)
    ids = pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), 9, "0")
    cols: dict[str, pa.Array] = {
        "mission_id": pc.binary_join_element_wise(f"{prefix}-", ids, ""),
        "service_type": strings(("emergency",), np.zeros(n, dtype=np.int64)),
        "cancelled": bools(~yes),
        "patient_age": pa.array(a.age.astype(np.int32), pa.int32()),
        "age_band": strings(BANDS, bands(a.age)),
        "patient_sex": strings(SEXES, a.sex),
        "ca_arrest": bools(yes),
        "ca_resus_attempted": bools(yes),
        "ca_witnessed_by": strings(WITNESSED, a.witness),
        "ca_first_rhythm": strings(RHYTHMS, a.rhythm),
        "ca_survived": bools(a.survived),
        "ca_survival_endpoint": strings(ENUMS["ca_survival_endpoint"],
                                        np.full(n, ENUMS["ca_survival_endpoint"].index(endpoint))),
    }
    schema = pa.schema([f.with_nullable(True) for f in arrow_schema()])
    return pa.Table.from_arrays(
        [cols.get(f.name, pa.nulls(n, f.type)) for f in schema], schema=schema)


def apply(rng: np.random.Generator, mix: CaseMix, treated: Bools, columns: dict[str, pa.Array],
          age: Ints, rosc: Bools, model: SurvivalModel = MODEL
          ) -> tuple[dict[str, pa.Array], Ints, Bools]:
    """Redraw the case mix and survival of the EMS-treated arrests (``treated``) of a full
    block in place of the calibration's. ``columns`` holds the block's ``ca_*`` arrays and
    ``patient_sex``; returns those that change, the new ages and the ROSC flags (survivors
    had ROSC; ROSC without survival is kept as drawn). An arrest redrawn as EMS-witnessed
    had no bystander, dispatcher or telephone CPR."""
    rows = np.flatnonzero(treated)
    a = draw(rng, mix, len(rows), model)
    age = age.copy()
    age[rows] = a.age
    # ROSC without survival stays as drawn; survivors had ROSC
    was = np.asarray(columns["ca_survived"].fill_null(False).to_numpy(zero_copy_only=False),
                     dtype=bool)
    rosc = rosc.copy()
    rosc[rows] = a.survived | (rosc[rows] & ~was[rows])
    out: dict[str, pa.Array] = {}

    def put(name: str, where: Ints, values: pa.Array) -> None:
        mask = np.zeros(len(treated), dtype=bool)
        mask[where] = True
        out[name] = pc.replace_with_mask(columns[name], pa.array(mask), values)

    put("patient_sex", rows, pa.array(np.asarray(SEXES)[a.sex]))
    put("ca_witnessed_by", rows, pa.array(np.asarray(WITNESSED)[a.witness]))
    put("ca_first_rhythm", rows, pa.array(np.asarray(RHYTHMS)[a.rhythm]))
    put("ca_survived", rows, pa.array(a.survived))
    put("ca_rosc_arrival", rows, pa.array(rosc[rows]))
    ems = rows[a.witness == WITNESSED.index("ems")]
    for name in ("ca_bystander_cpr", "ca_bystander_aed", "ca_dispatcher_recognised",
                 "ca_telephone_cpr"):
        put(name, ems, pa.array(np.zeros(len(ems), dtype=bool)))
    return out, age, rosc
