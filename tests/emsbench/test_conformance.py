"""emsbench.conformance: every problem code of ``check_document`` and ``conforms``, the
boundaries of the small-count rule and the windows, and ``Policy``'s floor. Pure: no hub."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from emsbench import conformance
from emsbench.conformance import (
    CONFLICT_CODES,
    SMALLEST_THRESHOLD,
    Policy,
    Problem,
    check_document,
    conforms,
    is_small,
)
from emsbench.specs import (
    Band,
    Bins,
    IndicatorSpec,
    SpecTestCase,
    catalogue_sha256,
    stratum_grid,
)
from emsbench.wire import (
    Cell,
    DataQuality,
    IndicatorResult,
    Period,
    Submission,
    Withdrawal,
)
from hub.config import PolicyConfig

AT = datetime(2025, 2, 1, 12, 0, tzinfo=UTC)  # the hub's receiving time in these tests
CREATED = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
POLICY = Policy()


def _spec(spec_id: str, **fields: Any) -> IndicatorSpec:
    base: dict[str, Any] = {
        "id": spec_id, "version": "1.0.0", "title": f"Test {spec_id}",
        "description": "An indicator for the conformance tests.", "unit": "percent",
        "direction": "descriptive", "type": "share", "population": "true",
        "numerator": "lights_sirens", "strata": [],
        "tests": [SpecTestCase(name="none", rows=[], expect=[])]}
    return IndicatorSpec(**(base | fields))


ALPHA = _spec("T-ALPHA")
BETA = _spec("T-BETA", strata=["urbanicity"])
TIME = _spec("T-TIME", unit="minutes", direction="lower_is_better", type="distribution",
             numerator=None, measure="1.0",
             bins=Bins(start=0, width=1, count=10, bands=[Band(from_=0, every=2)]),
             quantile=0.5, strata=["urgency_level"])
SPECS = [ALPHA, BETA, TIME]
CATALOGUE = catalogue_sha256(SPECS)


def result(spec: IndicatorSpec, cells: list[Cell], grid: bool = True) -> IndicatorResult:
    """A result with ``cells``, and (``grid``) an empty cell for every other stratum of the
    spec's grid, as a node sends it."""
    have = {tuple(c.stratum.get(s) for s in spec.strata) for c in cells}
    empty = [Cell(stratum=dict(zip(spec.strata, key, strict=True)),
                  **({"numerator": 0, "denominator": 0} if spec.type == "share"
                     else {"bins": []}))
             for key in stratum_grid(spec.strata) if key not in have] if grid else []
    return IndicatorResult(spec_id=spec.id, spec_version=spec.version, spec_sha256=spec.sha256,
                           type=spec.type, strata=list(spec.strata), cells=cells + empty)


def alpha(num: int | None = 40, den: int | None = 100, suppressed: bool = False
          ) -> IndicatorResult:
    return result(ALPHA, [Cell(numerator=num, denominator=den, suppressed=suppressed)])


def beta(*cells: Cell) -> IndicatorResult:
    return result(BETA, list(cells) or [
        Cell(stratum={"urbanicity": "urban"}, numerator=30, denominator=60),
        Cell(stratum={"urbanicity": "rural"}, suppressed=True),
        # T-ALPHA is T-BETA's total: a second withheld cell keeps rural unrecoverable
        Cell(stratum={"urbanicity": "unknown"}, suppressed=True)])


def time_(*runs: tuple[int, int, int], suppressed: bool = False,
          bins: list[tuple[int, int, int]] | None = None) -> IndicatorResult:
    if suppressed:
        cell = Cell(stratum={"urgency_level": "U1"}, bins=bins, suppressed=True)
    else:
        cell = Cell(stratum={"urgency_level": "U1"},
                    bins=list(runs) or [(0, 3, 10), (4, 5, 25), (6, 10, 6)])
    return result(TIME, [cell, Cell(stratum={"urgency_level": "U2"}, suppressed=True)])


def submission(**changes: Any) -> Submission:
    sub = Submission(
        submission_id="NO-2024-0001", country="NO", period=Period(year=2024),
        catalogue=CATALOGUE, revision=1, created_at=CREATED, software_version="0.1.0",
        model_version="1", disclosure_threshold=5,
        data_quality=DataQuality(rows_read=120, rows_accepted=100,
                                 rejected_by_reason={"missing:urgency_level": 20}),
        indicators=[alpha(), beta(), time_()])
    return sub.model_copy(update=changes)


