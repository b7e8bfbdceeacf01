"""No proof where the float32 network may overflow (hdsl.overflow).

The net computes y = relu(2x) - relu(2x): 0 for every real x, but for x > 1.7e38 the float32
network computes inf - inf = NaN, which violates y <= 1e34. The float32 rounding slack at these
magnitudes (about 5e32) is below the threshold, so before the guard the bounds "proved" it.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

from hdsl.check import check_file
from hdsl.lower import lower
from hdsl.nn.build import model_from_nodes, save
from hdsl.planner import run_item, solve_queries, solve_query
from hdsl.results import Verdict

SPEC = """
model net = onnx "net.onnx" { input [1] outputs 1 }
property huge = forall x in box([1e38], [1.9e38]): net(x)[0] <= 1e34
property huge_real = forall x in box([1e38], [1.9e38]): net(x)[0] <= 1e34
property small = forall x in box([1], [1.9]): net(x)[0] <= 1e-3
property beyond = forall x in box([1e39], [2e39]): net(x)[0] <= 1e34
check huge, small, beyond
check huge_real arithmetic real
"""


@pytest.fixture(scope="module")
def queries(tmp_path_factory):
    d = tmp_path_factory.mktemp("overflow")
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="g1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="r"),
             helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="g2", transB=1)]
    save(model_from_nodes(nodes, {"W1": np.array([[2.0], [2.0]]), "b1": np.zeros(2), "W2": np.array([[1.0, -1.0]]),
                                  "b2": np.zeros(1)}, [1], "y"), d / "net.onnx")
    sess = ort.InferenceSession(str(d / "net.onnx"))
    assert np.isnan(sess.run(None, {sess.get_inputs()[0].name: np.array([[1.8e38]], np.float32)})[0]).all()
    (d / "s.hspec").write_text(SPEC)
    spec = check_file(d / "s.hspec")
    assert spec.ok, [x.render() for x in spec.diagnostics]
    return {c.property: c.items[0] for c in lower(spec).checks}


def test_no_proof_where_float32_overflows(queries):
    r = run_item(queries["huge"])
    assert r.verdict is Verdict.UNKNOWN and "overflow float32" in r.message and r.margin is None
    assert "interval bounds reach 3.8e+38 at 'h'" in r.message  # 2 x 1.9e38, past float32's 3.4e38


def test_the_real_valued_network_does_not_overflow(queries):
    assert run_item(queries["huge_real"]).verdict is Verdict.PROVED


def test_ordinary_regions_are_unaffected(queries):
    assert run_item(queries["small"]).verdict is Verdict.PROVED


def test_an_input_region_beyond_float32(queries):
    r = solve_query(queries["beyond"], 10)
    assert r.verdict is not Verdict.PROVED and "reach 4e+39" in r.message


def test_the_batched_path_is_guarded_too(queries):
    huge, small = solve_queries([queries["huge"], queries["small"]], 20)
    assert huge.verdict is Verdict.UNKNOWN and small.verdict is Verdict.PROVED


def test_largest_values_per_box(queries):
    """The per-box check that formal interchange checks use (hdsl.causal.formal)."""
    import torch

    from hdsl.nn import network_graph
    from hdsl.overflow import LIMIT, largest_values

    graph = network_graph(queries["small"].network)
    lo = torch.tensor([[1.0], [1e38], [float("nan")]], dtype=torch.float64)
    hi = torch.tensor([[2.0], [1.9e38], [1.0]], dtype=torch.float64)
    sizes, where = largest_values(graph, lo, hi)
    assert sizes[0] == 4.0 and where[0] == "h"
    assert sizes[1] == pytest.approx(3.8e38) and not sizes[1] < LIMIT
    assert not sizes[2] < LIMIT  # NaN: a risk, never "small"
