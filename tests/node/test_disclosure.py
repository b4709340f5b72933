"""Disclosure control: no count from 1 to threshold − 1 leaves the node."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from emsbench.conformance import quality_problems
from emsbench.kinds.distribution import DISTRIBUTION, exact_allowed, off_lattice
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


# RESP-MED's lattice (2.0.0): 15-s bins; a band every minute below 3 min (bins 0-3, 4-7,
# 8-11), then every bin (12, 13, …) up to 90 min, every minute to 150 min, every 5 min to
# 240 min (bin 960, the open bin, a band of its own).
OPEN = 960


def test_histogram_joins_whole_bands_into_runs_that_tile_every_bin() -> None:
    out = protect(_dist([(12, 12, 4), (13, 13, 5), (14, 14, 100), (20, 20, 1)],
                        [(0, 0, 7), (2, 2, 9)], [(1, 1, 5), (2, 2, 5), (300, 300, 6)]),
                  DIST, 5)
    # 4 joins 5 (9), from the first bin on; 100 stands; the tail 1 joins the run before it,
    # which runs on to the open bin.
    assert out.cells[0].bins == [(0, 13, 9), (14, OPEN, 101)] and not out.cells[0].suppressed
    # bins 0 and 2 lie in one band (the first minute): they are never cut apart
    assert out.cells[1].bins == [(0, OPEN, 16)]
    assert out.cells[2].bins == [(0, 3, 10), (4, OPEN, 6)]
    for cell in out.cells:
        assert all(count >= 5 for _, _, count in cell.bins or [])


def test_a_run_edge_does_not_tell_that_someone_waited_over_four_hours() -> None:
    """Issue finding: a run [190, 480, 6] showed that at least one patient waited 4 h or
    more (the open bin). Now the last run always ends at the open bin, so its edges are the
    same whether or not anyone is there."""
    base = [(k, k, 20) for k in range(40, 60)] + [(700, 700, 2), (770, 770, 3)]
    with_4h = protect(_dist(base + [(OPEN, OPEN, 1)]), DIST, 5).cells[0].bins or []
    without = protect(_dist(base + [(771, 771, 1)]), DIST, 5).cells[0].bins or []
    assert [(f, la) for f, la, _ in with_4h] == [(f, la) for f, la, _ in without]
    # the tail run starts where the run before it ended and runs on to the open bin: it
    # says only that 6 cases took 15 minutes or more
    assert with_4h[-1] == (60, OPEN, 6) and without[-1] == (60, OPEN, 6)


def test_histogram_with_fewer_cases_than_the_threshold_is_withheld_with_its_quantiles() -> None:
    res = _dist([(3, 3, 2), (9, 9, 2)])
    res = res.model_copy(update={"cells": [res.cells[0].model_copy(
        update={"quantiles": {"0.5": 2.0}})]})
    out = protect(res, DIST, 5)
    assert out.cells[0].bins is None and out.cells[0].suppressed
    assert out.cells[0].quantiles is None
    # at the threshold the cell is released, its median only with enough cases either side
    kept = protect(res, DIST, 4).cells[0]
    assert kept.bins == [(0, OPEN, 4)] and kept.quantiles is None
    assert protect(res, DIST, 2).cells[0].quantiles == {"0.5": 2.0}


def test_an_exact_quantile_goes_only_with_threshold_cases_on_each_side() -> None:
    """With 5 cases at threshold 5 the type-7 median is the 3rd value: 3 cases at or below
    it, too few; the P90 of 45 cases has 5 at or above its upper order statistic."""
    assert not exact_allowed(5, 0.5, 5) and exact_allowed(9, 0.5, 5)
    assert not exact_allowed(8, 0.5, 5)  # h = 4.5: 4 values at or below x₍₄₎
    assert not exact_allowed(40, 0.9, 5) and exact_allowed(45, 0.9, 5)
    runs = [(i, i, 10) for i in range(5)]  # 50 cases
    res = _dist(runs)
    res = res.model_copy(update={"cells": [res.cells[0].model_copy(
        update={"quantiles": {"0.5": 2.5}})]})
    assert protect(res, DIST, 25).cells[0].quantiles == {"0.5": 2.5}  # h = 25.5: 25 each side
    assert protect(res, DIST, 26).cells[0].quantiles is None


def test_an_empty_histogram_is_sent_as_no_runs_and_no_quantiles() -> None:
    out = protect(_dist([]), DIST, 5).cells[0]
    assert out.bins == [] and not out.suppressed and out.quantiles is None


DIST_SPECS = [s for s in load_specs() if s.type == "distribution"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data(), threshold=st.integers(3, 11))
def test_run_edges_lie_only_on_the_lattice_the_spec_declares(data: st.DataObject,
                                                              threshold: int) -> None:
    """Whatever the data: every run starts at one of the spec's band edges and ends just
    before one (or at the open bin), holds the threshold or more, the runs tile all bins and
    stand for exactly the cases of the bins they span, and the hub's check agrees."""
    spec = data.draw(st.sampled_from(DIST_SPECS), label="spec")
    assert spec.bins is not None
    n_bins = spec.bins.n_bins
    hist = data.draw(st.dictionaries(st.integers(0, n_bins - 1), st.integers(1, 12),
                                     max_size=40), label="hist")
    raw = [(b, b, n) for b, n in sorted(hist.items())]
    cell = Cell(bins=raw, quantiles={"0.5": 1.0} if raw else None)
    out = DISTRIBUTION.protect(spec, cell, threshold)
    total = sum(hist.values())
    if 0 < total < threshold:
        assert out.suppressed and out.bins is None and out.quantiles is None
        return
    runs = out.bins or []
    assert off_lattice(runs, spec.bins) == []
    starts = set(spec.bins.band_starts)
    assert all(first in starts for first, _, _ in runs)
    assert all(last + 1 in starts or last == n_bins - 1 for _, last, _ in runs)
    assert all(count >= threshold for _, _, count in runs)
    assert sum(count for _, _, count in runs) == total
    assert all(count == sum(hist.get(b, 0) for b in range(first, last + 1))
               for first, last, count in runs)
    if runs:  # they tile every bin, the first from bin 0, the last to the open bin
        assert runs[0][0] == 0 and runs[-1][1] == n_bins - 1
        assert all(a[1] + 1 == b[0] for a, b in zip(runs, runs[1:], strict=False))
    assert (out.quantiles is not None) == (total >= threshold
                                           and exact_allowed(total, 0.5, threshold))
    problems = DISTRIBUTION.cell_problems(spec, out.model_copy(update={"quantiles": None}),
                                          "cell", threshold, 10**9)
    assert problems == []


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