def indicators(*replace: IndicatorResult) -> list[IndicatorResult]:
    """The three indicators with the given ones replacing theirs (by spec id)."""
    by_id = {r.spec_id: r for r in replace}
    return [by_id.get(r.spec_id, r) for r in (alpha(), beta(), time_())]


def quality(read: int | None = 120, accepted: int | None = 100,
            rejected: dict[str, int | None] | None = None) -> DataQuality:
    return DataQuality(rows_read=read, rows_accepted=accepted,
                       rejected_by_reason={"missing:urgency_level": 20}
                       if rejected is None else rejected)


def codes(doc: Submission | Withdrawal, policy: Policy = POLICY,
          at: datetime = AT) -> list[str]:
    return [p.code for p in check_document(doc, SPECS, CATALOGUE, policy, at)]


def test_a_sound_submission_has_no_problem() -> None:
    assert check_document(submission(), SPECS, CATALOGUE, POLICY, AT) == []
    for spec, res in zip(SPECS, submission().indicators, strict=True):
        assert conforms(res, spec, threshold=5) == []


# (case id, document, the codes check_document must return, in order)
CASES: list[tuple[str, Callable[[], Submission | Withdrawal], list[str]]] = [
    ("empty", lambda: submission(indicators=[]), ["empty_submission"]),
    ("partial-grid", lambda: submission(indicators=indicators(result(
        BETA, [Cell(stratum={"urbanicity": "urban"}, numerator=30, denominator=60)],
        grid=False))), ["incomplete_grid"]),
    ("duplicate-indicator", lambda: submission(indicators=[*indicators(), alpha(41, 100)]),
     ["duplicate_indicator"]),
    ("unknown-spec", lambda: submission(indicators=[
        *indicators(), alpha().model_copy(update={"spec_id": "T-GAMMA"})]),
     ["unknown_spec"]),
    ("unknown-spec-replacing", lambda: submission(indicators=[
        alpha().model_copy(update={"spec_id": "T-GAMMA"}), beta(), time_()]),
     ["unknown_spec", "missing_indicator"]),
    ("spec-version", lambda: submission(indicators=indicators(
        alpha().model_copy(update={"spec_version": "0.9.0"}))), ["spec_mismatch"]),
    ("spec-hash", lambda: submission(indicators=indicators(
        alpha().model_copy(update={"spec_sha256": "0" * 64}))), ["spec_mismatch"]),
    ("catalogue", lambda: submission(catalogue="0" * 64), ["spec_mismatch"]),
    ("missing-indicator", lambda: submission(indicators=[alpha(), beta()]),
     ["missing_indicator"]),
    ("wrong-type", lambda: submission(indicators=indicators(
        time_().model_copy(update={"type": "share", "cells": [
            Cell(stratum={"urgency_level": "U1"}, numerator=10, denominator=20)]}))),
     ["wrong_shape"]),
    ("wrong-strata", lambda: submission(indicators=indicators(result(BETA, []).model_copy(
        update={"strata": ["sex"], "cells": [
            Cell(stratum={"sex": "female"}, numerator=10, denominator=20)]}))),
     ["wrong_shape"]),
    ("duplicate-stratum", lambda: submission(indicators=indicators(beta(
        Cell(stratum={"urbanicity": "urban"}, numerator=30, denominator=60),
        Cell(stratum={"urbanicity": "urban"}, numerator=10, denominator=60)))),
     ["duplicate_stratum"]),
    ("stratum-formula", lambda: submission(indicators=indicators(beta(
        Cell(stratum={"urbanicity": '=HYPERLINK("http://x")'}, numerator=30,
             denominator=60)))), ["unknown_stratum_value"]),
    ("stratum-empty", lambda: submission(indicators=indicators(beta(
        Cell(stratum={"urbanicity": ""}, numerator=30, denominator=60)))),
     ["unknown_stratum_value"]),
    ("bins-order", lambda: submission(indicators=indicators(time_((5, 6, 10), (2, 3, 10)))),
     ["invalid_bins"]),
    ("bins-overlap", lambda: submission(indicators=indicators(time_((2, 5, 10), (4, 7, 10)))),
     ["invalid_bins"]),
    ("bins-beyond", lambda: submission(indicators=indicators(time_((2, 2, 10), (3, 11, 10)))),
     ["invalid_bins"]),
    ("bins-reversed", lambda: submission(indicators=indicators(time_((4, 3, 10)))),
     ["invalid_bins"]),
    ("share-suppressed-with-counts", lambda: submission(indicators=indicators(
        alpha(40, 100, suppressed=True))), ["suppression_inconsistent"]),
    ("share-released-without-counts", lambda: submission(indicators=indicators(
        alpha(None, None))), ["suppression_inconsistent"]),
    ("share-half-withheld", lambda: submission(indicators=indicators(
        alpha(None, 100, suppressed=True))), ["suppression_inconsistent"]),
    ("histogram-suppressed-with-bins", lambda: submission(indicators=indicators(
        time_(suppressed=True, bins=[(2, 2, 10)]))), ["suppression_inconsistent"]),
    ("histogram-released-without-bins", lambda: submission(indicators=indicators(
        result(TIME, [Cell(stratum={"urgency_level": "U1"})]))),
     ["suppression_inconsistent"]),
    ("count-share", lambda: submission(indicators=indicators(alpha(2 * 10**9, 2 * 10**9))),
     ["count_out_of_range"]),
    ("count-histogram", lambda: submission(indicators=indicators(
        time_((0, 1, 6 * 10**8), (2, 3, 6 * 10**8)))), ["count_out_of_range"]),
    ("count-quality", lambda: submission(data_quality=quality(2 * 10**9, 2 * 10**9, {})),
     ["count_out_of_range", "count_out_of_range"]),
    ("numerator-over-denominator", lambda: submission(indicators=indicators(alpha(50, 10))),
     ["numerator_exceeds_denominator"]),
    ("small-numerator", lambda: submission(indicators=indicators(alpha(2, 100))),
     ["disclosure_violation"]),
    ("small-denominator", lambda: submission(indicators=indicators(alpha(0, 3))),
     ["disclosure_violation"]),
    ("small-complement", lambda: submission(indicators=indicators(alpha(98, 100))),
     ["disclosure_violation"]),
    ("small-run", lambda: submission(indicators=indicators(time_((2, 3, 1), (4, 5, 20)))),
     ["disclosure_violation"]),
    ("small-rows-read", lambda: submission(data_quality=quality(3, 0, {})),
     ["disclosure_violation"]),
    ("small-rows-accepted", lambda: submission(data_quality=quality(120, 4, {"bad": 116})),
     ["disclosure_violation"]),
    ("small-rejected", lambda: submission(data_quality=quality(120, 100, {"a": 1, "b": 3})),
     ["disclosure_violation", "disclosure_violation"]),
    ("threshold-1", lambda: submission(disclosure_threshold=1), ["threshold_too_low"]),
    ("threshold-4", lambda: submission(disclosure_threshold=4), ["threshold_too_low"]),
    ("accepted-over-read", lambda: submission(data_quality=quality(100, 120, {})),
     ["inconsistent_quality"]),
    ("rejected-over-gap", lambda: submission(data_quality=quality(120, 100, {"a": 15,
                                                                            "b": 10})),
     ["inconsistent_quality"]),
    # A withheld rejection count stands for at least one row.
    ("withheld-rejection", lambda: submission(data_quality=quality(100, 100, {"a": None})),
     ["inconsistent_quality"]),
    ("year-early", lambda: submission(period=Period(year=1990)), ["year_out_of_window"]),
    ("year-late", lambda: submission(period=Period(year=2100)),
     ["year_out_of_window", "created_at_out_of_window"]),
    ("created-future", lambda: submission(created_at=AT + timedelta(minutes=6)),
     ["created_at_out_of_window"]),
    ("created-long-ago", lambda: submission(created_at=datetime(1970, 1, 1, tzinfo=UTC)),
     ["created_at_out_of_window"]),
    ("created-before-period", lambda: submission(
        created_at=datetime(2023, 12, 31, 23, tzinfo=UTC)), ["created_at_out_of_window"]),
    ("withdrawal-catalogue", lambda: Withdrawal(
        submission_id="NO-2024-w001", country="NO", period=Period(year=2024),
        catalogue="0" * 64, revision=2, created_at=CREATED, reason="recalled"),
     ["spec_mismatch"]),
    ("withdrawal-future", lambda: Withdrawal(
        submission_id="NO-2024-w001", country="NO", period=Period(year=2024),
        catalogue=CATALOGUE, revision=2, created_at=datetime(2999, 1, 1, tzinfo=UTC),
        reason="recalled"), ["created_at_out_of_window"]),
]


