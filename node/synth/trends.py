"""Year-to-year change of the synthetic calibration: what moves, how fast, which way.

``calibration`` describes one year, ``CALIBRATION_YEAR`` (2025). ``for_year`` turns it into
another year's parameters with the per-country rates of ``DRIFT``, so that a multi-year
demo shows real trends (some improving, some flat, some worsening) instead of the same
figures with fresh noise. Rates are per year from 2025, so earlier years lie the other way
(mission volume +3 %/year means 2023 has 1/1.03² of 2025's missions):

- ``volume``: missions a year, relative, compounding;
- ``u1_response``: the U1 response-time distributions (urban and rural median and P90
  alike, so the spread stays), relative, compounding;
- the shares (``bystander_cpr``, ``survival``, ``answer_within_10s``, ``ecg_within_10``,
  ``stroke_prenotified``): percentage points a year, added linearly.

Survival moves the comparator group's survival in proportion and ROSC at arrival by the
same points, so the derived survival of the other arrests (``params.Ohca``) stays
consistent and case-mix adjusted survival moves with the crude figure.

The synthetic population stays at the calibration's: a country's arrests, STEMI and
strokes stay the same each year while its missions grow (more calls per inhabitant, as
the Nordic services report), so OHCA incidence is flat and missions per 1,000 rise.

The rates are meant for a few years either side of 2025; ``for_year`` raises ValueError
for a year whose shares would leave what the generator can draw.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from node.synth.calibration import get_country
from node.synth.params import Country, Lognormal, Ohca

CALIBRATION_YEAR = 2025


@dataclass(frozen=True)
class Drift:
    """One country's change per year (see the module docstring for the units)."""

    volume: float = 0.0  # relative: 0.03 = +3 % a year
    u1_response: float = 0.0  # relative: -0.02 = 2 % shorter a year
    bystander_cpr: float = 0.0  # percentage points a year, as a share: 0.01 = +1 pp
    survival: float = 0.0
    answer_within_10s: float = 0.0
    ecg_within_10: float = 0.0
    stroke_prenotified: float = 0.0


# Directions follow shared/reference/reference-values.md where it shows one; every other
# rate is assumed (no published trend) and chosen so that the report has findings both
# ways: response times improve in NO, SE and FI, stay flat in IS, worsen in DK and the US.
DRIFT: dict[str, Drift] = {
    "NO": Drift(
        volume=0.03,  # calls to 113: ~746,000 (2022) -> ~778,000 (2023), +4 %
        u1_response=-0.015,  # assumed
        # flat: already 78-80 %, and telephone CPR (80 %) leaves no room below 77 %
        bystander_cpr=0.0,
        survival=0.003,  # assumed
        answer_within_10s=0.01,  # 72.8 % (2013) -> >= 90 % (2018-22): improving
        ecg_within_10=0.01, stroke_prenotified=0.01),  # assumed
    "SE": Drift(
        volume=0.025,  # assumed
        u1_response=-0.02,  # assumed
        bystander_cpr=0.005,  # assumed (77 % in 2019)
        survival=0.005,  # 30-day survival 12 % (2023) -> 13 % (2024): improving
        answer_within_10s=0.02, ecg_within_10=0.01, stroke_prenotified=0.02),  # assumed
    "DK": Drift(
        volume=0.02,  # assumed
        u1_response=0.015,  # assumed: worsening, the counter-example
        bystander_cpr=0.01, survival=0.005,  # assumed: the registry's long rise going on
        answer_within_10s=-0.01,  # assumed: worsening
        ecg_within_10=0.015, stroke_prenotified=0.01),  # assumed
    "FI": Drift(
        volume=0.025, u1_response=-0.01,  # assumed
        bystander_cpr=0.005, survival=0.0,  # assumed: flat
        answer_within_10s=0.01, ecg_within_10=0.02, stroke_prenotified=0.015),  # assumed
    "IS": Drift(volume=0.03),  # assumed: a growing population; otherwise flat
    "US": Drift(
        volume=0.02,  # assumed
        u1_response=0.01,  # assumed: worsening
        bystander_cpr=0.005, survival=0.003,  # assumed (41 % and 10.2 % in 2023)
        answer_within_10s=0.005, ecg_within_10=0.01, stroke_prenotified=0.015),  # assumed
}


