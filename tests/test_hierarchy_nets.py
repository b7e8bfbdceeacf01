"""The analytic networks T1-T3 of the hierarchy notes, built as ONNX with onnx.helper.

Other ``test_hierarchy_*`` files import the builders; the tests here check that
each ONNX file computes the formula it is named after (onnxruntime).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hdsl.ir import Hierarchy, HierarchyNode, Network


def _save(model, path: Path) -> str:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def mlp(layers: list[tuple[np.ndarray, np.ndarray, bool]], path: Path) -> str:
    """``x -> (W x + b, ReLU?)*`` as Gemm/Relu nodes, input ``[N, n_in]``."""
    n_in = layers[0][0].shape[1]
    nodes, inits = [], []
    cur = "x"
    for i, (W, b, relu) in enumerate(layers):
        inits += [numpy_helper.from_array(np.asarray(W, np.float32), f"W{i}"),
                  numpy_helper.from_array(np.asarray(b, np.float32), f"b{i}")]
        out = f"z{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out], transB=1))
        cur = out
        if relu:
            nodes.append(helper.make_node("Relu", [cur], [f"h{i}"]))
            cur = f"h{i}"
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    n_out = layers[-1][0].shape[0]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return _save(model, path)


def network(path: str, n_in: int, n_out: int, domain: tuple[float, float]) -> Network:
    return Network("net", path, (n_in,), domain, classes=tuple(f"c{i + 1}" for i in range(n_out)), num_outputs=n_out)


def t1(tmp: Path) -> tuple[Network, Hierarchy]:
    """Staircase: y = (-x, 0, x-1, 2x-3); tree {A: {c1, c2}, B: {c3, c4}}."""
    W = np.array([[-1.0], [0.0], [1.0], [2.0]])
    b = np.array([0.0, 0.0, -1.0, -3.0])
    path = mlp([(W, b, False)], tmp / "t1.onnx")
    h = Hierarchy("h", ("c1", "c2", "c3", "c4"),
                  HierarchyNode("root", (HierarchyNode("A", ("c1", "c2")), HierarchyNode("B", ("c3", "c4")))))
    return network(path, 1, 4, (-10.0, 10.0)), h


def flat3() -> Hierarchy:
    """{G: {c1, c2}, c3}: level 1 of c1 is S = {c1, c2}."""
    return Hierarchy("h", ("c1", "c2", "c3"), HierarchyNode("root", (HierarchyNode("G", ("c1", "c2")), "c3")))


def t2(tmp: Path, third: float = -0.1) -> tuple[Network, Hierarchy]:
    """V-shape: y = (x, -x, third) on x in [-1, 1]."""
    W = np.array([[1.0], [-1.0], [0.0]])
    b = np.array([0.0, 0.0, third])
    path = mlp([(W, b, False)], tmp / f"t2_{third:+.2f}.onnx")
    return network(path, 1, 3, (-1.0, 1.0)), flat3()


def t3(tmp: Path) -> tuple[Network, Hierarchy]:
    """L-shape: h = (relu(x), relu(-x)); y = (h1, h2, 1.2 h1 + 1.2 h2 - 0.3) on x in [-1, 1]."""
    W1 = np.array([[1.0], [-1.0]])
    b1 = np.zeros(2)
    W2 = np.array([[1.0, 0.0], [0.0, 1.0], [1.2, 1.2]])
    b2 = np.array([0.0, 0.0, -0.3])
    path = mlp([(W1, b1, True), (W2, b2, False)], tmp / "t3.onnx")
    return network(path, 1, 3, (-1.0, 1.0)), flat3()


# --------------------------------------------------------------------------- the nets compute their formulas


def _run(path: str, xs) -> np.ndarray:
    from hdsl.nn.ort import run_onnx

    return run_onnx(path, np.asarray(xs, np.float32).reshape(-1, 1))


def test_t1_formula(tmp_path):
    net, _ = t1(tmp_path)
    xs = np.linspace(-3, 3, 13)
    want = np.stack([-xs, 0 * xs, xs - 1, 2 * xs - 3], 1)
    assert np.allclose(_run(net.path, xs), want, atol=1e-6)


def test_t2_t3_formulas(tmp_path):
    xs = np.linspace(-1, 1, 9)
    net2, _ = t2(tmp_path)
    assert np.allclose(_run(net2.path, xs), np.stack([xs, -xs, -0.1 + 0 * xs], 1), atol=1e-6)
    net3, _ = t3(tmp_path)
    h1, h2 = np.maximum(xs, 0), np.maximum(-xs, 0)
    assert np.allclose(_run(net3.path, xs), np.stack([h1, h2, 1.2 * h1 + 1.2 * h2 - 0.3], 1), atol=1e-6)
