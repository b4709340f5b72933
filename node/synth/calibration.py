"""Per-country calibration of the synthetic generator.

Figures come from shared/reference/reference-values.md where it has one (year of the
figure in the comment); every other value is a plausible choice marked
``# assumed: no published figure``. The Nordic countries report 30-day survival, the US
survival to hospital discharge, so the two are never the same endpoint.
"""

from __future__ import annotations

from node.synth.params import Country, Lognormal, Ohca, ResponseTimes

L = Lognormal
_NORDIC_SERVICE = (("emergency", 0.90), ("interfacility", 0.07), ("standby", 0.02),
                   ("other", 0.01))  # assumed: no published figure


def _resp(*pairs: tuple[float, float]) -> ResponseTimes:
    """ResponseTimes from (median, P90) pairs: U1 urban, U1 rural, U2 urban, ... U3 rural."""
    return ResponseTimes(*(L(m, p) for m, p in pairs))


def _nordic_ohca(**kw: float | str) -> Ohca:
    """Nordic OHCA defaults; keyword arguments override them with published figures."""
    base: dict[str, object] = dict(
        resus_attempted=0.85,  # assumed: no published figure
        # assumed: Utstein-typical mix, no published figure
        witnessed=(("unwitnessed", 0.30), ("bystander", 0.32), ("family", 0.22),
                   ("healthcare_provider", 0.03), ("ems", 0.13)),
        presumed_cardiac=0.80, shockable=0.20,
        shockable_comparator=0.35,  # assumed: no published figure
        bystander_aed=0.06,  # assumed: no published figure
        rosc_arrival=0.30,  # assumed: no published figure
        survival_comparator=0.40,  # assumed: Nordic plausible range 35-45 %
        endpoint="30d",
    )
    base.update(kw)
    return Ohca(**base)  # type: ignore[arg-type]


NO = Country(
    code="NO", volume=750_000, population=5_500_000,
    urgency_system="Norsk indeks for medisinsk nødhjelp",
    urgency_mix=(("A", 0.33), ("H", 0.32), ("V", 0.35)),  # assumed: no published figure
    urban_share=0.65,  # assumed: no published figure
    # U1: published medians (2020) and P90 (2013); U2/U3 assumed: no published figure
    response=_resp((9.7, 18.7), (15.1, 31.1), (18, 45), (25, 60), (30, 90), (40, 120)),
    ohca=_nordic_ohca(incidence_per_100k=52.8, bystander_cpr=0.79, survival=0.15,
                      dispatcher_recognised=0.96, telephone_cpr=0.80),  # Oslo 2016
    stemi_per_year=3_000, stroke_per_year=9_000,
    ecg_within_10=0.80, stroke_prenotified=0.75,  # assumed: no published figure
    cancelled=0.03, service_mix=_NORDIC_SERVICE,
    places=(("Helse Sør-Øst", "Oslo", "urban", 0.30),
            ("Helse Sør-Øst", "Drammen", "urban", 0.10),
            ("Helse Vest", "Bergen", "urban", 0.15),
            ("Helse Midt-Norge", "Trondheim", "urban", 0.10),
            ("Helse Nord", "Tromsø", "urban", 0.05),
            ("Helse Sør-Øst", "Nord-Fron", "rural", 0.10),
            ("Helse Vest", "Sunnfjord", "rural", 0.08),
            ("Helse Midt-Norge", "Oppdal", "rural", 0.05),
            ("Helse Nord", "Alta", "rural", 0.04),
            ("Helse Nord", "Vågan", "rural", 0.03)),
    answer_within_10s=0.92,  # >= 90 % nationally (2018-22)
    stroke_scale_types=(("fast", 0.60), ("nihss", 0.25), ("other", 0.15)),  # assumed
)

