"""Merging country submissions: pooling, suppression, missing strata, conformance, CSV.

Every result built here conforms to its spec (strata from the common model's code sets, no
released count from 1 to threshold − 1, numerator ≤ denominator), because the merge runs
``emsbench.conformance`` on each result and refuses anything that does not conform.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emsbench.specs import Bins, ExpectedCell, IndicatorSpec, SpecTestCase, catalogue_sha256
from emsbench.stats import (
    histogram_quantile,
    newcombe_difference,
    quantile_rank_interval,
    wilson_interval,
)
from emsbench.wire import Cell, DataQuality, IndicatorResult, Period, Submission
from hub.export import COLUMNS, write_csv
from hub.merge import Figure, SpecMismatchError, data_quality_rows, merge

YEAR = 2025
THRESHOLD = 5
_CASE = SpecTestCase(name="t", rows=[], expect=[ExpectedCell()])


def share_spec() -> IndicatorSpec:
    return IndicatorSpec(id="CA-ROSC", version="1.0.0", title="ROSC after cardiac arrest",
                         description="Share of cardiac arrests with return of circulation.",
                         unit="percent", direction="higher_is_better", type="share",
                         population="true", numerator="true", strata=["urgency_level"],
                         tests=[_CASE])


def dist_spec() -> IndicatorSpec:
    return IndicatorSpec(id="RT-P90", version="2.1.0", title="Response time, 90th percentile",
                         description="Minutes from call to first unit on scene.",
                         unit="minutes", direction="lower_is_better", type="distribution",
                         population="true", measure="1", bins=Bins(start=0, width=2, count=4),
                         quantile=0.5, tests=[_CASE])


CATALOGUE = catalogue_sha256([share_spec(), dist_spec()])


def share(spec: IndicatorSpec, cells: list[Cell]) -> IndicatorResult:
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type="share", strata=list(spec.strata), cells=cells)


def dist(spec: IndicatorSpec, runs: list[tuple[int, int, int]] | None,
         quantiles: dict[str, float] | None = None) -> IndicatorResult:
    """A distribution result with one cell: bin runs, or None for a withheld cell, and the
    node's exact quantiles if any."""
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type="distribution", strata=[],
                           cells=[Cell(bins=runs, suppressed=runs is None,
                                       quantiles=quantiles)])


def single(counts: list[int]) -> list[tuple[int, int, int]]:
    """Uncoarsened runs: one per non-empty bin."""
    return [(i, i, c) for i, c in enumerate(counts) if c]


def sub(country: str, results: list[IndicatorResult], year: int = YEAR) -> Submission:
    return Submission(submission_id=f"{country}-{year}-0001", country=country,
                      period=Period(year=year), catalogue=CATALOGUE, revision=1,
                      created_at=datetime(2026, 2, 1, tzinfo=UTC),
                      software_version="0.1.0", model_version="1",
                      disclosure_threshold=THRESHOLD,
                      data_quality=DataQuality(rows_read=1000, rows_accepted=990,
                                               rejected_by_reason={"missing_time": 10}),
                      indicators=results)


def cell(level: str, num: int | None, den: int | None) -> Cell:
    return Cell(stratum={"urgency_level": level}, numerator=num, denominator=den,
                suppressed=num is None)


# Norway's response-time histogram, uncoarsened (every bin holds at least the threshold),
# and its exact median as Norway's node computed it from the raw values (type 7: between the
# 15th and 16th of 30 values, both in bin 1, [2, 4) minutes).
NO_TIMES = [6, 12, 6, 6, 0]
NO_MEDIAN = 3.1


@pytest.fixture
def figures() -> list[Figure]:
    s, d = share_spec(), dist_spec()
    subs = [
        sub("NO", [share(s, [cell("U1", 30, 100), cell("U2", 10, 50)]),
                   dist(d, single(NO_TIMES), {"0.5": NO_MEDIAN})]),
        # Sweden's histogram was coarsened by its node into two runs of two bins each.
        sub("SE", [share(s, [cell("U1", 45, 150), cell("U2", None, None)]),
                   dist(d, [(0, 1, 6), (2, 3, 6)])]),
        sub("US", [share(s, [cell("U1", 500, 1000), cell("U3", 7, 20)]),
                   dist(d, single([0, 0, 5, 10, 90]))]),
    ]
    return merge(subs, [s, d], YEAR)


