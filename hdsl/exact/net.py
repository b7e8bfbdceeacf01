"""A piecewise-linear network as an explicit list of affine layers.

This is the form the exact (Z3) encoder and the branch-and-bound code work
on: ``h_0 = x``; ``z_l = W_l h_{l-1} + b_l``; ``h_l = relu(z_l)`` when the
layer has ``relu`` set, else ``h_l = z_l``. Weights stay float32 (the values
the real network multiplies by), so ``Fraction(float(w))`` is their exact value.

``from_onnx`` reads fully-connected ONNX graphs (MatMul/Gemm/Add/Sub/Relu/
Flatten/Reshape/Identity); ``from_graph`` adapts hdsl.nn graphs when they
expose their affine maps. Anything else raises ``UnsupportedNetwork`` so the
caller can fall back to another backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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
        """The most terms any output sums: nonzero weights in a row (a convolution's dense matrix has
        3072 columns but 48 taps), which is what the float32 rounding bound counts."""
        return max(1, int(np.count_nonzero(self.weight, axis=1).max(initial=0)))


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


def from_onnx(path: str) -> PwlNet:
    """Read a fully-connected ReLU network from an ONNX file."""
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
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    n_in = int(np.prod([d for d in dims[1:] if d > 0])) if len(dims) > 1 else int(dims[0])

    # The running value is the affine map  v = A x + c  (x the flattened input) since the last ReLU.
    layers: list[Layer] = []
    cur = inputs[0].name
    A: np.ndarray | None = None  # None = identity
    c = np.zeros(n_in, dtype=np.float32)
    width = n_in

    def const(name: str) -> np.ndarray:
        if name not in consts:
            raise UnsupportedNetwork(f"{path}: operand {name!r} is not a constant")
        return consts[name]

    pending: list[tuple[np.ndarray, np.ndarray]] = []  # affine pieces not yet merged, in order

    def flush(relu: bool) -> None:
        nonlocal pending, width
        if not pending:
            W = np.eye(width, dtype=np.float32)
            b = np.zeros(width, dtype=np.float32)
            pending = [(W, b)]
        # MatMul followed by Add is one float32 layer; keep other pieces separate (exactness).
        for i, (W, b) in enumerate(pending):
            layers.append(Layer(W, b, relu=relu and i == len(pending) - 1))
        pending = []

    for node in graph.node:
        op = node.op_type
        if op == "Constant":
            continue
        data_in = [i for i in node.input if i and i not in consts]
        if len(data_in) != 1 or data_in[0] != cur:
            raise UnsupportedNetwork(f"{path}: node {node.name or op} is not a simple chain")
        if op in ("Flatten", "Reshape", "Identity", "Squeeze", "Unsqueeze"):
            pass
        elif op == "MatMul":
            W = const(node.input[1])
            if node.input[0] != cur:
                raise UnsupportedNetwork(f"{path}: MatMul with the weight first is not supported")
            pending.append((W.T.astype(np.float32), np.zeros(W.shape[1], dtype=np.float32)))
            width = W.shape[1]
        elif op == "Gemm":
            attrs = {a.name: a for a in node.attribute}
            alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
            beta = attrs["beta"].f if "beta" in attrs else 1.0
            trans_a = attrs["transA"].i if "transA" in attrs else 0
            trans_b = attrs["transB"].i if "transB" in attrs else 0
            if alpha != 1.0 or beta != 1.0 or trans_a:
                raise UnsupportedNetwork(f"{path}: Gemm with alpha/beta/transA is not supported")
            W = const(node.input[1])
            W = W if trans_b else W.T
            b = const(node.input[2]).reshape(-1) if len(node.input) > 2 else np.zeros(W.shape[0], np.float32)
            pending.append((W.astype(np.float32), np.broadcast_to(b, (W.shape[0],)).astype(np.float32)))
            width = W.shape[0]
        elif op in ("Add", "Sub"):
            other = node.input[1] if node.input[0] == cur else node.input[0]
            v = const(other).reshape(-1).astype(np.float32)
            v = np.broadcast_to(v, (width,)).astype(np.float32)
            if op == "Sub":
                if node.input[0] != cur:
                    raise UnsupportedNetwork(f"{path}: constant - x is not supported")
                v = -v
            if pending and not pending[-1][1].any():
                W, _ = pending[-1]
                pending[-1] = (W, v)  # MatMul + Add: one layer
            else:
                pending.append((np.eye(width, dtype=np.float32), v))
        elif op == "Relu":
            flush(relu=True)
        else:
            raise UnsupportedNetwork(f"{path}: operator {op} is not supported by the exact encoder")
        cur = node.output[0]
    if pending:
        flush(relu=False)
    # Drop identity layers with zero bias (Sub of a zero mean, for instance).
    kept = [
        l
        for l in layers
        if not (
            not l.relu
            and l.weight.shape[0] == l.weight.shape[1]
            and np.array_equal(l.weight, np.eye(l.weight.shape[0], dtype=l.weight.dtype))
            and not l.bias.any()
        )
    ]
    if not kept or kept[0].weight.shape[1] != n_in:
        raise UnsupportedNetwork(f"{path}: could not read the layer chain")
    return PwlNet(tuple(kept))


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
    from hdsl.nn import network_graph

    return from_graph(network_graph(network))
