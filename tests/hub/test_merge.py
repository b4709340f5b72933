"""Merging country submissions: pooling, suppression, missing strata, spec checks, CSV."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emsbench.specs import Bins, ExpectedCell, IndicatorSpec, SpecTestCase
from emsbench.wire import Cell, DataQuality, IndicatorResult, Period, Submission
from hub.export import COLUMNS, write_csv
from hub.merge import Figure, SpecMismatchError, data_quality_rows, merge
from hub.stats import histogram_quantile, wilson_interval

YEAR = 2025
_CASE = SpecTestCase(name="t", rows=[], expect=[ExpectedCell()])


def share_spec() -> IndicatorSpec:
    return IndicatorSpec(id="CA-ROSC", version="1.0.0", title="ROSC after cardiac arrest",
                         description="Share of cardiac arrests with return of circulation.",
                         unit="percent", direction="higher_is_better", type="share",
                         population="true", numerator="true", strata=["urgency"],
                         tests=[_CASE])


def dist_spec() -> IndicatorSpec:
    return IndicatorSpec(id="RT-P90", version="2.1.0", title="Response time, 90th percentile",
                         description="Minutes from call to first unit on scene.",
                         unit="minutes", direction="lower_is_better", type="distribution",
                         population="true", measure="1", bins=Bins(start=0, width=2, count=4),
                         quantile=0.5, tests=[_CASE])


def share(spec: IndicatorSpec, cells: list[Cell]) -> IndicatorResult:
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type="share", strata=list(spec.strata), cells=cells)


def dist(spec: IndicatorSpec, runs: list[tuple[int, int, int]] | None) -> IndicatorResult:
    """A distribution result with one cell: bin runs, or None for a withheld cell."""
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type="distribution", strata=[],
                           cells=[Cell(bins=runs, suppressed=runs is None)])


def single(counts: list[int]) -> list[tuple[int, int, int]]:
    """Uncoarsened runs: one per non-empty bin."""
    return [(i, i, c) for i, c in enumerate(counts) if c]


def sub(country: str, results: list[IndicatorResult], year: int = YEAR) -> Submission:
    return Submission(submission_id=f"{country}-{year}-0001", country=country,
                      period=Period(year=year), created_at=datetime(2026, 2, 1, tzinfo=UTC),
                      software_version="0.1.0", model_version="1", disclosure_threshold=5,
                      data_quality=DataQuality(rows_read=1000, rows_accepted=990,
                                               rejected_by_reason={"missing_time": 10}),
                      indicators=results)


def cell(urgency: str, num: int | None, den: int | None) -> Cell:
    return Cell(stratum={"urgency": urgency}, numerator=num, denominator=den,
                suppressed=num is None)


@pytest.fixture
def figures() -> list[Figure]:
    s, d = share_spec(), dist_spec()
    subs = [
        sub("NO", [share(s, [cell("A", 30, 100), cell("B", 10, 50)]),
                   dist(d, single([1, 4, 3, 2, 0]))]),
        # Sweden's histogram was coarsened by its node into two runs of two bins each.
        sub("SE", [share(s, [cell("A", 45, 150), cell("B", None, None)]),
                   dist(d, [(0, 1, 6), (2, 3, 6)])]),
        sub("US", [share(s, [cell("A", 500, 1000), cell("C", 7, 20)]),
                   dist(d, single([0, 0, 1, 9, 90]))]),
    ]
    return merge(subs, [s, d], YEAR)


def pick(figs: list[Figure], ind: str, country: str, stratum: str = "") -> Figure:
    [f] = [f for f in figs if (f.indicator_id, f.country, f.stratum) == (ind, country, stratum)]
    return f


def test_nordic_pool_is_the_sum_of_nordic_counts_and_excludes_us(figures: list[Figure]) -> None:
    a = pick(figures, "CA-ROSC", "NORDIC", "urgency=A")
    assert (a.numerator, a.denominator) == (30 + 45, 100 + 150)
    assert a.value == pytest.approx(100 * 75 / 250)
    lo, hi = wilson_interval(75, 250)
    assert (a.ci_low, a.ci_high) == (pytest.approx(100 * lo), pytest.approx(100 * hi))
    assert a.n_countries == 2 and not a.suppressed
    # the US stratum C exists for NORDIC too, with nothing in it
    c = pick(figures, "CA-ROSC", "NORDIC", "urgency=C")
    assert (c.numerator, c.denominator, c.value, c.n_countries) == (0, 0, None, 0)


def test_country_figures_keep_their_own_counts(figures: list[Figure]) -> None:
    us = pick(figures, "CA-ROSC", "US", "urgency=A")
    assert (us.numerator, us.denominator, us.value) == (500, 1000, pytest.approx(50.0))
    assert us.unit == "percent" and us.spec_version == "1.0.0" and us.year == YEAR


def test_suppressed_share_cell(figures: list[Figure]) -> None:
    se = pick(figures, "CA-ROSC", "SE", "urgency=B")
    assert (se.numerator, se.denominator, se.value, se.ci_low) == (None, None, None, None)
    assert se.suppressed
    # The pool carries on with Norway's released pair only, and says something is missing.
    pooled = pick(figures, "CA-ROSC", "NORDIC", "urgency=B")
    assert (pooled.numerator, pooled.denominator) == (10, 50)
    assert pooled.suppressed and pooled.n_countries == 1


def test_missing_stratum_gives_zero_counts_not_suppressed(figures: list[Figure]) -> None:
    no_c = pick(figures, "CA-ROSC", "NO", "urgency=C")
    assert (no_c.numerator, no_c.denominator, no_c.value, no_c.suppressed) == (0, 0, None, False)
    us_b = pick(figures, "CA-ROSC", "US", "urgency=B")
    assert (us_b.denominator, us_b.suppressed) == (0, False)
    strata = {f.stratum for f in figures if f.indicator_id == "CA-ROSC"}
    countries = {f.country for f in figures if f.indicator_id == "CA-ROSC"}
    assert strata == {"urgency=A", "urgency=B", "urgency=C"}
    assert countries == {"NO", "SE", "US", "NORDIC"}
    assert len([f for f in figures if f.indicator_id == "CA-ROSC"]) == 3 * 4


def test_distribution_pool_adds_released_bins(figures: list[Figure]) -> None:
    pooled = pick(figures, "RT-P90", "NORDIC")
    # NO [1,4,3,2,0] + SE runs spread evenly [3,3,3,3,0] = [4,7,6,5,0]; n = 22; the median
    # rank 11 is reached in bin 1 (cumulative 4 before it): 2 + (11 − 4)/7 · 2 = 4.0 minutes.
    assert pooled.denominator == 22 and pooled.numerator is None
    assert pooled.value == pytest.approx(4.0)
    assert not pooled.suppressed and pooled.n_countries == 2
    assert None not in (pooled.value, pooled.ci_low, pooled.ci_high)
    assert pooled.ci_low <= pooled.value <= pooled.ci_high  # type: ignore[operator]
    se = pick(figures, "RT-P90", "SE")
    assert not se.suppressed and se.denominator == 12
    assert se.value == pytest.approx(histogram_quantile([3, 3, 3, 3, 0], 0, 2, 0.5))
    # the US median falls in the open last bin: its lower edge, 8 minutes
    assert pick(figures, "RT-P90", "US").value == 8.0


def test_withheld_distribution_cell_flags_the_pool() -> None:
    d = dist_spec()
    figs = merge([sub("NO", [dist(d, single([1, 4, 3, 2, 0]))]), sub("IS", [dist(d, None)])],
                 [d], YEAR)
    iceland, pooled = pick(figs, "RT-P90", "IS"), pick(figs, "RT-P90", "NORDIC")
    assert iceland.suppressed and iceland.value is None and iceland.denominator == 0
    assert pooled.suppressed and pooled.denominator == 10 and pooled.n_countries == 1


def test_order_is_indicator_stratum_country(figures: list[Figure]) -> None:
    rosc = [(f.stratum, f.country) for f in figures if f.indicator_id == "CA-ROSC"]
    assert rosc[:4] == [("urgency=A", c) for c in ("NO", "SE", "NORDIC", "US")]


def test_no_nordic_figure_without_nordic_submissions() -> None:
    s = share_spec()
    figs = merge([sub("US", [share(s, [cell("A", 1, 2)])])], [s], YEAR)
    assert {f.country for f in figs} == {"US"}


def test_spec_hash_mismatch_is_refused() -> None:
    s = share_spec()
    other = s.model_copy(update={"version": "1.0.1"})  # same id, another definition
    with pytest.raises(SpecMismatchError, match="CA-ROSC.*1.0.0.*1.0.1"):
        merge([sub("NO", [share(s, [cell("A", 1, 2)])])], [other], YEAR)


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


def test_csv_header_and_rows_read_back(figures: list[Figure], tmp_path: Path) -> None:
    path = write_csv(reversed(figures), tmp_path / "out" / "figures.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        assert fh.readline().strip() == ",".join(COLUMNS)
        fh.seek(0)
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(figures)
    a = next(r for r in rows if (r["indicator_id"], r["country"], r["stratum"])
             == ("CA-ROSC", "NORDIC", "urgency=A"))
    assert (a["numerator"], a["denominator"], a["value"]) == ("75", "250", "30.00")
    assert a["suppressed"] == "false" and a["unit"] == "percent" and a["year"] == "2025"
    lo, hi = wilson_interval(75, 250)
    assert (a["ci_low"], a["ci_high"]) == (f"{100 * lo:.2f}", f"{100 * hi:.2f}")
    b = next(r for r in rows if (r["indicator_id"], r["country"], r["stratum"])
             == ("CA-ROSC", "SE", "urgency=B"))
    assert (b["numerator"], b["value"], b["suppressed"]) == ("", "", "true")
    # sorted by indicator id, then stratum, then NO, SE, DK, FI, IS, NORDIC, US
    assert [r["indicator_id"] for r in rows] == sorted(r["indicator_id"] for r in rows)
    first = [(r["stratum"], r["country"]) for r in rows[:4]]
    assert first == [("urgency=A", c) for c in ("NO", "SE", "NORDIC", "US")]
