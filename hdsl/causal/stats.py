"""Exact (Clopper–Pearson) binomial intervals and the three-way verdict.

scipy's beta quantile is used when scipy is importable (it comes with the
``xai`` extra through scikit-image, not with the core dependencies); otherwise
the quantile is found by bisection on the regularised incomplete beta function,
computed with Lentz's continued fraction. Both agree to ~1e-12 (tested).
"""

from __future__ import annotations

import math


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) for a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of Beta(a, b): scipy when present, else bisection (monotone, 200 halvings)."""
    try:
        from scipy.stats import beta as _beta  # type: ignore

        return float(_beta.ppf(q, a, b))
    except ImportError:
        return beta_ppf_bisect(q, a, b)


def beta_ppf_bisect(q: float, a: float, b: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return 0.5 * (lo + hi)


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided exact interval for a binomial proportion at level ``confidence``."""
    if n <= 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else beta_ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else beta_ppf(1 - alpha / 2, k + 1, n - k)
    return lo, hi


def verdict(interval: tuple[float, float], threshold: float, comparison: str) -> str:
    """"pass" when the whole interval satisfies the comparison, "fail" when none of it does."""
    lo, hi = interval
    if comparison in (">=", ">"):
        ok = lo >= threshold if comparison == ">=" else lo > threshold
        bad = hi < threshold if comparison == ">=" else hi <= threshold
    elif comparison in ("<=", "<"):
        ok = hi <= threshold if comparison == "<=" else hi < threshold
        bad = lo > threshold if comparison == "<=" else lo >= threshold
    else:
        raise ValueError(comparison)
    return "pass" if ok else "fail" if bad else "inconclusive"