def pick(figs: list[Figure], ind: str, country: str, stratum: str = "") -> Figure:
    [f] = [f for f in figs if (f.indicator_id, f.country, f.stratum) == (ind, country, stratum)]
    return f


def test_nordic_pool_is_the_sum_of_nordic_counts_and_excludes_us(figures: list[Figure]) -> None:
    a = pick(figures, "CA-ROSC", "NORDIC", "urgency_level=U1")
    assert (a.numerator, a.denominator) == (30 + 45, 100 + 150)
    assert a.value == pytest.approx(100 * 75 / 250)
    lo, hi = wilson_interval(75, 250)
    assert (a.ci_low, a.ci_high) == (pytest.approx(100 * lo), pytest.approx(100 * hi))
    assert a.n_countries == 2 and not a.suppressed
    # the US stratum U3 exists for NORDIC too, with nothing in it
    c = pick(figures, "CA-ROSC", "NORDIC", "urgency_level=U3")
    assert (c.numerator, c.denominator, c.value, c.n_countries) == (0, 0, None, 0)


def test_country_figures_keep_their_own_counts(figures: list[Figure]) -> None:
    us = pick(figures, "CA-ROSC", "US", "urgency_level=U1")
    assert (us.numerator, us.denominator, us.value) == (500, 1000, pytest.approx(50.0))
    assert us.unit == "percent" and us.spec_version == "1.0.0" and us.year == YEAR


def test_suppressed_share_cell(figures: list[Figure]) -> None:
    se = pick(figures, "CA-ROSC", "SE", "urgency_level=U2")
    assert (se.numerator, se.denominator, se.value, se.ci_low) == (None, None, None, None)
    assert se.suppressed
    # The pool carries on with Norway's released pair only, and says something is missing.
    pooled = pick(figures, "CA-ROSC", "NORDIC", "urgency_level=U2")
    assert (pooled.numerator, pooled.denominator) == (10, 50)
    assert pooled.suppressed and pooled.n_countries == 1


def test_missing_stratum_gives_zero_counts_not_suppressed(figures: list[Figure]) -> None:
    no_u3 = pick(figures, "CA-ROSC", "NO", "urgency_level=U3")
    assert (no_u3.numerator, no_u3.denominator, no_u3.value, no_u3.suppressed) == (
        0, 0, None, False)
    us_u2 = pick(figures, "CA-ROSC", "US", "urgency_level=U2")
    assert (us_u2.denominator, us_u2.suppressed) == (0, False)
    strata = {f.stratum for f in figures if f.indicator_id == "CA-ROSC"}
    countries = {f.country for f in figures if f.indicator_id == "CA-ROSC"}
    assert strata == {"urgency_level=U1", "urgency_level=U2", "urgency_level=U3"}
    assert countries == {"NO", "SE", "US", "NORDIC"}
    assert len([f for f in figures if f.indicator_id == "CA-ROSC"]) == 3 * 4


def test_distribution_pool_adds_released_bins(figures: list[Figure]) -> None:
    pooled = pick(figures, "RT-P90", "NORDIC")
    # NO [6,12,6,6,0] + SE runs spread evenly [3,3,3,3,0] = [9,15,9,9,0]; n = 42; the type-7
    # median sits at rank (42 − 1)·0.5 + ½ = 21 of the pooled histogram, reached in bin 1
    # (cumulative 9 before it): 2 + (21 − 9)/15 · 2 = 3.6 minutes.
    assert pooled.denominator == 42 and pooled.numerator is None
    assert pooled.value == pytest.approx(3.6) and pooled.method == "histogram"
    assert not pooled.suppressed and pooled.n_countries == 2
    assert None not in (pooled.value, pooled.ci_low, pooled.ci_high)
    assert pooled.ci_low <= pooled.value <= pooled.ci_high  # type: ignore[operator]
    se = pick(figures, "RT-P90", "SE")  # no exact value sent: read off its own histogram
    assert not se.suppressed and se.denominator == 12 and se.method == "histogram"
    assert se.value == pytest.approx(histogram_quantile([3, 3, 3, 3, 0], 0, 2, 0.5))
    # the US median falls in the open last bin: its lower edge, 8 minutes
    assert pick(figures, "RT-P90", "US").value == 8.0


