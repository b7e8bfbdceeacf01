"""A piecewise-linear network as an explicit list of affine layers.

This is the form the exact (Z3) encoder and the branch-and-bound code work
on: ``h_0 = x``; ``z_l = W_l h_{l-1} + b_l``; ``h_l = relu(z_l)`` when the
layer has ``relu`` set, else ``h_l = z_l``. Weights stay float32 (the values
the real network multiplies by), so ``Fraction(float(w))`` is their exact value.

``from_onnx`` reads ONNX chains of MatMul/Gemm/Conv (2-D, group 1, as dense
matrices)/Add/Sub/Relu and the re-indexings Flatten/Reshape/Squeeze/Unsqueeze/
Identity/Transpose (folded exactly into the neighbouring maps); ``from_graph``
adapts hdsl.nn graphs when they expose their affine maps. Anything else raises
``UnsupportedNetwork`` so the caller can fall back to another backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np


class UnsupportedNetwork(ValueError):
    """The network is not a chain of affine maps and ReLUs this module can read."""


@dataclass(frozen=True)
class Layer:
    weight: np.ndarray  # (out, in) float32 (float64 only for folded normalisation)
    bias: np.ndarray  # (out,)
    relu: bool

    @cached_property
    def fan_in(self) -> int:
        """Most nonzero weights in one row (at least 1): the products a float32 output really sums.

        Zero weights add exact zeros, so the rounding bound needs only these
        (48 for a 4x4x3 convolution stored densely, not its 3072 columns).
        """
        W = np.asarray(self.weight)
        return max(1, int(np.count_nonzero(W, axis=1).max())) if W.size else 1


@dataclass(frozen=True)
class PwlNet:
    """Affine layers with optional ReLU after each; input flattened."""

    layers: tuple[Layer, ...]

    @property
    def input_size(self) -> int:
        return int(self.layers[0].weight.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.layers[-1].weight.shape[0])

    @property
    def num_relus(self) -> int:
        return sum(int(l.weight.shape[0]) for l in self.layers if l.relu)

    def forward(self, x: np.ndarray, dtype=np.float64) -> np.ndarray:
        """Evaluate on a batch ``(n, input_size)`` in ``dtype`` (float32 mimics the real net)."""
        h = np.asarray(x, dtype=dtype)
        squeeze = h.ndim == 1
        h = np.atleast_2d(h)
        for layer in self.layers:
            h = h @ layer.weight.astype(dtype).T + layer.bias.astype(dtype)
            if layer.relu:
                h = np.maximum(h, 0)
        return h[0] if squeeze else h

    def with_input_affine(self, scale: np.ndarray, shift: np.ndarray) -> "PwlNet":
        """Prepend ``x -> scale * x + shift`` (a normalisation), as its own layer.

        Kept as a separate diagonal layer rather than folded into the first
        weights so that the exact encoding keeps the network's arithmetic.
        """
        scale = np.asarray(scale, dtype=np.float64).reshape(-1)
        shift = np.asarray(shift, dtype=np.float64).reshape(-1)
        first = Layer(np.diag(scale), shift, relu=False)
        return PwlNet((first,) + self.layers)


Shape = Optional[tuple[int, ...]]  # a tensor's ONNX shape with batch size 1; None when not known


class _Chain:
    """The affine pieces read so far, as the running value ``v = A x + c``.

    ``layers`` are finished (each ends at a ReLU), ``pending`` the pieces since
    the last ReLU. A re-indexing (Transpose) is folded exactly into the rows of
    the last piece; before any piece exists it is kept as ``in_perm``
    (``v = x[in_perm]``) and folded into the columns of the first one.
    """

    def __init__(self, path: str, width: int, shape: Shape):
        self.path = path
        self.width = width
        self.shape = shape
        self.layers: list[Layer] = []
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.in_perm: np.ndarray | None = None

    def fail(self, msg: str) -> UnsupportedNetwork:
        return UnsupportedNetwork(f"{self.path}: {msg}")

    def affine(self, W: np.ndarray, b: np.ndarray, shape: Shape) -> None:
        """Append ``v -> W v + b``; ``shape`` is the ONNX shape of the result."""
        if W.shape[1] != self.width:
            raise self.fail(f"an affine map takes {W.shape[1]} values but the tensor has {self.width}")
        if self.in_perm is not None:
            W = W[:, np.argsort(self.in_perm)]  # W v = W' x with v = x[in_perm]
            self.in_perm = None
        self.pending.append((W, b))
        self.width, self.shape = int(W.shape[0]), shape

    def add(self, v: np.ndarray, shape: Shape) -> None:
        """Add a constant vector; MatMul (or bias-free Conv) followed by Add is one float32 layer."""
        if self.pending and not self.pending[-1][1].any():
            W, _ = self.pending[-1]
            self.pending[-1] = (W, v)
            self.shape = shape
        else:
            self.affine(np.eye(self.width, dtype=np.float32), v, shape)

    def permute(self, idx: np.ndarray, shape: Shape) -> None:
        """Re-index ``v -> v[idx]``: exact, since it only moves entries (and commutes with ReLU)."""
        if self.pending:
            W, b = self.pending[-1]
            self.pending[-1] = (W[idx], b[idx])
        elif self.layers:
            last = self.layers[-1]
            self.layers[-1] = Layer(last.weight[idx], last.bias[idx], last.relu)
        else:
            self.in_perm = idx if self.in_perm is None else self.in_perm[idx]
        self.shape = shape

    def flush(self, relu: bool) -> None:
        """End the pieces at a ReLU (or the output); other pieces than MatMul+Add stay separate (exactness)."""
        if not self.pending:
            self.affine(np.eye(self.width, dtype=np.float32), np.zeros(self.width, dtype=np.float32), self.shape)
        for i, (W, b) in enumerate(self.pending):
            self.layers.append(Layer(W, b, relu=relu and i == len(self.pending) - 1))
        self.pending = []

    def finish(self, n_in: int) -> PwlNet:
        if self.pending:
            self.flush(relu=False)
        if self.in_perm is not None and not self.layers:
            raise self.fail("the network has no affine layer")
        # Drop identity layers with zero bias (Sub of a zero mean, for instance).
        kept = [l for l in self.layers if not _is_identity(l)]
        if not kept or kept[0].weight.shape[1] != n_in:
            raise self.fail("could not read the layer chain")
        return PwlNet(tuple(kept))


def _is_identity(l: Layer) -> bool:
    W = l.weight
    return (not l.relu and W.shape[0] == W.shape[1] and not l.bias.any()
            and np.array_equal(W, np.eye(W.shape[0], dtype=W.dtype)))


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _input_shape(dims: list[int]) -> tuple[int, Shape]:
    """Width of the flattened input and its ONNX shape with batch 1 (None if a feature dim is unknown)."""
    if len(dims) <= 1:
        return int(dims[0]), (int(dims[0]),)
    n_in = int(np.prod([d for d in dims[1:] if d > 0]))
    shape = (1, *dims[1:]) if all(d > 0 for d in dims[1:]) else None
    return n_in, shape


def _reshape_target(shape: Shape, target: np.ndarray, width: int) -> Shape:
    """The shape Reshape produces (0 copies a dim, -1 is inferred); None when it cannot be told."""
    t = [int(d) for d in np.asarray(target).reshape(-1)]
    if 0 in t:
        if shape is None or len(t) > len(shape):
            return None
        t = [shape[i] if d == 0 else d for i, d in enumerate(t)]
    if -1 in t:
        rest = int(np.prod([d for d in t if d != -1]))
        t[t.index(-1)] = width // rest if rest else 0
    return tuple(t) if int(np.prod(t)) == width else None


def _squeeze(shape: Shape, axes: list[int] | None, unsqueeze: bool) -> Shape:
    if shape is None:
        return None
    if unsqueeze:
        out = list(shape)
        for a in sorted(a % (len(shape) + len(axes)) for a in axes):
            out.insert(a, 1)
        return tuple(out)
    if axes is None:
        return tuple(d for d in shape if d != 1)
    drop = {a % len(shape) for a in axes}
    return tuple(d for i, d in enumerate(shape) if i not in drop)


def _broadcast_const(v: np.ndarray, shape: Shape, width: int) -> tuple[np.ndarray, Shape]:
    """A constant added to the running tensor, as a flat vector in the tensor's row-major order."""
    v = np.asarray(v, dtype=np.float32)
    if shape is None:
        return np.broadcast_to(v.reshape(-1), (width,)).astype(np.float32), None
    out = np.broadcast_shapes(shape, v.shape)
    if int(np.prod(out)) != width:
        raise UnsupportedNetwork(f"a constant of shape {v.shape} would enlarge the tensor {shape}")
    return np.broadcast_to(v, out).reshape(-1).astype(np.float32), tuple(out)