SE = Country(
    code="SE", volume=1_300_000, population=10_500_000,
    urgency_system="Medicinskt Index (SOS Alarm)",
    urgency_mix=(("1", 0.35), ("2", 0.40), ("3", 0.20), ("4", 0.05)),  # assumed
    urban_share=0.75,  # assumed: no published figure
    response=_resp((10, 20), (18, 36), (18, 45), (28, 65), (35, 100), (45, 130)),  # assumed
    # ~6,000 a year / 10.5 M; survival 12 % (2023) and 13 % (2024); BCPR 77 % (2019);
    # Stockholm recognition 83 % and T-CPR 60 % (2016)
    ohca=_nordic_ohca(incidence_per_100k=57.0, bystander_cpr=0.77, survival=0.125,
                      dispatcher_recognised=0.83, telephone_cpr=0.60, bystander_aed=0.07),
    stemi_per_year=3_000 * 10.5 / 5.5, stroke_per_year=9_000 * 10.5 / 5.5,  # NO per capita
    ecg_within_10=0.78, stroke_prenotified=0.70,  # assumed: no published figure
    cancelled=0.03, service_mix=_NORDIC_SERVICE,
    places=(("Region Stockholm", "Stockholm", "urban", 0.30),
            ("Västra Götalandsregionen", "Göteborg", "urban", 0.20),
            ("Region Skåne", "Malmö", "urban", 0.15), ("Region Uppsala", "Uppsala", "urban", 0.10),
            ("Region Jämtland Härjedalen", "Strömsund", "rural", 0.08),
            ("Region Norrbotten", "Jokkmokk", "rural", 0.05),
            ("Region Dalarna", "Malung-Sälen", "rural", 0.07),
            ("Region Kalmar län", "Vimmerby", "rural", 0.05)),
    answer_within_10s=0.85,  # assumed: no published figure
    # assumed: RACE and FAST in most regions, A2L/PASS ("other") in the rest
    stroke_scale_types=(("race", 0.45), ("fast", 0.35), ("other", 0.20)),
)

DK = Country(
    code="DK", volume=900_000, population=5_900_000,
    urgency_system="Dansk Indeks for Akuthjælp",
    # A 51 %, B 46 %, C 2 %, D 0.2 % (2011), normalised to sum to one
    urgency_mix=(("A", 0.512), ("B", 0.466), ("C", 0.020), ("D", 0.002)),
    urban_share=0.70,  # assumed: no published figure
    # level A median 6:11 overall (2011) and 89-96 % within 15 min (2023) give these
    # urban/rural splits; U2/U3 assumed: no published figure
    response=_resp((5.6, 11), (8.5, 16), (11, 25), (15, 32), (20, 60), (28, 75)),
    # 3,500-4,000 a year / 5.9 M; BCPR 66 %, bystander defibrillation 3.6 %, 30-day
    # survival 12.7 % (2014); Copenhagen recognition 71 % and T-CPR 50 % (2016)
    ohca=_nordic_ohca(incidence_per_100k=63.6, bystander_cpr=0.66, bystander_aed=0.036,
                      survival=0.127, dispatcher_recognised=0.71, telephone_cpr=0.50,
                      rosc_arrival=0.27),
    stemi_per_year=3_000 * 5.9 / 5.5, stroke_per_year=9_000 * 5.9 / 5.5,
    ecg_within_10=0.75, stroke_prenotified=0.70,  # assumed: no published figure
    cancelled=0.03, service_mix=_NORDIC_SERVICE,
    places=(("Region Hovedstaden", "København", "urban", 0.30),
            ("Region Hovedstaden", "Frederiksberg", "urban", 0.05),
            ("Region Midtjylland", "Aarhus", "urban", 0.15),
            ("Region Syddanmark", "Odense", "urban", 0.12),
            ("Region Nordjylland", "Aalborg", "urban", 0.08),
            ("Region Sjælland", "Lolland", "rural", 0.08),
            ("Region Nordjylland", "Thisted", "rural", 0.06),
            ("Region Midtjylland", "Ringkøbing-Skjern", "rural", 0.07),
            ("Region Syddanmark", "Tønder", "rural", 0.05),
            ("Region Hovedstaden", "Bornholm", "rural", 0.04)),
    answer_within_10s=0.90,  # assumed: no published figure
    # assumed: the Danish PreSS ("other") in most regions, FAST elsewhere
    stroke_scale_types=(("other", 0.55), ("fast", 0.45)),
)

