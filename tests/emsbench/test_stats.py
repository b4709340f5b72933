"""Interval estimates of emsbench.stats against hand-computed values, reference
implementations (scipy, statsmodels, numpy) and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from emsbench.stats import (
    binomial_cdf,
    histogram_quantile,
    poisson_cdf,
    poisson_interval,
    quantile_interval,
    quantile_rank_bounds,
    quantile_rank_interval,
    rank_coverage,
    ratio_interval,
    type7_quantile,
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


# --- Reference implementations: statsmodels and scipy ----------------------------------------

def _close(ours: float, ref: float, rel: float = 1e-9, abs_: float = 1e-15) -> bool:
    return abs(ours - ref) <= max(rel * abs(ref), abs_)


def _z(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2))


N_GRID = [1, 2, 3, 5, 10, 17, 50, 100, 999, 10_000, 1_000_000, 10**9]


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99])
def test_wilson_matches_statsmodels(confidence: float) -> None:
    z = _z(confidence)
    checked = 0
    for n in N_GRID:
        for k in sorted({0, 1, 2, n // 10, n // 3, n // 2, n - 2, n - 1, n}):
            if not 0 <= k <= n:
                continue
            lo, hi = wilson_interval(k, n, z)
            ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            assert _close(lo, float(ref_lo)) and _close(hi, float(ref_hi)), (k, n, lo, ref_lo)
            checked += 1
    assert checked > 80


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 10**7), frac=st.floats(0, 1), confidence=st.floats(0.5, 0.999))
def test_wilson_matches_statsmodels_anywhere(n: int, frac: float, confidence: float) -> None:
    k = round(frac * n)
    lo, hi = wilson_interval(k, n, _z(confidence))
    ref_lo, ref_hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert _close(lo, float(ref_lo)) and _close(hi, float(ref_hi))


def _garwood(k: int, confidence: float) -> tuple[float, float]:
    alpha = 1 - confidence
    lower = float(sps.chi2.ppf(alpha / 2, 2 * k)) / 2 if k > 0 else 0.0
    return lower, float(sps.chi2.ppf(1 - alpha / 2, 2 * k + 2)) / 2


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99, 0.5])
def test_poisson_interval_matches_chi2_for_small_counts(confidence: float) -> None:
    for k in range(0, 201):
        lo, hi = poisson_interval(k, confidence)
        ref_lo, ref_hi = _garwood(k, confidence)
        if k == 0:
            assert lo == ref_lo == 0.0
        else:
            assert _close(lo, ref_lo, abs_=0.0), (k, lo, ref_lo)
        assert _close(hi, ref_hi, abs_=0.0), (k, hi, ref_hi)


@pytest.mark.parametrize("k", [1_000, 999, 1_001, 5_000, 100_000, 1_000_000, 10_000_000])
@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_poisson_interval_matches_chi2_for_large_counts(k: int, confidence: float) -> None:
    lo, hi = poisson_interval(k, confidence)
    ref_lo, ref_hi = _garwood(k, confidence)
    assert _close(lo, ref_lo, abs_=0.0) and _close(hi, ref_hi, abs_=0.0)


@settings(max_examples=300, deadline=None)
@given(k=st.integers(0, 10**6), confidence=st.floats(0.5, 0.999))
def test_poisson_interval_matches_chi2_anywhere(k: int, confidence: float) -> None:
    lo, hi = poisson_interval(k, confidence)
    ref_lo, ref_hi = _garwood(k, confidence)
    assert (lo == 0.0 if k == 0 else _close(lo, ref_lo, abs_=0.0)) and _close(hi, ref_hi, abs_=0.0)


def test_poisson_interval_closed_forms() -> None:
    # k = 0: e^(−μ) = α/2; k = 1, lower: 1 − e^(−μ) = α/2.
    assert poisson_interval(0) == (0.0, pytest.approx(-math.log(0.025), rel=1e-13))
    assert poisson_interval(1)[0] == pytest.approx(-math.log1p(-0.025), rel=1e-13)
    # The textbook table (e.g. Ulm 1990): 10 events give 4.795–18.39.
    lo, hi = poisson_interval(10)
    assert lo == pytest.approx(4.7954, abs=1e-4) and hi == pytest.approx(18.3904, abs=1e-4)


def test_poisson_interval_solves_its_defining_equations() -> None:
    # P(X ≥ k; lower) = α/2 and P(X ≤ k; upper) = α/2, checked with scipy's Poisson.
    for k in [1, 2, 7, 30, 250, 4_000, 60_000]:
        for confidence in (0.8, 0.95, 0.999):
            lo, hi = poisson_interval(k, confidence)
            tail = (1 - confidence) / 2
            assert float(sps.poisson.sf(k - 1, lo)) == pytest.approx(tail, rel=1e-9)
            assert float(sps.poisson.cdf(k, hi)) == pytest.approx(tail, rel=1e-9)


def test_poisson_interval_is_nested_and_monotone() -> None:
    previous = (-1.0, -1.0)
    for k in [0, 1, 2, 3, 10, 100, 10**4, 10**6, 10**7]:
        narrow, wide = poisson_interval(k, 0.9), poisson_interval(k, 0.99)
        assert wide[0] <= narrow[0] <= k <= narrow[1] <= wide[1]
        assert narrow[0] >= previous[0] and narrow[1] > previous[1]
        previous = narrow


def test_poisson_interval_for_huge_counts_meets_the_normal_approximation() -> None:
    # At k = 10**7 the exact limits are k ± 1.96·√k to within the skew term (≈ 1/3 + z²/6).
    for k in (10**7, 10**7 + 19):
        lo, hi = poisson_interval(k)
        half = 1.959964 * math.sqrt(k)
        assert abs(lo - (k - half)) < 2 and abs(hi - (k + half)) < 2


def test_poisson_interval_rejects_bad_arguments() -> None:
    for k, confidence in [(-1, 0.95), (3, 0.0), (3, 1.0), (3, 1.5)]:
        with pytest.raises(ValueError):
            poisson_interval(k, confidence)


@settings(max_examples=300, deadline=None)
@given(k=st.integers(0, 10**5), mu=st.floats(0, 1.2e5))
def test_poisson_cdf_matches_scipy(k: int, mu: float) -> None:
    # mu ≤ 1e5: beyond that scipy's own tails lose digits (1e−5 relative at mu ≈ 1e6).
    ours, ref, ref_sf = poisson_cdf(k, mu), float(sps.poisson.cdf(k, mu)), float(
        sps.poisson.sf(k, mu))
    assert _close(ours, ref, abs_=1e-300)
    if ref_sf > 1e-6:  # below that, 1 − cdf cannot carry nine digits
        assert _close(1 - ours, ref_sf, rel=1e-8, abs_=0.0)


def test_ratio_interval_divides_the_poisson_interval() -> None:
    ratio, lo, hi = ratio_interval(10, 5.0)
    ref_lo, ref_hi = _garwood(10, 0.95)
    assert ratio == 2.0
    assert _close(lo, ref_lo / 5.0) and _close(hi, ref_hi / 5.0)
    assert ratio_interval(0, 2.5, 0.9) == (0.0, 0.0, pytest.approx(-math.log(0.05) / 2.5))
    for expected in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            ratio_interval(3, expected)


@pytest.mark.parametrize("n", [1, 2, 7, 40, 500, 10_000, 1_000_000])
def test_binomial_cdf_matches_scipy_on_a_grid(n: int) -> None:
    for p in (1e-6, 0.001, 0.1, 0.3, 0.5, 0.77, 0.9, 0.999):
        mean, sd = n * p, math.sqrt(n * p * (1 - p))
        ks = {0, 1, n - 1, n, *(round(mean + t * sd) for t in (-6, -3, -1, 0, 1, 3, 6))}
        for k in sorted(k for k in ks if 0 <= k <= n):
            ref = float(sps.binom.cdf(k, n, p))
            assert _close(binomial_cdf(k, n, p), ref, abs_=1e-300), (k, n, p)


@settings(max_examples=500, deadline=None)
@given(n=st.integers(1, 10**6), p=st.floats(0, 1), t=st.floats(-8, 8))
def test_binomial_cdf_matches_scipy_anywhere(n: int, p: float, t: float) -> None:
    k = min(n, max(0, round(n * p + t * math.sqrt(n * p * (1 - p)))))
    ours, ref = binomial_cdf(k, n, p), float(sps.binom.cdf(k, n, p))
    assert _close(ours, ref, abs_=1e-300)
    ref_sf = float(sps.binom.sf(k, n, p))
    if ref_sf > 1e-6:
        assert _close(1 - ours, ref_sf, rel=1e-8, abs_=0.0)


def test_binomial_cdf_edges() -> None:
    assert binomial_cdf(-1, 5, 0.3) == 0.0 and binomial_cdf(5, 5, 0.3) == 1.0
    assert binomial_cdf(0, 5, 0.0) == 1.0 and binomial_cdf(4, 5, 1.0) == 0.0
    assert binomial_cdf(2, 4, 0.5) == pytest.approx(11 / 16, rel=1e-15)
    with pytest.raises(ValueError):
        binomial_cdf(1, 5, 1.5)


def _scipy_rank_interval(n: int, q: float, confidence: float) -> tuple[int, int]:
    alpha = 1 - confidence
    lower = int(sps.binom.ppf(alpha / 2, n, q))
    upper = int(sps.binom.ppf(1 - alpha / 2, n, q)) + 1
    return min(max(lower, 1), n), min(max(upper, 1), n)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.1])
def test_quantile_rank_interval_matches_scipy_ppf(q: float) -> None:
    for n in range(1, 501):
        assert quantile_rank_interval(n, q) == _scipy_rank_interval(n, q, 0.95), n


@pytest.mark.parametrize("n", [1_000, 4_321, 100_000, 1_000_000, 10_000_000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.1, 0.01])
@pytest.mark.parametrize("confidence", [0.95, 0.8, 0.99])
def test_quantile_rank_interval_matches_scipy_for_large_n(n: int, q: float,
                                                         confidence: float) -> None:
    assert quantile_rank_interval(n, q, confidence) == _scipy_rank_interval(n, q, confidence)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 20_000), q=st.floats(0.001, 0.999), confidence=st.floats(0.5, 0.999))
def test_quantile_rank_interval_matches_scipy_anywhere(n: int, q: float,
                                                       confidence: float) -> None:
    assert quantile_rank_interval(n, q, confidence) == _scipy_rank_interval(n, q, confidence)


def test_quantile_rank_interval_hand_example() -> None:
    # n = 10, median: F(1) = 11/1024 < 0.025 ≤ F(2) = 56/1024 gives l = 2; F(7) = 968/1024
    # < 0.975 ≤ F(8) = 1013/1024 gives u − 1 = 8, u = 9. Coverage F(8) − F(1) = 1002/1024.
    assert quantile_rank_interval(10, 0.5) == (2, 9)
    assert rank_coverage(10, 0.5, 2, 9) == pytest.approx(1002 / 1024, rel=1e-14)


def test_rank_coverage_matches_scipy() -> None:
    for n, q, lo, hi in [(10, 0.5, 2, 9), (50, 0.9, 40, 50), (1, 0.3, 1, 1), (1000, 0.1, 80, 120)]:
        ref = float(sps.binom.cdf(hi - 1, n, q) - sps.binom.cdf(lo - 1, n, q))
        assert _close(rank_coverage(n, q, lo, hi), ref)
    with pytest.raises(ValueError):
        rank_coverage(10, 0.5, 5, 4)


@pytest.mark.parametrize("confidence", [0.95, 0.9])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.1, 0.75])
def test_rank_interval_coverage_is_at_least_nominal_unless_clipped(q: float,
                                                                   confidence: float) -> None:
    alpha = 1 - confidence
    for n in range(1, 400):
        lo, hi = quantile_rank_interval(n, q, confidence)
        coverage = rank_coverage(n, q, lo, hi)
        clipped = (1 - q) ** n >= alpha / 2 or q**n > alpha / 2
        if not clipped:
            assert coverage >= confidence, (n, lo, hi, coverage)
            # and each bound is the innermost with at most α/2 outside it (scipy's cdf):
            # P(B < l) < α/2 ≤ P(B < l + 1) and P(B ≥ u) ≤ α/2 < P(B ≥ u − 1)
            cdf = sps.binom(n, q).cdf
            assert cdf(lo - 1) < alpha / 2 <= cdf(lo), (n, lo)
            assert 1 - cdf(hi - 1) <= alpha / 2 < 1 - cdf(hi - 2), (n, hi)
    # the clip stops binding once n is large enough: here from n = 6 for the median at 95 %
    assert all(rank_coverage(n, 0.5, *quantile_rank_interval(n, 0.5)) >= 0.95
               for n in range(6, 400))


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_rank_interval_coverage_on_simulated_samples(q: float) -> None:
    rng = np.random.default_rng(23)
    n, reps = 60, 6000
    lo, hi = quantile_rank_interval(n, q)
    truth = -8.0 * math.log(1 - q)  # exponential, mean 8
    samples = np.sort(rng.exponential(8.0, size=(reps, n)), axis=1)
    hits = float(np.mean((samples[:, lo - 1] <= truth) & (truth <= samples[:, hi - 1])))
    expected = rank_coverage(n, q, lo, hi)
    assert expected >= 0.95
    assert abs(hits - expected) <= 4 * math.sqrt(expected * (1 - expected) / reps)


def test_type7_quantile_hand_examples() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert type7_quantile(values, 0.5) == 2.5  # h = 1.5
    assert type7_quantile(values, 0.9) == pytest.approx(3.7)  # h = 2.7
    assert type7_quantile(values, 0.0) == 1.0 and type7_quantile(values, 1.0) == 4.0
    assert type7_quantile([5.0], 0.3) == 5.0
    with pytest.raises(ValueError):
        type7_quantile([2.0, 1.0], 0.5)
    with pytest.raises(ValueError):
        type7_quantile([], 0.5)


@settings(max_examples=500, deadline=None)
@given(values=st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=60),
       q=st.floats(0, 1))
def test_type7_quantile_matches_numpy(values: list[float], q: float) -> None:
    ordered = sorted(values)
    ours = type7_quantile(ordered, q)
    scale = max(abs(v) for v in values) or 1.0
    assert abs(ours - float(np.quantile(values, q))) <= 1e-12 * scale
    assert abs(ours - float(np.percentile(values, 100 * q))) <= 1e-9 * scale
