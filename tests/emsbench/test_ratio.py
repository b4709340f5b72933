"""The observed/expected ratio kind: spec rules, cells and their full grid, protection,
conformance, the hub's indirect standardisation, and the acceptance case: two synthetic
countries with the same survival model and different case mix have different crude
survival and an O/E ratio near 1, equal to a direct computation on their pooled rows."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from scipy.stats import chi2

from emsbench.conformance import conforms, grid_problems
from emsbench.engine import compute
from emsbench.figure import Figure
from emsbench.kinds import Pool, kind_of
from emsbench.kinds.ratio import MIN_EXPECTED, RATIO
from emsbench.sandbox import open_sandbox
from emsbench.spec_cases import loader
from emsbench.specs import (
    ExpectedCell,
    IndicatorSpec,
    SpecTestCase,
    default_spec_dir,
    key_values,
    load_specs,
    spec_grid,
)
from emsbench.stats import wilson_interval
from emsbench.wire import Cell, IndicatorResult
from hub.catalogues import Catalogues
from hub.history import History, Year
from hub.ledger import PeriodView
from hub.report import render_report
from node.disclosure import full_grid, protect
from node.synth.casemix import MIXES, cohort

THRESHOLD = 5
_CASE = SpecTestCase(name="t", rows=[], expect=[ExpectedCell()])


@cache
def surv_oe() -> IndicatorSpec:
    return load_specs(only=["SURV-OE"])[0]


def ratio_spec(**kw: Any) -> IndicatorSpec:
    base: dict[str, Any] = dict(
        id="T-OE", version="1.0.0", title="Survival, adjusted",
        description="Observed over expected survivors.", unit="ratio",
        direction="higher_is_better", type="ratio", population="true",
        numerator="ca_survived", adjust_for={"shockable": "ca_first_rhythm = 'vf'"},
        strata=["ca_survival_endpoint"], tests=[_CASE])
    return IndicatorSpec.model_validate(base | kw)


def exact_interval(o: int, e: float) -> tuple[float, float]:
    """The exact Poisson interval of O over a fixed E, from the chi-square quantiles."""
    lo = 0.0 if o == 0 else chi2.ppf(0.025, 2 * o) / 2
    return lo / e, chi2.ppf(0.975, 2 * o + 2) / 2 / e


# --- the spec -----------------------------------------------------------------------


def test_surv_oe_cells_carry_endpoint_and_case_mix() -> None:
    spec = surv_oe()
    assert kind_of(spec) is RATIO
    assert spec.cell_strata == ["ca_survival_endpoint", "age_band", "sex", "witnessed",
                                "shockable"]
    assert key_values(spec, "age_band") == ("0-17", "18-44", "45-64", "65-79", "80+",
                                            "unknown")
    assert key_values(spec, "sex") == ("female", "male", "unknown")
    assert key_values(spec, "witnessed") == ("true", "false", "unknown")
    assert len(spec_grid(spec)) == 3 * 6 * 3 * 3 * 3


@pytest.mark.parametrize(("change", "message"), [
    ({"adjust_for": None}, "needs 'adjust_for'"),
    ({"adjust_for": {}}, "names no case-mix stratum"),
    ({"adjust_for": {f"a{i}": "patient_sex" for i in range(6)}}, "at most 5"),
    ({"adjust_for": {"Age": "age_band"}}, "lower-case identifier"),
    ({"adjust_for": {"ca_survival_endpoint": "age_band"}}, "is also a stratum"),
    ({"adjust_for": {"end": "ca_survival_endpoint"}}, "is a reporting stratum"),
    ({"adjust_for": {"age": "patient_age"}}, "has no closed code set"),
    ({"adjust_for": {"age": "patient_age + 1"}}, "not a boolean"),
    ({"adjust_for": {"patient_sex": "age_band"}}, "name it after what it holds"),
    ({"unit": "percent"}, "published in ratio"),
    ({"measure": "1"}, "takes no 'measure'"),
])
def test_spec_rules(change: dict[str, Any], message: str) -> None:
    problems = [m for _, m in RATIO.spec_problems(ratio_spec(**change))]
    assert any(message in m for m in problems), problems


def test_a_valid_spec_has_no_problem() -> None:
    assert RATIO.spec_problems(surv_oe()) == []
    assert RATIO.spec_problems(ratio_spec(adjust_for={
        "age_band": "age_band", "old": "patient_age >= 80", "rhythm": "ca_first_rhythm"})) == []


def test_a_too_large_grid_is_refused() -> None:
    spec = ratio_spec(strata=["service_type", "ca_survival_endpoint"], adjust_for={
        "a": "stroke_scale_type", "b": "ca_presumed_cause", "c": "call_month",
        "d": "ca_witnessed_by"})
    assert any("at most 10,000" in m for _, m in RATIO.spec_problems(spec))


def test_packaged_spec_validates_and_its_cases_pass() -> None:
    from emsbench.specs_cli import case_result

    spec = surv_oe()
    assert (default_spec_dir() / "SURV-OE.yaml").exists()
    for case in spec.tests:
        assert case_result(spec, case) == [], case.name


# --- the node: cells, full grid, protection, conformance ------------------------------


def _rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    from emsbench.spec_cases import rows_to_table

    return rows_to_table(rows, derived=True)


def node_result(table: pa.Table, spec: IndicatorSpec, threshold: int = THRESHOLD
                ) -> IndicatorResult:
    """What a node sends: the spec computed in a sandbox, full grid, protected."""
    con = open_sandbox(loader(table))
    try:
        return protect(full_grid(compute(con, spec), spec), spec, threshold)
    finally:
        con.close()


def test_node_sends_the_full_grid_and_it_conforms() -> None:
    spec = surv_oe()
    row = {"ca_arrest": True, "ca_resus_attempted": True, "patient_age": 70,
           "patient_sex": "male", "ca_witnessed_by": "bystander", "ca_first_rhythm": "vf",
           "ca_survival_endpoint": "30d"}
    rows = [row | {"ca_survived": i < 6} for i in range(20)]
    rows += [row | {"ca_survived": i < 2, "patient_age": 85} for i in range(30)]
    rows += [row | {"ca_survived": True, "patient_sex": "female"} for _ in range(3)]
    result = node_result(_rows_table(rows), spec)
    assert result.strata == spec.cell_strata
    assert len(result.cells) == len(spec_grid(spec))
    assert conforms(result, spec, threshold=THRESHOLD) == []
    assert grid_problems(result, spec) == []
    by = {tuple(c.stratum.values()): c for c in result.cells}
    released = by[("30d", "65-79", "male", "true", "true")]
    assert (released.numerator, released.denominator, released.suppressed) == (6, 20, False)
    few_events = by[("30d", "80+", "male", "true", "true")]  # 2 of 30: size kept
    assert (few_events.numerator, few_events.denominator, few_events.suppressed) == \
        (None, 30, True)
    small = by[("30d", "65-79", "female", "true", "true")]  # 3 cases: withheld whole
    assert (small.numerator, small.denominator, small.suppressed) == (None, None, True)
    empty = by[("discharge", "65-79", "male", "true", "true")]
    assert (empty.numerator, empty.denominator, empty.suppressed) == (0, 0, False)


def _result(spec: IndicatorSpec, cells: list[Cell]) -> IndicatorResult:
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type="ratio", strata=spec.cell_strata, cells=cells)


def _cell(shockable: str, num: int | None, den: int | None, suppressed: bool = False,
          endpoint: str = "30d") -> Cell:
    return Cell(stratum={"ca_survival_endpoint": endpoint, "shockable": shockable},
                numerator=num, denominator=den, suppressed=suppressed)


@pytest.mark.parametrize(("cell", "code"), [
    (_cell("true", 5, 20), None),
    (_cell("true", None, 20, True), None),
    (_cell("true", None, None, True), None),
    (_cell("true", 2, 20), "disclosure_violation"),
    (_cell("true", None, 3, True), "disclosure_violation"),
    (_cell("true", None, 0, True), "suppression_inconsistent"),
    (_cell("true", None, 20), "suppression_inconsistent"),
    (_cell("true", 5, None, True), "suppression_inconsistent"),
    (_cell("true", 21, 20), "numerator_exceeds_denominator"),
    (_cell("maybe", 5, 20), "unknown_stratum_value"),
])
def test_conformance_of_ratio_cells(cell: Cell, code: str | None) -> None:
    spec = ratio_spec()
    codes = [p.code for p in conforms(_result(spec, [cell]), spec, threshold=THRESHOLD)]
    assert codes == ([code] if code else [])


def test_a_result_without_the_case_mix_keys_has_the_wrong_shape() -> None:
    spec = ratio_spec()
    result = IndicatorResult(spec_id=spec.id, spec_version=spec.version,
                             spec_sha256=spec.sha256, type="ratio", strata=spec.strata,
                             cells=[Cell(stratum={"ca_survival_endpoint": "30d"},
                                         numerator=5, denominator=20)])
    assert [p.code for p in conforms(result, spec, threshold=THRESHOLD)] == ["wrong_shape"]


def test_wire_refuses_bins_in_a_ratio_cell() -> None:
    spec = ratio_spec()
    with pytest.raises(ValueError, match="numerator and denominator only"):
        _result(spec, [Cell(stratum={"ca_survival_endpoint": "30d", "shockable": "true"},
                            bins=[])])


# --- the hub: indirect standardisation -------------------------------------------------


def by_country(figures: list[Figure], stratum: str = "ca_survival_endpoint=30d"
               ) -> dict[str, Figure]:
    return {f.country: f for f in figures if f.stratum == stratum}


def test_merge_by_hand() -> None:
    spec = ratio_spec()
    a = [_cell("true", 40, 100), _cell("false", 10, 200), _cell("unknown", 0, 0)]
    b = [_cell("true", 20, 100), _cell("false", 30, 300), _cell("unknown", None, 50, True)]
    figures = RATIO.merge(spec, {"NO": a, "SE": b}, 2025, Pool("NORDIC", ("NO", "SE"), 5))
    got = by_country(figures)
    p_true, p_false = 60 / 200, 40 / 500
    e_no, e_se = 100 * p_true + 200 * p_false, 100 * p_true + 300 * p_false
    no, se, nordic = got["NO"], got["SE"], got["NORDIC"]
    assert (no.numerator, no.denominator) == (50, 300)
    assert no.expected == pytest.approx(e_no)
    assert no.value == pytest.approx(50 / e_no)
    assert (no.ci_low, no.ci_high) == pytest.approx(exact_interval(50, e_no))
    assert (no.coverage, no.suppressed, no.omitted) == (1.0, False, ())
    assert se.value == pytest.approx(50 / e_se)
    assert se.coverage == pytest.approx(400 / 450)
    assert (se.suppressed, se.omitted) == (True, ("SE",))
    assert nordic.value == pytest.approx(100 / (e_no + e_se)) == pytest.approx(1.0)
    assert nordic.countries == ("NO", "SE") and nordic.omitted == ("SE",)
    assert (nordic.numerator, nordic.denominator) == (100, 700)
    assert no.decimals == 2 and no.unit == "ratio"


def test_endpoints_are_never_pooled() -> None:
    spec = ratio_spec()
    nordic = [_cell("true", 40, 100), _cell("false", 10, 200)]
    us = [_cell("true", 10, 100, endpoint="discharge"),
          _cell("false", 50, 200, endpoint="discharge")]
    figures = RATIO.merge(spec, {"NO": nordic, "US": us}, 2025, Pool("NORDIC", ("NO",), 5))
    thirty, discharge = by_country(figures), by_country(
        figures, "ca_survival_endpoint=discharge")
    # each endpoint has its own reference: alone in it, a country is exactly as expected
    assert thirty["NO"].value == pytest.approx(1.0)
    assert discharge["US"].value == pytest.approx(1.0)
    assert thirty["US"].denominator == 0 and thirty["US"].value is None
    assert discharge["NORDIC"].denominator == 0


def test_too_few_expected_events_are_withheld() -> None:
    spec = ratio_spec()
    small = [_cell("true", 0, 10), _cell("false", 0, 10)]
    big = [_cell("true", 30, 100), _cell("false", 20, 200)]
    # threshold 1: nothing is withheld, every cell counts
    figures = RATIO.merge(spec, {"NO": small, "SE": big}, 2025,
                          Pool("NORDIC", ("NO", "SE"), 1))
    no = by_country(figures)["NO"]
    assert no.expected is not None and no.expected < MIN_EXPECTED
    assert (no.value, no.suppressed, no.numerator, no.denominator) == (None, True, 0, 20)
    # threshold 5: cells with fewer than 2.5 × 4 expected events do not count at all
    figures = RATIO.merge(spec, {"NO": small, "SE": big}, 2025,
                          Pool("NORDIC", ("NO", "SE"), 5))
    no, se = by_country(figures)["NO"], by_country(figures)["SE"]
    assert (no.value, no.suppressed, no.numerator, no.denominator, no.coverage) == \
        (None, True, 0, 0, 0.0)
    assert se.value == pytest.approx(1.0) and se.coverage == 1.0


def test_small_cells_do_not_count_so_withholding_cannot_bias_the_ratio() -> None:
    # a small country's released cells: those that happened to have no event (the ones
    # with 1 to 4 were withheld, sizes kept); the large one's cells all count
    spec = ratio_spec()
    small = [_cell("true", 0, 8), _cell("false", None, 30, True)]
    large = [_cell("true", 300, 1000), _cell("false", 100, 2000)]
    figures = by_country(RATIO.merge(spec, {"IS": small, "SE": large}, 2025,
                                     Pool("NORDIC", ("IS", "SE"), 5)))
    assert figures["IS"].denominator == 0 and figures["IS"].coverage == 0.0
    assert figures["IS"].omitted == ("IS",) and figures["IS"].value is None
    # had the empty cell counted, Iceland would show O/E = 0: an artefact of withholding
    assert figures["SE"].value == pytest.approx(1.0)


def test_a_pool_with_small_counts_under_the_strictest_threshold_is_withheld() -> None:
    spec = ratio_spec()
    # NO (threshold 3) released 3 events, DK (5) none: 3 is small under the pool's 5
    figures = RATIO.merge(spec, {"NO": [_cell("true", 3, 80)], "DK": [_cell("true", 0, 80)],
                                 "US": [_cell("true", 60, 200)]},
                          2025, Pool("NORDIC", ("NO", "DK"), 5))
    got = by_country(figures)
    assert got["NO"].value is not None and got["NO"].numerator == 3
    nordic = got["NORDIC"]
    assert (nordic.numerator, nordic.value, nordic.suppressed) == (None, None, True)


# --- acceptance: same quality, different case mix ---------------------------------------

ARRESTS = 30_000


@cache
def two_countries() -> dict[str, pa.Table]:
    """Sweden with the standard case mix and Norway with a worse one, survival from the
    same model: the same quality of care."""
    return {"NO": cohort(MIXES["worse"], ARRESTS, seed=11, prefix="NO"),
            "SE": cohort(MIXES["standard"], ARRESTS, seed=12, prefix="SE")}


@cache
def merged(threshold: int) -> dict[str, Figure]:
    spec = surv_oe()
    results = {c: node_result(t, spec, threshold) for c, t in two_countries().items()}
    for result in results.values():
        assert conforms(result, spec, threshold=threshold) == []
    figures = RATIO.merge(spec, {c: r.cells for c, r in results.items()}, 2025,
                          Pool("NORDIC", ("NO", "SE"), threshold))
    return by_country(figures)


def direct_oe() -> dict[str, tuple[int, int, float]]:
    """(O, cases, E) per country straight from the concatenated rows: pooled survival per
    case-mix stratum, group-by in DuckDB."""
    con = duckdb.connect()
    for country, table in two_countries().items():
        con.register(f"t_{country}", table)
    con.execute("""
        CREATE TABLE rows AS
        SELECT c, ca_survived::INT AS died_or_lived,
               coalesce(age_band, 'unknown') AS age, coalesce(patient_sex, 'unknown') AS sex,
               coalesce(CAST(ca_witnessed_by <> 'unwitnessed' AS VARCHAR), 'unknown') AS w,
               CASE WHEN ca_first_rhythm IN ('vf', 'vt', 'shockable_aed') THEN 'true'
                    WHEN ca_first_rhythm IN ('pea', 'asystole', 'non_shockable_aed')
                    THEN 'false' ELSE 'unknown' END AS s
        FROM (SELECT 'NO' AS c, * FROM t_NO UNION ALL SELECT 'SE' AS c, * FROM t_SE)""")
    out = con.execute("""
        WITH rates AS (SELECT age, sex, w, s, avg(died_or_lived) AS p FROM rows
                       GROUP BY ALL)
        SELECT c, sum(died_or_lived)::INT, count(*)::INT, sum(p)
        FROM rows JOIN rates USING (age, sex, w, s) GROUP BY c""").fetchall()
    return {c: (o, n, e) for c, o, n, e in out}


def test_crude_survival_differs_but_adjusted_survival_does_not() -> None:
    got = merged(THRESHOLD)
    no, se = got["NO"], got["SE"]
    assert no.numerator is not None and no.denominator and se.numerator is not None \
        and se.denominator
    lo_no, hi_no = wilson_interval(no.numerator, no.denominator)
    lo_se, hi_se = wilson_interval(se.numerator, se.denominator)
    assert hi_no < lo_se  # the worse case mix survives less often, clearly
    assert se.numerator / se.denominator - no.numerator / no.denominator > 0.03
    for f in (no, se, got["NORDIC"]):
        assert f.value is not None and f.ci_low is not None and f.ci_high is not None
        assert f.ci_low <= 1.0 <= f.ci_high, f
        assert abs(f.value - 1.0) < 0.1
        assert f.coverage is not None and f.coverage > 0.9


def test_hub_ratio_equals_a_direct_computation_on_the_pooled_rows() -> None:
    # with nothing withheld (threshold 1) the hub's O/E is the textbook one
    got, direct = merged(1), direct_oe()
    for country in ("NO", "SE"):
        o, n, e = direct[country]
        f = got[country]
        assert (f.numerator, f.denominator, f.coverage) == (o, n, 1.0)
        assert f.expected == pytest.approx(e, rel=1e-9)
        assert f.value == pytest.approx(o / e, rel=1e-9)
        assert (f.ci_low, f.ci_high) == pytest.approx(exact_interval(o, e), rel=1e-6)
    nordic = got["NORDIC"]
    assert nordic.value == pytest.approx(1.0)  # the two are the whole reference
    # disclosure control leaves a little out and moves the ratio little
    protected = merged(THRESHOLD)
    for country in ("NO", "SE"):
        o, _, e = direct[country]
        value = protected[country].value
        assert value is not None and math.isclose(value, o / e, rel_tol=0.03)


def test_report_shows_the_adjusted_comparison(tmp_path: Path) -> None:
    figures = list(merged(THRESHOLD).values())
    spec = surv_oe()
    html = render_report(History(Catalogues.of([spec]), [Year(PeriodView(2025), figures)]), 2025)
    assert 'class="ratio"' in html
    assert "Expected from the pooled rates of Norway, Sweden" in html
    for country in ("NO", "SE"):
        f = merged(THRESHOLD)[country]
        assert f.value is not None and f.numerator is not None and f.denominator
        assert f"{f.value:.2f}" in html
        assert f"{100 * f.numerator / f.denominator:.1f} %" in html
    assert "Indirect standardisation" in html and "stroke-dasharray" in html
    norsk = render_report(History(Catalogues.of([spec]), [Year(PeriodView(2025), figures)]),
                          2025, "nb")
    assert "Forventet ut fra de samlede ratene for Norge, Sverige" in norsk  # names translated


def test_casemix_generator_keeps_other_columns(tmp_path: Path) -> None:
    from node.synth.generator import generate

    plain, worse = tmp_path / "plain.parquet", tmp_path / "worse.parquet"
    generate("SE", 2025, plain, rows=60_000)
    generate("SE", 2025, worse, rows=60_000, case_mix="worse")
    con = duckdb.connect()
    same = con.execute(f"""
        SELECT count(*) FILTER (WHERE a.call_received IS DISTINCT FROM b.call_received
                                   OR a.urgency_level IS DISTINCT FROM b.urgency_level
                                   OR a.ca_resus_attempted IS DISTINCT FROM b.ca_resus_attempted
                                   OR (NOT coalesce(a.ca_arrest, false)
                                       AND a.patient_age IS DISTINCT FROM b.patient_age)),
               count(*) FILTER (WHERE b.ca_survived AND NOT b.ca_rosc_arrival),
               count(*) FILTER (WHERE a.ca_resus_attempted
                                   AND a.ca_witnessed_by IS DISTINCT FROM b.ca_witnessed_by)
        FROM '{plain}' a JOIN '{worse}' b USING (mission_id)""").fetchone()
    assert same is not None
    assert same[0] == 0 and same[1] == 0 and same[2] > 0
    with pytest.raises(ValueError, match="unknown case mix"):
        generate("SE", 2025, tmp_path / "x.parquet", rows=10, case_mix="bad")


def test_cohort_age_bands_are_the_models() -> None:
    from emsbench.model import age_band

    table = cohort("standard", 2_000, seed=3)
    ages, band_codes = table["patient_age"].to_pylist(), table["age_band"].to_pylist()
    assert band_codes == [age_band(a) for a in ages]