FI = Country(
    code="FI", volume=800_000, population=5_600_000,
    urgency_system="Hätäkeskus riskinarvio",
    urgency_mix=(("A", 0.08), ("B", 0.25), ("C", 0.37), ("D", 0.30)),  # assumed
    urban_share=0.70,  # assumed: no published figure
    response=_resp((9, 18), (16, 32), (15, 35), (25, 50), (30, 90), (40, 120)),  # assumed
    # resuscitation attempted 51 per 100,000; witnessed shockable cardiac survival 46 %
    # (2010, to discharge; used as the 30-day comparator figure). Overall survival, BCPR,
    # recognition and T-CPR assumed: no published figure
    ohca=_nordic_ohca(incidence_per_100k=51.0, bystander_cpr=0.60, survival=0.14,
                      survival_comparator=0.46, dispatcher_recognised=0.80,
                      telephone_cpr=0.55, bystander_aed=0.04),
    stemi_per_year=3_000 * 5.6 / 5.5, stroke_per_year=9_000 * 5.6 / 5.5,
    ecg_within_10=0.75, stroke_prenotified=0.65,  # assumed: no published figure
    cancelled=0.03, service_mix=_NORDIC_SERVICE,
    places=(("Helsingin kaupunki", "Helsinki", "urban", 0.25),
            ("Pirkanmaan hyvinvointialue", "Tampere", "urban", 0.15),
            ("Varsinais-Suomen hyvinvointialue", "Turku", "urban", 0.15),
            ("Pohjois-Pohjanmaan hyvinvointialue", "Oulu", "urban", 0.15),
            ("Lapin hyvinvointialue", "Sodankylä", "rural", 0.08),
            ("Kainuun hyvinvointialue", "Suomussalmi", "rural", 0.07),
            ("Etelä-Savon hyvinvointialue", "Pieksämäki", "rural", 0.08),
            ("Pohjois-Karjalan hyvinvointialue", "Lieksa", "rural", 0.07)),
    answer_within_10s=0.88,  # assumed: no published figure
    stroke_scale_types=(("other", 0.60), ("fast", 0.40)),  # assumed: FASTER is "other"
)

# IS: no published OHCA or response figures found; every value here is assumed.
IS = Country(
    code="IS", volume=45_000, population=390_000,
    urgency_system="Neyðarlínan 112",
    urgency_mix=(("F1", 0.25), ("F2", 0.35), ("F3", 0.30), ("F4", 0.10)),  # assumed
    urban_share=0.70,  # assumed: no published figure
    response=_resp((8, 15), (20, 45), (12, 28), (28, 60), (25, 70), (45, 120)),  # assumed
    ohca=_nordic_ohca(incidence_per_100k=50.0, bystander_cpr=0.75, survival=0.13,
                      dispatcher_recognised=0.85, telephone_cpr=0.65),  # assumed
    stemi_per_year=3_000 * 0.39 / 5.5, stroke_per_year=9_000 * 0.39 / 5.5,
    ecg_within_10=0.75, stroke_prenotified=0.65,  # assumed: no published figure
    cancelled=0.03, service_mix=_NORDIC_SERVICE,
    places=(("Höfuðborgarsvæðið", "Reykjavíkurborg", "urban", 0.45),
            ("Höfuðborgarsvæðið", "Kópavogsbær", "urban", 0.15),
            ("Norðurland eystra", "Akureyrarbær", "urban", 0.10),
            ("Suðurland", "Rangárþing eystra", "rural", 0.12),
            ("Vestfirðir", "Ísafjarðarbær", "rural", 0.08),
            ("Austurland", "Múlaþing", "rural", 0.10)),
    answer_within_10s=0.92,  # assumed
    stroke_scale_types=(("fast", 0.80), ("nihss", 0.20)),  # assumed
)