def drift(code: str) -> Drift:
    """The drift of a country (none for a country without an entry)."""
    return DRIFT.get(code.upper(), Drift())


def _scaled(dist: Lognormal, factor: float) -> Lognormal:
    return Lognormal(dist.median * factor, dist.p90 * factor)


def _share(code: str, name: str, value: float, year: int) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{code} {year}: {name} would be {value:.3f} (the year is too far "
                         f"from the calibration year {CALIBRATION_YEAR} for the trend model)")
    return value


def for_year(country: Country, year: int) -> Country:
    """``country`` (calibrated for ``CALIBRATION_YEAR``) moved to ``year`` by its drift.

    The calibration year gives ``country`` itself, so a 2025 file is what it always was.
    """
    years = year - CALIBRATION_YEAR
    if years == 0:
        return country
    d = drift(country.code)

    def pp(name: str, value: float, rate: float) -> float:
        return _share(country.code, name, value + rate * years, year)

    factor = (1.0 + d.u1_response) ** years
    r = country.response
    response = replace(r, u1_urban=_scaled(r.u1_urban, factor),
                       u1_rural=_scaled(r.u1_rural, factor))
    o = country.ohca
    survival = pp("survival", o.survival, d.survival)
    ohca = replace(
        o, bystander_cpr=pp("bystander_cpr", o.bystander_cpr, d.bystander_cpr),
        survival=survival,
        survival_comparator=_share(country.code, "survival_comparator",
                                   o.survival_comparator * survival / o.survival, year),
        rosc_arrival=pp("rosc_arrival", o.rosc_arrival, d.survival))
    moved = replace(
        country, volume=round(country.volume * (1.0 + d.volume) ** years), response=response,
        ohca=ohca,
        answer_within_10s=pp("answer_within_10s", country.answer_within_10s,
                             d.answer_within_10s),
        ecg_within_10=pp("ecg_within_10", country.ecg_within_10, d.ecg_within_10),
        stroke_prenotified=pp("stroke_prenotified", country.stroke_prenotified,
                              d.stroke_prenotified))
    _check(moved, year)
    return moved


def _check(c: Country, year: int) -> None:
    """ValueError when the moved parameters cannot be drawn as they say."""
    from node.synth.dispatch import ring_distribution  # numpy: only when a year moves

    try:
        c.ohca.check()
        _bystander_cpr_without_telephone(c.ohca)
        ring_distribution(c.answer_within_10s)
        # the 12-lead delay (Lognormal.within, median 6 of 10 minutes) needs more than half
        if c.ecg_within_10 <= 0.5:
            raise ValueError("ecg_within_10 must be above 0.5")
    except ValueError as exc:
        raise ValueError(f"{c.code} {year}: {exc} (the year is too far from the calibration "
                         f"year {CALIBRATION_YEAR} for the trend model)") from None


def _bystander_cpr_without_telephone(o: Ohca) -> None:
    # arrest.arrest_block draws bystander CPR after telephone CPR at up to 95 % and the rest
    # at the rate that gives the overall share: that rate must be a probability.
    after = min(0.95, o.bystander_cpr / o.telephone_cpr)
    without = (o.bystander_cpr - o.telephone_cpr * after) / (1.0 - o.telephone_cpr)
    if not 0.0 <= without <= 1.0:
        raise ValueError(f"bystander CPR {o.bystander_cpr:.3f} is below what telephone CPR "
                         f"({o.telephone_cpr:.2f}) alone gives")


def country_for_year(code: str, year: int) -> Country:
    """Parameters of country ``code`` for ``year``; KeyError lists the valid codes."""
    return for_year(get_country(code), year)


def response_factor(code: str, year: int) -> float:
    """How much longer (> 1) or shorter U1 responses are in ``year`` than in 2025."""
    return (1.0 + drift(code).u1_response) ** (year - CALIBRATION_YEAR)

