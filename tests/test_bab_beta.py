"""β-CROWN bounds under splits: sound on sampled points of the split domain, never below CROWN."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsl.bab.beta import optimised_row_bounds
from hdsl.bab.crown import TorchNet, crown
from hdsl.exact.net import Layer, PwlNet

torch.set_num_threads(1)
F32 = np.float32


def _net(rng):
    sizes = [3, 8, 8, 4]
    return PwlNet(tuple(
        Layer(rng.normal(size=(o, i)).astype(F32), rng.normal(size=o).astype(F32), k < 2)
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))))


def _pre(net, x, upto):
    h = x
    for k, layer in enumerate(net.layers):
        z = h @ layer.weight.astype(float).T + layer.bias
        if k == upto:
            return z
        h = np.maximum(z, 0) if layer.relu else z


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 100_000), st.integers(1, 3))
def test_beta_bounds_are_sound_on_the_split_domain_and_tighter_than_crown(seed, n_splits):
    rng = np.random.default_rng(seed)
    net = _net(rng)
    c = rng.uniform(-1, 1, size=3)
    r = rng.uniform(0.1, 1.0, size=3)
    lo, hi = c - r, c + r
    xs = rng.uniform(lo, hi, size=(6000, 3))
    # Split unstable neurons by their sign at a sampled point, so the domain is not empty.
    fixed = [torch.zeros(1, 8, dtype=torch.int8), torch.zeros(1, 8, dtype=torch.int8), None]
    keep = np.ones(len(xs), dtype=bool)
    anchor = xs[0]
    for _ in range(n_splits):
        k = int(rng.integers(2))
        j = int(rng.integers(8))
        if fixed[k][0, j] != 0:
            continue
        sign = 1 if _pre(net, anchor[None], k)[0, j] >= 0 else -1
        fixed[k][0, j] = sign
        keep &= sign * _pre(net, xs, k)[:, j] >= 0
    C = torch.as_tensor(rng.normal(size=(5, 4)))
    d = torch.zeros(5, dtype=torch.float64)
    tn = TorchNet.of(net)
    lo_t, hi_t = torch.as_tensor(lo[None]), torch.as_tensor(hi[None])
    with torch.no_grad():
        out = crown(tn, lo_t, hi_t, C, d, fixed=fixed)
    empty = any(bool((l > u).any()) for l, u in out.pre)
    lb, final = optimised_row_bounds(tn, lo_t, hi_t, C, d, out.pre, fixed, iters=30)
    lb = lb.detach().numpy()[0]
    assert np.all(lb >= out.row_lb.numpy()[0] - 1e-12)  # the search starts at CROWN's bound
    # warm starts, as a child domain gets them: the parent's final values, and arbitrary ones (projected)
    wild = ({j: torch.as_tensor(rng.uniform(-0.5, 1.5, size=a.shape)) for j, a in final[0].items()},
            {j: torch.as_tensor(rng.uniform(-1.0, 3.0, size=b.shape)) for j, b in final[1].items()})
    warm = [optimised_row_bounds(tn, lo_t, hi_t, C, d, out.pre, fixed, iters=5, init=init)[0].detach().numpy()[0]
            for init in (final, wild)]
    assert np.all(warm[0] >= lb - 1e-9)  # the parent's optimum is where the child starts
    blank = ({j: torch.full_like(a, float("nan")) for j, a in final[0].items()},
             {j: torch.full_like(b, float("nan")) for j, b in final[1].items()})
    assert np.allclose(optimised_row_bounds(tn, lo_t, hi_t, C, d, out.pre, fixed, iters=30, init=blank)[0]
                       .detach().numpy()[0], lb)  # NaN entries start where no init starts
    if not empty:
        vals = net.forward(xs[keep]) @ C.numpy().T
        for bound in (lb, *warm):
            assert np.all(vals >= bound - 1e-9)


def test_beta_uses_the_split_constraint_that_clamping_ignores():
    # y = -relu(x - 0.5) on [-1, 1] with the split z0 = x <= 0. CROWN's triangle for relu(x - 0.5)
    # gives y >= -0.25 (x + 1): -0.5 at x = 1, a point the split excludes. With β the bound is
    # min over the box of -0.25 (x + 1) + β x, best at β = 0.25: -0.25 (the triangle's own gap remains).
    net = PwlNet((Layer(np.array([[1.0], [1.0]], F32), np.array([0.0, -0.5], F32), True),
                  Layer(np.array([[0.0, -1.0]], F32), np.zeros(1, F32), False)))
    tn = TorchNet.of(net)
    lo, hi = torch.tensor([[-1.0]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64)
    C, d = torch.eye(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    fixed = [torch.tensor([[-1, 0]], dtype=torch.int8), None]  # z0 = x <= 0
    with torch.no_grad():
        out = crown(tn, lo, hi, C, d, fixed=fixed)
    lb = float(optimised_row_bounds(tn, lo, hi, C, d, out.pre, fixed, iters=60)[0].detach()[0, 0])
    assert abs(float(out.row_lb[0, 0]) + 0.5) < 1e-9
    assert -0.26 < lb <= 0.0  # sound (the true minimum on the domain is 0) and near the dual optimum


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 100_000))
def test_alpha_alone_is_sound_on_the_box_and_never_below_crown(seed):
    rng = np.random.default_rng(seed)
    net = _net(rng)
    c = rng.uniform(-1, 1, size=3)
    r = rng.uniform(0.1, 1.0, size=3)
    lo, hi = c - r, c + r
    C = torch.as_tensor(rng.normal(size=(5, 4)))
    d = torch.as_tensor(rng.normal(size=5))
    tn = TorchNet.of(net)
    lo_t, hi_t = torch.as_tensor(lo[None]), torch.as_tensor(hi[None])
    with torch.no_grad():
        out = crown(tn, lo_t, hi_t, C, d)
    lb = optimised_row_bounds(tn, lo_t, hi_t, C, d, out.pre, None, iters=30)[0].detach().numpy()[0]
    assert np.all(lb >= out.row_lb.numpy()[0] - 1e-12)
    vals = net.forward(rng.uniform(lo, hi, size=(6000, 3))) @ C.numpy().T + d.numpy()
    assert np.all(vals >= lb - 1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 100_000))
def test_optimised_intermediate_bounds_contain_sampled_points_and_never_loosen(seed):
    from hdsl.bab.beta import optimised_intermediate_bounds

    rng = np.random.default_rng(seed)
    sizes = [3, 10, 10, 10, 4]
    net = PwlNet(tuple(
        Layer(rng.normal(size=(o, i)).astype(F32), rng.normal(size=o).astype(F32), k < 3)
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))))
    c = rng.uniform(-1, 1, size=(2, 3))
    lo, hi = c - 0.6, c + 0.6
    tn = TorchNet.of(net)
    lo_t, hi_t = torch.as_tensor(lo), torch.as_tensor(hi)
    with torch.no_grad():
        pre = crown(tn, lo_t, hi_t, torch.eye(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)).pre
    tight = optimised_intermediate_bounds(tn, lo_t, hi_t, pre, iters=15)
    for (l0, u0), (l1, u1) in zip(pre, tight):
        assert torch.all(l1 >= l0) and torch.all(u1 <= u0)
    for b in range(2):
        xs = rng.uniform(lo[b], hi[b], size=(4000, 3))
        for k in range(len(sizes) - 1):
            z = _pre(net, xs, k)
            assert np.all(z >= tight[k][0][b].numpy() - 1e-9) and np.all(z <= tight[k][1][b].numpy() + 1e-9)


def _deep_root():
    """A 4-32-32-32-3 ReLU net on [-1, 1]^4 and its CROWN intermediate bounds."""
    rng = np.random.default_rng(3)
    sizes = [4, 32, 32, 32, 3]
    net = PwlNet(tuple(
        Layer(rng.normal(size=(o, i)).astype(F32) / np.sqrt(i), rng.normal(size=o).astype(F32) * 0.1, k < 3)
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))))
    tn = TorchNet.of(net)
    lo_t, hi_t = torch.full((1, 4), -1.0, dtype=torch.float64), torch.full((1, 4), 1.0, dtype=torch.float64)
    with torch.no_grad():
        pre = crown(tn, lo_t, hi_t, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)).pre
    return tn, lo_t, hi_t, pre


def test_optimised_intermediate_bounds_tighten_a_deep_net():
    from hdsl.bab.beta import optimised_intermediate_bounds

    tn, lo_t, hi_t, pre = _deep_root()
    tight = optimised_intermediate_bounds(tn, lo_t, hi_t, pre, iters=20)
    width = lambda b: float(sum((u - l).sum() for l, u in b[1:3]))  # noqa: E731
    assert width(tight) < 0.8 * width(pre)  # 0.65 when written


def test_optimised_intermediate_bounds_stop_at_the_deadline():
    import time

    from hdsl.bab.beta import optimised_intermediate_bounds

    tn, lo_t, hi_t, pre = _deep_root()
    same = optimised_intermediate_bounds(tn, lo_t, hi_t, pre, iters=20, deadline=time.monotonic() - 1.0)
    assert all(torch.equal(a, b) and torch.equal(c, e) for (a, c), (b, e) in zip(pre, same))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 100_000))
def test_exclude_open_optimises_only_open_disjuncts_and_matches_the_full_optimisation(seed):
    # Three disjuncts (rows 0-1, 2, 3-4); each of 4 boxes has some of them excluded already. The
    # open disjuncts' rows must get the bounds the all-rows optimisation gives them, the excluded
    # ones must be left alone, and the warm-start values come back in the all-rows shape.
    from hdsl.bab.beta import exclude_open
    from hdsl.exact.spec import SpecRows

    rng = np.random.default_rng(seed)
    net = _net(rng)
    A = rng.normal(size=(5, 4))
    rows = SpecRows(A, np.zeros(5), np.zeros(5, bool), np.array([0, 0, 1, 2, 2]), 3)
    c = rng.uniform(-1, 1, size=(4, 3))
    r = rng.uniform(0.1, 1.0, size=(4, 3))
    lo, hi = c - r, c + r
    tn = TorchNet.of(net)
    C, d = torch.as_tensor(A), torch.zeros(5, dtype=torch.float64)
    with torch.no_grad():
        out = crown(tn, torch.as_tensor(lo), torch.as_tensor(hi), C, d)
    full = optimised_row_bounds(tn, torch.as_tensor(lo), torch.as_tensor(hi), C, d, out.pre, None, iters=15)[0]
    full = full.detach().numpy()
    excl = np.array([[True, False, True], [False, False, False], [True, True, False], [False, True, True]])
    open_ = ~excl.all(axis=1)
    lb = out.row_lb.numpy().copy()
    before = lb.copy()
    slack = np.full((4, 5), np.inf)  # nothing gets excluded, so the bounds are compared as they are
    kept = exclude_open(rows, tn, lo, hi, C, d, out.pre, None, open_, lb, excl, slack, 15)
    live = ~excl[:, rows.disjunct] & open_[:, None]
    assert np.allclose(lb[live], np.maximum(before, full)[live], rtol=1e-9, atol=1e-9)
    assert np.array_equal(lb[~live], before[~live])
    assert excl.tolist()[0] == [True, False, True]  # the exclusions only grow
    o = np.nonzero(open_)[0]
    for a in kept[0].values():
        assert a.shape[:2] == (len(o), 5)
        assert torch.isnan(a[torch.as_tensor(~live[o])]).all()
        assert not torch.isnan(a[torch.as_tensor(live[o])]).any()
