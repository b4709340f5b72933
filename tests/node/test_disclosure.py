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


def test_histogram_withholds_only_small_bins() -> None:
    res = IndicatorResult(spec_id="X", spec_version="1.0.0", spec_sha256=SHA,
                          type="distribution", strata=[],
                          cells=[Cell(counts=[0, 4, 5, 100, 1]), Cell(counts=[7, 0, 9])])
    out = protect(res, 5)
    assert out.cells[0].counts == [0, None, 5, 100, None] and out.cells[0].suppressed
    assert out.cells[1].counts == [7, 0, 9] and not out.cells[1].suppressed


def test_threshold_one_releases_everything_and_counts_are_protected_too() -> None:
    res = _share((1, 2))
    assert protect(res, 1) == res
    assert protect_counts({"a": 2, "b": 10, "c": 0}, 3) == {"a": None, "b": 10, "c": 0}
