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
    lb = optimised_row_bounds(tn, lo_t, hi_t, C, d, out.pre, fixed, iters=30).detach().numpy()[0]
    assert np.all(lb >= out.row_lb.numpy()[0] - 1e-12)  # the search starts at CROWN's bound
    if not empty:
        vals = net.forward(xs[keep]) @ C.numpy().T
        assert np.all(vals >= lb - 1e-9)


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
    lb = float(optimised_row_bounds(tn, lo, hi, C, d, out.pre, fixed, iters=60).detach()[0, 0])
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
    lb = optimised_row_bounds(tn, lo_t, hi_t, C, d, out.pre, None, iters=30).detach().numpy()[0]
    assert np.all(lb >= out.row_lb.numpy()[0] - 1e-12)
    vals = net.forward(rng.uniform(lo, hi, size=(6000, 3))) @ C.numpy().T + d.numpy()
    assert np.all(vals >= lb - 1e-9)
