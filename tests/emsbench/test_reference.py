"""Per-node reference data: official population and national response targets."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from emsbench import model, reference
from emsbench.reference import ReferenceDataError, load_population, load_response_targets

COUNTRIES = ("NO", "SE", "DK", "FI", "IS", "US")
# national totals in shared/reference/reference-values.md
TOTALS = {"NO": 5_500_000, "SE": 10_500_000, "DK": 5_900_000, "FI": 5_600_000,
          "IS": 390_000, "US": 335_000_000}
POP_HEADER = "country,year,region,age_band,sex,persons,source\n"
TARGET_HEADER = "country,urgency_level,urbanicity,minutes,share_target,source\n"


def _population_file(tmp_path: Path, extra: str = "", drop: int = 0) -> Path:
    lines = [f"NO,2025,national,{band},{sex},{1000 + i},test"
             for i, (band, sex) in enumerate((b, s) for b in get_args(model.AgeBand)
                                             for s in ("female", "male"))]
    path = tmp_path / "population.csv"
    path.write_text(POP_HEADER + "\n".join(lines[drop:]) + "\n" + extra, encoding="utf-8")
    return path


def test_shipped_population_covers_six_countries_with_the_published_totals() -> None:
    rows = load_population()
    assert {p.country for p in rows} == set(COUNTRIES)
    for country, total in TOTALS.items():
        assert reference.population_total(country, 2025) == total
        cells = reference.population_by(country, 2025)
        assert set(cells) == {(b, s) for b in model.ENUMS["age_band"] for s in ("female", "male")}
        # plausible structure: more old women than old men, children about a fifth
        assert cells[("80+", "female")] > cells[("80+", "male")]
        children = reference.population_total(country, 2025, age_band="0-17")
        assert 0.15 < children / total < 0.25
    assert all("assumed" in p.source for p in rows)  # the split is not a published figure
    assert reference.population_total("NO", 2025, sex="female", age_band="65-79") == 377_344


def test_population_age_bands_are_the_model_strata() -> None:
    assert get_args(model.AgeBand) == model.ENUMS["age_band"]
    assert {p.age_band for p in load_population()} == set(model.ENUMS["age_band"])


def test_missing_year_names_the_years_there_are() -> None:
    with pytest.raises(KeyError, match="years available: 2025"):
        reference.population("NO", 1999)
    with pytest.raises(KeyError, match="none"):
        reference.population("XX", 2025)


def test_response_targets() -> None:
    no = reference.response_targets("NO")
    assert {(t.urgency_level, t.urbanicity, t.minutes, t.share_target) for t in no} == {
        ("U1", "urban", 12.0, 0.9), ("U1", "rural", 25.0, 0.9)}
    assert all(not t.source.startswith("assumed") for t in no)  # Norway's is published
    assert {t.country for t in reference.response_targets()} == set(COUNTRIES)
    for t in reference.response_targets():
        if t.country != "NO":
            assert t.source.startswith("assumed"), t
    dk = reference.response_target("DK", "U1", "rural")
    assert dk is not None and dk.urbanicity == "any" and dk.minutes == 15
    assert reference.response_target("NO", "U2", "urban") is None


def test_a_node_file_loads_and_is_used(tmp_path: Path) -> None:
    rows = load_population(_population_file(tmp_path))
    assert reference.population_total("NO", 2025, rows=rows) == sum(range(1000, 1010))
    path = tmp_path / "targets.csv"
    path.write_text(TARGET_HEADER + "NO,U2,any,30,0.8,local agreement\n", encoding="utf-8")
    targets = load_response_targets(path)
    assert reference.response_target("NO", "U2", "rural", rows=targets) == targets[0]


def test_population_problems_are_all_reported_with_their_line(tmp_path: Path) -> None:
    path = _population_file(tmp_path, drop=1, extra=(
        "NO,2025,national,0-17,male,5,again\n"
        "NO,2025,national,0-17,other,5,x\n"
        "NO,2025,national,18-44,male,-3,x\n"
        "NO,2025,national,90+,male,3,x\n"))
    with pytest.raises(ReferenceDataError) as err:
        load_population(path)
    text = str(err.value)
    assert "population.csv:11: NO/2025/national/0-17/male repeats line 2" in text
    assert ":12: sex:" in text and ":13: persons:" in text and ":14: age_band:" in text
    assert "NO 2025 national lacks 0-17/female" in text


def test_target_problems(tmp_path: Path) -> None:
    path = tmp_path / "targets.csv"
    path.write_text(TARGET_HEADER + "NO,U1,urban,12,0.9,a\nNO,U1,any,15,0.9,b\n"
                    "NO,U1,urban,10,0.9,c\nSE,U4,urban,10,0.9,d\nSE,U1,urban,0,1.5,e\n",
                    encoding="utf-8")
    with pytest.raises(ReferenceDataError) as err:
        load_response_targets(path)
    text = str(err.value)
    assert "targets.csv:4: NO/U1/urban repeats line 2" in text
    assert "NO U1 has a target for 'any' and one for 'urban' or 'rural'" in text
    assert ":5: urgency_level:" in text
    assert ":6: minutes:" in text and ":6: share_target:" in text
    with pytest.raises(ReferenceDataError, match="cannot read"):
        load_response_targets(tmp_path / "absent.csv")
