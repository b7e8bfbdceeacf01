"""One graph of ops, executed with torch, shared by every consumer.

The ONNX importer (``hdsl.nn.onnx_import``) lowers a model to this small op
set; forward execution, bound propagation (``hdsl.bounds``), the Z3 encoding,
attributions and causal interventions all walk the same ``Graph.nodes``.

Tensors always carry a leading batch dimension ``B`` that the ONNX file's own
batch dimension is mapped onto; every node's ``shape`` is per sample.

Op kinds (``Node.op``) and their ``params``:

=============  ======================================================================
``input``      the network input
``linear``     ``y = x @ weight.T + bias`` on the last axis (Gemm/MatMul; BN folded)
``conv``       ``weight``, ``bias``, ``stride``, ``pads`` (begin..., end...),
               ``dilation``, ``groups``; 1-D or 2-D (BN folded)
``affine``     ``y = x * scale + shift`` with constant, broadcastable ``scale`` /
               ``shift`` (either may be ``None``): Add/Sub/Mul/Div by constants,
               Neg, unfolded BatchNormalization, normalisation
``add``        ``y = x0 + x1`` (two computed tensors of the same shape)
``sub``        ``y = x0 - x1``
``reshape``    ``shape`` (per sample): Flatten, Reshape, Squeeze, Unsqueeze
``transpose``  ``perm`` (per sample axes)
``concat``     ``axis`` (per sample) over two or more computed tensors
``avgpool``    ``kernel``, ``stride``, ``pads`` (4), ``count_include_pad`` (2-D)
``maxpool``    ``kernel``, ``stride``, ``pads`` (4), ``dilation`` (2-D)
``relu`` ``sigmoid`` ``tanh``   elementwise
=============  ======================================================================

``linear``, ``conv``, ``affine``, ``add``, ``sub``, ``reshape``, ``transpose``,
``concat`` and ``avgpool`` are affine maps (``Node.is_affine``); ``Graph.linear_map``
gives any of them as dense float64 matrices for exact encodings (Z3/MILP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

AFFINE_OPS = frozenset({"linear", "conv", "affine", "add", "sub", "reshape", "transpose", "concat", "avgpool"})
NONLINEAR_OPS = frozenset({"relu", "sigmoid", "tanh", "maxpool"})
ALL_OPS = AFFINE_OPS | NONLINEAR_OPS | {"input"}


@dataclass(slots=True)
class Node:
    """One op. ``name`` is the ONNX output name it computes (unique in the graph)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]  # per-sample output shape
    params: dict = field(default_factory=dict)
    onnx_node: str = ""  # the ONNX node name (for messages); may be empty

    @property
    def is_affine(self) -> bool:
        return self.op in AFFINE_OPS

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def to(self, device=None, dtype=None) -> "Node":
        params = {}
        for k, v in self.params.items():
            if isinstance(v, torch.Tensor):
                v = v.to(device=device, dtype=dtype if (dtype is not None and v.is_floating_point()) else v.dtype)
            params[k] = v
        return Node(self.name, self.op, self.inputs, self.shape, params, self.onnx_node)

    def apply(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Run this op on its (batched) input tensors."""
        return _APPLY[self.op](self, xs)


@dataclass(frozen=True, slots=True)
class LinearMap:
    """``y_flat = sum_i matrices[i] @ x_i_flat + bias`` (float64, per sample)."""

    matrices: tuple[np.ndarray, ...]
    bias: np.ndarray


# --------------------------------------------------------------------------- op kernels


def _pad_nd(x: torch.Tensor, pads: tuple[int, ...], value: float = 0.0) -> tuple[torch.Tensor, tuple[int, ...] | int]:
    """Return (x padded if asymmetric, symmetric padding for the torch op)."""
    k = len(pads) // 2
    begin, end = pads[:k], pads[k:]
    if tuple(begin) == tuple(end):
        return x, tuple(begin)
    torch_pads: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):  # F.pad: last axis first
        torch_pads += [b, e]
    return F.pad(x, torch_pads, value=value), (0,) * k


def _conv(node: Node, xs, weight=None, bias="param") -> torch.Tensor:
    p = node.params
    w = p["weight"] if weight is None else weight
    b = p["bias"] if isinstance(bias, str) else bias
    x, pad = _pad_nd(xs[0], p["pads"])
    fn = F.conv2d if w.dim() == 4 else F.conv1d
    return fn(x, w, b, stride=p["stride"], padding=pad, dilation=p["dilation"], groups=p["groups"])


def _affine(node: Node, xs) -> torch.Tensor:
    y = xs[0]
    if node.params.get("scale") is not None:
        y = y * node.params["scale"]
    if node.params.get("shift") is not None:
        y = y + node.params["shift"]
    return y


def _avgpool(node: Node, xs) -> torch.Tensor:
    p = node.params
    x, pad = _pad_nd(xs[0], p["pads"])
    if tuple(p["pads"][:2]) != tuple(p["pads"][2:]):
        # asymmetric padding is only imported with count_include_pad=1: the zeros padded above count
        return F.avg_pool2d(x, p["kernel"], p["stride"], 0, count_include_pad=True)
    return F.avg_pool2d(x, p["kernel"], p["stride"], pad, count_include_pad=p["count_include_pad"])


def _maxpool(node: Node, xs) -> torch.Tensor:
    p = node.params
    x, pad = _pad_nd(xs[0], p["pads"], value=float("-inf"))
    return F.max_pool2d(x, p["kernel"], p["stride"], pad, dilation=p["dilation"])


_APPLY: dict[str, Callable[[Node, list], torch.Tensor]] = {
    "input": lambda n, xs: xs[0],
    "linear": lambda n, xs: F.linear(xs[0], n.params["weight"], n.params.get("bias")),
    "conv": _conv,
    "affine": _affine,
    "add": lambda n, xs: xs[0] + xs[1],
    "sub": lambda n, xs: xs[0] - xs[1],
    "reshape": lambda n, xs: xs[0].reshape(xs[0].shape[0], *n.shape),
    "transpose": lambda n, xs: xs[0].permute(0, *[a + 1 for a in n.params["perm"]]),
    "concat": lambda n, xs: torch.cat(xs, dim=n.params["axis"] + 1),
    "avgpool": _avgpool,
    "maxpool": _maxpool,
    "relu": lambda n, xs: torch.relu(xs[0]),
    "sigmoid": lambda n, xs: torch.sigmoid(xs[0]),
    "tanh": lambda n, xs: torch.tanh(xs[0]),
}


# --------------------------------------------------------------------------- graph


class Graph:
    """A topologically ordered DAG of ``Node``s with one input and one output."""

    def __init__(self, nodes: Iterable[Node], output: str, source_path: str | None = None,
                 aliases: Mapping[str, str] | None = None):
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.by_name: dict[str, Node] = {n.name: n for n in self.nodes}
        if len(self.by_name) != len(self.nodes):
            raise ValueError("node names must be unique")
        if not self.nodes or self.nodes[0].op != "input":
            raise ValueError("the first node must be the input")
        self.output = output
        self.source_path = source_path
        self.exact: Graph | None = None  # float64 twin with exact parameters (set by the importer)
        self.ort_max_abs_diff: float | None = None  # import check against onnxruntime (set by load_onnx)
        # names of ONNX tensors that were removed (Identity, folded BN, ...) -> the node computing them
        self.aliases: dict[str, str] = dict(aliases or {})
        consumers: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                consumers[i].append(n.name)
        self.consumers = {k: tuple(v) for k, v in consumers.items()}

    # ----------------------------------------------------------------- properties
    @property
    def input_name(self) -> str:
        return self.nodes[0].name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.nodes[0].shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.by_name[self.output].shape

    @property
    def output_size(self) -> int:
        return math.prod(self.output_shape)

    @property
    def device(self) -> torch.device:
        for n in self.nodes:
            for v in n.params.values():
                if isinstance(v, torch.Tensor):
                    return v.device
        return torch.device("cpu")

    def resolve(self, name: str) -> str:
        """The node that computes the ONNX tensor ``name`` (following aliases)."""
        seen = set()
        while name in self.aliases and name not in self.by_name and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        if name not in self.by_name:
            raise KeyError(f"no node computes {name!r}; known nodes: {', '.join(n.name for n in self.nodes)}")
        return name

    def __repr__(self) -> str:
        ops = ", ".join(n.op for n in self.nodes[1:])
        return f"Graph(input={self.input_shape}, output={self.output_size}, ops=[{ops}])"

    # ----------------------------------------------------------------- execution
    def forward(self, x: torch.Tensor, record: Iterable[str] = (), patch: Mapping[str, Callable] | None = None):
        """Run the network on ``x`` of shape ``[B, *input_shape]``; returns ``[B, output_size]``.

        With ``record`` (node output names) or ``patch`` (name -> fn applied to the
        node's output before it flows on), returns ``(out, {name: activation})``.
        """
        record = tuple(record)
        patch = dict(patch or {})
        want_dict = bool(record) or patch
        rec = {self.resolve(r): r for r in record}
        patches = {self.resolve(k): fn for k, fn in patch.items()}
        if tuple(x.shape[1:]) != self.input_shape:
            if x.dim() >= 1 and math.prod(x.shape[1:]) == math.prod(self.input_shape):
                x = x.reshape(x.shape[0], *self.input_shape)
            else:
                raise ValueError(f"expected input [B, {', '.join(map(str, self.input_shape))}], got {list(x.shape)}")
        if x.is_floating_point() and x.dtype != self.dtype:
            x = x.to(self.dtype)
        values: dict[str, torch.Tensor] = {}
        acts: dict[str, torch.Tensor] = {}
        for node in self.nodes:
            v = x if node.op == "input" else node.apply([values[i] for i in node.inputs])
            if node.name in patches:
                v = patches[node.name](v)
            values[node.name] = v
            if node.name in rec:
                acts[rec[node.name]] = v
        out = values[self.output].reshape(x.shape[0], -1)
        return (out, acts) if want_dict else out

    __call__ = forward

    # ----------------------------------------------------------------- transforms
    def to(self, device=None, dtype=None) -> "Graph":
        """A copy on ``device`` / in ``dtype``.

        ``dtype=torch.float64`` returns the importer's exact float64 parameters
        (BatchNorm folded in float64) rather than widened float32 ones.
        """
        src = self.exact if (dtype == torch.float64 and self.exact is not None) else self
        g = Graph([n.to(device, dtype) for n in src.nodes], self.output, self.source_path, self.aliases)
        if self.exact is not None and dtype != torch.float64:
            g.exact = self.exact.to(device=device)
        g.ort_max_abs_diff = self.ort_max_abs_diff
        return g

    @property
    def dtype(self) -> torch.dtype:
        for n in self.nodes:
            for v in n.params.values():
                if isinstance(v, torch.Tensor) and v.is_floating_point():
                    return v.dtype
        return torch.float32

    def with_normalization(self, mean, std) -> "Graph":
        """Prepend ``(x - mean) / std`` per channel so callers work in raw input space.

        The channel axis is the first per-sample axis when ``len(mean)`` matches
        it, else the last (channels-last models); a single value is a scalar.
        """
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if len(mean) != len(std):
            raise ValueError("mean and std must have the same length")
        if np.any(std == 0):
            raise ValueError("std must be non-zero")
        shape = self.input_shape
        bshape = channel_shape(shape, len(mean))
        dev, dt = self.device, self.dtype
        scale = torch.tensor((1.0 / std).reshape(bshape), dtype=dt, device=dev)
        shift = torch.tensor((-mean / std).reshape(bshape), dtype=dt, device=dev)
        inp = self.nodes[0]
        new_input = Node("__raw_input__", "input", (), shape, {}, "")
        norm = Node(inp.name, "affine", (new_input.name,), shape,
                    {"scale": scale, "shift": shift}, "normalize")
        g = Graph([new_input, norm, *self.nodes[1:]], self.output, self.source_path, self.aliases)
        if self.exact is not None:
            g.exact = self.exact.with_normalization(mean, std)
        g.ort_max_abs_diff = self.ort_max_abs_diff
        return g

    def as_module(self) -> torch.nn.Module:
        return _GraphModule(self)

    # ----------------------------------------------------------------- linear maps
    def linear_map(self, name: str) -> LinearMap:
        """The affine node ``name`` as dense float64 matrices (one per input) and a bias.

        Built by pushing the identity basis through the op in float64, so it is exact
        up to float64 rounding of the float32 parameters (which are exact in float64).
        """
        src = self.exact if self.exact is not None else self
        node = src.by_name[src.resolve(name)]
        if not node.is_affine:
            raise ValueError(f"node {name!r} ({node.op}) is not affine")
        n64 = node.to(device="cpu", dtype=torch.float64)
        in_shapes = [self.by_name[i].shape for i in node.inputs]
        zeros = [torch.zeros((1, *s), dtype=torch.float64) for s in in_shapes]
        with torch.no_grad():
            bias = n64.apply(zeros).reshape(-1)
            mats = []
            for k, s in enumerate(in_shapes):
                n_in = math.prod(s)
                eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *s)
                xs = [z.expand(n_in, *z.shape[1:]) for z in zeros]
                xs[k] = eye
                out = n64.apply(xs).reshape(n_in, -1) - bias
                mats.append(out.T.contiguous().numpy())
        return LinearMap(tuple(mats), bias.numpy())

    def affine_layers(self) -> list[tuple[Node, LinearMap | None]]:
        """Every computing node with its linear map (``None`` for nonlinear ops)."""
        return [(n, self.linear_map(n.name) if n.is_affine else None) for n in self.nodes[1:]]


def channel_shape(shape: tuple[int, ...], channels: int) -> tuple[int, ...]:
    """Broadcast shape of per-channel constants for an input of per-sample ``shape``.

    The channel axis is the first axis when ``channels`` matches it, else the
    last (channels-last inputs); one value is a scalar.
    """
    if channels == 1:
        return ()
    if shape and channels == shape[0]:
        return (channels,) + (1,) * (len(shape) - 1)
    if shape and channels == shape[-1]:
        return (channels,)
    raise ValueError(f"normalisation has {channels} channels; input shape is {list(shape)}")


class _GraphModule(torch.nn.Module):
    """A thin ``nn.Module`` view (for captum and friends)."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph

    def forward(self, x):  # noqa: D401
        return self.graph.forward(x)
