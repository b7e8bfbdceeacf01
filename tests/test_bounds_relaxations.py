"""Each relaxation encloses its function on random intervals (including degenerate and one-sided ones)."""

from __future__ import annotations

import torch

from hdsl.bounds.crown import relu_relaxation, smooth_relaxation


def _intervals(n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, generator=g, dtype=torch.float64) * torch.tensor([0.01, 1.0, 10.0, 40.0]).repeat(n // 4)
    b = a + torch.rand(n, generator=g, dtype=torch.float64) * torch.tensor([0.0, 1e-12, 3.0, 50.0]).repeat(n // 4)
    return a, b


def _points(l, u, k=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(k, *l.shape, generator=g, dtype=torch.float64)
    t[0], t[1] = 0, 1
    return l + (u - l) * t


def test_relu_relaxation_any_alpha():
    l, u = _intervals()
    z = _points(l, u)
    for alpha in (None, torch.zeros_like(l), torch.ones_like(l), torch.rand(l.shape, dtype=torch.float64)):
        lo_s, up_s, up_b = relu_relaxation(l, u, alpha)
        r = torch.relu(z)
        assert bool((lo_s * z <= r + 1e-12).all())
        assert bool((r <= up_s * z + up_b + 1e-12 * (1 + z.abs())).all())


def test_sigmoid_tanh_parallelograms():
    l, u = _intervals()
    z = _points(l, u)
    for op, f in (("sigmoid", torch.sigmoid), ("tanh", torch.tanh)):
        s, b_lo, b_up = smooth_relaxation(op, l, u, fp=False)
        v = f(z)
        assert bool((s * z + b_lo <= v).all()), op
        assert bool((v <= s * z + b_up).all()), op
        # and it is not trivially loose: the gap is at most the function's range on the interval
        assert bool(((b_up - b_lo) <= (f(u) - f(l)) + 1e-9).all()), op
