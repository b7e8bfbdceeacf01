"""T4: property-based checks of the level driver on random small ReLU networks (2-D input, 6 classes).

* verdicts are monotone across levels (proved: a root-side prefix; falsified: a leaf-side suffix);
* nothing is proved that exact search (Z3) falsifies, and nothing proved is violated on a dense grid;
* every counterexample was replayed with onnxruntime, lies in the ball and violates its level;
* a bisected certified radius is never above a radius at which a counterexample exists.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdsl.hierarchy_check import HierarchyChecker, set_margin, verdict_monotone
from hdsl.ir import Hierarchy, HierarchyNode, Network
from hdsl.nn.ort import run_onnx
from hdsl.results import Verdict
from test_hierarchy_nets import mlp

CLASSES = tuple(f"c{i}" for i in range(6))
# ragged: c2 and c3 at depth 2, the others at depth 3
TREE = Hierarchy("h", CLASSES, HierarchyNode("root", (
    HierarchyNode("A", (HierarchyNode("A1", ("c0", "c1")), "c2")),
    HierarchyNode("B", ("c3", HierarchyNode("B1", ("c4", "c5")))))))


def _net(tmp, seed: int) -> Network:
    rng = np.random.default_rng(seed)
    layers = [(rng.normal(size=(8, 2)), rng.normal(size=8) * 0.5, True),
              (rng.normal(size=(6, 8)) * 0.7, rng.normal(size=6) * 0.3, False)]
    path = mlp(layers, tmp / f"rand{seed}.onnx")
    return Network("net", path, (2,), (-2.0, 2.0), classes=CLASSES, num_outputs=6)


def _grid(x0, eps, n=41):
    a = np.linspace(max(-2.0, x0[0] - eps), min(2.0, x0[0] + eps), n)
    b = np.linspace(max(-2.0, x0[1] - eps), min(2.0, x0[1] + eps), n)
    return np.stack(np.meshgrid(a, b), -1).reshape(-1, 2).astype(np.float32)


@given(seed=st.integers(0, 10_000), px=st.floats(-1, 1), py=st.floats(-1, 1), eps=st.floats(0.02, 0.6))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_levels_sound_monotone_and_replayed(tmp_path, seed, px, py, eps):
    net = _net(tmp_path, seed)
    x0 = np.array([px, py], np.float32)
    label = int(np.argmax(run_onnx(net.path, x0.reshape(1, 2))[0]))
    fast = HierarchyChecker(net, TREE, methods=("pairs", "lambda"), attack_steps=15, lambda_steps=25)
    exact = HierarchyChecker(net, TREE, methods=("exact",), attack=False, split_timeout=20)
    r = fast.check_point(x0, label, eps)
    e = exact.check_point(x0, label, eps)
    assert verdict_monotone(r.levels) and verdict_monotone(e.levels)
    ys = run_onnx(net.path, _grid(x0, eps))
    for a, b in zip(r.levels, e.levels):
        assert a.classes == b.classes
        if a.verdict is Verdict.PROVED:
            assert b.verdict is not Verdict.FALSIFIED
            assert all(set_margin(y, a.classes) > 0 for y in ys)
        if b.verdict is Verdict.PROVED:
            assert a.verdict is not Verdict.FALSIFIED
        for lv in (a, b):
            if lv.verdict is Verdict.FALSIFIED:
                ce = lv.counterexample
                assert ce is not None and ce.replayed_with == "onnxruntime" and ce.margin <= 0
                x = np.asarray(ce.x)
                assert np.all(x >= np.maximum(x0.astype(np.float64) - eps, -2.0))
                assert np.all(x <= np.minimum(x0.astype(np.float64) + eps, 2.0))
                assert set_margin(run_onnx(net.path, x.reshape(1, 2).astype(np.float32))[0], lv.classes) <= 0
                assert lv.severity is not None and lv.severity < lv.level


@given(seed=st.integers(0, 10_000), px=st.floats(-1, 1), py=st.floats(-1, 1))
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_bisected_radius_is_below_any_counterexample(tmp_path, seed, px, py):
    net = _net(tmp_path, seed)
    x0 = np.array([px, py], np.float32)
    label = int(np.argmax(run_onnx(net.path, x0.reshape(1, 2))[0]))
    c = HierarchyChecker(net, TREE, methods=("pairs", "lambda"), attack_steps=15, lambda_steps=20)
    leaf = len(TREE.path_to(CLASSES[label])) - 1
    for level in (1, leaf):
        rad = c.certified_radius(x0, label, level, eps_max=1.0, tol=0.04, max_steps=7)
        if rad.falsified_at is not None:
            assert rad.certified < rad.falsified_at
        # the proved radius holds on a grid of the ball
        if 0 < rad.certified < 1.0:
            cls = c.check_point(x0, label, rad.certified, sets=[(level, tuple(
                TREE.class_indices(TREE.ancestor(CLASSES[label], level))), "x")]).levels[-1]
            assert cls.verdict is Verdict.PROVED
            ys = run_onnx(net.path, _grid(x0, rad.certified, 21))
            assert all(set_margin(y, cls.classes) > 0 for y in ys)
