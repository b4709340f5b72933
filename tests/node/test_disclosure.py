"""Disclosure control: no count from 1 to threshold − 1 leaves the node."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from emsbench.conformance import quality_problems
from emsbench.specs import load_specs
from emsbench.wire import Cell, DataQuality, IndicatorResult
from node.disclosure import protect, protect_counts, protect_quality

SHA = "0" * 64
SPECS = {s.id: s for s in load_specs(only=["SURV", "RESP-MED"])}
SHARE, DIST = SPECS["SURV"], SPECS["RESP-MED"]


def _share(*cells: tuple[int, int]) -> IndicatorResult:
    return IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256=SHA, type="share",
                           strata=[], cells=[Cell(numerator=n, denominator=d) for n, d in cells])


def test_share_cell_with_small_numerator_denominator_or_complement_is_withheld() -> None:
    out = protect(_share((3, 50), (47, 50), (2, 4), (20, 50), (0, 50), (0, 0)), SHARE, 5)
    got = [(c.numerator, c.denominator, c.suppressed) for c in out.cells]
    assert got == [(None, None, True), (None, None, True), (None, None, True),
                   (20, 50, False), (0, 50, False), (0, 0, False)]


def _dist(*cells: list[tuple[int, int, int]]) -> IndicatorResult:
    return IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256=SHA,
                           type="distribution", strata=[], cells=[Cell(bins=c) for c in cells])


def test_histogram_joins_small_bins_into_runs_and_keeps_the_total() -> None:
    out = protect(_dist([(1, 1, 4), (2, 2, 5), (3, 3, 100), (7, 7, 1)],
                        [(0, 0, 7), (2, 2, 9)]), DIST, 5)
    # 4 joins 5 (9); 100 stands; the tail 1 joins the run before it.
    assert out.cells[0].bins == [(1, 2, 9), (3, 7, 101)] and not out.cells[0].suppressed
    assert out.cells[1].bins == [(0, 0, 7), (2, 2, 9)]
    for cell in out.cells:
        assert all(count >= 5 for _, _, count in cell.bins or [])


def test_histogram_with_fewer_cases_than_the_threshold_is_withheld() -> None:
    out = protect(_dist([(3, 3, 2), (9, 9, 2)]), DIST, 5)
    assert out.cells[0].bins is None and out.cells[0].suppressed


def test_threshold_one_releases_everything_and_counts_are_protected_too() -> None:
    res = _share((1, 2))
    assert protect(res, SHARE, 1) == res
    assert protect_counts({"a": 2, "b": 10, "c": 0}, 3) == {"a": None, "b": 10, "c": 0}


@settings(max_examples=400, deadline=None, derandomize=True)
@given(threshold=st.integers(3, 11), accepted=st.integers(0, 60),
       rejected=st.dictionaries(st.sampled_from(["missing:urgency_level", "outside_period",
                                                 "duplicate:mission_id",
                                                 "invalid_code:service_type"]),
                                st.integers(1, 40), max_size=4))
def test_no_withheld_quality_count_is_recoverable(threshold: int, accepted: int,
                                                  rejected: dict[str, int]) -> None:
    """rows read = accepted + Σ reasons is the one equation the released counts obey: solve
    it for every withheld count and check none is determined, and that the withheld ones
    do not add up to a small count."""
    read = accepted + sum(rejected.values())
    out_read, out_accepted, reasons = protect_quality(read, accepted, rejected, threshold)
    released = [v for v in (out_read, out_accepted, *reasons.values()) if v is not None]
    assert not any(1 <= v < threshold for v in released)  # primary
    assert out_read in (None, read) and out_accepted in (None, accepted)
    assert all(v in (None, rejected[k]) for k, v in reasons.items())
    unknown = [accepted] * (out_accepted is None) + [
        rejected[k] for k, v in reasons.items() if v is None]
    if out_read is not None and unknown:
        # the released counts determine the sum of the unknown ones exactly
        assert out_read - (out_accepted or 0) - sum(
            v for v in reasons.values() if v is not None) == sum(unknown)
        assert len(unknown) >= 2, "a single withheld count is the difference"
        assert sum(unknown) >= threshold, "withheld counts add up to a small count"
    # and the hub's own rule agrees that nothing leaks
    q = DataQuality(rows_read=out_read, rows_accepted=out_accepted, rejected_by_reason=reasons)
    problems = quality_problems(q, threshold, max_count=10**9)
    assert [p for p in problems if p.code == "disclosure_violation"] == []


def test_the_demo_iceland_case_withholds_more_than_the_small_count() -> None:
    """2,250 read, 2,249 accepted, one reason of 1: withholding the 1 alone gives it away."""
    read, accepted, reasons = protect_quality(2250, 2249, {"missing:urgency_level": 1}, 5)
    assert reasons == {"missing:urgency_level": None}
    assert read == 2250 and accepted is None  # 2250 = accepted + 1 has two unknowns
