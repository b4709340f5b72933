"""Interval estimates the hub computes from pooled aggregate counts.

Nodes send only counts (numerator/denominator for shares, per-bin counts for distributions),
so every figure the hub publishes is derived here from integers: a Wilson score interval
for a share, and for a distribution a quantile read off the fixed-bin histogram with a
distribution-free (binomial order-statistic) confidence interval. For event counts there
is the exact (Garwood) Poisson interval and the observed/expected ratio built on it, and for
order statistics the exact binomial rank interval; ``type7_quantile`` writes down the
quantile definition used on row-level values. The incomplete gamma and beta functions the
exact intervals rest on are in ``emsbench.special``. Pure Python on purpose: the formulas are
short, and keeping them free of numpy/scipy keeps them easy to audit (scipy and statsmodels
serve only as reference implementations in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from emsbench.special import (
    binomial_cdf,
    binomial_ppf,
    chi2_quantile_guess,
    gamma_pq,
    increasing_root,
    poisson_cdf,
)

# poisson_cdf and binomial_cdf live in emsbench.special; they are re-exported here, where
# callers (and the tests) have always found them.
__all__ = [
    "Z95",
    "binomial_cdf",
    "histogram_quantile",
    "newcombe_difference",
    "poisson_cdf",
    "poisson_interval",
    "quantile_interval",
    "quantile_rank_bounds",
    "quantile_rank_interval",
    "rank_coverage",
    "ratio_interval",
    "spread_runs",
    "type7_quantile",
    "value_at_rank",
    "wilson_interval",
]

Z95 = 1.959964  # two-sided 95 % standard normal quantile


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n, as proportions in [0, 1].

    Chosen over the Wald interval because the benchmark has small strata and shares near
    0 % or 100 % (e.g. survival), where Wald collapses to zero width or leaves [0, 1].
    """
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Clamp: at k = 0 or k = n the bound is exactly 0 or 1 but rounding can stray past it.
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z95
                        ) -> tuple[float, float, float]:
    """p1 − p2 and its 95 % interval by Newcombe's hybrid score method (method 10 of
    Newcombe 1998), as proportions.

    Chosen because it is built from the two Wilson intervals the benchmark already uses,
    so it keeps their coverage at small n and at shares near 0 % or 100 % (where the Wald
    difference interval fails), and it needs only the counts the hub holds.
    """
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    return (d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def value_at_rank(counts: Sequence[float], start: float, width: float, rank: float) -> float:
    """The histogram value at a (fractional) rank, by linear interpolation within a bin.

    Bins are ``[start + i·width, start + (i+1)·width)`` for every bin but the last, which
    is open-ended ``[start + (len(counts)-1)·width, ∞)``. With n = sum(counts):

    1. clip the rank r to [0, n];
    2. take the first bin i with count > 0 whose cumulative count (bins 0..i) is ≥ r;
    3. if i is the open last bin, return its lower edge (nothing is known about the spread
       of values above it, so the result is a lower bound);
    4. otherwise return ``lower_edge_i + (r − cum_before_i) / count_i · width``.

    Rank 0 therefore gives the lower edge of the first non-empty bin and rank n the upper
    edge of the last non-empty bin (when that bin is closed).
    """
    n = sum(counts)
    if n <= 0:
        raise ValueError("the histogram is empty")
    r = min(max(rank, 0.0), float(n))
    cum_before = 0.0
    last = len(counts) - 1
    for i, c in enumerate(counts):
        if c < 0:
            raise ValueError(f"bin {i} has a negative count")
        if c > 0 and cum_before + c >= r:
            lower = start + i * width
            if i == last:
                return lower
            return lower + (r - cum_before) / c * width
        cum_before += c
    raise AssertionError("unreachable: the cumulative count reaches n")  # pragma: no cover


def histogram_quantile(counts: Sequence[float], edges_start: float, width: float,
                       q: float) -> float:
    """The q-quantile of a fixed-bin histogram: ``value_at_rank`` at rank r = q·n.

    Example: counts [2, 6, 2] with bins [0, 1), [1, 2), [2, ∞) and q = 0.5 give n = 10,
    r = 5; bin 1 is the first with cumulative count (8) ≥ 5, so the value is
    1 + (5 − 2)/6 · 1 = 1.5.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must lie in [0, 1], got {q}")
    return value_at_rank(counts, edges_start, width, q * sum(counts))


def quantile_rank_bounds(n: float, q: float, z: float = Z95) -> tuple[float, float]:
    """Ranks n·q ∓ z·sqrt(n·q·(1−q)) clipped to [0, n].

    The number of observations below the true q-quantile is Binomial(n, q); its normal
    approximation gives the order statistics that bracket the quantile with the stated
    confidence, whatever the shape of the distribution.
    """
    centre = n * q
    half = z * math.sqrt(n * q * (1 - q))
    return max(0.0, centre - half), min(float(n), centre + half)


def quantile_interval(counts: Sequence[float], start: float, width: float, q: float,
                      z: float = Z95) -> tuple[float, float]:
    """Distribution-free confidence interval for the q-quantile of a binned sample.

    The bounds are the histogram values (see ``value_at_rank``) at the ranks given by
    ``quantile_rank_bounds``. Binning adds up to one bin width of imprecision on each side.
    """
    if not 0 < q < 1:
        raise ValueError(f"q must lie in (0, 1), got {q}")
    lo_rank, hi_rank = quantile_rank_bounds(sum(counts), q, z)
    return (value_at_rank(counts, start, width, lo_rank),
            value_at_rank(counts, start, width, hi_rank))


def spread_runs(runs: Sequence[tuple[int, int, int]], n_bins: int) -> list[float]:
    """Per-bin counts from runs ``(first, last, count)``, a run's count spread evenly.

    A run of one bin gives its exact count; a coarsened run (several bins joined by the
    node's disclosure control) is treated as one wide bin, which is what linear
    interpolation inside it then assumes anyway.
    """
    counts = [0.0] * n_bins
    for first, last, count in runs:
        share = count / (last - first + 1)
        for i in range(first, last + 1):
            counts[i] += share
    return counts


# --- Exact intervals for counts: Poisson, binomial and order statistics ----------------------
#
# Built on the incomplete gamma and beta functions of ``emsbench.special``.


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return (1.0 - confidence) / 2.0


def poisson_interval(k: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood 1936) confidence interval for a Poisson mean, given the count k ≥ 0.

    With α = 1 − confidence, the lower bound is the mean μ at which P(X ≥ k; μ) = α/2 (0
    when k = 0) and the upper bound the μ at which P(X ≤ k; μ) = α/2; equivalently
    χ²(α/2; 2k)/2 and χ²(1 − α/2; 2k + 2)/2. Chosen for event counts because it guarantees
    at least the nominal coverage at every mean, including the small counts of rare events
    where normal approximations fail, and reduces to the familiar normal width for large k.
    Solved as P(k, μ) = α/2 and Q(k + 1, μ) = α/2 with the regularized incomplete gamma
    function and Brent's method, to about 1e−13 relative; a call takes well under a
    millisecond even at k = 10^7.
    """
    if k < 0:
        raise ValueError(f"poisson_interval needs a count k >= 0, got {k}")
    tail = _check_confidence(confidence)
    a = float(k)
    if k == 0:
        lower = 0.0
    else:
        lower = increasing_root(lambda mu: gamma_pq(a, mu)[0] - tail,
                                0.5 * chi2_quantile_guess(tail, 2.0 * a), 0.0, a)
    upper = increasing_root(lambda mu: tail - gamma_pq(a + 1.0, mu)[1],
                            0.5 * chi2_quantile_guess(1.0 - tail, 2.0 * a + 2.0), a)
    return lower, upper


def ratio_interval(observed: int, expected: float, confidence: float = 0.95
                   ) -> tuple[float, float, float]:
    """O/E and its exact interval: the Poisson interval of O (``poisson_interval``) over E.

    The expected count E is treated as fixed, as for a standardised mortality ratio from
    indirect standardisation, where E comes from reference rates applied to the stratum's
    own population and its uncertainty is negligible beside that of the observed count.
    """
    if not (expected > 0 and math.isfinite(expected)):
        raise ValueError(f"ratio_interval needs a finite expected count > 0, got {expected}")
    lower, upper = poisson_interval(observed, confidence)
    return observed / expected, lower / expected, upper / expected


def quantile_rank_interval(n: int, q: float, confidence: float = 0.95) -> tuple[int, int]:
    """Exact distribution-free confidence interval for the q-quantile of a sample of n:
    1-based ranks (l, u) of the order statistics X_(l) ≤ X_(u) that bracket it.

    The number B of observations below the true q-quantile ξ is Binomial(n, q) whatever the
    (continuous) distribution, and X_(l) ≤ ξ < X_(u) exactly when l ≤ B < u. With
    α = 1 − confidence and F the Binomial(n, q) distribution function, in scipy's
    conventions ``l = binom.ppf(α/2, n, q)`` and ``u = binom.ppf(1 − α/2, n, q) + 1``, i.e.

    * l = the smallest j with F(j) ≥ α/2, so P(B < l) = F(l − 1) < α/2;
    * u − 1 = the smallest j with F(j) ≥ 1 − α/2, so P(B ≥ u) = 1 − F(u − 1) ≤ α/2;

    both then clipped to [1, n]. The coverage of [X_(l), X_(u)] is
    P(l ≤ B < u) = F(u − 1) − F(l − 1) > confidence (see ``rank_coverage``) unless the clip
    moved a bound, which happens only when n is too small for the confidence asked: l = 0
    when F(0) = (1 − q)^n ≥ α/2, and u = n + 1 when F(n − 1) = 1 − q^n < 1 − α/2.
    Chosen over the normal approximation (``quantile_rank_bounds``) because its coverage is
    known exactly at every n rather than approximately, and never falls below the nominal
    level (clip aside), which matters for the small strata of a benchmark.
    """
    if n < 1:
        raise ValueError(f"quantile_rank_interval needs n >= 1, got {n}")
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie in (0, 1), got {q}")
    tail = _check_confidence(confidence)
    lower = binomial_ppf(tail, n, q)
    upper = binomial_ppf(1.0 - tail, n, q) + 1
    return min(max(lower, 1), n), min(max(upper, 1), n)


def rank_coverage(n: int, q: float, l: int, u: int) -> float:  # noqa: E741 (textbook l, u)
    """Coverage of [X_(l), X_(u)] for the q-quantile of a continuous distribution, n draws.

    P(l ≤ B < u) = F(u − 1) − F(l − 1) with B ~ Binomial(n, q), the number of observations
    below the quantile; ranks are 1-based and 1 ≤ l ≤ u ≤ n.
    """
    if not 1 <= l <= u <= n:
        raise ValueError(f"rank_coverage needs 1 <= l <= u <= n, got l={l}, u={u}, n={n}")
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must lie in (0, 1), got {q}")
    return binomial_cdf(u - 1, n, q) - binomial_cdf(l - 1, n, q)


def type7_quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile of a sorted sample by Hyndman & Fan's definition 7.

    With n values x_1 ≤ … ≤ x_n, h = (n − 1)·q and j = ⌊h⌋, the result is
    x_(j+1) + (h − j)·(x_(j+2) − x_(j+1)): linear interpolation between the order statistics
    around rank 1 + (n − 1)·q. This is numpy's default (``method='linear'``), R's default
    (type 7) and what DuckDB's ``quantile_cont`` computes, so it is the definition behind
    quantiles taken from row-level values (DuckDB SQL on a node's rows, numpy in tests).
    Here for tests and as the written-down definition; the hub itself only sees histograms.
    """
    n = len(sorted_values)
    if n == 0:
        raise ValueError("type7_quantile needs at least one value")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must lie in [0, 1], got {q}")
    if any(sorted_values[i] > sorted_values[i + 1] for i in range(n - 1)):
        raise ValueError("type7_quantile needs the values sorted in ascending order")
    h = (n - 1) * q
    j = min(math.floor(h), n - 1)
    if j == n - 1:
        return float(sorted_values[j])
    t = h - j
    low, high = float(sorted_values[j]), float(sorted_values[j + 1])
    # interpolate from the nearer end, as numpy does, so t = 0 and t = 1 give the values exactly
    if t < 0.5:
        return low + (high - low) * t
    return high - (high - low) * (1.0 - t)
