"""Small ONNX model builders (onnx.helper), for tests, demos and benchmarks.

Keeping them in the package lets every test and benchmark build its own
networks without touching the network or the shared benchmark folder.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _init(name: str, a: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


def model_from_nodes(nodes, inits, input_shape: Sequence[int], output_name: str, output_shape=None,
                     opset: int = 13, batch: int | str = "N"):
    """Wrap nodes + initialisers into a ModelProto with input ``x`` of shape ``[batch, *input_shape]``."""
    from onnx import TensorProto, checker, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *input_shape])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, None if output_shape is None
                                      else [batch, *output_shape])
    g = helper.make_graph(list(nodes), "hdsl_test", [x], [y], [_init(k, v) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    if output_shape is not None:  # the checker wants output shapes; onnxruntime does not
        checker.check_model(m)
    return m


def mlp(weights: Sequence[tuple[np.ndarray, np.ndarray]], activation: str = "Relu"):
    """An MLP ``x -> act(W1 x + b1) -> ... -> W_k x + b_k`` (weights as [out, in]) using Gemm."""
    from onnx import helper

    nodes, inits, prev = [], {}, "x"
    for i, (w, b) in enumerate(weights):
        inits[f"W{i}"], inits[f"b{i}"] = w, b
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [f"fc{i}"], name=f"gemm{i}", transB=1))
        prev = f"fc{i}"
        if i < len(weights) - 1:
            nodes.append(helper.make_node(activation, [prev], [f"act{i}"], name=f"act{i}"))
            prev = f"act{i}"
    return model_from_nodes(nodes, inits, [weights[0][0].shape[1]], prev)


def random_mlp(rng: np.random.Generator, sizes: Sequence[int], activation: str = "Relu", scale: float = 1.0):
    """A random MLP with layer sizes ``sizes`` (He-like initialisation times ``scale``)."""
    ws = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w = rng.normal(0, scale * np.sqrt(2.0 / n_in), (n_out, n_in))
        b = rng.normal(0, 0.1 * scale, n_out)
        ws.append((w, b))
    return mlp(ws, activation)


def random_convnet(rng: np.random.Generator, in_shape=(1, 8, 8), channels=(4, 6), hidden=16, classes=3,
                   kernel=3, stride=2, pad=1, batchnorm: bool = True, avgpool: bool = False):
    """A random conv net: [Conv(+BN) -> Relu]* -> (AvgPool) -> Flatten -> Gemm -> Relu -> Gemm."""
    from onnx import helper

    nodes, inits, prev = [], {}, "x"
    c, h, w = in_shape
    for i, co in enumerate(channels):
        inits[f"cw{i}"] = rng.normal(0, np.sqrt(2.0 / (c * kernel * kernel)), (co, c, kernel, kernel))
        inits[f"cb{i}"] = rng.normal(0, 0.1, co)
        nodes.append(helper.make_node("Conv", [prev, f"cw{i}", f"cb{i}"], [f"conv{i}"], name=f"conv{i}",
                                      strides=[stride, stride], pads=[pad] * 4, kernel_shape=[kernel, kernel]))
        prev = f"conv{i}"
        if batchnorm:
            inits[f"bs{i}"] = rng.uniform(0.5, 1.5, co)
            inits[f"bb{i}"] = rng.normal(0, 0.1, co)
            inits[f"bm{i}"] = rng.normal(0, 0.1, co)
            inits[f"bv{i}"] = rng.uniform(0.5, 1.5, co)
            nodes.append(helper.make_node("BatchNormalization", [prev, f"bs{i}", f"bb{i}", f"bm{i}", f"bv{i}"],
                                          [f"bn{i}"], name=f"bn{i}"))
            prev = f"bn{i}"
        nodes.append(helper.make_node("Relu", [prev], [f"relu{i}"], name=f"relu{i}"))
        prev = f"relu{i}"
        c, h, w = co, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    if avgpool and h >= 2 and w >= 2:
        nodes.append(helper.make_node("AveragePool", [prev], ["pool"], name="pool", kernel_shape=[2, 2],
                                      strides=[1, 1]))
        prev, h, w = "pool", h - 1, w - 1
    nodes.append(helper.make_node("Flatten", [prev], ["flat"], name="flatten", axis=1))
    n = c * h * w
    inits["fw0"] = rng.normal(0, np.sqrt(2.0 / n), (hidden, n))
    inits["fb0"] = rng.normal(0, 0.1, hidden)
    inits["fw1"] = rng.normal(0, np.sqrt(2.0 / hidden), (classes, hidden))
    inits["fb1"] = rng.normal(0, 0.1, classes)
    nodes += [helper.make_node("Gemm", ["flat", "fw0", "fb0"], ["fc0"], name="fc0", transB=1),
              helper.make_node("Relu", ["fc0"], ["fc0r"], name="fc0r"),
              helper.make_node("Gemm", ["fc0r", "fw1", "fb1"], ["logits"], name="fc1", transB=1)]
    return model_from_nodes(nodes, inits, in_shape, "logits")


def save(model, path) -> str:
    import onnx

    onnx.save(model, str(path))
    return str(path)
