"""Vectorised random draws and Arrow conversion shared by the generator modules.

Every helper takes the block's ``numpy.random.Generator`` explicitly and draws a fixed
number of values in a fixed order, which is what keeps a block's output a pure function
of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from node.synth.params import Lognormal

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def pick(rng: np.random.Generator, weights: Sequence[float], n: int) -> Ints:
    """Indices 0..len(weights)-1 drawn with the given (not necessarily normalised) weights."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf = cdf / cdf[-1]
    u = rng.random(n)
    if len(cdf) > 32:
        # guard against the last cumulative value rounding just below 1.0
        return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1).astype(np.int64)
    # the same count of CDF steps at or below u, one vectorised comparison per step:
    # several times faster than a binary search per row for a few categories
    idx = np.zeros(n, dtype=np.int64)
    for step in cdf[:-1]:
        idx += step <= u
    return idx


def pick_by(rng: np.random.Generator, table: Sequence[Sequence[float]], which: Ints) -> Ints:
    """Per row, an index into ``table[which[row]]`` drawn with that row's weights."""
    weights = np.asarray(table, dtype=np.float64)
    m = weights.shape[1]
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(which))
    flat, base = cdf.ravel(), which * m
    idx = np.zeros(len(which), dtype=np.int64)
    for step in range(m - 1):  # as in ``pick``, with each row's own CDF
        idx += flat.take(base + step) <= u
    return idx


def chance(rng: np.random.Generator, p: float | Floats, n: int) -> Bools:
    """Bernoulli draws; ``p`` may be one probability or one per row."""
    return rng.random(n) < p


def lognormal(rng: np.random.Generator, dist: Lognormal, n: int) -> Floats:
    """Draws in the unit of ``dist`` (minutes in this package)."""
    return np.exp(dist.mu + dist.sigma * rng.standard_normal(n))


def lognormal_by(rng: np.random.Generator, dists: Sequence[Lognormal], which: Ints) -> Floats:
    """One draw per row from ``dists[which[row]]``."""
    mu = np.array([d.mu for d in dists])[which]
    sigma = np.array([d.sigma for d in dists])[which]
    return np.exp(mu + sigma * rng.standard_normal(len(which)))


def seconds(minutes: Floats, minimum: int = 1) -> Ints:
    """Whole seconds, at least ``minimum`` so that successive timestamps strictly increase."""
    return np.maximum(np.rint(minutes * 60.0), minimum).astype(np.int64)


def ages(rng: np.random.Generator, mean: float, sd: float, low: int, n: int) -> Ints:
    """Normal ages clipped to [low, 100]."""
    return np.clip(np.rint(rng.normal(mean, sd, n)), low, 100).astype(np.int64)


def strings(categories: Sequence[str], codes: Ints, valid: Bools | None = None) -> pa.Array:
    """A string column from category codes; rows not ``valid`` are null."""
    mask = None if valid is None else ~valid
    taken = pc.take(pa.array(list(categories), pa.string()), pa.array(codes, mask=mask))
    return taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken


def bools(values: Bools, valid: Bools | None = None) -> pa.Array:
    return pa.array(values, pa.bool_(), mask=None if valid is None else ~valid)


def int32s(values: Ints, valid: Bools | None = None) -> pa.Array:
    return pa.array(values.astype(np.int32), pa.int32(),
                    mask=None if valid is None else ~valid)


def timestamps(epoch_s: Ints, valid: Bools | None = None) -> pa.Array:
    """Naive microsecond timestamps from seconds since 1970-01-01."""
    return pa.array(epoch_s * 1_000_000, pa.timestamp("us"),
                    mask=None if valid is None else ~valid)
