"""Soundness and tightness ordering of IBP, CROWN and alpha-CROWN on random networks.

Every bound must contain the outputs of thousands of sampled inputs (float64
evaluation of the exact graph, and onnxruntime float32 on a subset); CROWN is
never looser than IBP, and alpha never looser than CROWN.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from hdsl.bounds import bound_state, compute_bounds, spec_bounds
from hdsl.nn import load_onnx
from hdsl.nn.build import model_from_nodes, random_convnet, random_mlp, save
from hdsl.nn.ort import run_onnx

torch.set_num_threads(1)
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _samples(lo: torch.Tensor, hi: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """[B, n, *shape]: uniform points plus the box corners along random directions (vertices matter)."""
    B = lo.shape[0]
    u = torch.rand(B, n, *lo.shape[1:], generator=gen, dtype=torch.float64)
    u[:, : n // 4] = (u[:, : n // 4] > 0.5).double()  # random vertices
    return lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * u


def _check_net(g, lo, hi, C, seed, n=2000, ort_n=200):
    gen = torch.Generator().manual_seed(seed)
    res = {m: compute_bounds(g, lo, hi, C, method=m, device="cpu") for m in ("ibp", "crown", "alpha")}
    xs = _samples(lo, hi, n, gen)
    B = lo.shape[0]
    with torch.no_grad():
        ys = g.exact(xs.reshape(B * n, *g.input_shape)).reshape(B, n, -1)
    vals = torch.einsum("bmo,bno->bnm", C, ys)
    x32 = xs[:, :ort_n].reshape(B * ort_n, -1).float().numpy()
    y32 = torch.as_tensor(run_onnx(g.source_path, x32), dtype=torch.float64).reshape(B, ort_n, -1)
    vals32 = torch.einsum("bmo,bno->bnm", C, y32)
    for m, (lb, ub) in res.items():
        for v in (vals, vals32):
            assert bool((v >= lb.unsqueeze(1)).all()), (m, float((v - lb.unsqueeze(1)).min()))
            assert bool((v <= ub.unsqueeze(1)).all()), (m, float((ub.unsqueeze(1) - v).min()))
    (li, ui), (lc, uc), (la, ua) = res["ibp"], res["crown"], res["alpha"]
    assert bool((lc >= li).all() and (uc <= ui).all()), "CROWN looser than IBP"
    assert bool((la >= lc).all() and (ua <= uc).all()), "alpha looser than CROWN"
    return res


def _spec(rng, B, m, n_out):
    return torch.as_tensor(rng.normal(size=(B, m, n_out)))


@SETTINGS
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(2, 12), min_size=2, max_size=4),
       act=st.sampled_from(["Relu", "Relu", "Sigmoid", "Tanh"]), eps=st.floats(0.01, 1.0))
def test_random_mlps(tmp_path, seed, sizes, act, eps):
    rng = np.random.default_rng(seed)
    sizes = [3, *sizes]
    path = save(random_mlp(rng, sizes, act), tmp_path / f"mlp_{seed}_{act}_{len(sizes)}_{sizes[-1]}.onnx")
    g = load_onnx(path)
    c = torch.as_tensor(rng.uniform(-1, 1, size=(2, 3)))
    _check_net(g, c - eps, c + eps, _spec(rng, 2, 3, sizes[-1]), seed)


@SETTINGS
@given(seed=st.integers(0, 10_000), eps=st.floats(0.005, 0.3), bn=st.booleans(), pool=st.booleans())
def test_random_convnets(tmp_path, seed, eps, bn, pool):
    rng = np.random.default_rng(seed)
    path = save(random_convnet(rng, in_shape=(2, 7, 7), channels=(3, 4), hidden=8, classes=3, batchnorm=bn,
                               avgpool=pool, stride=1 if pool else 2),
                tmp_path / f"conv_{seed}_{bn}_{pool}.onnx")
    g = load_onnx(path)
    c = torch.as_tensor(rng.uniform(0, 1, size=(2, 2, 7, 7)))
    _check_net(g, c - eps, c + eps, _spec(rng, 2, 4, 3), seed, n=1000)


def _dag_net(rng):
    """Residual add, max pooling (with padding), concat, transpose, reshape, sub and an affine op."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="c2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "c1"], ["res"], name="res"),
             helper.make_node("Relu", ["res"], ["r2"], name="r2"),
             helper.make_node("MaxPool", ["r2"], ["mp"], name="mp", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["r2"], ["ap"], name="ap", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], count_include_pad=0),
             helper.make_node("Sub", ["mp", "ap"], ["d"], name="d"),
             helper.make_node("Concat", ["d", "mp"], ["cat"], name="cat", axis=1),
             helper.make_node("Transpose", ["cat"], ["tr"], name="tr", perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["tr"], ["f"], name="f"),
             helper.make_node("Mul", ["f", "k"], ["fk"], name="fk"),
             helper.make_node("Gemm", ["fk", "w3", "b3"], ["h"], name="h", transB=1),
             helper.make_node("Relu", ["h"], ["hr"], name="hr"),
             helper.make_node("Gemm", ["hr", "w4", "b4"], ["y"], name="y", transB=1)]
    inits = {"w1": rng.normal(size=(3, 2, 3, 3)) * 0.5, "b1": rng.normal(size=3) * 0.1,
             "w2": rng.normal(size=(3, 3, 3, 3)) * 0.3, "b2": rng.normal(size=3) * 0.1,
             "k": rng.uniform(0.5, 1.5, size=54),
             "w3": rng.normal(size=(10, 54)) * 0.3, "b3": rng.normal(size=10) * 0.1,
             "w4": rng.normal(size=(4, 10)) * 0.5, "b4": rng.normal(size=4) * 0.1}
    return model_from_nodes(nodes, inits, [2, 6, 6], "y")


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), eps=st.floats(0.01, 0.3))
def test_dag_with_residual_maxpool_concat(tmp_path, seed, eps):
    rng = np.random.default_rng(seed)
    g = load_onnx(save(_dag_net(rng), tmp_path / f"dag_{seed}.onnx"))
    c = torch.as_tensor(rng.uniform(0, 1, size=(2, 2, 6, 6)))
    _check_net(g, c - eps, c + eps, _spec(rng, 2, 3, 4), seed, n=1000)


