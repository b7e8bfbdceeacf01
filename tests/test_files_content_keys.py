"""Caches of file-derived objects are keyed on contents: a model rewritten in place (same size,
possibly the same timestamp) is never answered from the old one."""

import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from hdsl.exact.query import file_stamp
from hdsl.nn import load_onnx


def _linear(path, w):
    init = [numpy_helper.from_array(np.asarray(w, dtype=np.float32), "w")]
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_rewritten_model_with_same_size_and_timestamp_is_reloaded(tmp_path):
    path = tmp_path / "net.onnx"
    _linear(path, [[1.0, 0.0], [0.0, 1.0]])
    stamp = os.stat(path)
    x = torch.tensor([[1.0, 2.0]])
    first = load_onnx(path).forward(x)
    key_a = file_stamp(str(path))
    _linear(path, [[0.0, 1.0], [1.0, 0.0]])
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # same size, same mtime
    assert os.stat(path).st_size == stamp.st_size
    second = load_onnx(path).forward(x)
    assert torch.equal(first, torch.tensor([[1.0, 2.0]]))
    assert torch.equal(second, torch.tensor([[2.0, 1.0]]))
    assert file_stamp(str(path)) != key_a
