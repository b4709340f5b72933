"""Special functions for exact count intervals: the Poisson and binomial distribution functions.

``emsbench.stats`` builds its exact intervals (Garwood's Poisson interval, the observed/expected
ratio, the binomial order-statistic interval for quantiles) on what this module computes:

* ``gamma_pq``: the regularized incomplete gamma functions P(a, x) and Q(a, x), hence
  ``poisson_cdf`` (P(X ≤ k) = Q(k + 1, μ));
* ``_beta_pq``: the regularized incomplete beta function I_x(a, b), hence ``binomial_cdf``
  (P(B ≤ k) = 1 − I_p(k + 1, n − k)) and its inverse ``binomial_ppf``;
* ``increasing_root``: the zero of an increasing function, bracketed and then refined by
  Brent's method, with ``chi2_quantile_guess`` (Wilson–Hilferty) as a starting point.

Accuracy, measured against scipy (``tests/emsbench/test_stats.py``): ``poisson_cdf`` and
``binomial_cdf`` agree to 1e−9 relative, down to tails of 1e−300, and their complements to
1e−8 wherever the upper tail exceeds 1e−6, for k ≤ 10^5, μ ≤ 1.2·10^5 and n ≤ 10^6;
``binomial_cdf`` reaches about 1e−12 relative up to n = 10^5 and 1e−10 at n = 10^7 in skewed
cases, and the Poisson interval's bounds are solved to about 1e−13 relative (its closed
forms at k = 0 and 1 are checked to that). Beyond μ ≈ 10^5 scipy's own tails lose digits,
so the tests stop there.

Pure Python on purpose: the functions are short and follow their published references
(Numerical Recipes, DLMF 8.12, Brent 1973) line by line, so they can be audited where they
run, and nodes and the hub need no scipy at runtime (scipy serves only as the reference
implementation in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

# The special functions below follow Numerical Recipes (gammp/gammq, betai/betacf): a power
# series or a continued fraction, whichever converges fast at the argument. Two refinements
# keep them accurate and fast at the sizes the benchmark reaches (counts up to 10^7):
#
# * the factor x^a·e^(−x)/Γ(a) (and its beta analogue) is computed from log1pmx and the
#   Stirling remainder Γ*, not from differences of lgamma values of size ~a·ln a, which at
#   a = 10^7 would already cost eight significant digits;
# * near the transition x ≈ a, where the series and the fraction both need O(√a) terms,
#   large a uses Temme's uniform asymptotic expansion (DLMF 8.12), whose cost does not grow.

_EPS = 2.220446049250313e-16
_TINY = 1e-300  # Lentz's guard against a zero denominator
_MAX_TERMS = 10_000_000  # never reached for finite arguments; guards against a silent hang
_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_NORMAL = NormalDist()

# Temme's coefficients c_k(η) = Σ_j TEMME[k][j]·η^j (DLMF 8.12.8–8.12.10; DiDonato & Morris
# 1986, Table 4; the same numbers as Boost's igamma_temme_large). They were regenerated in exact
# rational arithmetic from the recursion c_k = c'_(k−1)/η + (−1)^k·γ_k/(λ − 1). Where the
# expansion is used (a ≥ 1000, |x/a − 1| ≤ 0.1, so |η| < 0.11) the terms left out are below
# 1e−16 relative to the tail probability.
_TEMME_MIN_A = 1000.0
_TEMME_MAX_SIGMA = 0.1
_TEMME = (
    (-0.3333333333333333, 0.08333333333333333, -0.014814814814814815, 0.0011574074074074073,
     0.0003527336860670194, -0.0001787551440329218, 3.919263178522438e-05,
     -2.185448510679992e-06, -1.85406221071516e-06, 8.296711340953087e-07),
    (-0.001851851851851852, -0.003472222222222222, 0.0026455026455026454,
     -0.0009902263374485596, 0.00020576131687242798, -4.018775720164609e-07,
     -1.8098550334489977e-05, 7.64916091608111e-06),
    (0.004133597883597883, -0.0026813271604938273, 0.0007716049382716049,
     2.0093878600823047e-06, -0.0001073665322636516, 5.2923448829120125e-05),
    (0.0006494341563786008, 0.00022947209362139917, -0.0004691894943952557,
     0.00026772063206283885),
    (-0.0008618882909167117, 0.0007840392217200666),
)



def _lentz_step(an: float, bn: float, c: float, d: float) -> tuple[float, float, float]:
    """One term an/(bn + …) of a continued fraction by the modified Lentz method: the new
    (c, d) and the factor the value is multiplied by. A denominator that comes out as zero
    is replaced by a tiny number, as Lentz prescribes."""
    d = bn + an * d
    if abs(d) < _TINY:
        d = _TINY
    c = bn + an / c
    if abs(c) < _TINY:
        c = _TINY
    d = 1.0 / d
    return c, d, d * c

def _log1pmx(u: float) -> float:
    """log(1 + u) − u for u > −1, accurate where the two terms nearly cancel (small |u|).

    For |u| ≤ 1/2 it uses log(1 + u) = 2·atanh(s) with s = u/(2 + u), which gives
    log(1 + u) − u = −2s²/(1 − s) + 2·(s³/3 + s⁵/5 + …): no cancellation, |s| ≤ 1/3.
    """
    if not -0.5 <= u <= 0.5:
        return math.log1p(u) - u
    s = u / (2.0 + u)
    s2 = s * s
    power, odd, total = s2 * s, 3.0, 0.0
    while True:
        term = power / odd
        total += term
        if abs(term) <= _EPS * abs(total):
            return 2.0 * total - 2.0 * s2 / (1.0 - s)
        power *= s2
        odd += 2.0


def _log_ratio_term(a: float, z: float) -> float:
    """a·ln(z/a) − (z − a) = a·log1pmx((z − a)/a) for a, z > 0 (logs apart when z ≪ a)."""
    u = (z - a) / a
    if u < -0.5:
        return a * (math.log(z) - math.log(a)) + (a - z)
    return a * _log1pmx(u)


def _log_gamma_star(z: float) -> float:
    """ln Γ*(z) = ln Γ(z) − [(z − ½)·ln z − z + ½·ln 2π], the remainder of Stirling's formula.

    Stirling's series (through z^−13, error < 1e−16 for z ≥ 10) where ln Γ(z) would be large;
    lgamma below, where the bracket is small enough to subtract without loss.
    """
    if z >= 10.0:
        w = 1.0 / (z * z)
        return (1.0 / 12.0 + w * (-1.0 / 360.0 + w * (1.0 / 1260.0 + w * (
            -1.0 / 1680.0 + w * (1.0 / 1188.0 + w * (-691.0 / 360360.0 + w / 156.0)))))) / z
    return math.lgamma(z) - (z - 0.5) * math.log(z) + z - _LN_SQRT_2PI


def _gamma_prefix(a: float, x: float) -> float:
    """x^a·e^(−x)/Γ(a) = exp(a·log1pmx((x − a)/a))·√(a/2π)/Γ*(a), for a > 0, x > 0."""
    return math.exp(_log_ratio_term(a, x) - _log_gamma_star(a) + 0.5 * math.log(a)
                    - _LN_SQRT_2PI)


def _gamma_temme(a: float, x: float) -> tuple[float, float]:
    """P(a, x) and Q(a, x) by Temme's uniform expansion (DLMF 8.12.3–8.12.4), large a only."""
    sigma = (x - a) / a
    phi = -_log1pmx(sigma)  # λ − 1 − ln λ with λ = x/a, ≥ 0
    eta = math.copysign(math.sqrt(2.0 * phi), sigma)
    series = 0.0
    for coeffs in reversed(_TEMME):
        c = 0.0
        for coefficient in reversed(coeffs):
            c = c * eta + coefficient
        series = series / a + c
    r = math.exp(-a * phi) / math.sqrt(2.0 * math.pi * a) * series
    t = math.sqrt(a * phi)  # = η·√(a/2) up to sign
    if sigma >= 0:
        return 0.5 * math.erfc(-t) - r, 0.5 * math.erfc(t) + r
    return 0.5 * math.erfc(t) - r, 0.5 * math.erfc(-t) + r