def test_a_country_figure_is_its_nodes_exact_value(figures: list[Figure]) -> None:
    """Issue finding: a country's P90 was 0.58 min off its exact value because the hub read
    it off a coarsened run. A country's figure is now the value its node computed from the
    raw values; only its interval comes from the histogram."""
    no = pick(figures, "RT-P90", "NO")
    assert (no.value, no.method, no.denominator) == (NO_MEDIAN, "exact", 30)
    # printed to the second (0.01 min), not to the bins' 2 minutes
    assert no.decimals == 2 and no.rounded(no.value) == "3.10"
    pooled = pick(figures, "RT-P90", "NORDIC")
    assert pooled.decimals == 0 and pooled.rounded(pooled.value) == "4"


def test_intervals_are_exact_order_statistic_ranks_widened_to_the_runs(
        figures: list[Figure]) -> None:
    """The exact binomial interval for the median of n is [X(l), X(u)] with (l, u) =
    quantile_rank_interval(n, 0.5); the hub widens it to the lower edge of the bin holding
    X(l) and the upper edge of the bin holding X(u), or of the run where bins were joined."""
    assert quantile_rank_interval(30, 0.5) == (10, 21)
    no = pick(figures, "RT-P90", "NO")  # X(10) in bin 1 [2, 4), X(21) in bin 2 [4, 6)
    assert (no.ci_low, no.ci_high) == (2.0, 6.0)
    assert quantile_rank_interval(12, 0.5) == (3, 10)
    se = pick(figures, "RT-P90", "SE")  # X(3) in run [0, 4), X(10) in run [4, 8)
    assert (se.ci_low, se.ci_high) == (0.0, 8.0)
    # Pooled, n = 42, ranks 15 and 28: at most 6 + 6 cases lie below 2 min (Norway's bin 0
    # and Sweden's run [0, 4)), so X(15) ≥ 2; at least 6 + 12 + 6 + 6 = 30 lie below 6 min,
    # so X(28) < 6.
    assert quantile_rank_interval(42, 0.5) == (15, 28)
    pooled = pick(figures, "RT-P90", "NORDIC")
    assert (pooled.ci_low, pooled.ci_high) == (2.0, 6.0)  # never narrower than a bin


def test_withheld_distribution_cell_flags_the_pool() -> None:
    d = dist_spec()
    figs = merge([sub("NO", [dist(d, single(NO_TIMES))]), sub("IS", [dist(d, None)])],
                 [d], YEAR)
    iceland, pooled = pick(figs, "RT-P90", "IS"), pick(figs, "RT-P90", "NORDIC")
    assert iceland.suppressed and iceland.value is None and iceland.denominator == 0
    assert pooled.suppressed and pooled.denominator == sum(NO_TIMES)
    assert pooled.n_countries == 1


def test_order_is_indicator_stratum_country(figures: list[Figure]) -> None:
    rosc = [(f.stratum, f.country) for f in figures if f.indicator_id == "CA-ROSC"]
    assert rosc[:4] == [("urgency_level=U1", c) for c in ("NO", "SE", "NORDIC", "US")]
    assert [f.indicator_id for f in figures] == sorted(
        (f.indicator_id for f in figures), key=["CA-ROSC", "RT-P90"].index)


def test_no_nordic_figure_without_nordic_submissions() -> None:
    s = share_spec()
    figs = merge([sub("US", [share(s, [cell("U1", 10, 20)])])], [s], YEAR)
    assert {f.country for f in figs} == {"US"}


def test_spec_hash_mismatch_is_refused() -> None:
    s = share_spec()
    other = s.model_copy(update={"version": "1.0.1"})  # same id, another definition
    with pytest.raises(SpecMismatchError, match=r"spec_mismatch: .*CA-ROSC.*1\.0\.0.*1\.0\.1"):
        merge([sub("NO", [share(s, [cell("U1", 10, 20)])])], [other], YEAR)


def _bad(result: IndicatorResult, code: str, name: str) -> object:
    return pytest.param(result, code, id=name)


