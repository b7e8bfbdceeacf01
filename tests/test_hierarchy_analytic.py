"""T1-T3 of the hierarchy notes: analytic answers, through ONNX import, the bounds and the level driver."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hdsl.bounds.disjunction import level_bounds
from hdsl.hierarchy_check import HierarchyChecker, verdict_monotone
from hdsl.nn import load_onnx
from hdsl.results import Verdict
from test_hierarchy_nets import t1, t2, t3

X0 = np.array([0.25], np.float32)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("hier")


# --------------------------------------------------------------------------- T1 staircase


@pytest.mark.parametrize("methods", [("pairs",), ("pairs", "lambda"), ("split",), ("exact",)])
def test_t1_radii_every_method(tmp, methods):
    net, h = t1(tmp)
    c = HierarchyChecker(net, h, methods=methods, attack_steps=10)
    leaf = c.certified_radius(X0, 1, 2, eps_max=2.0, tol=2e-3)
    node = c.certified_radius(X0, 1, 1, eps_max=2.0, tol=2e-3)
    root = c.certified_radius(X0, 1, 0)
    assert 0.25 - 2e-3 <= leaf.certified < 0.25  # proved radii never exceed the true ones
    assert 0.75 - 2e-3 <= node.certified < 0.75
    assert math.isinf(root.certified)
    assert leaf.falsified_at is not None and leaf.falsified_at <= 0.25 + 2e-3


def test_t1_tie_at_radius_is_unsafe(tmp):
    net, h = t1(tmp)
    c = HierarchyChecker(net, h)
    r = c.check_point(X0, 1, 0.25)
    leaf = r.levels[-1]
    assert leaf.verdict is Verdict.FALSIFIED  # x = 0 ties c1 with c2: argmax-in-set is strict
    ce = leaf.counterexample
    assert ce.replayed_with == "onnxruntime" and ce.margin <= 0 and ce.x == (0.0,)
    assert r.levels[1].verdict is Verdict.PROVED and r.levels[0].verdict is Verdict.PROVED
    assert verdict_monotone(r.levels)


def test_t1_propagation_is_recorded(tmp):
    net, h = t1(tmp)
    r = HierarchyChecker(net, h).check_point(X0, 1, 0.2)
    assert [lv.verdict for lv in r.levels] == [Verdict.PROVED] * 3
    assert r.levels[2].propagated_from is None and r.levels[1].propagated_from == 2  # leaf proof settles A
    r = HierarchyChecker(net, h).check_point(X0, 1, 0.8)
    assert r.levels[1].verdict is Verdict.FALSIFIED and r.levels[1].propagated_from is None
    assert r.levels[2].verdict is Verdict.FALSIFIED and r.levels[2].propagated_from == 1
    assert r.levels[1].severity == 0 and r.deepest_verified == 0


# --------------------------------------------------------------------------- T2 V-shape


def _bound(net, **kw):
    return level_bounds(load_onnx(net.path), np.array([-1.0]), np.array([1.0]), [((0, 1), (2,))], **kw)[0]


def test_t2_only_lambda_or_splitting_proves(tmp):
    net, h = t2(tmp)
    assert _bound(net, use_lambda=False).open_outside == (2,)  # naive per-pair witness fails
    lam = _bound(net, stop_when_proved=False, lambda_steps=80)
    assert lam.open_outside == () and lam.stage == "lambda"
    assert lam.margin == pytest.approx(0.1, abs=2e-3) and lam.margin <= 0.1  # the optimum, λ = (1/2, 1/2)
    x0 = np.array([0.0], np.float32)
    for methods, expect in [(("pairs",), Verdict.UNKNOWN), (("pairs", "lambda"), Verdict.PROVED),
                            (("split",), Verdict.PROVED), (("exact",), Verdict.PROVED)]:
        r = HierarchyChecker(net, h, methods=methods).check_point(x0, 0, 1.0)
        assert r.levels[1].verdict is expect, methods


def test_t2_flipped_is_falsified_at_zero(tmp):
    net, h = t2(tmp, third=0.1)
    r = HierarchyChecker(net, h, methods=("exact",), attack=False).check_point(np.array([0.5], np.float32), 0, 1.0)
    lv = r.levels[1]
    assert lv.verdict is Verdict.FALSIFIED
    assert lv.counterexample.margin <= 0 and lv.adversarial_class == 2
    assert abs(lv.counterexample.x[0]) <= 0.1  # the violating inputs are |x| <= 0.1


# --------------------------------------------------------------------------- T3 L-shape


def test_t3_only_splitting_or_exact_proves(tmp):
    net, h = t3(tmp)
    assert _bound(net, use_lambda=False).open_outside == (2,)
    assert _bound(net, stop_when_proved=False, lambda_steps=80).open_outside == (2,)  # λ and α cannot
    x0 = np.array([0.0], np.float32)
    for methods, expect in [(("pairs", "lambda"), Verdict.UNKNOWN), (("split",), Verdict.PROVED),
                            (("exact",), Verdict.PROVED)]:
        r = HierarchyChecker(net, h, methods=methods).check_point(x0, 0, 1.0)
        assert r.levels[1].verdict is expect, methods
    # splitting the input at 0 makes the naive test succeed on each half with margin 0.1
    g = load_onnx(net.path)
    for lo, hi in [(-1.0, 0.0), (0.0, 1.0)]:
        b = level_bounds(g, np.array([lo]), np.array([hi]), [((0, 1), (2,))], use_lambda=False)[0]
        assert b.open_outside == () and b.margin == pytest.approx(0.1, abs=1e-5)


def test_t1_with_declared_normalisation(tmp):
    """Regions live in raw input space: with z = (x - 1) / 2 the leaf radius at x0 = 1.5 is 0.5."""
    from dataclasses import replace

    net, h = t1(tmp)
    net = replace(net, mean=(1.0,), std=(2.0,))
    c = HierarchyChecker(net, h, methods=("pairs", "lambda"), attack_steps=10)
    x0 = np.array([1.5], np.float32)
    r = c.certified_radius(x0, 1, 2, eps_max=4.0, tol=4e-3)
    assert 0.5 - 4e-3 <= r.certified < 0.5 and r.falsified_at is not None
    bad = c.check_point(x0, 1, 0.5).levels[-1]
    assert bad.verdict is Verdict.FALSIFIED and bad.counterexample.x == (1.0,)  # z = 0: the tie
