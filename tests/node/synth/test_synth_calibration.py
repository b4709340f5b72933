"""Indicators computed the node's way on 200,000 synthetic rows land on the calibration.

Tolerances allow for sampling error at this size (a few hundred arrests per country).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from emsbench.crosswalk import common_level
from node.synth.calibration import COUNTRIES, get_country
from node.synth.generator import generate
from node.synth.params import Lognormal

Query = Callable[[str, str], tuple[Any, ...]]
TREATED = "ca_arrest AND ca_resus_attempted"
COMPARATOR = (f"{TREATED} AND ca_witnessed_by IN ('bystander', 'family') "
              "AND ca_presumed_cause = 'cardiac' "
              "AND ca_first_rhythm IN ('vf', 'vt', 'shockable_aed')")
RESPONSE = """
    SELECT median(m), quantile_cont(m, 0.9) FROM (
        SELECT epoch(arrived_scene - call_received) / 60 AS m FROM {m}
        WHERE service_type = 'emergency' AND NOT cancelled
          AND urgency_level = '%s' AND urbanicity = '%s')"""


def test_lognormal_sigma_from_median_and_p90() -> None:
    d = Lognormal(9.7, 18.7)
    assert d.sigma == pytest.approx(math.log(18.7 / 9.7) / 1.2816, rel=1e-4)
    ecg = Lognormal.within(6.0, 10.0, 0.8)
    # P(X <= 10) of that lognormal is the requested share
    assert 0.5 * (1 + math.erf(math.log(10 / 6.0) / (ecg.sigma * math.sqrt(2)))) == (
        pytest.approx(0.8))


@pytest.mark.parametrize("code", list(COUNTRIES))
def test_parameters_are_consistent(code: str) -> None:
    c = get_country(code)
    c.ohca.check()
    o = c.ohca
    share = o.comparator_share
    f_shock = (o.shockable - share) / (1 - share)
    other = f_shock * o.survival_other(True) + (1 - f_shock) * o.survival_other(False)
    # the derived non-comparator survival gives back the published overall survival
    assert share * o.survival_comparator + (1 - share) * other == pytest.approx(o.survival)
    assert sum(w for _, w in c.urgency_mix) == pytest.approx(1.0)
    assert sum(w for _, w in c.service_mix) == pytest.approx(1.0)
    assert o.endpoint == ("discharge" if code == "US" else "30d")


@pytest.mark.parametrize("country", ["NO", "US"])
def test_urgency_mix(query: Query, country: str) -> None:
    c = get_country(country)
    for level in ("U1", "U2", "U3"):
        want = sum(w for code, w in c.urgency_mix if common_level(country, code) == level)
        got, = query(country, f"SELECT avg((urgency_level = '{level}')::int) FROM {{m}}")
        assert got == pytest.approx(want, abs=0.02), level


@pytest.mark.parametrize("country", ["NO", "US"])
@pytest.mark.parametrize("area", ["urban", "rural"])
def test_u1_response_time_median_and_p90(query: Query, country: str, area: str) -> None:
    want = get_country(country).response.get("U1", area)
    median, p90 = query(country, RESPONSE % ("U1", area))
    assert median == pytest.approx(want.median, rel=0.04)
    assert p90 == pytest.approx(want.p90, rel=0.06)


def test_published_response_figures() -> None:
    no = get_country("NO").response
    assert (no.u1_urban.median, no.u1_rural.median) == (9.7, 15.1)
    assert (no.u1_urban.p90, no.u1_rural.p90) == (18.7, 31.1)
    us = get_country("US").response
    assert 6 <= us.u2_urban.median <= 8 and 13 <= us.u2_rural.median <= 15
    assert 28 <= us.u2_rural.p90 <= 32


def test_danish_level_a_median_overall(tmp_path: Path) -> None:
    out = tmp_path / "dk.parquet"
    generate("DK", 2025, out, rows=60_000)
    row = duckdb.connect().execute(f"""
        SELECT median(epoch(arrived_scene - call_received) / 60)
        FROM read_parquet('{out}')
        WHERE urgency_native = 'A' AND service_type = 'emergency' AND NOT cancelled""").fetchone()
    assert row is not None and row[0] == pytest.approx(6.2, abs=0.4)  # 6:11 in 2011


@pytest.mark.parametrize("country", ["NO", "US"])
def test_cardiac_arrest_indicators(query: Query, country: str) -> None:
    o = get_country(country).ohca
    rows, treated, bcpr, survival, comparator, n_comp, shockable = query(country, f"""
        SELECT count(*), count(*) FILTER (WHERE {TREATED}),
               avg(ca_bystander_cpr::int) FILTER (WHERE {TREATED} AND ca_witnessed_by <> 'ems'),
               avg(ca_survived::int) FILTER (WHERE {TREATED}),
               avg(ca_survived::int) FILTER (WHERE {COMPARATOR}),
               count(*) FILTER (WHERE {COMPARATOR}),
               avg((ca_first_rhythm IN ('vf', 'vt', 'shockable_aed'))::int)
                   FILTER (WHERE {TREATED})
        FROM {{m}}""")
    expected = get_country(country).p_treated_arrest * rows
    assert abs(treated - expected) < 4 * math.sqrt(expected)  # OHCA per mission
    assert bcpr == pytest.approx(o.bystander_cpr, abs=0.06)
    assert survival == pytest.approx(o.survival, abs=0.04)
    assert shockable == pytest.approx(o.shockable, abs=0.05)
    assert n_comp > 50 and comparator == pytest.approx(o.survival_comparator, abs=0.15)


@pytest.mark.parametrize("country", ["NO", "US"])
def test_stemi_and_stroke_indicators(query: Query, country: str) -> None:
    c = get_country(country)
    ecg10, n_ecg = query(country, """
        SELECT avg((stemi_ecg12_time - at_patient <= INTERVAL 10 MINUTE)::int), count(*)
        FROM {m}
        WHERE regexp_matches(impression_primary, '^(I20|I21|I22|R07)')
          AND patient_age >= 35 AND transported AND stemi_ecg12_time IS NOT NULL""")
    assert n_ecg > 1000 and ecg10 == pytest.approx(c.ecg_within_10, abs=0.04)
    prenote, n_stroke, lkw_after = query(country, """
        SELECT avg(stroke_prenotified::int), count(*),
               count(*) FILTER (WHERE stroke_last_known_well >= call_received)
        FROM {m}
        WHERE regexp_matches(impression_primary, '^(I60|I61|I63|G45|G46)') AND transported""")
    assert n_stroke > 500 and prenote == pytest.approx(c.stroke_prenotified, abs=0.05)
    assert lkw_after == 0
    stemi, = query(country, "SELECT count(*) FROM {m} WHERE impression_primary LIKE 'I21%'")
    assert stemi == pytest.approx(c.p_stemi * 200_000, rel=0.2)


@pytest.mark.parametrize("country", ["NO", "US"])
def test_cancelled_and_service_mix(query: Query, country: str) -> None:
    c = get_country(country)
    cancelled, emergency = query(
        country, "SELECT avg(cancelled::int), avg((service_type = 'emergency')::int) FROM {m}")
    assert cancelled == pytest.approx(c.cancelled, abs=0.005)
    assert emergency == pytest.approx(dict(c.service_mix)["emergency"], abs=0.01)
