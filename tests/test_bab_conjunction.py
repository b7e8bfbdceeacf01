"""Convex combinations of a conjunction's rows: sound, never worse than one row, and strictly useful."""

import numpy as np
from hypothesis import given, settings, strategies as st

from hdsl.bab.conjunction import best_combination, exclude_by_combination, project_simplex
from hdsl.exact.spec import SpecRows


@given(st.integers(0, 10_000))
@settings(max_examples=50, deadline=None)
def test_projection_lands_on_the_simplex(seed):
    v = np.random.default_rng(seed).normal(size=(7, 4)) * 3
    p = project_simplex(v)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


@given(st.integers(0, 10_000))
@settings(max_examples=40, deadline=None)
def test_combined_bound_is_sound_and_no_worse_than_the_best_row(seed):
    rng = np.random.default_rng(seed)
    N, m, n = 5, 3, 2
    a, c = rng.normal(size=(N, m, n)), rng.normal(size=(N, m))
    lo = rng.uniform(-1, 0, size=(N, n))
    hi = lo + rng.uniform(0.1, 1, size=(N, n))
    val, lam = best_combination(a, c, lo, hi)
    single = (c + np.where(a > 0, a * lo[:, None], a * hi[:, None]).sum(axis=2)).max(axis=1)
    assert np.all(val >= single - 1e-6)
    x = lo[:, None] + (hi - lo)[:, None] * rng.uniform(size=(N, 4000, n))
    rows_at_x = np.einsum("nmi,nki->nkm", a, x) + c[:, None]
    # lam . rows >= val everywhere, so where val > 0 some row is positive at every sampled point
    assert np.all(np.einsum("nkm,nm->nk", rows_at_x, lam) >= val[:, None] - 1e-9)
    assert np.all(rows_at_x.max(axis=2)[val > 0] > 0)


def test_two_rows_that_split_the_box_exclude_the_conjunction_only_together():
    # s1 = x + 0.1 and s2 = -x + 0.1 on [-1, 1]: each is negative somewhere, their mean is 0.1 > 0.
    rows = SpecRows(np.zeros((2, 1)), np.zeros(2), np.zeros(2, bool), np.array([0, 0]), 1)
    lo, hi = np.array([[-1.0]]), np.array([[1.0]])
    coef = np.array([[[1.0], [-1.0]]])
    lb = np.array([[-0.9, -0.9]])
    excl = rows.excluded(lb)
    assert not excl.any()
    assert exclude_by_combination(rows, lb, coef, np.zeros((1, 2)), lo, hi, excl).all()
    # The float32 slack is honoured: a slack of 0.2 per row leaves it open.
    assert not exclude_by_combination(rows, lb, coef, np.full((1, 2), 0.2), lo, hi, excl).any()