def gamma_pq(a: float, x: float) -> tuple[float, float]:
    """The regularized incomplete gamma functions P(a, x) and Q(a, x) = 1 − P(a, x), a > 0.

    Numerical Recipes' choice: for x < a + 1 the power series of P, otherwise the continued
    fraction of Q (modified Lentz), each converging quickly on its side; the other function
    is the complement. Temme's expansion replaces both near x ≈ a for a ≥ 1000.
    """
    if x <= 0.0:
        return 0.0, 1.0
    if a >= _TEMME_MIN_A and abs(x - a) <= _TEMME_MAX_SIGMA * a:
        return _gamma_temme(a, x)
    prefix = _gamma_prefix(a, x)
    if x < a + 1.0:
        # P = x^a·e^(−x)/Γ(a) · Σ_n x^n / (a·(a+1)·…·(a+n))
        if prefix == 0.0:
            return 0.0, 1.0
        ap, term = a, 1.0 / a
        total = term
        for _ in range(_MAX_TERMS):
            ap += 1.0
            term *= x / ap
            total += term
            if term < total * _EPS:
                p = prefix * total
                return p, 1.0 - p
        raise ArithmeticError(f"incomplete gamma series did not converge (a={a}, x={x})")
    # Q = x^a·e^(−x)/Γ(a) · 1/(x+1−a− 1·(1−a)/(x+3−a− 2·(2−a)/(x+5−a− …)))
    if prefix == 0.0:
        return 1.0, 0.0
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        b += 2.0
        c, d, delta = _lentz_step(-i * (i - a), b, c, d)
        h *= delta
        if abs(delta - 1.0) < _EPS:
            q = prefix * h
            return 1.0 - q, q
    raise ArithmeticError(f"incomplete gamma fraction did not converge (a={a}, x={x})")


