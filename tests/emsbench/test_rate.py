"""The rate kind: events per official population, exact Poisson interval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.stats import chi2

from emsbench.conformance import conforms
from emsbench.kinds import Context, Pool, kind_of
from emsbench.kinds.rate import RATE, PopulationMissing, persons_in
from emsbench.reference import population_by
from emsbench.sandbox import open_sandbox
from emsbench.spec_cases import loader, rows_to_table
from emsbench.specs import IndicatorSpec, SpecError, SpecTestCase, load_specs
from emsbench.wire import Cell, IndicatorResult
from hub.merge import merge_indicator
from node.disclosure import full_grid, protect

POP = {("0-17", "female"): 100, ("0-17", "male"): 110, ("18-44", "female"): 200,
       ("18-44", "male"): 210, ("45-64", "female"): 300, ("45-64", "male"): 310,
       ("65-79", "female"): 400, ("65-79", "male"): 410, ("80+", "female"): 500,
       ("80+", "male"): 510}
TOTAL = sum(POP.values())  # 3050


def _spec(**fields: Any) -> IndicatorSpec:
    base: dict[str, Any] = {
        "id": "T-RATE", "version": "1.0.0", "title": "Test rate",
        "description": "A rate for the tests of the rate kind.", "unit": "per_100k",
        "direction": "descriptive", "type": "rate",
        "population": "coalesce(ca_arrest, false)", "strata": [],
        "tests": [SpecTestCase(name="none", rows=[], expect=[], population=[])]}
    return IndicatorSpec(**(base | fields))


def _compute(spec: IndicatorSpec, rows: list[dict[str, Any]],
             ctx: Context | None = None) -> IndicatorResult:
    from emsbench.engine import compute

    con = open_sandbox(loader(rows_to_table(rows, derived=True)))
    try:
        return compute(con, spec, ctx=ctx or Context("NO", 2025, POP))
    finally:
        con.close()


def _cells(result: IndicatorResult) -> dict[tuple[str, ...], tuple[int | None, int | None]]:
    return {tuple(c.stratum[s] for s in result.strata): (c.numerator, c.denominator)
            for c in result.cells}


# --- the spec ---------------------------------------------------------------------------


def _write_spec(directory: Path, body: dict[str, Any]) -> None:
    (directory / f"{body['id']}.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")


def _body(**fields: Any) -> dict[str, Any]:
    body = yaml.safe_load((Path(__file__).parents[2] / "indicator_specs" / "OHCA-INC.yaml")
                          .read_text(encoding="utf-8"))
    return body | {"id": "RATE-T"} | fields


def test_the_packaged_rate_spec_passes_as_written(tmp_path: Path) -> None:
    _write_spec(tmp_path, _body())
    [spec] = load_specs(tmp_path)
    assert kind_of(spec) is RATE


@pytest.mark.parametrize(("fields", "message"), [
    ({"numerator": "coalesce(ca_survived, false)"}, "a rate spec takes no 'numerator'"),
    ({"unit": "percent"}, "a rate is published in per_1000 or per_100k, not 'percent'"),
    ({"strata": ["urbanicity"]}, "a rate can only be stratified by what the official "
                                 "population is broken down by (age_band, patient_sex), "
                                 "not 'urbanicity'"),
    ({"measure": "1.0"}, "a rate spec takes no 'measure'"),
])
def test_spec_refusals(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    _write_spec(tmp_path, _body(**fields))
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    assert any(message in p for p in info.value.problems), info.value.problems


def test_a_rate_test_case_needs_its_population(tmp_path: Path) -> None:
    body = _body()
    del body["tests"][0]["population"]
    _write_spec(tmp_path, body)
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    assert any("tests[0]: a rate test case needs 'population'" in p
               for p in info.value.problems)


def test_a_rate_expectation_needs_events_and_persons(tmp_path: Path) -> None:
    body = _body()
    del body["tests"][0]["expect"][0]["denominator"]
    _write_spec(tmp_path, body)
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    assert any("a rate expectation needs numerator (events) and denominator" in p
               for p in info.value.problems)


# --- computing at the node ----------------------------------------------------------


ROWS = [
    {"ca_arrest": True, "patient_age": 70, "patient_sex": "male"},
    {"ca_arrest": True, "patient_age": 72, "patient_sex": "male"},
    {"ca_arrest": True, "patient_age": 85, "patient_sex": "female"},
    {"ca_arrest": True, "patient_sex": "female"},  # age unknown
    {"ca_arrest": True, "patient_age": 30},  # sex unknown
    {"ca_arrest": False, "patient_age": 30, "patient_sex": "male"},
    {"patient_age": 30, "patient_sex": "male"},
]


def test_sql_counts_events_and_takes_persons_from_the_population() -> None:
    crude = _compute(_spec(), ROWS)
    assert _cells(crude) == {(): (5, TOTAL)}
    by_both = _compute(_spec(strata=["age_band", "patient_sex"]), ROWS)
    assert _cells(by_both) == {("65-79", "male"): (2, 410), ("80+", "female"): (1, 500),
                               ("unknown", "female"): (1, 0), ("18-44", "unknown"): (1, 0)}
    by_sex = _compute(_spec(strata=["patient_sex"]), ROWS)
    assert _cells(by_sex) == {("female",): (2, 1500), ("male",): (2, 1550),
                              ("unknown",): (1, 0)}


def test_a_crude_rate_without_events_still_has_its_population() -> None:
    assert _cells(_compute(_spec(), [{"ca_arrest": False}])) == {(): (0, TOTAL)}


def test_the_full_grid_gives_every_empty_stratum_its_persons() -> None:
    spec = _spec(strata=["age_band"])
    ctx = Context("NO", 2025, POP)
    grid = full_grid(_compute(spec, ROWS, ctx), spec, ctx)
    assert _cells(grid) == {("0-17",): (0, 210), ("18-44",): (1, 410), ("45-64",): (0, 610),
                            ("65-79",): (2, 810), ("80+",): (1, 1010), ("unknown",): (1, 0)}


def test_a_rate_without_a_population_is_refused() -> None:
    with pytest.raises(PopulationMissing, match="T-RATE is a rate"):
        _compute(_spec(), ROWS, Context("NO", 2025, None))
    with pytest.raises(PopulationMissing):
        RATE.empty_cell(_spec(), {}, Context())


def test_persons_in_sums_what_the_spec_does_not_stratify_on() -> None:
    spec = _spec(strata=["age_band"])
    assert persons_in(spec, {"age_band": "80+"}, POP) == 1010
    assert persons_in(spec, {"age_band": "unknown"}, POP) == 0
    assert persons_in(_spec(), {}, POP) == TOTAL


# --- protection and conformance -----------------------------------------------------


def test_small_event_counts_are_withheld_whole_zero_is_not() -> None:
    spec = _spec(strata=["patient_sex"])
    protected = protect(full_grid(_compute(spec, ROWS * 3), spec, Context("NO", 2025, POP)),
                        spec, 5)
    assert [(c.stratum["patient_sex"], c.numerator, c.denominator, c.suppressed)
            for c in protected.cells] == [
        ("female", 6, 1500, False), ("male", 6, 1550, False), ("unknown", None, None, True)]
    zero = protect(_compute(_spec(), [{"ca_arrest": False}]), _spec(), 5)
    assert (zero.cells[0].numerator, zero.cells[0].denominator) == (0, TOTAL)
    # a small population is public: only events are protected
    few = RATE.protect(spec, Cell(stratum={"patient_sex": "male"}, numerator=5,
                                  denominator=6), 5)
    assert (few.numerator, few.denominator, few.suppressed) == (5, 6, False)


def _result(spec: IndicatorSpec, cells: list[Cell]) -> IndicatorResult:
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version,
                           spec_sha256=spec.sha256, type="rate", strata=list(spec.strata),
                           cells=cells)


def _codes(spec: IndicatorSpec, cell: Cell, threshold: int = 5,
           max_count: int = 1_000_000_000) -> list[str]:
    return [p.code for p in conforms(_result(spec, [cell]), spec, threshold=threshold,
                                     max_count=max_count)]


@pytest.mark.parametrize(("stratum", "fields", "codes"), [
    ("male", {"numerator": 12, "denominator": 1550}, []),
    ("male", {"numerator": 0, "denominator": 1550}, []),
    ("male", {"suppressed": True}, []),
    ("unknown", {"numerator": 7, "denominator": 0}, []),  # events of unknown sex: no persons
    ("male", {"numerator": 3, "denominator": 1550}, ["disclosure_violation"]),
    ("male", {"numerator": 12, "denominator": 10}, ["numerator_exceeds_denominator"]),
    ("male", {"numerator": 12, "denominator": 0}, ["numerator_exceeds_denominator"]),
    ("unknown", {"numerator": 7, "denominator": 40}, ["count_out_of_range"]),
    ("male", {"numerator": 12, "denominator": 2_000_000_000}, ["count_out_of_range"]),
    ("male", {"numerator": 12, "denominator": 1550, "suppressed": True},
     ["suppression_inconsistent"]),
    ("male", {"numerator": 12}, ["suppression_inconsistent"]),
    ("male", {"denominator": 1550}, ["suppression_inconsistent"]),
])
def test_conformance(stratum: str, fields: dict[str, Any], codes: list[str]) -> None:
    spec = _spec(strata=["patient_sex"])
    assert _codes(spec, Cell(stratum={"patient_sex": stratum}, **fields)) == codes


def test_a_rate_cell_carries_no_bins() -> None:
    with pytest.raises(ValueError, match="a rate cell carries numerator"):
        _result(_spec(), [Cell(stratum={}, bins=[])])


# --- merging at the hub ---------------------------------------------------------------


def garwood(k: int) -> tuple[float, float]:
    lo = 0.0 if k == 0 else chi2.ppf(0.025, 2 * k) / 2
    return lo, chi2.ppf(0.975, 2 * k + 2) / 2


def test_two_countries_merge_by_adding_events_and_persons() -> None:
    spec = _spec()
    results = {"NO": _result(spec, [Cell(stratum={}, numerator=2904, denominator=5_500_000)]),
               "SE": _result(spec, [Cell(stratum={}, numerator=5985, denominator=10_500_000)])}
    figures = {f.country: f for f in merge_indicator(results, spec, 2025,
                                                     {"NO": 5, "SE": 5})}
    no = figures["NO"]
    assert no.value == pytest.approx(2904 / 5_500_000 * 100_000)  # 52.8
    lo, hi = garwood(2904)
    assert (no.ci_low, no.ci_high) == (pytest.approx(lo / 5_500_000 * 100_000, rel=1e-6),
                                       pytest.approx(hi / 5_500_000 * 100_000, rel=1e-6))
    pooled = figures["NORDIC"]
    assert (pooled.numerator, pooled.denominator) == (8889, 16_000_000)
    assert pooled.value == pytest.approx(8889 / 16_000_000 * 100_000)  # 55.56
    lo, hi = garwood(8889)
    assert pooled.ci_low == pytest.approx(lo / 16_000_000 * 100_000, rel=1e-6)
    assert pooled.ci_high == pytest.approx(hi / 16_000_000 * 100_000, rel=1e-6)
    assert pooled.countries == ("NO", "SE") and pooled.n_countries == 2
    assert pooled.unit == "per_100k" and not pooled.suppressed


def test_small_counts_per_1000_and_zero_events() -> None:
    spec = _spec(unit="per_1000")
    results = {"IS": _result(spec, [Cell(stratum={}, numerator=7, denominator=39_000)]),
               "US": _result(spec, [Cell(stratum={}, numerator=0, denominator=1000)])}
    figures = {f.country: f for f in merge_indicator(results, spec, 2025)}
    lo, hi = garwood(7)
    assert figures["IS"].value == pytest.approx(7 / 39_000 * 1000)
    assert figures["IS"].ci_low == pytest.approx(lo / 39_000 * 1000, rel=1e-6)
    assert figures["IS"].ci_high == pytest.approx(hi / 39_000 * 1000, rel=1e-6)
    us = figures["US"]
    assert (us.value, us.ci_low) == (0.0, 0.0)
    assert us.ci_high == pytest.approx(chi2.ppf(0.975, 2) / 2 / 1000 * 1000, rel=1e-6)  # 3.69


def test_a_pool_is_withheld_when_its_events_are_small_under_its_threshold() -> None:
    spec = _spec()
    results = {"NO": [Cell(stratum={}, numerator=6, denominator=5_500_000)],
               "IS": [Cell(stratum={}, numerator=0, denominator=390_000)]}
    pool = RATE.merge(spec, results, 2025, Pool("NORDIC", ("NO", "IS"), 11))
    pooled = pool[-1]
    assert pooled.country == "NORDIC" and pooled.suppressed
    assert (pooled.numerator, pooled.denominator, pooled.value) == (None, None, None)
    assert pool[0].value == pytest.approx(6 / 5_500_000 * 100_000)  # NO's own, released


def test_a_withheld_member_is_left_out_of_the_pool_whole() -> None:
    spec = _spec()
    results = {"NO": [Cell(stratum={}, numerator=60, denominator=5_500_000)],
               "IS": [Cell(stratum={}, suppressed=True)]}
    figures = RATE.merge(spec, results, 2025, Pool("NORDIC", ("NO", "IS"), 5))
    own_is, pooled = figures[1], figures[2]
    assert own_is.suppressed and own_is.value is None
    assert (pooled.numerator, pooled.denominator) == (60, 5_500_000)  # not IS's persons
    assert pooled.omitted == ("IS",) and pooled.suppressed


def test_a_stratum_without_persons_has_no_value() -> None:
    spec = _spec(strata=["patient_sex"])
    results = {"NO": [Cell(stratum={"patient_sex": "unknown"}, numerator=9, denominator=0)]}
    [own, pooled] = RATE.merge(spec, results, 2025, Pool("NORDIC", ("NO",), 5))
    assert (own.numerator, own.denominator, own.value) == (9, 0, None)


def test_local_value_and_words() -> None:
    spec = _spec(unit="per_1000")
    assert RATE.local_value(spec, Cell(stratum={}, numerator=30, denominator=2000)) == 15.0
    assert RATE.local_value(spec, Cell(stratum={}, suppressed=True)) is None
    assert RATE.measure_text(_spec(), "per 100 000 inhabitants").startswith(
        "Rate per 100 000 inhabitants")
    assert RATE.describe(spec, {"numerator": 3, "denominator": 40}) == "events 3, persons 40"


# --- the node's population ------------------------------------------------------------


NODE = '[node]\ncountry = "NO"\nyear = 2025\ndata = "d.parquet"\nkey = "NO.pem"\noutbox = "out"\n'
HEADER = "country,year,region,age_band,sex,persons,source\n"


def _node(tmp_path: Path, extra: str = "", country: str = "NO", year: int = 2025) -> Any:
    from node.config import load_node_config

    path = tmp_path / "node.toml"
    path.write_text(NODE.replace('"NO"', f'"{country}"', 1).replace("2025", str(year), 1)
                    + extra, encoding="utf-8")
    return load_node_config(path)


def _population_file(path: Path, country: str = "NO", year: int = 2025) -> Path:
    lines = [f"{country},{year},national,{band},{sex},{n},own figures\n"
             for (band, sex), n in POP.items()]
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


def test_the_node_reads_its_own_population_file(tmp_path: Path) -> None:
    from node.config import node_context

    _population_file(tmp_path / "pop.csv")
    cfg = _node(tmp_path, 'population = "pop.csv"\n')
    assert cfg.population == (tmp_path / "pop.csv").resolve()
    ctx = node_context(cfg)
    assert (ctx.country, ctx.year, ctx.population) == ("NO", 2025, POP)


def test_without_the_key_the_node_takes_the_shipped_reference(tmp_path: Path) -> None:
    from node.config import node_context

    ctx = node_context(_node(tmp_path))
    assert ctx.population == population_by("NO", 2025)
    assert sum(ctx.population.values()) == 5_500_000
    assert _node(tmp_path, 'population = ""\n').population is None


def test_neither_a_file_nor_the_reference_is_an_error_naming_the_key(tmp_path: Path) -> None:
    from node.config import node_context

    with pytest.raises(ValueError, match="node.toml key 'population' is not set") as info:
        node_context(_node(tmp_path, year=2031))
    assert "years available: 2025" in str(info.value)
    _population_file(tmp_path / "pop.csv", country="SE")
    with pytest.raises(ValueError, match="^population: .*no population for NO 2025"):
        node_context(_node(tmp_path, 'population = "pop.csv"\n'))
    (tmp_path / "bad.csv").write_text(HEADER + "NO,2025,national,0-17,female,-1,x\n",
                                      encoding="utf-8")
    with pytest.raises(ValueError, match="^population: .*bad.csv"):
        node_context(_node(tmp_path, 'population = "bad.csv"\n'))


def test_the_demo_population_is_scaled_like_the_synthetic_volume(tmp_path: Path) -> None:
    from emsbench.reference import load_population
    from node.synth.population import volume_fraction, write_scaled_population

    fraction = volume_fraction("NO", 75_000)
    assert fraction == pytest.approx(0.1)
    path = write_scaled_population(tmp_path / "p.csv", "NO", 2025, fraction)
    scaled = population_by("NO", 2025, rows=load_population(path))
    assert sum(scaled.values()) == pytest.approx(550_000, abs=5)


# --- specs test and specs run -----------------------------------------------------------


def test_specs_run_divides_by_the_population_given(
        write_missions: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from emsbench.cli import main

    specs = tmp_path / "specs"
    specs.mkdir()
    _write_spec(specs, _body(id="OHCA-INC"))
    base = {"call_received": "2025-06-01 10:00:00", "urgency_level": "U1",
            "service_type": "emergency", "ca_arrest": True, "ca_resus_attempted": True}
    data = write_missions([base, base, base | {"ca_arrest": False}], "m.parquet")
    run = ["specs", "run", "OHCA-INC", "--data", str(data), "--dir", str(specs)]
    assert main(run) == 2
    assert "--country CC (the shipped reference data) or --population FILE" in \
        capsys.readouterr().err
    pop = _population_file(tmp_path / "pop.csv")
    assert main([*run, "--population", str(pop)]) == 0  # its one country: NO
    out = capsys.readouterr().out.splitlines()
    assert out[-2].split() == ["stratum", "events", "persons", "per", "100,000"]
    assert out[-1].split() == ["(all)", "2", str(TOTAL), f"{2 / TOTAL * 100_000:.1f}"]
    assert main([*run, "--country", "IS"]) == 0  # the shipped reference
    assert capsys.readouterr().out.splitlines()[-1].split()[2] == "390000"
    assert main([*run, "--country", "SE", "--population", str(pop)]) == 2
    assert "no population for SE 2025" in capsys.readouterr().err
    assert main(["specs", "test", "--dir", str(specs)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 cases passed"
