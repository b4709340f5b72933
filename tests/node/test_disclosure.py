"""Disclosure control: no count from 1 to threshold − 1 leaves the node."""

from __future__ import annotations

from emsbench.wire import Cell, IndicatorResult
from node.disclosure import protect, protect_counts

SHA = "0" * 64


def _share(*cells: tuple[int, int]) -> IndicatorResult:
    return IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256=SHA, type="share",
                           strata=[], cells=[Cell(numerator=n, denominator=d) for n, d in cells])


def test_share_cell_with_small_numerator_denominator_or_complement_is_withheld() -> None:
    out = protect(_share((3, 50), (47, 50), (2, 4), (20, 50), (0, 50), (0, 0)), 5)
    got = [(c.numerator, c.denominator, c.suppressed) for c in out.cells]
    assert got == [(None, None, True), (None, None, True), (None, None, True),
                   (20, 50, False), (0, 50, False), (0, 0, False)]


def _dist(*cells: list[tuple[int, int, int]]) -> IndicatorResult:
    return IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256=SHA,
                           type="distribution", strata=[], cells=[Cell(bins=c) for c in cells])


def test_histogram_joins_small_bins_into_runs_and_keeps_the_total() -> None:
    out = protect(_dist([(1, 1, 4), (2, 2, 5), (3, 3, 100), (7, 7, 1)],
                        [(0, 0, 7), (2, 2, 9)]), 5)
    # 4 joins 5 (9); 100 stands; the tail 1 joins the run before it.
    assert out.cells[0].bins == [(1, 2, 9), (3, 7, 101)] and not out.cells[0].suppressed
    assert out.cells[1].bins == [(0, 0, 7), (2, 2, 9)]
    for cell in out.cells:
        assert all(count >= 5 for _, _, count in cell.bins or [])


def test_histogram_with_fewer_cases_than_the_threshold_is_withheld() -> None:
    out = protect(_dist([(3, 3, 2), (9, 9, 2)]), 5)
    assert out.cells[0].bins is None and out.cells[0].suppressed


def test_threshold_one_releases_everything_and_counts_are_protected_too() -> None:
    res = _share((1, 2))
    assert protect(res, 1) == res
    assert protect_counts({"a": 2, "b": 10, "c": 0}, 3) == {"a": None, "b": 10, "c": 0}