@pytest.mark.parametrize(("make", "expected"), [(m, e) for _, m, e in CASES],
                         ids=[c[0] for c in CASES])
def test_problem_codes(make: Callable[[], Submission | Withdrawal],
                       expected: list[str]) -> None:
    problems = check_document(make(), SPECS, CATALOGUE, POLICY, AT)
    assert [p.code for p in problems] == expected, problems
    assert all(p.message for p in problems)


def quantiled(values: dict[str, float]) -> Submission:
    cell = Cell(stratum={"urgency_level": "U1"}, bins=[(0, 3, 10), (4, 5, 25), (6, 10, 6)],
                quantiles=values)
    return submission(indicators=[alpha(), beta(), result(
        TIME, [cell, Cell(stratum={"urgency_level": "U2"}, suppressed=True)])])


CASES += [
    ("recoverable-across-margins", lambda: submission(indicators=indicators(beta(
        Cell(stratum={"urbanicity": "urban"}, numerator=30, denominator=60),
        Cell(stratum={"urbanicity": "rural"}, suppressed=True)))),
     ["recoverable_by_subtraction"]),
    ("run-off-the-lattice", lambda: submission(indicators=indicators(
        time_((0, 2, 10), (3, 5, 25), (6, 10, 6)))), ["run_off_lattice"]),
    ("quantile-of-another-probability", lambda: quantiled({"0.7": 4.5}),
     ["invalid_quantiles"]),
    ("median-outside-its-runs", lambda: quantiled({"0.5": 9.5}), ["invalid_quantiles"]),
]


