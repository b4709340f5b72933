"""Interval estimates the hub computes from pooled aggregate counts.

Nodes send only counts (numerator/denominator for shares, per-bin counts for distributions),
so every figure the hub publishes is derived here from integers: a Wilson score interval
for a share, and for a distribution a quantile read off the fixed-bin histogram with a
distribution-free (binomial order-statistic) confidence interval. Pure Python on purpose:
the formulas are short, and keeping them free of numpy/scipy keeps them easy to audit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
