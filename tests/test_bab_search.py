"""Branch and bound: CROWN soundness under splits, the T3 case no convex relaxation proves."""

from __future__ import annotations

import time

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsl import ir
from hdsl.bab.crown import TorchNet, crown
from hdsl.bab.input_split import input_split
from hdsl.bab.relu_split import relu_split
from hdsl.exact.net import Layer, PwlNet, from_onnx, to_onnx
from hdsl.exact.query import prepare
from hdsl.exact.spec import spec_rows

torch.set_num_threads(1)
F32 = np.float32


def t3(c=-0.3):
    return PwlNet((
        Layer(np.array([[1.0], [-1.0]], F32), np.zeros(2, F32), True),
        Layer(np.array([[1, 0], [0, 1], [1.2, 1.2]], F32), np.array([0, 0, c], F32), False),
    ))


SPEC = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((2, 1.0), (0, -1.0)))),
                                      ir.Constraint(ir.LinearExpr(((2, 1.0), (1, -1.0)))))),))


def _search(fn, net, tmp_path, **kw):
    path = str(tmp_path / "n.onnx")
    to_onnx(net, path)
    net = from_onnx(path)
    replay = prepare(ir.Query("q", ir.Network("n", path, (1,)), ir.Box((-1.0,), (1.0,)), SPEC, "p")).replay
    return fn(net, spec_rows(SPEC, 3), [(np.array([-1.0]), np.array([1.0]))], replay,
              time.monotonic() + 30, **kw)


def test_t3_crown_alone_fails():
    net = t3()
    rows = spec_rows(SPEC, 3)
    out = crown(TorchNet.of(net), torch.tensor([[-1.0]], dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64),
                torch.as_tensor(rows.A), torch.as_tensor(rows.d))
    assert not rows.excluded(out.row_lb.numpy()).all()  # the relaxation cannot prove T3


def test_t3_input_split_proves_without_z3(tmp_path):
    out = _search(input_split, t3(), tmp_path, use_z3=False)
    assert out.status == "proved"


def test_t3_relu_split_proves_with_exact_leaves(tmp_path):
    out = _search(relu_split, t3(), tmp_path, z3_unstable=0)
    assert out.status == "proved"
    assert out.stats["domains"] > 1  # it had to split: no relaxation of the whole box proves T3
    plain = _search(relu_split, t3(), tmp_path, z3_unstable=0, optimise=False)  # CROWN clamps only
    assert plain.status == "proved" and plain.stats["z3_leaves"] + plain.stats["infeasible"] >= 1


def test_t3_variant_falsified_by_both(tmp_path):
    for fn in (input_split, relu_split):
        out = _search(fn, t3(-0.1), tmp_path)
        assert out.status == "falsified" and out.counterexample.margin <= 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 100_000), st.sampled_from(["crown", "forward", "hybrid", "reuse"]), st.booleans())
def test_crown_bounds_are_sound_under_splits(seed, mode, with_splits):
    # "reuse": a child domain's bounds from its parent's (the root's) for layer 0, the unstable
    # neurons of the later layers recomputed, as ReLU splitting does.
    rng = np.random.default_rng(seed)
    sizes = [3, 8, 8, 4]
    net = PwlNet(tuple(
        Layer(rng.normal(size=(o, i)).astype(F32), rng.normal(size=o).astype(F32), k < 2)
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))))
    c = rng.uniform(-1, 1, size=3)
    r = rng.uniform(0.05, 1.0, size=3)
    lo, hi = c - r, c + r
    xs = rng.uniform(lo, hi, size=(4000, 3))
    fixed = None
    keep = np.ones(len(xs), dtype=bool)
    if with_splits:
        # split neuron 0 of layer 0 by the sign it has at the centre (so the sub-domain is not empty)
        z0 = xs @ net.layers[0].weight.astype(float).T[:, 0] + net.layers[0].bias[0]
        zc = c @ net.layers[0].weight.astype(float).T[:, 0] + net.layers[0].bias[0]
        sign = 1 if zc >= 0 else -1
        keep = (z0 >= 0) if sign > 0 else (z0 <= 0)
        f0 = torch.zeros(1, 8, dtype=torch.int8)
        f0[0, 0] = sign
        fixed = [f0, torch.zeros(1, 8, dtype=torch.int8), None]
    C = torch.as_tensor(rng.normal(size=(5, 4)))
    d = torch.zeros(5, dtype=torch.float64)
    tn, lo_t, hi_t = TorchNet.of(net), torch.as_tensor(lo[None]), torch.as_tensor(hi[None])
    if mode == "reuse":
        root = crown(tn, lo_t, hi_t, C, d)
        out = crown(tn, lo_t, hi_t, C, d, fixed=fixed, reuse=root.pre, start=1)
        if not with_splits:  # the same domain: never looser than the root
            assert torch.all(out.row_lb >= root.row_lb - 1e-9)
    else:
        out = crown(tn, lo_t, hi_t, C, d, fixed=fixed, intermediate=mode)
    vals = net.forward(xs[keep]) @ C.numpy().T
    assert np.all(vals >= out.row_lb.numpy()[0] - 1e-9)
    pre_l, pre_u = out.pre[1]
    z1 = np.maximum(xs[keep] @ net.layers[0].weight.astype(float).T + net.layers[0].bias, 0)
    z1 = z1 @ net.layers[1].weight.astype(float).T + net.layers[1].bias
    assert np.all(z1 >= pre_l.numpy()[0] - 1e-9) and np.all(z1 <= pre_u.numpy()[0] + 1e-9)