def test_every_documented_code_is_exercised() -> None:
    documented = set(re.findall(r"^``([a-z_]+)``", conformance.__doc__ or "", re.M))
    documented.add("numerator_exceeds_denominator")  # the table row without a meaning
    assert len(documented) == 21
    assert documented == {code for _, _, expected in CASES for code in expected}


def test_conflict_codes() -> None:
    assert CONFLICT_CODES == {"spec_mismatch"}


def test_the_unknown_code_is_a_valid_stratum_value() -> None:
    ok = beta(Cell(stratum={"urbanicity": "unknown"}, numerator=30, denominator=60))
    assert codes(submission(indicators=indicators(ok))) == []


@pytest.mark.parametrize(("num", "den", "bad"), [
    (0, 0, False), (0, 5, False), (5, 5, False), (5, 10, False), (0, 100, False),
    (100, 100, False), (95, 100, False), (96, 100, True), (4, 100, True), (0, 4, True),
    (1, 1, True),
])
def test_small_count_boundaries(num: int, den: int, bad: bool) -> None:
    problems = conforms(alpha(num, den), ALPHA, threshold=5)
    assert [p.code for p in problems] == (["disclosure_violation"] if bad else [])


def test_is_small() -> None:
    assert [n for n in range(-1, 7) if is_small(n, 5)] == [1, 2, 3, 4]
    assert not is_small(None, 5)


def test_runs_wider_than_one_bin_are_coarsened_spans() -> None:
    ok = time_((0, 3, 5), (4, 5, 0), (6, 10, 7))  # a zero run is not a small count
    assert conforms(ok, TIME, threshold=5) == []
    assert codes(submission(indicators=indicators(time_((10, 10, 5))))) == []  # the open bin


def test_the_stricter_threshold_applies() -> None:
    # Declared 10 (stricter than the federation's 5): a count of 7 is small.
    problems = check_document(submission(disclosure_threshold=10, indicators=indicators(
        alpha(7, 100))), SPECS, CATALOGUE, POLICY, AT)
    assert {p.code for p in problems} == {"disclosure_violation"}
    assert any("7/100" in p.message and "1 to 9" in p.message for p in problems)
    # The federation's minimum raised to 8: a node declaring 5 is refused for that alone.
    assert codes(submission(), Policy(min_disclosure_threshold=8))[0] == "threshold_too_low"