def test_crown_tighter_than_ibp_on_a_deep_relu_net(tmp_path):
    rng = np.random.default_rng(7)
    g = load_onnx(save(random_mlp(rng, [5, 30, 30, 30, 30, 4]), tmp_path / "deep.onnx"))
    c = torch.as_tensor(rng.uniform(-1, 1, size=(4, 5)))
    lb_i, ub_i = compute_bounds(g, c - 0.05, c + 0.05, method="ibp", device="cpu")
    lb_c, ub_c = compute_bounds(g, c - 0.05, c + 0.05, method="crown", device="cpu")
    lb_a, ub_a = compute_bounds(g, c - 0.05, c + 0.05, method="alpha", device="cpu", alpha_iters=30)
    assert float((ub_c - lb_c).mean()) < 0.5 * float((ub_i - lb_i).mean())  # strictly better, not just equal
    assert float((ub_a - lb_a).mean()) <= float((ub_c - lb_c).mean())


def test_float32_rounding_is_covered(tmp_path):
    """Point boxes on an ill-conditioned net: onnxruntime's float32 output must lie inside the bounds.

    Without the float32 noise model (``fp=False``) the bounds collapse to the
    float64 value and onnxruntime's outputs fall outside: the test can fail.
    """
    rng = np.random.default_rng(3)
    ws = []
    for n_in, n_out in [(8, 64), (64, 64), (64, 3)]:
        w = rng.normal(size=(n_out, n_in)) * 300.0
        ws.append((w, rng.normal(size=n_out) * 1e4))
    from hdsl.nn.build import mlp

    g = load_onnx(save(mlp(ws), tmp_path / "illcond.onnx"))
    x = torch.as_tensor(rng.uniform(-1, 1, size=(64, 8))).float().double()
    y32 = torch.as_tensor(run_onnx(g.source_path, x.float().numpy()), dtype=torch.float64)
    lb, ub = compute_bounds(g, x, x, method="crown", device="cpu")
    assert bool(((y32 >= lb) & (y32 <= ub)).all())
    lb0, ub0 = compute_bounds(g, x, x, method="crown", device="cpu", fp=False)
    assert not bool(((y32 >= lb0) & (y32 <= ub0)).all())


def test_bound_state_reuse_and_spec_identity(tmp_path):
    rng = np.random.default_rng(11)
    g = load_onnx(save(random_mlp(rng, [3, 10, 10, 4]), tmp_path / "m.onnx"))
    c = torch.as_tensor(rng.uniform(-1, 1, size=(3, 3)))
    state = bound_state(g, c - 0.1, c + 0.1, "crown", device="cpu")
    eye = torch.eye(4, dtype=torch.float64)
    lb = spec_bounds(state, eye, None, "crown")
    lb2, _ = compute_bounds(g, c - 0.1, c + 0.1, None, method="crown", device="cpu")
    assert torch.allclose(lb, lb2)
    with pytest.raises(ValueError):
        compute_bounds(g, c + 0.1, c - 0.1, device="cpu")
