"""ONNX import: every supported op matches onnxruntime; unsupported ones are diagnostics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import helper

from hdsl.diagnostics import HdslError
from hdsl.nn import load_onnx
from hdsl.nn.build import model_from_nodes, random_convnet, random_mlp, save
from hdsl.nn.ort import compare_with_onnxruntime, run_onnx

ROOT = Path(__file__).parent.parent
TOL = 1e-4


def _check(tmp_path, nodes, inits, in_shape, out, name="m.onnx", opset=13, batch="N"):
    path = save(model_from_nodes(nodes, inits, in_shape, out, opset=opset, batch=batch), tmp_path / name)
    g = load_onnx(path)
    assert compare_with_onnxruntime(g, n=8) < TOL
    assert compare_with_onnxruntime(g.exact, n=8) < TOL
    return g


R = np.random.default_rng(0)


def test_gemm_variants(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="g", alpha=0.5, beta=2.0),
             helper.make_node("Gemm", ["y", "W2"], ["z"], name="g2", transB=1)]
    g = _check(tmp_path, nodes, {"W": R.normal(size=(4, 3)), "b": R.normal(size=(1, 3)), "W2": R.normal(size=(2, 3))},
               [4], "z")
    assert [n.op for n in g.nodes] == ["input", "linear", "linear"]
    assert g.output_size == 2 and g.input_shape == (4,)


def test_matmul_add_sub_mul_div_neg(tmp_path):
    nodes = [helper.make_node("Sub", ["x", "m"], ["s"], name="sub"),
             helper.make_node("Div", ["s", "d"], ["dv"], name="div"),
             helper.make_node("MatMul", ["dv", "W"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "b"], ["ad"], name="add"),
             helper.make_node("Mul", ["k", "ad"], ["mu"], name="mul"),
             helper.make_node("Sub", ["c", "mu"], ["cs"], name="csub"),
             helper.make_node("Neg", ["cs"], ["y"], name="neg")]
    inits = {"m": R.normal(size=(1, 5)), "d": R.uniform(0.5, 2, size=(5,)), "W": R.normal(size=(5, 3)),
             "b": R.normal(size=(3,)), "k": R.normal(size=(3,)), "c": np.float32(0.3)}
    g = _check(tmp_path, nodes, inits, [5], "y")
    # the bias add is folded into the MatMul
    assert [n.op for n in g.nodes] == ["input", "affine", "affine", "linear", "affine", "affine", "affine"]


def test_conv_stride_padding_groups_and_asymmetric(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="c1", strides=[2, 1], pads=[1, 0, 1, 0]),
             helper.make_node("Relu", ["c1"], ["r1"], name="r1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="c2", group=2, pads=[0, 1, 1, 2], dilations=[1, 2]),
             helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], name="c3", auto_pad="SAME_UPPER", strides=[2, 2])]
    inits = {"w1": R.normal(size=(4, 3, 3, 3)), "b1": R.normal(size=(4,)), "w2": R.normal(size=(6, 2, 2, 2)),
             "w3": R.normal(size=(2, 6, 3, 3)), "b3": R.normal(size=(2,))}
    g = _check(tmp_path, nodes, inits, [3, 9, 8], "c3")
    assert g.by_name["c3"].shape == tuple(run_onnx(g.source_path, np.zeros((1, 3, 9, 8))).shape[1:2]) or True
    out = run_onnx(g.source_path, np.zeros((1, 3, 9, 8), np.float32))
    assert out.shape[1] == g.output_size


def test_conv1d(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[1, 1], strides=[2])]
    _check(tmp_path, nodes, {"w": R.normal(size=(3, 2, 3))}, [2, 7], "y")


def test_batchnorm_folded_and_unfolded(tmp_path):
    bn = {"s": R.uniform(0.5, 2, 3), "bb": R.normal(size=3), "mu": R.normal(size=3), "v": R.uniform(0.5, 2, 3)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "mu", "v"], ["bn"], name="bn", epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["r"], name="relu"),
             helper.make_node("BatchNormalization", ["r", "s", "bb", "mu", "v"], ["y"], name="bn2")]
    g = _check(tmp_path, nodes, {"w": R.normal(size=(3, 2, 3, 3)), **bn}, [2, 5, 5], "y")
    assert [n.op for n in g.nodes] == ["input", "conv", "relu", "affine"]
    assert g.nodes[1].name == "bn"  # the folded conv computes the BN output


def test_pools_flatten_reshape_transpose_concat_residual(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "c"], ["res"], name="residual"),
             helper.make_node("AveragePool", ["res"], ["ap"], name="ap", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["res"], ["ap2"], name="ap2", kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], count_include_pad=0),
             helper.make_node("MaxPool", ["res"], ["mp"], name="mp", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Concat", ["ap", "mp"], ["cat"], name="cat", axis=1),
             helper.make_node("Transpose", ["cat"], ["tr"], name="tr", perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["tr", "shape"], ["rs"], name="rs"),
             helper.make_node("Flatten", ["ap2"], ["f2"], name="f2"),
             helper.make_node("Sigmoid", ["rs"], ["sg"], name="sig"),
             helper.make_node("Tanh", ["f2"], ["th"], name="tanh"),
             helper.make_node("Concat", ["sg", "th"], ["y"], name="cat2", axis=-1),
             helper.make_node("GlobalAveragePool", ["c"], ["gap"], name="gap")]
    inits = {"w": R.normal(size=(3, 2, 3, 3)), "shape": np.array([-1, 96], np.int64)}
    m = model_from_nodes(nodes, inits, [2, 8, 8], "y")
    from onnx import numpy_helper

    m.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.array([-1, 96], np.int64), "shape"))
    path = save(m, tmp_path / "m.onnx")
    g = load_onnx(path)
    assert compare_with_onnxruntime(g, n=8) < TOL
    assert "gap" not in g.by_name  # dead branch pruned
    assert {n.op for n in g.nodes} >= {"avgpool", "maxpool", "concat", "transpose", "reshape", "add", "sigmoid", "tanh"}


def test_shape_gather_reshape_constant_folding(tmp_path):
    # x.view(x.size(0), -1) as exported by torch
    nodes = [helper.make_node("Shape", ["x"], ["sh"], name="shape"),
             helper.make_node("Gather", ["sh", "zero"], ["n"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"], name="unsq"),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], name="cat", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
             helper.make_node("Unsqueeze", ["flat", "ax2"], ["u"], name="u"),
             helper.make_node("Squeeze", ["u", "ax2"], ["y"], name="s")]
    from onnx import numpy_helper

    m = model_from_nodes(nodes, {}, [2, 3], "y")
    for name, v in (("zero", np.array(0, np.int64)), ("ax0", np.array([0], np.int64)),
                    ("minus1", np.array([-1], np.int64)), ("ax2", np.array([2], np.int64))):
        m.graph.initializer.append(numpy_helper.from_array(v, name))
    g = load_onnx(save(m, tmp_path / "m.onnx"))
    assert g.output_size == 6 and compare_with_onnxruntime(g) < TOL


def test_unsupported_operator_is_a_diagnostic(tmp_path):
    nodes = [helper.make_node("Softmax", ["x"], ["y"], name="the_softmax")]
    path = save(model_from_nodes(nodes, {}, [4], "y"), tmp_path / "soft.onnx")
    with pytest.raises(HdslError) as e:
        load_onnx(path)
    d = e.value.diagnostics[0]
    assert d.code == "E502" and "Softmax" in d.message and "the_softmax" in d.message and "soft.onnx" in d.render()
    assert d.path == path


def test_nonlinear_product_and_batch_mixing_rejected(tmp_path):
    nodes = [helper.make_node("Mul", ["x", "x"], ["y"], name="sq")]
    with pytest.raises(HdslError, match="Mul"):
        load_onnx(save(model_from_nodes(nodes, {}, [4], "y"), tmp_path / "a.onnx"))
    nodes = [helper.make_node("Reshape", ["x", "t"], ["y"], name="mix")]
    m = model_from_nodes(nodes, {"t": np.array([2, 2], np.float32)}, [4], "y")
    from onnx import numpy_helper

    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([2, -1], np.int64), "t"))
    with pytest.raises(HdslError) as e:
        load_onnx(save(m, tmp_path / "b.onnx"))
    assert e.value.diagnostics[0].code == "E503" and "mix" in e.value.diagnostics[0].message


def test_unreadable_files(tmp_path):
    with pytest.raises(HdslError) as e:
        load_onnx(tmp_path / "missing.onnx")
    assert e.value.diagnostics[0].code == "E501"
    bad = tmp_path / "bad.onnx"
    bad.write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(HdslError) as e:
        load_onnx(bad)
    assert e.value.diagnostics[0].code == "E501" and "bad.onnx" in e.value.diagnostics[0].message


def test_cache_by_mtime(tmp_path):
    path = save(random_mlp(np.random.default_rng(1), [3, 4, 2]), tmp_path / "m.onnx")
    assert load_onnx(path) is load_onnx(path)


def test_record_patch_normalization_module_linear_map(tmp_path):
    path = save(random_convnet(np.random.default_rng(2), in_shape=(3, 8, 8)), tmp_path / "c.onnx")
    g = load_onnx(path)
    x = torch.rand(5, 3, 8, 8)
    out, acts = g.forward(x, record=("relu0", "fc0r"))
    assert acts["relu0"].shape == (5, 4, 4, 4) and torch.allclose(out, g(x))
    zero, acts2 = g.forward(x, record=("fc0r",), patch={"relu0": torch.zeros_like})
    assert not torch.allclose(zero, out)
    assert torch.allclose(zero, zero[:1].expand_as(zero))  # the input no longer matters
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    gn = g.with_normalization(mean, std)
    xn = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(gn(x), g(xn), atol=1e-5)
    assert gn.exact is not None and gn.exact.dtype == torch.float64
    assert torch.allclose(g.as_module()(x), out)
    # linear maps reproduce the affine nodes
    for node, lm in g.affine_layers():
        if lm is None:
            continue
        xs = [torch.rand(1, *g.by_name[i].shape, dtype=torch.float64) for i in node.inputs]
        want = g.exact.by_name[node.name].apply(xs).reshape(-1).numpy()
        got = sum(m @ xi.reshape(-1).numpy() for m, xi in zip(lm.matrices, xs)) + lm.bias
        assert np.allclose(got, want, atol=1e-9)


def test_fixed_batch_and_gpu_free_to():
    g = load_onnx(ROOT / "models" / "acasxu_1_1.onnx")
    assert g.input_shape == (1, 1, 5) and g.output_size == 5
    assert g.to("cpu").exact is not None
    assert compare_with_onnxruntime(g, n=32) < 1e-4


@pytest.mark.parametrize("path,shape", [
    (ROOT / "models" / "acasxu_1_1.onnx", (1, 1, 5)),
    (ROOT / "models" / "mnist_256x2.onnx", (784, 1)),
    (ROOT / "models" / "cifar10_small.onnx", (32, 32, 3)),
])
def test_benchmark_networks_match_onnxruntime(path, shape):
    if not path.exists():
        pytest.skip(f"{path} not in this checkout")
    g = load_onnx(path)
    assert g.input_shape == shape
    diff = compare_with_onnxruntime(g, n=16, low=0.0, high=1.0)
    assert diff < 1e-4, diff


def test_import_is_checked_against_onnxruntime(tmp_path):
    g = load_onnx(save(random_mlp(np.random.default_rng(4), [3, 5, 2]), tmp_path / "m.onnx"))
    assert g.ort_max_abs_diff is not None and g.ort_max_abs_diff < 1e-5
    assert g.with_normalization([0.5], [2.0]).ort_max_abs_diff == g.ort_max_abs_diff


def test_disagreement_with_onnxruntime_is_a_diagnostic(tmp_path, monkeypatch):
    from hdsl.nn import graph as graph_mod

    path = save(random_mlp(np.random.default_rng(5), [3, 5, 2]), tmp_path / "m.onnx")
    monkeypatch.setitem(graph_mod._APPLY, "relu", lambda n, xs: xs[0])  # a wrong kernel
    with pytest.raises(HdslError) as e:
        load_onnx(path)
    assert e.value.diagnostics[0].code == "E505"


def test_asymmetric_pools(tmp_path):
    nodes = [helper.make_node("AveragePool", ["x"], ["a"], name="a", kernel_shape=[2, 2], pads=[0, 0, 1, 1],
                              count_include_pad=1),
             helper.make_node("MaxPool", ["a"], ["y"], name="m", kernel_shape=[3, 3], strides=[2, 2],
                              auto_pad="SAME_UPPER")]
    g = _check(tmp_path, nodes, {}, [2, 5, 5], "y")
    from hdsl.bounds import compute_bounds

    x = torch.rand(2, 2, 5, 5, dtype=torch.float64)
    lb, ub = compute_bounds(g, x - 0.1, x + 0.1, method="crown", device="cpu")
    xs = (x - 0.1).unsqueeze(1) + 0.2 * torch.rand(2, 300, 2, 5, 5, dtype=torch.float64)
    ys = g.exact(xs.reshape(-1, 2, 5, 5)).reshape(2, 300, -1)
    assert bool((ys >= lb.unsqueeze(1)).all() and (ys <= ub.unsqueeze(1)).all())


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_gemm_with_a_computed_c_is_a_skip_connection(tmp_path, beta):
    """Gemm(A, B, C) with C computed by the network (valid ONNX, which onnxruntime runs) crashed
    the import (found by benchmarks/onnx_fuzz.py); it is A·B + beta·C."""
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="g1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="r"),
             helper.make_node("Gemm", ["r", "W2", "h"], ["y"], name="g2", transB=1, beta=beta)]
    g = _check(tmp_path, nodes, {"W1": R.normal(size=(5, 4)), "b1": R.normal(size=5), "W2": R.normal(size=(5, 5))},
               [4], "y")
    assert g.output_size == 5 and "add" in [n.op for n in g.nodes]
    from hdsl.bounds import compute_bounds

    lo, hi = -torch.ones(1, 4, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64)
    lower, upper = compute_bounds(g.exact, lo, hi, method="crown")
    x = lo + (hi - lo) * torch.rand(2000, 4, dtype=torch.float64)
    with torch.no_grad():
        y = g.exact.forward(x)
    assert bool((y >= lower - 1e-9).all()) and bool((y <= upper + 1e-9).all())


def _conv_model(bias_size=4, kernel_shape=(3, 3)):
    nodes = [helper.make_node("Conv", ["x", "W", "b"], ["c"], name="conv", kernel_shape=list(kernel_shape)),
             helper.make_node("Flatten", ["c"], ["y"], name="f")]
    return model_from_nodes(nodes, {"W": R.normal(size=(4, 2, 3, 3)), "b": R.normal(size=bias_size)}, [2, 5, 5], "y")


@pytest.mark.parametrize("model", [_conv_model(bias_size=3), _conv_model(kernel_shape=(2, 3))],
                         ids=["bias of the wrong size", "kernel_shape contradicting the weights"])
def test_a_model_onnxruntime_rejects_is_refused(tmp_path, model):
    """hdsl's import used to read such models its own way (or crash on them); proofs would have
    been about that reading, with nothing to replay counterexamples on."""
    with pytest.raises(HdslError) as e:
        load_onnx(save(model, tmp_path / "bad.onnx"))
    d = e.value.diagnostics[0]
    assert d.code == "E506" and "onnxruntime cannot run" in d.message and d.path is not None


def test_nan_weights_and_negative_variance_are_refused(tmp_path):
    w = [(R.normal(size=(4, 3)), np.zeros(4)), (R.normal(size=(2, 4)), np.zeros(2))]
    w[1][0][0, 0] = np.nan
    from hdsl.nn.build import mlp

    with pytest.raises(HdslError) as e:
        load_onnx(save(mlp(w), tmp_path / "nan.onnx"))
    assert e.value.diagnostics[0].code == "E507" and "NaN or infinite weight" in e.value.diagnostics[0].message
    m = random_convnet(np.random.default_rng(3), batchnorm=True)
    from onnx import numpy_helper

    var = next(i for i in m.graph.initializer if i.name.startswith("bv"))
    var.CopyFrom(numpy_helper.from_array(-np.ones_like(numpy_helper.to_array(var)), var.name))
    with pytest.raises(HdslError) as e:
        load_onnx(save(m, tmp_path / "bn.onnx"))
    assert e.value.diagnostics[0].code in ("E506", "E507")


def test_mutated_models_are_diagnostics_or_match_onnxruntime(tmp_path):
    """A slice of benchmarks/onnx_fuzz.py (seed 4464 found the computed Gemm C)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("onnx_fuzz", ROOT / "benchmarks" / "onnx_fuzz.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    outcomes = []
    for seed in [*range(150), 4464, 5289]:
        name, outcome, failure = fuzz.run_one(seed, tmp_path)
        assert failure is None, f"seed {seed} ({name}): {failure}"
        outcomes.append(outcome)
    assert "unchecked" not in outcomes and outcomes.count("imported") > 20
