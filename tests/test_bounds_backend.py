"""The bounds backend end to end: analytic cases (hierarchy notes T1/T2), regions, batching, replay."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hdsl import ir
from hdsl.backends import Budget, get
from hdsl.bounds.spec import BatchSpec, certified_margin, proved, refuted, spec_rows
from hdsl.nn.build import mlp, random_mlp, save
from hdsl.results import Verdict

torch.set_num_threads(1)
ROOT = Path(__file__).parent.parent


def argmax_in(S, n):
    """Unsafe set of ``argmax in S``: OR_{k not in S} AND_{j in S} y_k - y_j >= 0."""
    return ir.OutputSpec(tuple(
        ir.Conjunction(tuple(ir.Constraint(ir.LinearExpr(((k, 1.0), (j, -1.0)))) for j in S))
        for k in range(n) if k not in S))


def query(net, lo, hi, spec, qid="q", backend="auto", timeout=20.0):
    return ir.Query(qid, net, ir.Box(tuple(lo), tuple(hi)), spec, "p", ir.CheckOptions(timeout, backend))


@pytest.fixture
def t1(tmp_path):
    """T1 staircase: y = (-x, 0, x - 1, 2x - 3)."""
    path = save(mlp([(np.array([[-1.0], [0.0], [1.0], [2.0]]), np.array([0.0, 0.0, -1.0, -3.0]))]),
                tmp_path / "t1.onnx")
    return ir.Network("t1", path, (1,))


@pytest.mark.parametrize("S,eps,expected", [
    ((1,), 0.2, Verdict.PROVED),        # leaf radius is 0.25
    ((1,), 0.25, Verdict.FALSIFIED),    # tie at x = 0 counts as unsafe
    ((0, 1), 0.7, Verdict.PROVED),      # node A radius 0.75
    ((0, 1), 0.75, Verdict.FALSIFIED),  # tie at x = 1
    ((0, 1, 2, 3), 100.0, Verdict.PROVED),  # root: nothing unsafe
])
def test_t1_staircase(t1, S, eps, expected):
    be = get("bounds")
    r = be.run(query(t1, [0.25 - eps], [0.25 + eps], argmax_in(S, 4)), Budget.seconds(20))
    assert r.verdict is expected, r
    if expected is Verdict.FALSIFIED:
        ce = r.counterexample
        assert ce is not None and ce.replayed_with == "onnxruntime" and ce.margin <= 0
        assert 0.25 - eps <= ce.x[0] <= 0.25 + eps
    if expected is Verdict.PROVED and len(S) < 4:
        assert 0 < r.margin <= 0.25 - eps + 1e-6 if S == (1,) else 0 < r.margin


def _t2(tmp_path, y3):
    path = save(mlp([(np.array([[1.0], [-1.0], [0.0]]), np.array([0.0, 0.0, y3]))]), tmp_path / f"t2_{y3}.onnx")
    return ir.Network("t2", path, (1,))


def test_t2_per_disjunct_is_sound_and_returns_unknown(tmp_path):
    """T2 V-shape: argmax in {0,1} holds (margin 0.1) but no single constraint refutes the disjunct."""
    net = _t2(tmp_path, -0.1)
    r = get("bounds").run(query(net, [-1.0], [1.0], argmax_in((0, 1), 3)), Budget.seconds(20))
    assert r.verdict is Verdict.UNKNOWN and r.margin is not None and r.margin <= 0
    # with y3 = +0.1 it is false at x = 0
    r = get("bounds").run(query(_t2(tmp_path, 0.1), [-1.0], [1.0], argmax_in((0, 1), 3)), Budget.seconds(20))
    assert r.verdict is Verdict.FALSIFIED and math.isclose(r.counterexample.margin, -0.1, abs_tol=1e-6)


def test_disjunct_rule_strict_and_nonstrict():
    # one disjunct with two constraints: y0 >= 0 AND y1 > 0 ; rows are -y0, -y1
    spec = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, 1.0),))),
                                          ir.Constraint(ir.LinearExpr(((1, 1.0),)), strict=True))),))
    rows = spec_rows(spec, 2)
    bs = BatchSpec.stack([rows] * 4)
    lb = torch.tensor([[0.0, -1.0],   # ub(y0) = 0: y0 >= 0 still possible; y1 > 0 possible -> open
                       [-1.0, 0.0],   # ub(y1) = 0: y1 > 0 impossible -> refuted
                       [1e-9, -1.0],  # ub(y0) < 0 -> refuted
                       [-1.0, -1e-9]], dtype=torch.float64)
    assert refuted(lb, bs)[:, 0].tolist() == [False, True, True, False]
    assert proved(lb, bs).tolist() == [False, True, True, False]
    assert certified_margin(lb, bs).tolist() == [0.0, 0.0, 1e-9, -1e-9]
    empty = BatchSpec.stack([spec_rows(ir.OutputSpec(()), 2)])
    assert proved(torch.zeros(1, 1, dtype=torch.float64), empty).tolist() == [True]


def test_union_region_needs_every_box(t1):
    ok = ir.Box((0.2,), (0.3,))
    bad = ir.Box((-0.1,), (0.1,))
    spec = argmax_in((1,), 4)
    be = get("bounds")
    r = be.run(ir.Query("u1", t1, ir.UnionRegion((ok, ok)), spec, "p"), Budget.seconds(20))
    assert r.verdict is Verdict.PROVED
    r = be.run(ir.Query("u2", t1, ir.UnionRegion((ok, bad)), spec, "p"), Budget.seconds(20))
    assert r.verdict is Verdict.FALSIFIED


def test_linf_ball_from_dataset_with_normalisation(tmp_path):
    rng = np.random.default_rng(5)
    path = save(random_mlp(rng, [6, 16, 3]), tmp_path / "m.onnx")
    x = rng.uniform(0, 1, size=(4, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(4, dtype=np.int64))
    ds = ir.Dataset("d", str(tmp_path / "d.npz"), "npz")
    net = ir.Network("n", path, (6,), (0.0, 1.0), mean=(0.5,), std=(0.25,))
    from hdsl.nn import load_onnx

    g = load_onnx(path).with_normalization([0.5], [0.25])
    be = get("bounds")
    for i in range(4):
        y = int(g(torch.as_tensor(x[i:i + 1])).argmax())
        for eps, allowed in ((1e-4, {Verdict.PROVED}), (0.5, {Verdict.FALSIFIED, Verdict.UNKNOWN})):
            region = ir.LinfBall(ir.DataPoint(ds, i), eps, (0.0, 1.0))
            r = be.run(ir.Query(f"b{i}", net, region, argmax_in((y,), 3), "p"), Budget.seconds(20))
            assert r.verdict in allowed, r
            if r.verdict is Verdict.FALSIFIED:
                ce = np.asarray(r.counterexample.x)
                assert np.all(ce >= np.maximum(x[i] - eps, 0) - 0) and np.all(ce <= np.minimum(x[i] + eps, 1))


def test_batch_matches_single_and_stages(tmp_path):
    rng = np.random.default_rng(9)
    path = save(random_mlp(rng, [4, 20, 20, 3]), tmp_path / "m.onnx")
    from hdsl.nn import load_onnx

    g = load_onnx(path)
    net = ir.Network("n", path, (4,))
    qs = []
    for i in range(6):
        c = rng.uniform(-1, 1, 4)
        y = int(g(torch.as_tensor(c, dtype=torch.float32)[None]).argmax())
        for eps in (1e-3, 0.05, 0.6):
            qs.append(query(net, c - eps, c + eps, argmax_in((y,), 3), f"q{i}_{eps}"))
    be = get("bounds")
    single = [be.run(q, Budget.seconds(20)) for q in qs]
    batch = be.run_batch(qs, Budget.seconds(60))
    assert [r.verdict for r in single] == [r.verdict for r in batch]
    verdicts = {r.verdict for r in batch}
    assert Verdict.PROVED in verdicts and Verdict.FALSIFIED in verdicts
    for r in batch:
        if r.verdict is Verdict.PROVED:
            assert r.stage in ("ibp", "crown", "alpha") and r.margin > 0
        if r.verdict is Verdict.FALSIFIED:
            assert r.stage in ("concrete", "attack") and r.counterexample.margin <= 0


def test_spec_index_out_of_range_is_an_error(t1):
    spec = argmax_in((1,), 6)
    r = get("bounds").run(query(t1, [0.0], [0.1], spec), Budget.seconds(5))
    assert r.verdict is Verdict.ERROR and "out of range" in r.message


def test_acas_box_property():
    """ACAS Xu net 1_1: a small box where the first score stays below a bound, and one where it does not."""
    net = ir.Network("acas", str(ROOT / "models" / "acasxu_1_1.onnx"), (1, 1, 5))
    c = np.array([0.64, 0.0, 0.0, 0.475, -0.475])
    lo, hi = c - 0.005, c + 0.005
    from hdsl.nn import load_onnx

    g = load_onnx(net.path)
    xs = torch.as_tensor(lo + (hi - lo) * np.random.default_rng(0).uniform(size=(2000, 5)), dtype=torch.float32)
    ys = g(xs)[:, 0]
    top, y0 = float(ys.max()), float(g(torch.as_tensor(c, dtype=torch.float32)[None])[0, 0])
    above = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, 1.0),), -(top + 0.05))),)),))
    r = get("bounds").run(query(net, lo, hi, above), Budget.seconds(30))
    assert r.verdict is Verdict.PROVED, r
    below = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, 1.0),), -(y0 - 1e-3))),)),))
    r = get("bounds").run(query(net, lo, hi, below), Budget.seconds(30))
    assert r.verdict is Verdict.FALSIFIED and r.counterexample.y[0] >= y0 - 1e-3


def test_cifar_demo_model_image():
    model, data = ROOT / "models" / "cifar10_small.onnx", ROOT / "data" / "cifar10_test.npz"
    if not (model.exists() and data.exists()):
        pytest.skip("demo model/data not in this checkout")
    ds = ir.Dataset("test", str(data), "npz", indices=(0, 1))
    from hdsl.data import load_dataset

    loaded = load_dataset(ds)
    net = ir.Network("cifar", str(model), tuple(loaded.x.shape[1:]), (0.0, 1.0))
    from hdsl.nn import load_onnx

    g = load_onnx(model)
    if tuple(g.input_shape) != tuple(loaded.x.shape[1:]):
        pytest.skip("demo data layout differs from the model input")
    y = int(g(torch.tensor(np.array(loaded.x[:1]))).argmax())
    region = ir.LinfBall(ir.DataPoint(ds, 0), 1e-4, (0.0, 1.0))
    r = get("bounds").run(ir.Query("c0", net, region, argmax_in((y,), 10), "p"), Budget.seconds(60))
    assert r.verdict is Verdict.PROVED, r


def test_spent_budget_is_a_timeout(t1):
    r = get("bounds").run(query(t1, [0.2], [0.3], argmax_in((1,), 4)), Budget.seconds(0))
    assert r.verdict is Verdict.TIMEOUT


def test_bounds_deadline_raises(tmp_path):
    import time

    from hdsl.bounds import BoundsTimeout, bound_state
    from hdsl.nn import load_onnx

    g = load_onnx(save(random_mlp(np.random.default_rng(2), [3, 10, 10, 2]), tmp_path / "m.onnx"))
    with pytest.raises(BoundsTimeout):
        bound_state(g, torch.zeros(1, 3), torch.ones(1, 3), "crown", "cpu", deadline=time.monotonic() - 1)
