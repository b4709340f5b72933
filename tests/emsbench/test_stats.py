"""Interval estimates of emsbench.stats against hand-computed values, numpy and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emsbench.stats import (
    histogram_quantile,
    quantile_interval,
    quantile_rank_bounds,
    value_at_rank,
    wilson_interval,
)

Z = 1.959964


def test_wilson_half_of_ten_matches_textbook_value() -> None:
    # 5/10: the Wilson interval is the well-known 0.2366–0.7634.
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4)
    assert hi == pytest.approx(0.7634, abs=1e-4)


def test_wilson_zero_successes_is_one_sided() -> None:
    # k = 0: centre = half = (z²/2n)/(1 + z²/n), so lo = 0 and hi = (z²/n)/(1 + z²/n).
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx((Z**2 / 10) / (1 + Z**2 / 10), rel=1e-9)


def test_wilson_is_symmetric_and_contains_the_share() -> None:
    for k, n in [(1, 7), (13, 40), (99, 100), (250, 1000)]:
        lo, hi = wilson_interval(k, n)
        mirror_lo, mirror_hi = wilson_interval(n - k, n)
        assert lo == pytest.approx(1 - mirror_hi) and hi == pytest.approx(1 - mirror_lo)
        assert 0 <= lo < k / n < hi <= 1


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(0, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_wilson_coverage_is_near_95_percent() -> None:
    rng = np.random.default_rng(7)
    n, p = 80, 0.2
    hits = sum(lo <= p <= hi for lo, hi in (wilson_interval(int(k), n)
                                              for k in rng.binomial(n, p, size=2000)))
    assert 0.92 <= hits / 2000 <= 0.98


def test_histogram_quantile_hand_examples() -> None:
    # bins [0,1) [1,2) [2,∞); n = 10
    counts = [2, 6, 2]
    assert histogram_quantile(counts, 0, 1, 0.5) == pytest.approx(1.5)  # r=5: 1 + 3/6
    assert histogram_quantile(counts, 0, 1, 0.1) == pytest.approx(0.5)  # r=1: 0 + 1/2
    assert histogram_quantile(counts, 0, 1, 0.2) == pytest.approx(1.0)  # r=2: top of bin 0
    assert histogram_quantile(counts, 0, 1, 0.95) == 2.0  # r=9.5: open bin → lower edge


def test_histogram_quantile_skips_empty_bins_and_uses_start() -> None:
    # bins of width 5 from 10: [10,15) [15,20) [20,25) [25,∞); all 4 cases in [20,25)
    counts = [0, 0, 4, 0]
    assert histogram_quantile(counts, 10, 5, 0.25) == pytest.approx(21.25)  # 20 + 1/4·5
    assert histogram_quantile(counts, 10, 5, 0.0) == 20.0  # rank 0: first non-empty bin
    assert histogram_quantile(counts, 10, 5, 1.0) == 25.0  # rank n: top of last non-empty


def test_histogram_quantile_rejects_empty_histogram() -> None:
    with pytest.raises(ValueError):
        histogram_quantile([0, 0, 0], 0, 1, 0.5)


def test_quantile_interval_hand_example() -> None:
    # n = 20, q = 0.5: ranks 10 ∓ z·sqrt(5) = 5.6174 and 14.3826.
    counts = [0, 10, 10, 0]  # width 2: [0,2) [2,4) [4,6) [6,∞)
    half = Z * math.sqrt(5)
    lo, hi = quantile_interval(counts, 0, 2, 0.5)
    assert lo == pytest.approx(2 + (10 - half) / 10 * 2)
    assert hi == pytest.approx(4 + half / 10 * 2)
    assert lo < histogram_quantile(counts, 0, 2, 0.5) < hi


def test_quantile_rank_bounds_are_clipped() -> None:
    assert quantile_rank_bounds(1, 0.5) == (0.0, 1.0)  # 0.5 ∓ 0.98 before clipping
    lo, hi = quantile_rank_bounds(100, 0.9)
    assert lo == pytest.approx(90 - Z * 3) and hi == pytest.approx(90 + Z * 3)
    # one case in [1,2): the interval spans that bin
    assert quantile_interval([0, 1, 0], 0, 1, 0.5) == (1.0, 2.0)


def _binned(data: np.ndarray, start: float, width: float, count: int) -> list[int]:
    # The node's binning rule: floor((v - start)/width), values past the last edge → open bin.
    idx = np.minimum(np.floor((data - start) / width).astype(int), count)
    return np.bincount(idx, minlength=count + 1).tolist()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0.5, 0.9])
def test_histogram_quantile_within_one_bin_of_exact(seed: int, q: float) -> None:
    rng = np.random.default_rng(seed)
    data = rng.lognormal(mean=2.1, sigma=0.45, size=int(rng.integers(300, 3000)))
    start, width, count = 0.0, 1.0, 120
    counts = _binned(data, start, width, count)
    ours = histogram_quantile(counts, start, width, q)
    # inverted_cdf is the order statistic of rank ceil(q·n), which lies in the very bin
    # our rule picks, so both values share a bin.
    exact = float(np.quantile(data, q, method="inverted_cdf"))
    assert math.floor(exact) <= ours <= math.floor(exact) + width
    # numpy's default (linear) quantile differs by at most one bin width on dense data.
    assert abs(ours - float(np.quantile(data, q))) <= width


def test_value_at_rank_is_monotone() -> None:
    counts = [3, 0, 5, 1, 0, 2]
    values = [value_at_rank(counts, 0, 1, r / 4) for r in range(0, 4 * sum(counts) + 1)]
    assert values == sorted(values)


def test_quantile_interval_coverage_on_simulated_samples() -> None:
    # Exponential response times with mean 8 min: true median 8·ln 2, true p90 8·ln 10.
    rng = np.random.default_rng(11)
    for q, truth in [(0.5, 8 * math.log(2)), (0.9, 8 * math.log(10))]:
        hits = 0
        for _ in range(600):
            counts = _binned(rng.exponential(8.0, size=250), 0.0, 0.5, 200)
            lo, hi = quantile_interval(counts, 0.0, 0.5, q)
            hits += lo <= truth <= hi
        # Binning can only widen the interval, so coverage is at least nominal, give or take.
        assert 0.92 <= hits / 600 <= 0.995