def _transpose_index(shape: tuple[int, ...], perm: list[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """``idx`` with ``transpose(t).flat = t.flat[idx]`` (row-major), and the new shape."""
    idx = np.arange(int(np.prod(shape))).reshape(shape).transpose(perm).reshape(-1)
    return idx, tuple(shape[p] for p in perm)


def conv_matrix(
    weight: np.ndarray,
    bias: np.ndarray | None,
    in_chw: tuple[int, int, int],
    strides: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilations: tuple[int, int] = (1, 1),
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """A 2-D convolution (group 1) as a dense ``(out, in)`` matrix over NCHW-flattened tensors.

    The conv weights are placed exactly (float32), the bias is repeated per
    output position; returns the matrix, the bias and the output ``(C, H, W)``.
    ``pads`` is ONNX's ``(top, left, bottom, right)``.
    """
    co, ci, kh, kw = weight.shape
    c, h, w = in_chw
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = strides, dilations, pads
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if c != ci or oh < 1 or ow < 1:
        raise UnsupportedNetwork(f"a convolution with weight {weight.shape} does not fit input {in_chw}")
    # index grids over (Co, OH, OW, Ci, KH, KW)
    o_c = np.arange(co).reshape(-1, 1, 1, 1, 1, 1)
    o_h = np.arange(oh).reshape(1, -1, 1, 1, 1, 1)
    o_w = np.arange(ow).reshape(1, 1, -1, 1, 1, 1)
    i_c = np.arange(ci).reshape(1, 1, 1, -1, 1, 1)
    i_h = o_h * sh - pt + np.arange(kh).reshape(1, 1, 1, 1, -1, 1) * dh
    i_w = o_w * sw - pl + np.arange(kw).reshape(1, 1, 1, 1, 1, -1) * dw
    full = (co, oh, ow, ci, kh, kw)
    inside = np.broadcast_to((i_h >= 0) & (i_h < h) & (i_w >= 0) & (i_w < w), full)
    rows = np.broadcast_to((o_c * oh + o_h) * ow + o_w, full)[inside]
    cols = np.broadcast_to((i_c * h + i_h) * w + i_w, full)[inside]
    vals = np.broadcast_to(weight.astype(np.float32)[:, None, None], full)[inside]
    M = np.zeros((co * oh * ow, c * h * w), dtype=np.float32)
    M[rows, cols] = vals  # distinct taps of one output read distinct inputs: no collisions
    b = np.zeros(co, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(co)
    return M, np.repeat(b, oh * ow), (co, oh, ow)


def _conv(chain: _Chain, node, weight: np.ndarray, bias: np.ndarray | None) -> None:
    """Read an ONNX Conv: 2-D, group 1, explicit (or VALID) padding only."""
    a = _attrs(node)
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if weight.ndim != 4:
        raise chain.fail(f"Conv {node.name!r}: only 2-D convolutions are supported (weight {weight.shape})")
    if a.get("group", 1) != 1:
        raise chain.fail(f"Conv {node.name!r}: group={a['group']} is not supported (only group=1)")
    if auto_pad not in ("NOTSET", "VALID"):
        raise chain.fail(f"Conv {node.name!r}: auto_pad={auto_pad} is not supported (give explicit pads)")
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != weight.shape[2:]:
        raise chain.fail(f"Conv {node.name!r}: kernel_shape {a['kernel_shape']} does not match the weight")
    shape = chain.shape
    if shape is None or len(shape) != 4 or shape[0] != 1:
        raise chain.fail(f"Conv {node.name!r}: input shape {shape} is not a known (N, C, H, W)")
    W, b, out = conv_matrix(weight, bias, shape[1:], tuple(a.get("strides", (1, 1))),
                            tuple(a.get("pads", (0, 0, 0, 0))), tuple(a.get("dilations", (1, 1))))
    chain.affine(W, b, (1, *out))


def _matmul(chain: _Chain, W: np.ndarray) -> None:
    if W.ndim != 2:
        raise chain.fail(f"MatMul with a {W.ndim}-D weight is not supported")
    shape = chain.shape
    if shape is not None and (shape[-1] != W.shape[0] or int(np.prod(shape[:-1])) != 1):
        raise chain.fail(f"MatMul of a tensor {shape} by {W.shape} is not one vector-matrix product")
    out = None if shape is None else (*shape[:-1], int(W.shape[1]))
    chain.affine(W.T.astype(np.float32), np.zeros(W.shape[1], dtype=np.float32), out)


def _gemm(chain: _Chain, node, W: np.ndarray, C: np.ndarray | None) -> None:
    a = _attrs(node)
    if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
        raise chain.fail("Gemm with alpha/beta/transA is not supported")
    W = W if a.get("transB", 0) else W.T
    b = np.zeros(W.shape[0], np.float32) if C is None else C.reshape(-1)
    chain.affine(W.astype(np.float32), np.broadcast_to(b, (W.shape[0],)).astype(np.float32), (1, int(W.shape[0])))


def _reindex(chain: _Chain, node, op: str, const) -> None:
    """Ops that keep the row-major flat order (Reshape, Flatten, ...): only the shape changes."""
    shape, a = chain.shape, _attrs(node)
    if op == "Identity":
        return
    if op == "Reshape":
        chain.shape = _reshape_target(shape, const(node.input[1]), chain.width)
    elif op == "Flatten":
        if shape is not None:
            axis = a.get("axis", 1)
            axis = axis + len(shape) if axis < 0 else axis
            chain.shape = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
    else:  # Squeeze / Unsqueeze: axes as an attribute (opset < 13) or a constant input
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = [int(v) for v in np.asarray(const(node.input[1])).reshape(-1)]
        if op == "Unsqueeze" and axes is None:
            raise chain.fail("Unsqueeze without axes")
        chain.shape = _squeeze(shape, axes, op == "Unsqueeze")


def _transpose(chain: _Chain, node) -> None:
    shape = chain.shape
    if shape is None:
        raise chain.fail(f"Transpose {node.name!r}: the tensor's shape is not known")
    perm = list(_attrs(node).get("perm", range(len(shape) - 1, -1, -1)))
    if sorted(perm) != list(range(len(shape))):
        raise chain.fail(f"Transpose {node.name!r}: perm {perm} does not fit shape {shape}")
    idx, out = _transpose_index(shape, perm)
    chain.permute(idx, out)


def from_onnx(path: str) -> PwlNet:
    """Read a ReLU network of affine ops (dense, 2-D conv) from an ONNX file.

    The input is flattened row-major in its ONNX layout (NHWC stays NHWC);
    Transposes are folded exactly into the neighbouring affine maps, and
    convolutions become dense matrices in NCHW order.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    consts: dict[str, np.ndarray] = dict(inits)
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t)
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UnsupportedNetwork(f"{path}: expected one network input, found {len(inputs)}")
    n_in, shape = _input_shape([d.dim_value for d in inputs[0].type.tensor_type.shape.dim])
    chain = _Chain(path, n_in, shape)

    def const(name: str) -> np.ndarray:
        if name not in consts:
            raise UnsupportedNetwork(f"{path}: operand {name!r} is not a constant")
        return consts[name]

    cur = inputs[0].name
    for node in graph.node:
        op = node.op_type
        if op == "Constant":
            continue
        data_in = [i for i in node.input if i and i not in consts]
        if len(data_in) != 1 or data_in[0] != cur:
            raise UnsupportedNetwork(f"{path}: node {node.name or op} is not a simple chain")
        if op in ("Flatten", "Reshape", "Identity", "Squeeze", "Unsqueeze"):
            _reindex(chain, node, op, const)
        elif op == "Transpose":
            _transpose(chain, node)
        elif op == "MatMul":
            if node.input[0] != cur:
                raise UnsupportedNetwork(f"{path}: MatMul with the weight first is not supported")
            _matmul(chain, const(node.input[1]))
        elif op == "Gemm":
            _gemm(chain, node, const(node.input[1]), const(node.input[2]) if len(node.input) > 2 else None)
        elif op == "Conv":
            bias = const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            _conv(chain, node, const(node.input[1]), bias)
        elif op in ("Add", "Sub"):
            other = node.input[1] if node.input[0] == cur else node.input[0]
            if op == "Sub" and node.input[0] != cur:
                raise UnsupportedNetwork(f"{path}: constant - x is not supported")
            try:
                v, out = _broadcast_const(const(other), chain.shape, chain.width)
            except (ValueError, UnsupportedNetwork) as e:
                raise UnsupportedNetwork(f"{path}: {op} {node.name!r}: {e}") from None
            chain.add(-v if op == "Sub" else v, out)
        elif op == "Relu":
            chain.flush(relu=True)
        else:
            raise UnsupportedNetwork(f"{path}: operator {op} is not supported by the exact encoder")
        cur = node.output[0]
    return chain.finish(n_in)


def to_onnx(net: PwlNet, path: str) -> None:
    """Write the network as an ONNX graph (Gemm/Relu chain, float32); used by tests and demos."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    cur = "x"
    for i, layer in enumerate(net.layers):
        w = numpy_helper.from_array(np.asarray(layer.weight, np.float32), f"W{i}")
        b = numpy_helper.from_array(np.asarray(layer.bias, np.float32), f"b{i}")
        inits += [w, b]
        out = f"z{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [out], transB=1))
        cur = out
        if layer.relu:
            nodes.append(helper.make_node("Relu", [cur], [f"h{i}"]))
            cur = f"h{i}"
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    graph = helper.make_graph(
        nodes,
        "pwl",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, net.input_size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, net.output_size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


MAX_DENSE = 16_000_000  # entries of one dense layer matrix; larger (big convolutions) is refused


def _selection(W: np.ndarray, b: np.ndarray) -> bool:
    """Is ``x -> W x + b`` a pure re-indexing (reshape/transpose): 0/1 rows with one 1, zero bias?"""
    if b.any() or W.shape[0] != W.shape[1]:
        return False
    return bool(np.all((W == 0) | (W == 1)) and np.all(W.sum(axis=1) == 1) and np.all(W.sum(axis=0) == 1))


def from_graph(graph) -> PwlNet:
    """Convert an ``hdsl.nn`` graph that is a chain of affine ops and ReLUs.

    Each affine op becomes one layer (its dense map from ``graph.linear_map``,
    exact float64 copies of the float32 parameters); pure re-indexings
    (reshape, transpose) are composed into a neighbour, which is exact because
    they only move entries (and commute with ReLU).
    """
    layers: list[Layer] = []
    perm: np.ndarray | None = None  # re-indexing met before the first layer
    prev = graph.nodes[0].name
    for node in graph.nodes[1:]:
        if tuple(node.inputs) != (prev,) or len(graph.consumers.get(prev, ())) != 1:
            raise UnsupportedNetwork(f"node {node.onnx_node or node.name} is not part of a simple chain")
        prev = node.name
        if node.op == "relu":
            if layers and not layers[-1].relu:
                last = layers[-1]
                layers[-1] = Layer(last.weight, last.bias, True)
            else:
                n = node.numel
                W = np.eye(n) if perm is None else perm
                perm = None
                layers.append(Layer(W, np.zeros(n), True))
            continue
        if not node.is_affine:
            raise UnsupportedNetwork(f"operator {node.op} ({node.onnx_node or node.name}) is not piecewise linear")
        n_in = int(np.prod(graph.by_name[node.inputs[0]].shape))
        if n_in * node.numel > MAX_DENSE:
            raise UnsupportedNetwork(f"layer {node.onnx_node or node.name} is too large for a dense encoding")
        lm = graph.linear_map(node.name)
        if len(lm.matrices) != 1:
            raise UnsupportedNetwork(f"node {node.onnx_node or node.name} has several inputs")
        W, b = np.asarray(lm.matrices[0], dtype=np.float64), np.asarray(lm.bias, dtype=np.float64)
        if _selection(W, b):
            if layers:
                last = layers[-1]
                layers[-1] = Layer(W @ last.weight, W @ last.bias, last.relu)
            else:
                perm = W if perm is None else W @ perm
            continue
        if perm is not None:
            W = W @ perm
            perm = None
        layers.append(Layer(W, b, False))
    if not layers:
        raise UnsupportedNetwork("the network has no affine layer")
    if perm is not None:
        last = layers[-1]
        layers[-1] = Layer(perm @ last.weight, perm @ last.bias, last.relu)
    return PwlNet(tuple(layers))


def load_network(network) -> PwlNet:
    """The ``PwlNet`` of an IR ``Network`` (ONNX file plus declared normalisation), in raw input space."""
    from hdsl.nn import load_onnx

    graph = load_onnx(network.path)
    if network.mean is not None or network.std is not None:
        k = max(len(network.mean or ()), len(network.std or ()), 1)
        graph = graph.with_normalization(network.mean or (0.0,) * k, network.std or (1.0,) * k)
    return from_graph(graph)