US = Country(
    code="US", volume=50_000_000, population=335_000_000,
    urgency_system="NEMSIS eDispatch.05",
    urgency_mix=(("2305001", 0.25), ("2305003", 0.45), ("2305005", 0.25),
                 ("2305007", 0.05)),  # assumed: no published figure
    urban_share=0.80,  # assumed: no published figure
    # median ~7 min, rural ~14 min, one in ten rural waits up to 30 min: spread over
    # the urgency levels so that all emergency responses give those figures
    response=_resp((6.5, 12), (13, 28), (7.5, 14), (14.5, 30), (9, 18), (16, 33)),
    ohca=Ohca(
        incidence_per_100k=90.0,  # assumed: no published figure in the reference (CARES-like)
        resus_attempted=0.85,  # assumed: no published figure
        witnessed=(("unwitnessed", 0.50), ("bystander", 0.20), ("family", 0.17),
                   ("healthcare_provider", 0.01), ("ems", 0.12)),  # assumed
        presumed_cardiac=0.80,
        shockable=0.175,  # 2023 registry
        shockable_comparator=0.32,  # assumed: no published figure
        bystander_cpr=0.41,  # 2023 registry
        bystander_aed=0.10,  # assumed: no published figure
        dispatcher_recognised=0.75, telephone_cpr=0.40,  # assumed: no published figure
        rosc_arrival=0.27,  # sustained ROSC 27 % (2023)
        survival=0.102,  # to discharge (2023)
        survival_comparator=0.326,  # Utstein comparator (2017)
        endpoint="discharge",
    ),
    stemi_per_year=3_000 * 335 / 5.5, stroke_per_year=9_000 * 335 / 5.5,  # NO per capita
    ecg_within_10=0.72, stroke_prenotified=0.63,  # assumed: no published figure
    cancelled=0.03,
    service_mix=(("emergency", 0.86), ("intercept", 0.01), ("mutual_aid", 0.01),
                 ("interfacility", 0.09), ("standby", 0.02), ("other", 0.01)),  # assumed
    places=(("California", "Los Angeles County", "urban", 0.25),
            ("Texas", "Harris County", "urban", 0.15),
            ("Illinois", "Cook County", "urban", 0.15),
            ("New York", "Kings County", "urban", 0.15),
            ("Arizona", "Maricopa County", "urban", 0.10),
            ("Montana", "Big Horn County", "rural", 0.03),
            ("Texas", "Brewster County", "rural", 0.03),
            ("Kansas", "Finney County", "rural", 0.04),
            ("Kentucky", "Harlan County", "rural", 0.04),
            ("Minnesota", "Itasca County", "rural", 0.03),
            ("Georgia", "Emanuel County", "rural", 0.03)),
    # assumed: NENA asks 90 % within 15 s; no published 10-s figure
    answer_within_10s=0.85,
    stroke_scale_types=(("cincinnati", 0.45), ("befast", 0.20), ("los_angeles", 0.10),
                        ("fast_ed", 0.05), ("race", 0.05), ("lams", 0.05), ("van", 0.03),
                        ("nihss", 0.02), ("other", 0.05)),  # assumed
)

# Order fixes each country's index in the random seed: append, never reorder.
COUNTRIES: dict[str, Country] = {c.code: c for c in (NO, SE, DK, FI, IS, US)}


def get_country(code: str) -> Country:
    """Parameters of one country; KeyError lists the valid codes."""
    try:
        return COUNTRIES[code.upper()]
    except KeyError:
        raise KeyError(f"unknown country {code!r}; valid: {', '.join(COUNTRIES)}") from None


def calibration(code: str) -> Country:
    """Alias of ``get_country`` (the name ``emsbench.demo`` uses)."""
    return get_country(code)


def country_index(code: str) -> int:
    """Stable index of a country, one of the seed components."""
    return list(COUNTRIES).index(get_country(code).code)
