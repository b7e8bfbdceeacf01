"""Excluding a conjunction of unsafe rows when no single row excludes it on the whole box.

An unsafe disjunct ``s_1 <= 0 and ... and s_m <= 0`` is excluded on a box when
some row is positive everywhere on it. Near a decision boundary that fails
even for a box with almost no unstable ReLUs: row 1 is positive on one part of
the box, row 2 on the other (ACAS Xu 1_1 property 3 sent 31 such boxes to Z3
and needed 40,465 boxes in all; with combinations, 23,795 and none). A convex combination
``sum_r lam_r s_r`` that is positive everywhere also excludes the disjunct,
because then some ``s_r`` is positive at every point (the λ of the hierarchy
notes, here over a box's linear bounds). The best λ solves a small LP; we
approximate it by projected supergradient ascent, batched over boxes. Any λ in
the simplex gives a sound bound, so the search only affects tightness.
"""

from __future__ import annotations

import numpy as np

from hdsl.exact.spec import SpecRows


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of ``v`` (N, m) onto the probability simplex."""
    m = v.shape[1]
    u = -np.sort(-v, axis=1)
    css = np.cumsum(u, axis=1) - 1.0
    k = np.arange(1, m + 1)
    cond = u - css / k > 0
    rho = m - 1 - np.argmax(cond[:, ::-1], axis=1)
    theta = css[np.arange(len(v)), rho] / (rho + 1)
    return np.maximum(v - theta[:, None], 0.0)


def _box_min(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``min_x a . x`` over each box, for ``a`` (N, ..., n) and boxes (N, n)."""
    shape = (lo.shape[0],) + (1,) * (a.ndim - 2) + (lo.shape[1],)
    lo, hi = lo.reshape(shape), hi.reshape(shape)
    return np.where(a > 0, a * lo, a * hi).sum(axis=-1)


def combined_bound(lam: np.ndarray, a: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Lower bound of ``sum_r lam_r (a_r . x + c_r)`` over each box, its minimiser and a float64 allowance.

    ``lam`` (N, m), ``a`` (N, m, n), ``c`` (N, m), ``lo``/``hi`` (N, n).
    """
    w = np.einsum("nm,nmi->ni", lam, a)
    x = np.where(w > 0, lo, hi)
    val = (lam * c).sum(axis=1) + (w * x).sum(axis=1)
    scale = (lam * np.abs(c)).sum(axis=1) + (np.abs(w) * np.maximum(np.abs(lo), np.abs(hi))).sum(axis=1)
    return val, x, 1e-9 * scale + 1e-12


def best_combination(a: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, iters: int = 60):
    """Per box, the best bound found over λ in the simplex (starting at the best single row), and that λ.

    ``c`` already has the float32 slack of each row subtracted, so a positive
    result excludes the conjunction.
    """
    m = a.shape[1]
    single = c + _box_min(a, lo, hi)
    lam = np.eye(m)[np.argmax(single, axis=1)]
    best_val, _, tol = combined_bound(lam, a, c, lo, hi)
    best_val = best_val - tol
    best_lam = lam.copy()
    lam = project_simplex(0.5 * lam + 0.5 / m)
    step = 0.5
    for t in range(iters):
        val, x, tol = combined_bound(lam, a, c, lo, hi)
        val = val - tol
        better = val > best_val
        best_val = np.where(better, val, best_val)
        best_lam[better] = lam[better]
        g = c + np.einsum("nmi,ni->nm", a, x)  # a supergradient of the concave bound in λ
        g = g - g.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        lam = project_simplex(lam + step / np.sqrt(t + 1) * g / np.where(norm > 0, norm, 1.0))
    return best_val, best_lam


def exclude_by_combination(rows: SpecRows, lb: np.ndarray, coef: np.ndarray, slack: np.ndarray,
                           lo: np.ndarray, hi: np.ndarray, excl: np.ndarray) -> np.ndarray:
    """``excl`` (N, K) with the conjunctions that some convex combination of rows excludes added.

    ``lb`` (N, R) are the rows' lower bounds over each box and ``coef`` (N, R, n)
    the input coefficients of the linear bounds that attain them; ``slack``
    (N, R) the float32 slack per row.
    """
    excl = excl.copy()
    const = lb - _box_min(coef, lo, hi)  # the linear bounds' constants: lb = min_x coef.x + const
    for k in range(rows.n_disjuncts):
        idx = np.nonzero(rows.disjunct == k)[0]
        open_ = np.nonzero(~excl[:, k])[0]
        if len(idx) < 2 or len(open_) == 0:
            continue
        a = coef[np.ix_(open_, idx)]
        c = const[np.ix_(open_, idx)] - slack[np.ix_(open_, idx)]
        val, _ = best_combination(a, c, lo[open_], hi[open_])
        excl[open_[val > 0], k] = True
    return excl
