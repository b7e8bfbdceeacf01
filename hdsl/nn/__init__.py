"""Neural networks: ONNX import into one torch-executed graph of ops.

``load_onnx(path) -> Graph``; see ``hdsl.nn.graph`` for the op set and
``hdsl.nn.ort`` for onnxruntime execution and comparison.
"""

from hdsl.nn.graph import AFFINE_OPS, NONLINEAR_OPS, Graph, LinearMap, Node
from hdsl.nn.onnx_import import import_model, load_onnx

__all__ = ["AFFINE_OPS", "NONLINEAR_OPS", "Graph", "LinearMap", "Node", "import_model", "load_onnx"]
