"""The per-row float rounding bound (``hdsl.exact.fperr.row_error``) against real rounding.

float32 errors are far too small to test a bound against, so the tests run the
same formula with float16's unit roundoff and compute the network in float16
with one rounding per multiply and per add, in a random summation order: a
computation Higham's model covers, whose errors reach a visible share of the
bound. The crude ``|W|``-propagated bound is checked the same way, and the row
bound must never be looser than it on deep nets with stable ReLUs.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsl.bab.crown import TorchNet, crown
from hdsl.exact.fperr import output_error, row_error, spec_slack
from hdsl.exact.net import Layer, PwlNet

U16 = 2.0**-11


def _net(rng, widths):
    return PwlNet(tuple(
        Layer(rng.normal(size=(b, a)).astype(np.float32), (rng.normal(size=b) * 0.5).astype(np.float32),
              i < len(widths) - 2)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))))


def _forward16(net: PwlNet, x: np.ndarray, rng, order: str = "random") -> np.ndarray:
    """Float16 evaluation, one rounding per operation, a summation order per neuron.

    ``random``: the bias, then the products in a random order. ``peaks``: per
    point, the positive products first (largest first), then the negative ones,
    then the bias: the partial sums climb to ``P`` before falling, the worst
    case for ``sum_error``. ``pairwise``: a balanced tree over bias and products.
    """
    h = x.astype(np.float16)
    for layer in net.layers:
        W, b = layer.weight.astype(np.float16), layer.bias.astype(np.float16)
        out = np.empty((h.shape[0], W.shape[0]), np.float16)
        for j in range(W.shape[0]):
            terms = (W[j][None, :] * h).astype(np.float16)  # (points, fan-in), each product rounded
            if order == "random":
                acc = np.full(h.shape[0], b[j], np.float16)
                for i in rng.permutation(W.shape[1]):
                    acc = (acc + terms[:, i]).astype(np.float16)
            elif order == "peaks":
                key = np.where(terms > 0, -np.abs(terms.astype(np.float64)), np.abs(terms.astype(np.float64)) + 1e9)
                ordered = np.take_along_axis(terms, np.argsort(key, axis=1), axis=1)
                acc = np.zeros(h.shape[0], np.float16)
                for i in range(ordered.shape[1]):
                    acc = (acc + ordered[:, i]).astype(np.float16)
                acc = (acc + b[j]).astype(np.float16)
            else:
                level = [np.full(h.shape[0], b[j], np.float16)] + [terms[:, i] for i in rng.permutation(W.shape[1])]
                while len(level) > 1:
                    level = [(level[i] + level[i + 1]).astype(np.float16) if i + 1 < len(level) else level[i]
                             for i in range(0, len(level), 2)]
                acc = level[0]
            out[:, j] = acc
        h = np.maximum(out, np.float16(0)) if layer.relu else out
    return h.astype(np.float64)


def _region(net, lo, hi):
    out = crown(TorchNet.of(net), torch.as_tensor(lo), torch.as_tensor(hi),
                torch.eye(net.output_size, dtype=torch.float64), torch.zeros(net.output_size, dtype=torch.float64))
    pre = [(l.numpy(), u.numpy()) for l, u in out.pre]
    mags = [np.maximum(np.abs(lo), np.abs(hi))]
    for (l, u), layer in zip(pre[:-1], net.layers[:-1]):
        mags.append(np.maximum(u, 0) if layer.relu else np.maximum(np.abs(l), np.abs(u)))
    return pre, mags


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 100_000))
def test_row_error_bounds_float16_rounding(seed):
    rng = np.random.default_rng(seed)
    net = _net(rng, [3, 8, 8, 8, 3])
    c = rng.uniform(-1, 1, size=(1, 3))
    lo, hi = c - 0.05, c + 0.05
    pre, mags = _region(net, lo, hi)
    rows = rng.normal(size=(4, 3))
    bound = row_error(net.layers, mags, pre, rows, u=U16)[0]
    x = (lo + (hi - lo) * rng.random((64, 3))).astype(np.float16).astype(np.float64)
    x = np.clip(x, lo, hi)
    err = np.abs((_forward16(net, x, rng) - net.forward(x)) @ rows.T).max(axis=0)
    assert np.all(err <= bound), (err, bound)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 100_000), st.sampled_from(["peaks", "pairwise"]))
def test_both_bounds_hold_for_adversarial_and_tree_summation(seed, order):
    # Wide layers with cancelling terms: the partial-sum bound is about half of Higham's here,
    # so the order that drives the partial sums to their peak is the one to test against.
    rng = np.random.default_rng(seed)
    net = _net(rng, [3, 24, 24, 3])
    c = rng.uniform(-1, 1, size=(1, 3))
    lo, hi = c - 0.02, c + 0.02
    pre, mags = _region(net, lo, hi)
    rows = np.eye(3)
    tight = row_error(net.layers, mags, pre, rows, u=U16, inputs=(lo, hi))[0]
    assert np.all(tight <= row_error(net.layers, mags, pre, rows, u=U16)[0])  # the input signs only tighten it
    crude = spec_slack(rows, output_error(net.layers, mags, [u for _, u in pre], u=U16))[0]
    x = np.clip((lo + (hi - lo) * rng.random((64, 3))).astype(np.float16).astype(np.float64), lo, hi)
    err = np.abs(_forward16(net, x, rng, order) - net.forward(x)).max(axis=0)
    assert np.all(err <= tight), (err, tight)
    assert np.all(err <= crude), (err, crude)


def test_cancelling_terms_halve_the_rounding_bound():
    from hdsl.exact.fperr import U32, gamma, sum_error

    # 50 terms of 1 and 50 of -1: every partial sum lies in [-50, 50], not [-100, 100]
    assert sum_error(100, 50.0, 100.0) < 0.52 * gamma(100, U32) * 100.0
    # no cancellation: the same as Higham's bound, to float precision
    assert np.isclose(sum_error(100, 100.0, 100.0), gamma(101, U32) * 100.0, rtol=1e-4)


def test_row_error_is_tighter_than_the_crude_bound_on_a_deep_net():
    rng = np.random.default_rng(1)
    net = _net(rng, [5] + [50] * 6 + [5])
    lo = rng.uniform(-1, 1, size=(1, 5))
    hi = lo + 1e-3
    pre, mags = _region(net, lo, hi)
    rows = np.eye(5)
    tight = row_error(net.layers, mags, pre, rows)[0]
    crude = spec_slack(rows, output_error(net.layers, mags, [u for _, u in pre]))[0]
    assert np.all(tight <= crude)
    assert np.all(tight < crude / 10)


def test_only_live_terms_count_towards_the_rounding_bound():
    # 40 hidden ReLUs, 38 of them off with margin on the box: they output exact zeros in float32,
    # so the next layer sums 2 live terms and a bias (2 additions and a spare), not 40.
    from hdsl.exact.fperr import _layer_errors, gamma, sum_error

    rng = np.random.default_rng(0)
    bias = np.full(40, -10.0, np.float32)
    bias[:2] = 0.5
    net = PwlNet((Layer(rng.uniform(-0.1, 0.1, size=(40, 2)).astype(np.float32), bias, True),
                  Layer(rng.normal(size=(3, 40)).astype(np.float32), np.zeros(3, np.float32), False)))
    lo, hi = np.full((1, 2), -1.0), np.full((1, 2), 1.0)
    pre, mags = _region(net, lo, hi)
    gs, _, _ = _layer_errors(net.layers, mags, [u for _, u in pre], 2.0**-24)
    W = np.abs(net.layers[1].weight.astype(np.float64))
    e0 = gs[0]  # the first layer's error feeds the second
    terms = (mags[1] + e0) @ W.T
    full = gamma(40 + 3) * terms
    assert np.all(gs[1] <= sum_error(2 + 1, terms, terms) * (1 + 1e-12))
    assert np.all(gs[1] < 0.2 * full)


def test_fan_in_counts_the_taps_of_a_convolution(tmp_path):
    # A 2-channel 6x6 image, a 3x3 convolution: each output sums 18 terms, not 72.
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from hdsl import ir
    from hdsl.exact.net import load_network

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 2, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["z"]), helper.make_node("Relu", ["z"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = str(tmp_path / "conv.onnx")
    onnx.save(model, path)
    net = load_network(ir.Network("n", path, (1, 2, 6, 6)))
    assert net.layers[0].weight.shape == (64, 72)
    assert net.layers[0].fan_in == 18