def test_conforms_stops_at_a_version_or_shape_conflict() -> None:
    wrong = alpha(50, 10).model_copy(update={"spec_version": "2.0.0"})
    [problem] = conforms(wrong, ALPHA, threshold=5)
    assert problem.code == "spec_mismatch"
    assert "2.0.0" in problem.message and "1.0.0" in problem.message
    # A share result presented as T-TIME: the wrong shape, and nothing else is judged.
    shaped = alpha(50, 10).model_copy(update={"spec_id": TIME.id, "spec_sha256": TIME.sha256})
    [problem] = conforms(shaped, TIME, threshold=5)
    assert problem.code == "wrong_shape"
    assert str(problem).startswith("wrong_shape: indicator T-TIME")


def test_conforms_honours_max_count() -> None:
    assert conforms(alpha(2000, 3000), ALPHA, threshold=5, max_count=2500)[0].code == \
        "count_out_of_range"
    assert conforms(alpha(2000, 3000), ALPHA, threshold=5, max_count=3000) == []


def test_year_window_follows_the_policy() -> None:
    assert codes(submission(), Policy(first_year=2025)) == ["year_out_of_window"]
    assert codes(submission(), Policy(last_year=2023))[0] == "year_out_of_window"
    # last_year None: the year of the check.
    late = submission(period=Period(year=2025))
    assert codes(late, at=datetime(2025, 6, 1, tzinfo=UTC)) == []
    assert codes(late, at=datetime(2024, 12, 31, tzinfo=UTC))[0] == "year_out_of_window"


def test_clock_skew_and_age_boundaries() -> None:
    skew, age = POLICY.max_clock_skew, POLICY.max_age
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert codes(submission(created_at=at + skew), at=at) == []
    assert codes(submission(created_at=at + skew + timedelta(seconds=1)), at=at) == \
        ["created_at_out_of_window"]
    old = submission(period=Period(year=2022), created_at=at - age)
    assert codes(old, at=at) == []
    assert codes(old, at=at + timedelta(seconds=1)) == ["created_at_out_of_window"]
    # An offset other than UTC is the same instant.
    tz = datetime(2025, 1, 15, 14, 0).astimezone().tzinfo
    assert tz is not None
    assert codes(submission(created_at=CREATED.astimezone(tz))) == []


def test_policy_refuses_a_threshold_below_three() -> None:
    assert SMALLEST_THRESHOLD == 3
    for low in (2, 1, 0, -5):
        with pytest.raises(ValueError, match="at least 3"):
            Policy(min_disclosure_threshold=low)
    assert Policy(min_disclosure_threshold=3).min_disclosure_threshold == 3
    with pytest.raises(ValidationError, match="min_disclosure_threshold"):
        PolicyConfig(min_disclosure_threshold=2)
    assert PolicyConfig(min_disclosure_threshold=3).policy() == Policy(
        min_disclosure_threshold=3)


def test_problem_text() -> None:
    assert str(Problem("empty_submission", "nothing")) == "empty_submission: nothing"


def test_a_created_at_beyond_utc_range_is_a_problem_not_a_crash() -> None:
    # Found by the hub fuzz test: astimezone(UTC) overflowed and the hub answered 503.
    from datetime import timezone

    edge = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    assert "created_at_out_of_window" in codes(submission(created_at=edge))


def test_a_partial_grid_is_refused_naming_the_missing_strata() -> None:
    """A node that sends only its non-empty strata says which ones hold cases."""
    partial = result(TIME, [Cell(stratum={"urgency_level": "U1"}, bins=[(2, 5, 10)])],
                     grid=False)
    problems = check_document(submission(indicators=indicators(partial)), SPECS, CATALOGUE,
                              POLICY, AT)
    assert [p.code for p in problems] == ["incomplete_grid"]
    assert "3 stratum cell(s) of the grid are missing: U2, U3, unknown" in problems[0].message
    # an empty stratum sent as an empty cell is no disclosure
    full = result(TIME, [Cell(stratum={"urgency_level": "U1"}, bins=[(2, 5, 10)])])
    assert check_document(submission(indicators=indicators(full)), SPECS, CATALOGUE, POLICY,
                          AT) == []