def _brent(f: Callable[[float], float], a: float, b: float, fa: float, fb: float,
           rtol: float) -> float:
    """A zero of f between a and b, where fa = f(a) and fb = f(b) differ in sign.

    Brent's method (zeroin, Brent 1973, ch. 4): inverse quadratic interpolation or secant
    steps, falling back to bisection whenever they would not shrink the bracket fast
    enough, so it never does worse than bisection. Stops when the bracket is below
    rtol relative to the estimate.
    """
    c, fc = a, fa
    d = e = b - a
    for _ in range(500):
        if (fb > 0) == (fc > 0):
            c, fc = a, fa
            d = e = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 2.0 * _EPS * abs(b) + 0.5 * rtol * abs(b) + _TINY
        m = 0.5 * (c - b)
        if abs(m) <= tol or fb == 0.0:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:  # secant
                p, q = 2.0 * m * s, 1.0 - s
            else:  # inverse quadratic interpolation
                q, r = fa / fc, fb / fc
                p = s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0:
                q = -q
            p = abs(p)
            if 2.0 * p < min(3.0 * m * q - abs(tol * q), abs(e * q)):
                e, d = d, p / q
            else:
                d = e = m
        else:
            d = e = m
        a, fa = b, fb
        b += d if abs(d) > tol else math.copysign(tol, m)
        fb = f(b)
    raise ArithmeticError("Brent's method did not converge")  # pragma: no cover


def increasing_root(f: Callable[[float], float], guess: float, lo: float,
                    hi: float = math.inf) -> float:
    """The zero of an increasing f with f(lo) < 0 (and f(hi) > 0 when hi is finite).

    Brackets the zero by steps that double away from the guess (halving towards lo on the
    way down, so a zero near lo is reached geometrically), then refines with Brent's method
    to 1e−14 relative.
    """
    x = min(max(guess, lo), hi)
    if x == lo:
        x = lo + 0.5 * (min(hi, lo + 1.0) - lo)
    fx = f(x)
    if fx == 0.0:
        return x
    step = 0.05 * (1.0 + math.sqrt(abs(x)))
    for _ in range(2200):  # generous: halving from 1 to the smallest float takes 1075 steps
        if fx < 0:
            if x >= hi:
                break
            b = min(x + step, hi)
            fb = f(b)
            if fb >= 0:
                return _brent(f, x, b, fx, fb, 1e-14) if fb > 0 else b
        else:
            a = x - step
            if a <= lo:
                a = 0.5 * (lo + x)
            fa = f(a)
            if fa <= 0:
                return _brent(f, a, x, fa, fx, 1e-14) if fa < 0 else a
            b, fb = a, fa
        x, fx, step = b, fb, 2.0 * step
    raise ArithmeticError("could not bracket the root")  # pragma: no cover


def chi2_quantile_guess(p: float, dof: float) -> float:
    """Wilson–Hilferty approximation of the chi-square p-quantile (a starting point only)."""
    v = 2.0 / (9.0 * dof)
    return dof * max(1.0 - v + _NORMAL.inv_cdf(p) * math.sqrt(v), 0.0) ** 3