@pytest.mark.parametrize(("result", "code"), [
    _bad(share(share_spec(), [cell("U1", 30, 20)]), "numerator_exceeds_denominator",
         "numerator>denominator"),
    _bad(share(share_spec(), [cell("U1", 3, 50)]), "disclosure_violation", "small-numerator"),
    _bad(share(share_spec(), [cell("U1", 47, 50)]), "disclosure_violation",
         "small-complement"),
    _bad(share(share_spec(), [cell("U9", 10, 20)]), "unknown_stratum_value", "unknown-code"),
    _bad(share(share_spec(), [cell("U1", 10, 20), cell("U1", 10, 20)]), "duplicate_stratum",
         "duplicate-stratum"),
    _bad(share(share_spec(), [Cell(stratum={"urgency_level": "U1"}, numerator=10,
                                   suppressed=True)]), "suppression_inconsistent",
         "half-withheld"),
    _bad(dist(dist_spec(), [(0, 1, 6), (1, 2, 6)]), "invalid_bins", "overlapping-runs"),
    _bad(dist(dist_spec(), [(0, 5, 6)]), "invalid_bins", "run-beyond-last-bin"),
    _bad(dist(dist_spec(), single([6, 2, 6, 6, 0])), "disclosure_violation", "small-bin"),
    _bad(dist(dist_spec(), single(NO_TIMES), {"0.9": 5.0}), "invalid_quantiles",
         "quantile-the-spec-does-not-define"),
    _bad(dist(dist_spec(), single(NO_TIMES), {"0.5": 7.5}), "invalid_quantiles",
         "median-outside-its-bin"),
    _bad(dist(dist_spec(), [], {"0.5": 3.0}), "invalid_quantiles", "quantile-of-no-case"),
    _bad(dist(dist_spec(), None, {"0.5": 3.0}), "suppression_inconsistent",
         "quantile-of-a-withheld-cell"),
])
def test_non_conforming_result_is_refused_naming_the_problem(result: IndicatorResult,
                                                             code: str) -> None:
    spec = share_spec() if result.type == "share" else dist_spec()
    good = sub("SE", [share(share_spec(), [cell("U1", 45, 150)]), dist(dist_spec(),
                                                                        single(NO_TIMES))])
    with pytest.raises(SpecMismatchError, match=rf"NO submission NO-{YEAR}-0001: {code}: "):
        merge([good, sub("NO", [result])], [spec], YEAR)


def test_a_result_for_a_strata_column_outside_the_model_is_refused() -> None:
    made_up = share_spec().model_copy(update={"strata": ["urgency"]})
    result = share(made_up, [Cell(stratum={"urgency": "A"}, numerator=10, denominator=20)])
    with pytest.raises(SpecMismatchError, match="unknown_stratum_value: .*urgency"):
        merge([sub("NO", [result])], [made_up], YEAR)


def test_indicators_without_a_hub_spec_are_ignored() -> None:
    s, d = share_spec(), dist_spec()
    figs = merge([sub("NO", [share(s, [cell("U1", 10, 20)]), dist(d, single(NO_TIMES))])],
                 [s], YEAR)
    assert {f.indicator_id for f in figs} == {"CA-ROSC"}


def test_wrong_year_and_duplicate_country_are_refused() -> None:
    s = share_spec()
    with pytest.raises(ValueError, match="2024"):
        merge([sub("NO", [share(s, [])], year=2024)], [s], YEAR)
    with pytest.raises(ValueError, match="more than one"):
        merge([sub("NO", [share(s, [])]), sub("NO", [share(s, [])])], [s], YEAR)


def test_data_quality_rows_in_country_order() -> None:
    rows = data_quality_rows([sub("US", []), sub("DK", []), sub("NO", [])])
    assert [r.country for r in rows] == ["NO", "DK", "US"]
    assert (rows[0].rows_read, rows[0].rows_accepted) == (1000, 990)
    assert rows[0].rejected_by_reason == {"missing_time": 10}
    assert rows[0].disclosure_threshold == THRESHOLD and rows[0].software_version == "0.1.0"