def _random_net(rng, widths):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(Layer(rng.normal(size=(b, a)).astype(F32), rng.normal(size=b).astype(F32) * 0.3,
                            i < len(widths) - 2))
    return PwlNet(tuple(layers))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_gradient_interval_contains_sampled_gradients(seed):
    from hdsl.exact.fperr import interval_gradients

    rng = np.random.default_rng(seed)
    net = _random_net(rng, [3, 6, 5, 2])
    lo = rng.uniform(-1, 0, size=(1, 3))
    hi = lo + rng.uniform(0.05, 1, size=(1, 3))
    out = crown(TorchNet.of(net), torch.as_tensor(lo), torch.as_tensor(hi),
                torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    pre = [(l.numpy(), u.numpy()) for l, u in out.pre]
    *_, (_, g_lo, g_hi) = interval_gradients(net.layers, np.eye(2), pre)
    x = torch.tensor(lo + (hi - lo) * rng.random((200, 3)), requires_grad=True)
    tn = TorchNet.of(net)
    for r in range(2):
        (g,) = torch.autograd.grad(tn.forward(x)[:, r].sum(), x)
        assert np.all(g.numpy() >= g_lo[0, r] - 1e-9) and np.all(g.numpy() <= g_hi[0, r] + 1e-9)


def test_split_dimension_sees_influence_through_unstable_relus():
    # y = relu(x0) + relu(-x0) + 0.01 x1: the final CROWN line has a small slope on x0
    # (the two relaxations cancel), yet x0 is what makes the bound loose.
    from hdsl.bab.input_split import split_dimension

    net = PwlNet((Layer(np.array([[1, 0], [-1, 0], [0, 1]], F32), np.zeros(3, F32), True),
                  Layer(np.array([[1, 1, 0.01]], F32), np.zeros(1, F32), False)))
    lo, hi = np.array([[-1.0, 0.0]]), np.array([[1.0, 1.0]])
    rows = spec_rows(ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, 1.0),), -0.5)),)),)), 1)
    out = crown(TorchNet.of(net), torch.as_tensor(lo), torch.as_tensor(hi), torch.as_tensor(rows.A),
                torch.as_tensor(rows.d))
    pre = [(l.numpy(), u.numpy()) for l, u in out.pre]
    assert split_dimension(net, rows, [np.array([0])], lo, hi, pre)[0] == 0


def _pinhole(tmp_path):
    # y = |x0 - 0.3| + |x1 + 0.2| (as four ReLUs); unsafe: y <= 1e-4, a tiny diamond inside the box.
    net = PwlNet((Layer(np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], F32), np.array([-0.3, 0.3, 0.2, -0.2], F32), True),
                  Layer(np.ones((1, 4), F32), np.zeros(1, F32), False)))
    path = str(tmp_path / "pin.onnx")
    to_onnx(net, path)
    spec = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, -1.0),), 1e-4)),)),))
    q = ir.Query("q", ir.Network("n", path, (2,)), ir.Box((-1.0, -1.0), (1.0, 1.0)), spec, "p")
    return from_onnx(path), spec_rows(spec, 1), prepare(q).replay


def test_input_split_finds_interior_counterexample_by_local_attack(tmp_path, monkeypatch):
    import hdsl.bab.input_split as mod

    net, rows, replay = _pinhole(tmp_path)
    box = [(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))]
    out = input_split(net, rows, box, replay, time.monotonic() + 30, use_z3=False)
    assert out.status == "falsified"
    assert out.counterexample is not None
    x = np.asarray(out.counterexample.x, dtype=np.float64)
    assert abs(x[0] - 0.3) + abs(x[1] + 0.2) <= 1e-4
    with_attack = out.stats["boxes"]
    monkeypatch.setattr(mod, "local_attack", lambda tn, rows, starts, *a, **k: starts)
    without = input_split(net, rows, box, replay, time.monotonic() + 30, use_z3=False)
    assert without.status != "falsified" or without.stats["boxes"] > with_attack


def test_input_split_on_a_network_without_relus_skips_the_slopes(tmp_path):
    # α has nothing to optimise without ReLUs; asking for it on the first open box must not fail.
    # y = 2 x0 - x1 + 0.5 reaches the unsafe y >= 3 near (1, -1); the replay accepts no point, so the
    # box stays open and the search runs to its deadline.
    net = PwlNet((Layer(np.array([[2.0, -1.0]], F32), np.array([0.5], F32), False),))
    spec = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, 1.0),), -3.0)),)),))
    out = input_split(net, spec_rows(spec, 1), [(np.array([-1.0, -1.0]), np.array([1.0, 1.0]))], lambda x: None,
                      time.monotonic() + 1, use_z3=False, alpha_after_s=0.0)
    assert out.status in ("timeout", "unknown")