def poisson_cdf(k: int, mu: float) -> float:
    """P(X ≤ k) for X ~ Poisson(mu), as the regularized incomplete gamma Q(k + 1, mu).

    Through the incomplete gamma function rather than a sum of probabilities so that the
    cost stays flat for large k and mu and the tails keep their relative accuracy.
    """
    if mu < 0 or not math.isfinite(mu):
        raise ValueError(f"poisson_cdf needs a finite mu >= 0, got {mu}")
    if k < 0:
        return 0.0
    return gamma_pq(k + 1.0, mu)[1]


def _beta_prefix(a: float, b: float, x: float, y: float) -> float:
    """x^a·y^b/B(a, b) with y = 1 − x, 0 < x < 1.

    Written as √(ab/(2π(a+b)))·Γ*(a+b)/(Γ*(a)·Γ*(b))·exp(a·log1pmx(u) + b·log1pmx(v)) with
    u = x(a+b)/a − 1 and v = y(a+b)/b − 1 (the linear parts cancel since a·u + b·v = 0),
    which keeps its relative accuracy when a and b are large.
    """
    total = a + b
    log_value = (_log_ratio_term(a, x * total) + _log_ratio_term(b, y * total)
                 + _log_gamma_star(total) - _log_gamma_star(a) - _log_gamma_star(b)
                 + 0.5 * (math.log(a) + math.log(b) - math.log(total)) - _LN_SQRT_2PI)
    return math.exp(log_value)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_TERMS):
        m2 = 2.0 * m
        # even step, then odd step
        c, d, delta = _lentz_step(m * (b - m) * x / ((qam + m2) * (a + m2)), 1.0, c, d)
        h *= delta
        c, d, delta = _lentz_step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), 1.0,
                                  c, d)
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta fraction did not converge (a={a}, b={b}, x={x})")


def _beta_pq(a: float, b: float, x: float, y: float) -> tuple[float, float]:
    """I_x(a, b) and 1 − I_x(a, b), the regularized incomplete beta function, y = 1 − x.

    Numerical Recipes' betai: the continued fraction converges fast for x < (a+1)/(a+b+2);
    otherwise it is applied to the mirror image 1 − I_y(b, a).
    """
    if x <= 0.0:
        return 0.0, 1.0
    if y <= 0.0:
        return 1.0, 0.0
    prefix = _beta_prefix(a, b, x, y)
    if x < (a + 1.0) / (a + b + 2.0):
        p = prefix * _beta_fraction(a, b, x) / a
        return p, 1.0 - p
    q = prefix * _beta_fraction(b, a, y) / b
    return 1.0 - q, q


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(B ≤ k) for B ~ Binomial(n, p), as 1 − I_p(k + 1, n − k).

    Through the regularized incomplete beta function rather than a sum of probabilities,
    so that its cost does not grow with k and its tails keep their relative accuracy: about
    1e−12 relative up to n = 10^5, and 1e−10 at n = 10^7 in skewed cases (k far from n/2,
    near the mean), where the continued fraction loses digits in proportion to n.
    """
    if n < 0:
        raise ValueError(f"binomial_cdf needs n >= 0, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"binomial_cdf needs p in [0, 1], got {p}")
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return _beta_pq(k + 1.0, float(n - k), p, 1.0 - p)[1]


def binomial_ppf(prob: float, n: int, p: float) -> int:
    """The smallest j in 0..n with P(B ≤ j) ≥ prob, B ~ Binomial(n, p), 0 < prob < 1."""
    z = _NORMAL.inv_cdf(prob)
    sd = math.sqrt(n * p * (1.0 - p))
    # normal approximation with a skewness correction (Cornish–Fisher), a starting point only
    guess = n * p + sd * z + (z * z - 1.0) * (1.0 - 2.0 * p) / 6.0 - 0.5
    j = min(max(math.ceil(guess), 0), n)
    step = 1
    if binomial_cdf(j, n, p) >= prob:
        hi, lo = j, j - 1
        while lo >= 0 and binomial_cdf(lo, n, p) >= prob:
            hi, lo, step = lo, max(lo - 2 * step, -1), 2 * step
    else:
        lo, hi = j, j + 1
        while hi < n and binomial_cdf(hi, n, p) < prob:
            lo, hi, step = hi, min(hi + 2 * step, n), 2 * step
    # P(B ≤ lo) < prob ≤ P(B ≤ hi) (with P(B ≤ −1) = 0 and P(B ≤ n) = 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if binomial_cdf(mid, n, p) >= prob:
            hi = mid
        else:
            lo = mid
    return hi
