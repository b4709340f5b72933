"""Parameter types of the synthetic generator, with the quantities derived from them.

The values per country live in ``calibration``; this module only says what a parameter
set is and how derived rates follow from it (lognormal sigma from median and P90, the
per-mission probability of an EMS-treated arrest, the survival of the non-comparator
arrests that makes the overall rate come out right). Pure Python, no numpy, so the CLI can
import it cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

# z of the 90th percentile of a standard normal: P90 = median * exp(1.2816 * sigma).
Z90 = NormalDist().inv_cdf(0.9)


@dataclass(frozen=True)
class Lognormal:
    """A positive duration in minutes given by its median and 90th percentile."""

    median: float
    p90: float

    @property
    def mu(self) -> float:
        return math.log(self.median)

    @property
    def sigma(self) -> float:
        return math.log(self.p90 / self.median) / Z90

    @classmethod
    def within(cls, median: float, limit: float, share: float) -> Lognormal:
        """Lognormal with the given median and ``share`` of values at or below ``limit``.

        Used for the 12-lead ECG delay, where the published figure is a share within
        10 minutes rather than a P90.
        """
        sigma = math.log(limit / median) / NormalDist().inv_cdf(share)
        return cls(median, median * math.exp(Z90 * sigma))


@dataclass(frozen=True)
class ResponseTimes:
    """Call received to first unit on scene, minutes, per common urgency x urbanicity."""

    u1_urban: Lognormal
    u1_rural: Lognormal
    u2_urban: Lognormal
    u2_rural: Lognormal
    u3_urban: Lognormal
    u3_rural: Lognormal

    def get(self, level: str, urbanicity: str) -> Lognormal:
        dist: Lognormal = getattr(self, f"{level.lower()}_{urbanicity}")
        return dist


@dataclass(frozen=True)
class Ohca:
    """Out-of-hospital cardiac arrest (Utstein) parameters of one country.

    Shares are among EMS-treated arrests (resuscitation attempted) unless said otherwise.
    """

    incidence_per_100k: float  # EMS-treated arrests per 100,000 inhabitants a year
    resus_attempted: float  # share of all arrests attended where EMS attempts resuscitation
    witnessed: tuple[tuple[str, float], ...]  # ca_witnessed_by value -> share
    presumed_cardiac: float
    shockable: float  # first rhythm shockable, all EMS-treated arrests
    shockable_comparator: float  # shockable among bystander/family-witnessed cardiac arrests
    bystander_cpr: float  # among arrests not witnessed by EMS
    bystander_aed: float  # among arrests not witnessed by EMS
    dispatcher_recognised: float  # among arrests not witnessed by EMS
    telephone_cpr: float  # among arrests not witnessed by EMS (requires recognition)
    rosc_arrival: float
    survival: float  # overall, at the endpoint
    survival_comparator: float  # Utstein comparator group
    endpoint: str  # '30d' or 'discharge'

    def share_witnessed(self, *who: str) -> float:
        return sum(p for w, p in self.witnessed if w in who)

    @property
    def comparator_share(self) -> float:
        """Share of EMS-treated arrests in the Utstein comparator group."""
        eligible = self.share_witnessed("bystander", "family") * self.presumed_cardiac
        return eligible * self.shockable_comparator

    @property
    def shockable_other(self) -> float:
        """Shockable share outside the bystander/family-witnessed cardiac arrests.

        Chosen so that the overall shockable share is ``shockable``.
        """
        eligible = self.share_witnessed("bystander", "family") * self.presumed_cardiac
        return (self.shockable - eligible * self.shockable_comparator) / (1.0 - eligible)

    def survival_other(self, shockable: bool) -> float:
        """Survival outside the comparator group, shockable or not.

        Derived so that the overall survival equals ``survival``; among the rest, a
        shockable first rhythm survives three times as often as a non-shockable one, as
        registries report.
        """
        c = self.comparator_share
        rest = (self.survival - c * self.survival_comparator) / (1.0 - c)
        f_shock = (self.shockable - c) / (1.0 - c)
        base = rest / (1.0 + 2.0 * f_shock)
        return 3.0 * base if shockable else base

    def check(self) -> None:
        """Raise ValueError when the parameters cannot give the stated overall rates."""
        if abs(sum(p for _, p in self.witnessed) - 1.0) > 1e-9:
            raise ValueError("witnessed shares must sum to 1")
        if not 0.0 <= self.shockable_other <= 1.0:
            raise ValueError("shockable shares are inconsistent")
        if not 0.0 < self.survival_other(False) < self.survival_other(True) < 1.0:
            raise ValueError("survival figures are inconsistent")
        if self.telephone_cpr > self.dispatcher_recognised or self.rosc_arrival < self.survival:
            raise ValueError("telephone CPR needs recognition; survivors need ROSC")


@dataclass(frozen=True)
class Country:
    """Everything the generator needs to know about one country."""

    code: str
    volume: int  # missions a year
    population: int
    urgency_system: str  # crosswalk system whose codes fill urgency_native
    urgency_mix: tuple[tuple[str, float], ...]  # native code -> share of missions
    urban_share: float
    response: ResponseTimes
    ohca: Ohca
    stemi_per_year: float
    stroke_per_year: float
    ecg_within_10: float  # share of first 12-leads within 10 min of patient contact
    stroke_prenotified: float  # among transported suspected stroke
    cancelled: float
    service_mix: tuple[tuple[str, float], ...]  # service_type -> share
    places: tuple[tuple[str, str, str, float], ...]  # (region, municipality, urbanicity, weight)
    answer_within_10s: float  # share of calls answered within 10 s of ringing (v2)
    stroke_scale_types: tuple[tuple[str, float], ...]  # stroke_scale_type -> share (v2)

    @property
    def yearly_missions(self) -> int:
        """Default row count of a generated year (same as ``volume``)."""
        return self.volume

    @property
    def p_treated_arrest(self) -> float:
        """Probability that a mission is an EMS-treated cardiac arrest."""
        return self.ohca.incidence_per_100k * self.population / 100_000 / self.volume

    @property
    def p_stemi(self) -> float:
        return self.stemi_per_year / self.volume

    @property
    def p_stroke(self) -> float:
        return self.stroke_per_year / self.volume
