"""Activation-pattern certificates: sound against sampling and Z3, and they close T3 without splitting."""

from __future__ import annotations

import time

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsl import ir
from hdsl.backends.z3 import box_bounds
from hdsl.bab.input_split import input_split
from hdsl.bab.patterns import prove_by_patterns
from hdsl.exact.net import Layer, PwlNet
from hdsl.exact.smt import Z3Network
from hdsl.exact.spec import spec_rows

torch.set_num_threads(1)
F32 = np.float32


def t3(c: float) -> PwlNet:
    return PwlNet((
        Layer(np.array([[1.0], [-1.0]], F32), np.zeros(2, F32), True),
        Layer(np.array([[1, 0], [0, 1], [1.2, 1.2]], F32), np.array([0, 0, c], F32), False),
    ))


T3_SPEC = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((2, 1.0), (0, -1.0)))),
                                         ir.Constraint(ir.LinearExpr(((2, 1.0), (1, -1.0)))))),))


def _prove(net, spec, lo, hi, slack=None):
    rows = spec_rows(spec, net.output_size)
    lo, hi = np.atleast_2d(lo), np.atleast_2d(hi)
    pre, sl = box_bounds(net, rows, lo[0], hi[0])
    pre = [(l[None], u[None]) for l, u in pre]
    sl = sl[None] if slack is None else np.full((1, rows.A.shape[0]), slack)
    excl = np.zeros((1, rows.n_disjuncts), dtype=bool)
    return bool(prove_by_patterns(net, rows, lo, hi, pre, excl, sl, np.array([0]))[0]), rows, pre, sl


def test_t3_is_proved_on_the_whole_box():
    proved, *_ = _prove(t3(-0.3), T3_SPEC, [-1.0], [1.0])
    assert proved  # four patterns, each empty; no convex relaxation of the box proves this


def test_t3_variant_with_a_real_counterexample_is_not_proved():
    proved, *_ = _prove(t3(-0.1), T3_SPEC, [-1.0], [1.0])
    assert not proved


def test_slack_above_the_margin_blocks_the_proof():
    # T3 with c = -0.3: the smallest margin of "class 2 loses" is 0.3 - 0.2 = 0.1 at x = +-1.
    assert _prove(t3(-0.3), T3_SPEC, [-1.0], [1.0], slack=0.09)[0]
    assert not _prove(t3(-0.3), T3_SPEC, [-1.0], [1.0], slack=0.11)[0]


def test_input_split_closes_t3_at_the_root():
    rows = spec_rows(T3_SPEC, 3)
    out = input_split(t3(-0.3), rows, [(np.array([-1.0]), np.array([1.0]))], lambda x: None,
                      time.monotonic() + 30, use_z3=False)
    assert out.status == "proved"
    assert out.stats["boxes"] == 1 and out.stats["pattern_proved"] == 1


def _random(seed):
    rng = np.random.default_rng(seed)
    sizes = [2, 5, 4, 3]
    net = PwlNet(tuple(
        Layer(rng.normal(size=(o, i)).astype(F32), (rng.normal(size=o) * 0.5).astype(F32), k < 2)
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))))
    c = rng.uniform(-1, 1, size=2)
    r = rng.uniform(0.05, 0.6, size=2)
    target = int(rng.integers(3))
    spec = ir.OutputSpec(tuple(  # unsafe: some other class reaches the target's logit
        ir.Conjunction((ir.Constraint(ir.LinearExpr(((j, 1.0), (target, -1.0)), float(rng.uniform(-0.5, 0.5)))),))
        for j in range(3) if j != target))
    return net, spec, c - r, c + r, rng


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 100_000))
def test_proofs_hold_on_samples_and_agree_with_z3(seed):
    net, spec, lo, hi, rng = _random(seed)
    proved, rows, pre, sl = _prove(net, spec, lo, hi)
    enc = Z3Network(net, lo, hi, [(l[0], u[0]) for l, u in pre])
    z3_answer = enc.check(rows, sl[0], 30).status
    if proved:
        xs = rng.uniform(lo, hi, size=(5000, 2))
        assert not rows.violated(net.forward(xs)).any()
        assert z3_answer == "unsat"  # a pattern proof is a Farkas certificate: Z3 must agree
    if z3_answer == "sat":
        assert not proved


def test_proves_what_z3_proves_on_random_small_boxes():
    # The certificate is the LP dual; on nets this small the optimiser should find it when it exists.
    agree = total = 0
    for seed in range(60):
        net, spec, lo, hi, _ = _random(seed)
        proved, rows, pre, sl = _prove(net, spec, lo, hi)
        if Z3Network(net, lo, hi, [(l[0], u[0]) for l, u in pre]).check(rows, sl[0], 30).status == "unsat":
            total += 1
            agree += proved
    assert total >= 10
    assert agree >= 0.9 * total  # measured: 15 of 15


def test_a_margin_below_the_float32_bound_is_named_not_proved():
    # y = 1e-6 (1e6 x) on [0, 1e-7]; unsafe: y >= 2e-7 - 1e-13. Safe in real arithmetic by about 1e-7,
    # far less than the float32 rounding bound at this scale: the search must say so, not prove it.
    net = PwlNet((Layer(np.array([[1e6]], F32), np.array([0.0], F32), False),
                  Layer(np.array([[1e-6]], F32), np.array([0.0], F32), False)))
    spec = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, 1.0),), -1.0000001e-7)),)),))
    out = input_split(net, spec_rows(spec, 1), [(np.array([0.0]), np.array([1e-7]))], lambda x: None,
                      time.monotonic() + 3, use_z3=False)
    assert out.status != "proved"
    assert out.stats["float32_blocked"] > 0 and "float32 rounding bound" in out.message
