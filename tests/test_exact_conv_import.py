"""hdsl.exact.net.from_onnx on convolutional graphs: Transpose folding and Conv as dense matrices."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from hdsl.exact.net import Layer, UnsupportedNetwork, conv_matrix, from_onnx

R = np.random.default_rng(0)
H = W = 6
C_IN, C_OUT, K, N_OUT = 3, 4, 3, 5


def _save(tmp_path, nodes, inits: dict[str, np.ndarray], in_shape: list, out: str, out_rank: int = 2) -> str:
    """An opset-13 model with one float input ``x`` (batch dim symbolic) and output ``out``."""
    graph = helper.make_graph(
        nodes, "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None] * out_rank)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    return path


def _conv_out(n: int, stride: int, pad: int, dil: int) -> int:
    return (n + pad - dil * (K - 1) - 1) // stride + 1


def _nhwc_conv_net(tmp_path, strides, pads, dilations, bias_as_add: bool = False) -> str:
    """NHWC input -> Transpose -> Conv -> Relu -> Transpose -> Reshape -> MatMul -> Add (the VNN-COMP CIFAR shape)."""
    oh = _conv_out(H, strides[0], pads[0] + pads[2], dilations[0])
    ow = _conv_out(W, strides[1], pads[1] + pads[3], dilations[1])
    feat = C_OUT * oh * ow
    inits = {
        "w": R.normal(size=(C_OUT, C_IN, K, K)).astype(np.float32),
        "cb": R.normal(size=(C_OUT, 1, 1) if bias_as_add else (C_OUT,)).astype(np.float32),
        "shape": np.array([-1, feat], dtype=np.int64),
        "W": R.normal(size=(feat, N_OUT)).astype(np.float32),
        "b": R.normal(size=(N_OUT,)).astype(np.float32),
    }
    conv_in = ["t0", "w"] if bias_as_add else ["t0", "w", "cb"]
    conv = [helper.make_node("Conv", conv_in, ["c"], kernel_shape=[K, K], strides=list(strides),
                             pads=list(pads), dilations=list(dilations))]
    if bias_as_add:
        conv = [helper.make_node("Conv", conv_in, ["c0"], strides=list(strides), pads=list(pads),
                                 dilations=list(dilations)),
                helper.make_node("Add", ["c0", "cb"], ["c"])]
    nodes = [
        helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 3, 1, 2]),
        *conv,
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t1"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t1", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["y"]),
    ]
    return _save(tmp_path, nodes, inits, [H, W, C_IN], "y")


def _onnxruntime(path: str, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _assert_matches_onnxruntime(path: str, n: int = 6) -> None:
    net = from_onnx(path)
    x = R.uniform(0, 1, size=(n, H, W, C_IN)).astype(np.float32)
    ref = _onnxruntime(path, x).astype(np.float64)
    flat = x.reshape(n, -1)  # NHWC, row-major: the PwlNet input order
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(net.forward(flat) - ref).max() < 1e-5 * scale
    assert np.abs(net.forward(flat, np.float32) - ref).max() < 1e-5 * scale


@pytest.mark.parametrize("strides, pads, dilations", [
    ((1, 1), (0, 0, 0, 0), (1, 1)),
    ((2, 2), (1, 1, 1, 1), (1, 1)),
    ((2, 1), (1, 0, 2, 1), (1, 2)),
    ((1, 2), (0, 2, 1, 0), (2, 1)),
])
def test_nhwc_conv_chain_matches_onnxruntime(tmp_path, strides, pads, dilations):
    path = _nhwc_conv_net(tmp_path, strides, pads, dilations)
    _assert_matches_onnxruntime(path)
    net = from_onnx(path)
    # both Transposes are folded: one conv layer and one dense layer, no permutation layers
    assert [l.relu for l in net.layers] == [True, False]
    assert net.input_size == H * W * C_IN and net.output_size == N_OUT
    assert all(l.weight.dtype == np.float32 for l in net.layers)


def test_conv_then_channel_bias_add(tmp_path):
    """A bias-free Conv followed by Add of a (C, 1, 1) constant broadcasts per channel and is one layer."""
    path = _nhwc_conv_net(tmp_path, (1, 1), (1, 1, 1, 1), (1, 1), bias_as_add=True)
    _assert_matches_onnxruntime(path)
    assert len(from_onnx(path).layers) == 2


def test_conv_weights_are_placed_exactly():
    w = R.normal(size=(C_OUT, C_IN, K, K)).astype(np.float32)
    M, b, out = conv_matrix(w, np.arange(C_OUT, dtype=np.float32), (C_IN, H, W))
    assert out == (C_OUT, H - K + 1, W - K + 1) and M.shape == (C_OUT * 16, C_IN * H * W)
    # output (co, 0, 0) reads the top-left KxK patch of every channel
    assert np.array_equal(M[0].reshape(C_IN, H, W)[:, :K, :K], w[0])
    assert np.array_equal(b, np.repeat(np.arange(C_OUT, dtype=np.float32), 16))


@pytest.mark.parametrize("attrs, message", [
    ({"group": 3}, "group=3"),
    ({"auto_pad": "SAME_UPPER"}, "auto_pad"),
])
def test_unsupported_conv_is_rejected(tmp_path, attrs, message):
    inits = {"w": R.normal(size=(3, 1 if "group" in attrs else 3, K, K)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], **attrs)]
    path = _save(tmp_path, nodes, inits, [C_IN, H, W], "y", out_rank=4)
    with pytest.raises(UnsupportedNetwork, match=message):
        from_onnx(path)


def test_fan_in_counts_nonzero_weights(tmp_path):
    path = _nhwc_conv_net(tmp_path, (1, 1), (1, 1, 1, 1), (1, 1))
    conv, dense = from_onnx(path).layers
    assert conv.weight.shape[1] == H * W * C_IN
    assert conv.fan_in == C_IN * K * K  # an interior output sums its full 3x3x3 patch
    assert dense.fan_in == dense.weight.shape[1]
    f32 = np.float32
    assert Layer(np.array([[0, 2, 0], [1, 1, 0]], f32), np.zeros(2, f32), False).fan_in == 2
    assert Layer(np.zeros((2, 3), f32), np.zeros(2, f32), False).fan_in == 1
