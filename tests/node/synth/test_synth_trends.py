"""Year-to-year change of the synthetic data: measured in the files, as a report would.

Each test generates two years of one country with the same seed and computes the figure
from the Parquet files with DuckDB, then checks it moved the way ``node.synth.trends``
documents, by about the documented amount.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from emsbench.reference import load_population, population_by, population_total
from node.synth.calibration import COUNTRIES, get_country
from node.synth.generator import generate
from node.synth.population import volume_fraction, write_scaled_population
from node.synth.trends import CALIBRATION_YEAR, DRIFT, country_for_year, for_year

ROWS = 200_000
SEED = 41
Files = Callable[[str, int], Path]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """A 200,000-row file of a country and year, same seed every time (made on first use)."""
    folder = tmp_path_factory.mktemp("trends")
    made: dict[tuple[str, int], Path] = {}

    def get(country: str, year: int) -> Path:
        if (country, year) not in made:
            made[country, year] = folder / f"{country}-{year}.parquet"
            generate(country, year, made[country, year], rows=ROWS, seed=SEED)
        return made[country, year]

    return get


def _one(sql: str, path: Path) -> float:
    [row] = duckdb.connect().execute(sql.replace("{m}", f"read_parquet('{path}')")).fetchall()
    assert row[0] is not None
    return float(row[0])


def u1_median_minutes(path: Path) -> float:
    return _one("SELECT median(epoch(arrived_scene) - epoch(call_received)) / 60 FROM {m} "
                "WHERE urgency_level = 'U1' AND arrived_scene IS NOT NULL", path)


def answered_within_10s(path: Path) -> float:
    return _one("SELECT avg((epoch(call_answered) - epoch(call_ring_start) <= 10)::int) "
                "FROM {m}", path)


def test_the_table_has_trends_both_ways() -> None:
    # a report of these years must find response times improving somewhere and worsening
    # elsewhere, and the care measures mostly improving, each by a plausible amount
    rates = [d.u1_response for d in DRIFT.values()]
    assert min(rates) < 0 < max(rates)
    assert all(-0.03 <= r <= 0.03 for r in rates)
    assert all(0.0 <= d.volume <= 0.04 for d in DRIFT.values())
    assert any(d.bystander_cpr > 0 for d in DRIFT.values())
    assert any(d.survival > 0 for d in DRIFT.values())
    assert set(DRIFT) == set(COUNTRIES)


@pytest.mark.parametrize("country", ["NO", "DK"])
def test_u1_response_median_moves_by_the_documented_rate(files: Files, country: str) -> None:
    earlier, now = u1_median_minutes(files(country, 2023)), u1_median_minutes(
        files(country, CALIBRATION_YEAR))
    expected = (1 + DRIFT[country].u1_response) ** -2  # 2023 relative to 2025
    assert earlier / now == pytest.approx(expected, abs=0.01)
    # Norway improves (2023 was slower), Denmark worsens (2023 was faster): by 2-4 %
    assert (earlier > now * 1.02) if country == "NO" else (earlier < now * 0.98)


def test_u1_response_median_is_the_calibrated_one_in_2025(files: Files) -> None:
    # the calibration year is untouched by the trend model
    c = get_country("NO")
    got = u1_median_minutes(files("NO", CALIBRATION_YEAR))
    assert c.response.u1_urban.median < got < c.response.u1_rural.median


@pytest.mark.parametrize("country", ["SE", "DK"])
def test_calls_answered_within_10s_drift_in_the_documented_direction(
        files: Files, country: str) -> None:
    earlier = answered_within_10s(files(country, 2023))
    now = answered_within_10s(files(country, CALIBRATION_YEAR))
    points = DRIFT[country].answer_within_10s * 2  # two years
    assert now - earlier == pytest.approx(points, abs=0.01)
    assert (now > earlier + 0.02) if country == "SE" else (now < earlier - 0.01)


def test_default_volume_grows_year_on_year(tmp_path: Path) -> None:
    counts = {}
    for year in (2023, 2024, 2025):
        out = tmp_path / f"is-{year}.parquet"
        generate("IS", year, out, seed=SEED)
        counts[year] = _one("SELECT count(*) FROM {m}", out)
    growth = 1 + DRIFT["IS"].volume
    assert counts[2025] == get_country("IS").volume
    assert counts[2023] < counts[2024] < counts[2025]
    assert counts[2024] / counts[2023] == pytest.approx(growth, abs=0.002)
    assert counts[2025] / counts[2023] == pytest.approx(growth ** 2, abs=0.002)


def test_same_country_year_and_seed_give_the_same_file(tmp_path: Path, files: Files) -> None:
    again = tmp_path / "again.parquet"
    generate("DK", 2023, again, rows=ROWS, seed=SEED)
    assert pl.read_parquet(again).equals(pl.read_parquet(files("DK", 2023)))
    other = pl.read_parquet(files("DK", 2025))  # same seed and rows, another year
    assert not other["arrived_scene"].equals(pl.read_parquet(again)["arrived_scene"])


def test_calibration_year_is_the_calibration_itself() -> None:
    for code in COUNTRIES:
        assert country_for_year(code, CALIBRATION_YEAR) is get_country(code)


def test_shares_move_in_points_and_stay_consistent() -> None:
    dk, dk23 = get_country("DK"), country_for_year("DK", 2023)
    assert dk23.ohca.bystander_cpr == pytest.approx(
        dk.ohca.bystander_cpr - 2 * DRIFT["DK"].bystander_cpr)
    assert dk23.ohca.survival < dk.ohca.survival
    # the comparator group's survival moves with the overall rate, so case-mix adjusted
    # survival moves too, and the survivors still all had ROSC
    assert dk23.ohca.survival_comparator / dk.ohca.survival_comparator == pytest.approx(
        dk23.ohca.survival / dk.ohca.survival)
    assert dk23.ohca.rosc_arrival - dk23.ohca.survival == pytest.approx(
        dk.ohca.rosc_arrival - dk.ohca.survival)
    # what the model does not move stays as calibrated
    assert dk23.ohca.incidence_per_100k == dk.ohca.incidence_per_100k
    assert dk23.response.u2_urban == dk.response.u2_urban
    assert dk23.population == dk.population and dk23.places == dk.places


def test_years_near_the_calibration_are_drawable_and_far_ones_refused() -> None:
    for code in COUNTRIES:
        for year in range(2019, 2033):
            for_year(get_country(code), year).ohca.check()
    with pytest.raises(ValueError, match="too far from the calibration year 2025"):
        country_for_year("SE", 2000)
    with pytest.raises(ValueError, match="NO 2045"):
        country_for_year("NO", 2045)


def test_population_of_a_year_not_shipped_is_refused_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no population for NO 2023"):
        write_scaled_population(tmp_path / "strict.csv", "NO", 2023, 0.5)
    rows = 353_474  # half of Norway's 2023 volume
    fraction = volume_fraction("NO", rows, 2023)
    assert fraction == pytest.approx(0.5, abs=1e-5)
    assert volume_fraction("NO", rows) < fraction  # 2025 has more missions
    path = write_scaled_population(tmp_path / "p.csv", "NO", 2023, fraction, nearest=True)
    written = load_population(path)  # valid reference data, for the year asked
    assert {p.year for p in written} == {2023}
    assert all("of 2025 (no 2023 figures shipped)" in p.source for p in written)
    assert sum(population_by("NO", 2023, rows=written).values()) == pytest.approx(
        population_total("NO", 2025) * fraction, abs=10)
