"""The exact Z3 encoding: analytic cases, float32 slack, rounding into the box, timeouts."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsl import ir
from hdsl.exact.decide import decide_exact
from hdsl.exact.fperr import output_error
from hdsl.exact.net import Layer, PwlNet, from_onnx, to_onnx
from hdsl.exact.query import prepare
from hdsl.exact.smt import CompactZ3Network, Z3Network, to_float32_in_box
from hdsl.exact.spec import spec_rows

torch.set_num_threads(1)
F32 = np.float32


def t3_net(c: float) -> PwlNet:
    """Hierarchy notes T3: h = (relu(x), relu(-x)), y = (h1, h2, 1.2 h1 + 1.2 h2 + c)."""
    return PwlNet((
        Layer(np.array([[1.0], [-1.0]], F32), np.zeros(2, F32), True),
        Layer(np.array([[1, 0], [0, 1], [1.2, 1.2]], F32), np.array([0, 0, c], F32), False),
    ))


def argmax_in(S, n):
    return ir.OutputSpec(tuple(
        ir.Conjunction(tuple(ir.Constraint(ir.LinearExpr(((k, 1.0), (j, -1.0)))) for j in S))
        for k in range(n) if k not in S))


SPEC_T3 = argmax_in((0, 1), 3)


def _decide(net, spec, lo, hi, tmp_path, **kw):
    path = str(tmp_path / "n.onnx")
    to_onnx(net, path)
    net2 = from_onnx(path)
    box = ir.Box(tuple(float(v) for v in lo), tuple(float(v) for v in hi))
    replay = prepare(ir.Query("q", ir.Network("n", path, (net2.input_size,)), box, spec, "p")).replay
    return decide_exact(net2, spec_rows(spec, net2.output_size), np.array(lo, float), np.array(hi, float),
                        replay, time.monotonic() + 30, **kw)


def test_t3_proved_exactly(tmp_path):
    out = _decide(t3_net(-0.3), SPEC_T3, [-1.0], [1.0], tmp_path)
    assert out.status == "proved"


def test_t3_variant_falsified_and_replayed(tmp_path):
    # With +0.1 - 0.2 = -0.1 the third logit wins near x = +-1: a real counterexample.
    out = _decide(t3_net(-0.1), SPEC_T3, [-1.0], [1.0], tmp_path)
    assert out.status == "falsified"
    ce = out.counterexample
    assert ce.replayed_with == "onnxruntime" and ce.margin <= 0
    assert -1.0 <= ce.x[0] <= 1.0 and np.float32(ce.x[0]) == ce.x[0]


def test_margin_below_float32_slack_is_not_proved(tmp_path):
    # y = x on [0, 1e-7]; unsafe: y >= 2e-7 - 1e-13. The real margin (1e-7 - 1e-13) is positive, but
    # a proof must exceed the float32 slack of the output; with a wide scale the slack dominates.
    net = PwlNet((Layer(np.array([[1e6]], F32), np.array([0.0], F32), False),
                  Layer(np.array([[1e-6]], F32), np.array([0.0], F32), False)))
    spec = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, 1.0),), -1.0000001e-7)),)),))
    out = _decide(net, spec, [0.0], [1e-7], tmp_path)
    assert out.status != "proved"
    assert out.status != "falsified"


def test_layered_and_compact_encodings_agree(tmp_path):
    rng = np.random.default_rng(3)
    for _ in range(5):
        net = PwlNet((Layer(rng.normal(size=(6, 2)).astype(F32), rng.normal(size=6).astype(F32), True),
                      Layer(rng.normal(size=(5, 6)).astype(F32), rng.normal(size=5).astype(F32), True),
                      Layer(rng.normal(size=(3, 5)).astype(F32), rng.normal(size=3).astype(F32), False)))
        rows = spec_rows(argmax_in((0,), 3), 3)
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
        from hdsl.backends.z3 import box_bounds

        pre, slack = box_bounds(net, rows, lo, hi)
        a = Z3Network(net, lo, hi, pre).check(rows, slack, 30).status
        b = CompactZ3Network(net, lo, hi, pre).check(rows, slack, 30).status
        c = Z3Network(net, lo, hi, None).check(rows, slack, 30).status
        assert a == b == c


def test_timeout_is_reported_cleanly():
    net = t3_net(-0.3)
    enc = Z3Network(net, np.array([-1.0]), np.array([1.0]))
    ans = enc.check(spec_rows(SPEC_T3, 3), np.zeros(2), 0.0)
    assert ans.status == "timeout"


def test_float32_rounding_stays_in_box():
    lo = np.array([0.1, -0.3, 1.0])
    hi = np.array([0.1 + 1e-9, -0.3 + 1e-7, 1.0])
    x = to_float32_in_box((lo + hi) / 2, lo, hi)
    if x is not None:
        assert np.all(x.astype(float) >= lo) and np.all(x.astype(float) <= hi)
    # 0.1 has no float32 value within 1e-9 above it: no point, rather than one outside the box.
    assert to_float32_in_box(np.array([0.1]), np.array([0.1]), np.array([0.1 + 1e-12])) is None


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 10.0))
def test_float32_error_bound_holds(seed, scale):
    rng = np.random.default_rng(seed)
    sizes = [4, 16, 16, 3]
    layers = tuple(
        Layer((rng.normal(size=(o, i)) * scale).astype(F32), (rng.normal(size=o) * scale).astype(F32), k < 2)
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])))
    net = PwlNet(layers)
    x = rng.uniform(-1, 1, size=(64, 4)).astype(F32)
    # magnitudes from the exact forward pass over these points (a valid bound for them)
    h = x.astype(np.float64)
    mags = [np.abs(h).max(axis=0)]
    for layer in layers[:-1]:
        h = h @ layer.weight.astype(np.float64).T + layer.bias
        h = np.maximum(h, 0) if layer.relu else h
        mags.append(np.abs(h).max(axis=0) * (1 + 1e-6))
    err = output_error(layers, mags)
    y32 = net.forward(x, dtype=np.float32).astype(np.float64)
    y64 = net.forward(x.astype(np.float64))
    assert np.all(np.abs(y32 - y64) <= err)
