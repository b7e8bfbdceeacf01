"""Neural networks: ONNX import into one torch-executed graph of ops.

``load_onnx(path) -> Graph``; see ``hdsl.nn.graph`` for the op set and
``hdsl.nn.ort`` for onnxruntime execution and comparison.
"""

from hdsl.nn.graph import AFFINE_OPS, NONLINEAR_OPS, Graph, LinearMap, Node
from hdsl.nn.onnx_import import import_model, load_onnx


def network_graph(network) -> Graph:
    """The graph of an IR ``Network`` on raw inputs: its ONNX file with the declared
    normalisation folded in (a missing mean is 0, a missing std 1), as replay applies it."""
    graph = load_onnx(network.path)
    if network.mean is not None or network.std is not None:
        k = max(len(network.mean or ()), len(network.std or ()), 1)
        graph = graph.with_normalization(network.mean or (0.0,) * k, network.std or (1.0,) * k)
    return graph


__all__ = ["AFFINE_OPS", "NONLINEAR_OPS", "Graph", "LinearMap", "Node", "import_model", "load_onnx", "network_graph"]