def test_csv_header_and_rows_read_back(figures: list[Figure], tmp_path: Path) -> None:
    path = write_csv(reversed(figures), tmp_path / "out" / "figures.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        assert fh.readline().strip() == ",".join(COLUMNS)
        fh.seek(0)
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(figures)
    a = next(r for r in rows if (r["indicator_id"], r["country"], r["stratum"])
             == ("CA-ROSC", "NORDIC", "urgency_level=U1"))
    assert (a["numerator"], a["denominator"], a["value"]) == ("75", "250", "30.0")
    assert a["suppressed"] == "false" and a["unit"] == "percent" and a["year"] == "2025"
    lo, hi = wilson_interval(75, 250)
    assert (a["ci_low"], a["ci_high"]) == (f"{100 * lo:.1f}", f"{100 * hi:.1f}")
    b = next(r for r in rows if (r["indicator_id"], r["country"], r["stratum"])
             == ("CA-ROSC", "SE", "urgency_level=U2"))
    assert (b["numerator"], b["value"], b["suppressed"]) == ("", "", "true")
    assert a["method"] == ""  # a share has one way only
    # a quantile says how it was obtained, and carries the decimals its resolution supports
    times = {r["country"]: r for r in rows if r["indicator_id"] == "RT-P90"}
    assert (times["NO"]["value"], times["NO"]["method"]) == ("3.10", "exact")
    assert (times["NORDIC"]["value"], times["NORDIC"]["method"]) == ("4", "histogram")
    assert (times["NORDIC"]["ci_low"], times["NORDIC"]["ci_high"]) == ("2", "6")
    # sorted by indicator id, then stratum, then NO, SE, DK, FI, IS, NORDIC, US
    assert [r["indicator_id"] for r in rows] == sorted(r["indicator_id"] for r in rows)
    first = [(r["stratum"], r["country"]) for r in rows[:4]]
    assert first == [("urgency_level=U1", c) for c in ("NO", "SE", "NORDIC", "US")]


def test_a_pool_names_its_countries_and_the_ones_it_lacks(figures: list[Figure]) -> None:
    """30-day survival 95/228 instead of 96/231 must say it lacks a country, not hide it."""
    u2 = pick(figures, "CA-ROSC", "NORDIC", "urgency_level=U2")
    assert (u2.numerator, u2.denominator) == (10, 50)  # Norway's counts only
    assert u2.countries == ("NO",) and u2.omitted == ("SE",) and u2.suppressed
    u1 = pick(figures, "CA-ROSC", "NORDIC", "urgency_level=U1")
    assert u1.countries == ("NO", "SE") and u1.omitted == () and u1.n_countries == 2
    assert pick(figures, "CA-ROSC", "SE", "urgency_level=U2").omitted == ("SE",)


def test_the_pool_applies_the_strictest_threshold_of_its_countries() -> None:
    """Denmark (k = 5) may release 5 of 10; pooled with Sweden (k = 10, no cases) the
    Nordic figure would publish a 5 that Sweden's rule forbids, so the hub withholds it."""
    s = share_spec()
    dk = sub("DK", [share(s, [cell("U1", 5, 10)])])
    se = sub("SE", [share(s, [cell("U1", 0, 0)])]).model_copy(
        update={"disclosure_threshold": 10})
    pooled = pick(merge([dk, se], [s], YEAR), "CA-ROSC", "NORDIC", "urgency_level=U1")
    assert pooled.suppressed and pooled.numerator is None and pooled.value is None
    # Denmark's own figure is Denmark's to publish under its own rule
    assert pick(merge([dk, se], [s], YEAR), "CA-ROSC", "DK", "urgency_level=U1").numerator == 5
    # with both at k = 5 the pool is published
    both = pick(merge([dk, se.model_copy(update={"disclosure_threshold": 5})], [s], YEAR),
                "CA-ROSC", "NORDIC", "urgency_level=U1")
    assert (both.numerator, both.denominator, both.suppressed) == (5, 10, False)


def test_newcombe_difference_matches_the_published_example() -> None:
    """Newcombe (1998), Table II, example (a): 56/70 − 48/80, method 10: 0.0524 to 0.3339."""
    d, lo, hi = newcombe_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    # swapping the groups negates the interval
    d2, lo2, hi2 = newcombe_difference(48, 80, 56, 70)
    assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo))


def test_each_nordic_country_is_compared_with_the_rest_of_the_pool(
        figures: list[Figure]) -> None:
    no = pick(figures, "CA-ROSC", "NO", "urgency_level=U1")  # 30/100 vs Sweden's 45/150
    d, lo, hi = newcombe_difference(30, 100, 45, 150)
    assert (no.diff, no.diff_low, no.diff_high) == pytest.approx((100 * d, 100 * lo, 100 * hi))
    assert no.diff == pytest.approx(0.0)
    # no comparison where the rest is withheld, nor for the US or the pool itself
    assert pick(figures, "CA-ROSC", "NO", "urgency_level=U2").diff is None
    assert pick(figures, "CA-ROSC", "US", "urgency_level=U1").diff is None
    assert pick(figures, "CA-ROSC", "NORDIC", "urgency_level=U1").diff is None
