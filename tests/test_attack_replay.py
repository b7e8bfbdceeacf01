"""PGD falsifier and onnxruntime replay: only confirmed counterexamples count."""

from __future__ import annotations

import numpy as np
import torch

from hdsl import ir
from hdsl.attack import concrete_check, pgd
from hdsl.bounds.spec import BatchSpec, spec_rows
from hdsl.nn import load_onnx
from hdsl.nn.build import mlp, random_mlp, save
from hdsl.regions import boxes, contains, float32_inside
from hdsl.replay import replay, run_model

torch.set_num_threads(1)


def _argmax_spec(y, n):
    return ir.OutputSpec(tuple(ir.Conjunction((ir.Constraint(ir.LinearExpr(((k, 1.0), (y, -1.0)))),))
                               for k in range(n) if k != y))


def test_pgd_beats_sampling_on_a_narrow_violation(tmp_path):
    """y1 - y0 = sum relu(x_i) - 11.9 on [0, 1]^12: violated only near one corner (12 > 10: no corner check)."""
    w1 = np.eye(12)
    b1 = np.zeros(12)
    w2 = np.vstack([np.zeros(12), np.ones(12)])
    b2 = np.array([0.0, -11.9])
    path = save(mlp([(w1, b1), (w2, b2)]), tmp_path / "corner.onnx")
    g = load_onnx(path)
    rows = spec_rows(_argmax_spec(0, 2), 2)
    spec = BatchSpec.stack([rows])
    lo, hi = torch.zeros(1, 12), torch.ones(1, 12)
    sampled = concrete_check(g, lo, hi, spec, samples=64)
    assert sampled.margin[0] > 0  # random sampling misses it
    found = pgd(g, lo, hi, spec, restarts=4, steps=30)
    assert found.margin[0] < 0
    net = ir.Network("c", path, (12,))
    ce = replay(net, _argmax_spec(0, 2), (np.zeros(12), np.ones(12)), found.x[0], found.y[0])
    assert ce is not None and ce.margin < 0 and ce.replayed_with == "onnxruntime"
    assert ce.max_abs_diff < 1e-4


def test_concrete_check_uses_corners(tmp_path):
    path = save(mlp([(np.array([[1.0, 1.0, 1.0]]), np.array([-2.99]))]), tmp_path / "sum.onnx")
    g = load_onnx(path)
    spec = BatchSpec.stack([spec_rows(ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, 1.0),))),)),)),
                                      1)])
    found = concrete_check(g, torch.zeros(1, 3), torch.ones(1, 3), spec, samples=0)
    assert found.margin[0] < 0 and np.allclose(found.x[0], [1, 1, 1])


def test_unconfirmed_candidate_is_rejected(tmp_path):
    rng = np.random.default_rng(0)
    path = save(random_mlp(rng, [3, 8, 2]), tmp_path / "m.onnx")
    net = ir.Network("m", path, (3,))
    x = np.array([0.1, 0.2, 0.3])
    y = run_model(net, x[None])[0]
    true_cls = int(np.argmax(y))
    # the point satisfies argmax == true_cls, so it is no counterexample for that spec
    assert replay(net, _argmax_spec(true_cls, 2), (x - 1, x + 1), x) is None
    # and it is one for the other class
    ce = replay(net, _argmax_spec(1 - true_cls, 2), (x - 1, x + 1), x)
    assert ce is not None and ce.margin <= 0
    # a point outside the box is clipped into it before replay
    ce = replay(net, _argmax_spec(1 - true_cls, 2), (x, x), x + 5)
    assert ce is None or contains([(x, x)], np.asarray(ce.x))


def test_replay_applies_normalisation(tmp_path):
    path = save(mlp([(np.array([[1.0]]), np.array([0.0]))]), tmp_path / "id.onnx")
    net = ir.Network("id", path, (1,), mean=(0.5,), std=(0.25,))
    assert np.allclose(run_model(net, np.array([[1.0]])), [[2.0]])


def test_float32_inside_and_regions():
    lo, hi = np.array([0.1, 0.2]), np.array([0.1 + 1e-8, 0.3])  # holds one float32 in the first axis
    x = float32_inside(np.array([0.1, 0.35]), lo, hi)
    assert np.all(x.astype(np.float64) >= lo) and np.all(x.astype(np.float64) <= hi)
    net = ir.Network("n", "m.onnx", (2,))
    assert len(boxes(ir.UnionRegion((ir.Box((0, 0), (1, 1)), ir.Box((2, 2), (3, 3)))), net)) == 2
    import pytest

    from hdsl.diagnostics import HdslError

    with pytest.raises(HdslError):
        boxes(ir.Box((0, 0, 0), (1, 1, 1)), net)
