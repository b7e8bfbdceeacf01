"""ONNX -> ``hdsl.nn.Graph``.

The importer maps the ONNX batch axis onto the graph's batch axis and keeps
per-sample shapes, so every supported op must act on each sample separately
(reshapes may not mix samples). Subgraphs whose inputs are all constants
(``Constant``, ``Shape`` of a computed tensor, ``Gather``, ``Concat`` on shape
vectors, ...) are folded with ``onnx.reference`` at import time; ``Shape`` of a
computed tensor reports batch size 1 (the usual exported batch).

Parameters are kept twice: a float64 "exact" graph (BatchNorm folded and
``Div`` turned into a scale in float64, so the bound propagator works with the
real network's numbers) and the float32 graph used for execution.

Problems are ``HdslError`` diagnostics naming the file, the node and the op:
E501 unreadable file, E502 unsupported operator, E503 unsupported attribute or
shape, E504 not exactly one input and one output.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from hdsl.diagnostics import HdslError
from hdsl.files import content_digest
from hdsl.nn.graph import Graph, Node

SUPPORTED = (
    "Gemm MatMul Add Sub Mul Div Neg Conv Relu Sigmoid Tanh Flatten Reshape Transpose Squeeze Unsqueeze "
    "BatchNormalization AveragePool GlobalAveragePool MaxPool Concat Identity Dropout Cast Constant "
    "(and Shape/Gather/... on constants)"
)

_CACHE: dict[tuple[str, str], Graph] = {}


def load_onnx(path: str | os.PathLike) -> Graph:
    """Import an ONNX file (cached by path and content digest)."""
    p = Path(path)
    try:
        key = (str(p.resolve()), content_digest(p))
    except OSError as err:
        raise HdslError.single("E501", f"cannot read ONNX file {str(path)!r}: {err.strerror or err}",
                               path=str(path)) from None
    if key in _CACHE:
        return _CACHE[key]
    import onnx

    try:
        model = onnx.load(str(p))
    except Exception as err:  # noqa: BLE001 - protobuf raises many types
        raise HdslError.single("E501", f"{str(path)!r} is not a readable ONNX model: {err}", path=str(path),
                               hint="check that the file is an ONNX model and not, e.g., a Git LFS pointer") from None
    reference = _onnxruntime_reference(p)
    graph = import_model(model, str(path))
    graph.ort_max_abs_diff = _check_with_onnxruntime(graph, reference)
    _CACHE[key] = graph
    return graph


def _onnxruntime_reference(path: Path, n: int = 4) -> tuple[np.ndarray, np.ndarray] | None:
    """onnxruntime's outputs on ``n`` random inputs in [-1, 1] (``(x, y)``), asked before the
    import: a model that onnxruntime rejects (a bias of the wrong size, a kernel_shape that
    contradicts the weights, a MatMul with three inputs) is E506, where it would otherwise be
    imported under hdsl's own reading of it, and proofs would be about that reading. None for
    inputs the import itself refuses (not exactly one, or symbolic per-sample dimensions)."""
    from hdsl.nn.ort import run_onnx, session

    try:
        inputs = session(path).get_inputs()
        dims = inputs[0].shape[1:] if len(inputs) == 1 else None
        if dims is None or not all(isinstance(d, int) and d > 0 for d in dims):
            return None
        x = np.random.default_rng(0).uniform(-1, 1, size=(n, math.prod(dims))).astype(np.float32)
        return x, run_onnx(path, x)
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HdslError.single("E506", f"onnxruntime cannot run {str(path)!r}: "
                               f"{text.replace('[ONNXRuntimeError] : ', '')[:400]}", path=str(path),
                               hint="hdsl verifies only models that onnxruntime runs, so that its import can be "
                                    "checked and counterexamples replayed on the real model; repair or re-export "
                                    "the model (onnx.checker.check_model shows what is wrong)") from None


def _check_with_onnxruntime(graph: Graph, reference: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    """Max |torch - onnxruntime| on the reference inputs; a real disagreement is E505, NaN or
    infinite outputs E507. ``None`` without a reference."""
    if reference is None:
        return None
    x, ref = reference
    n = len(x)
    with torch.no_grad():
        ours = graph.forward(torch.from_numpy(x).reshape(n, *graph.input_shape)).numpy()
    if not np.all(np.isfinite(ref)):
        raise HdslError.single("E507", f"{graph.source_path}: the network computes NaN or infinite outputs on "
                               "random inputs in [-1, 1]", path=graph.source_path,
                               hint="bounds through it would be infinite; check the exported weights' scale")
    if ours.shape != ref.shape:
        raise HdslError.single("E505", f"{graph.source_path}: the imported network has {ours.shape[1]} outputs but "
                               f"onnxruntime computes {ref.shape[1]}", path=graph.source_path)
    diff = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    if not diff <= 1e-3 * (1.0 + scale):
        raise HdslError.single("E505", f"{graph.source_path}: the imported network disagrees with onnxruntime "
                               f"(max abs diff {diff:.3g} on random inputs)", path=graph.source_path,
                               hint="this is a bug in hdsl's ONNX import; please report it with the model")
    return diff


def import_model(model, path: str = "<onnx>") -> Graph:
    """Import an in-memory ``onnx.ModelProto`` (``path`` is used in messages and for replay)."""
    return _Importer(model, path).build()


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Importer:
    def __init__(self, model, path: str):
        self.model = model
        self.path = path
        self.g = model.graph
        self.consts: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []  # float64 "exact" nodes
        self.index: dict[str, int] = {}
        self.aliases: dict[str, str] = {}
        self.uses = Counter(i for n in self.g.node for i in n.input if i)
        self.uses.update(o.name for o in self.g.output)
        opsets = {o.domain: o.version for o in model.opset_import}
        self.opset = opsets.get("", opsets.get("ai.onnx", 13))

    # ------------------------------------------------------------------ helpers
    def fail(self, code: str, node, message: str, hint: str | None = None):
        where = f"node {node.name!r}" if node is not None and node.name else (
            f"the node computing {node.output[0]!r}" if node is not None and node.output else "the graph")
        op = f"{node.op_type} " if node is not None else ""
        raise HdslError.single(code, f"{op}{where}: {message}", path=self.path, hint=hint)

    def var(self, name: str) -> Node | None:
        name = self.aliases.get(name, name)
        i = self.index.get(name)
        return None if i is None else self.nodes[i]

    def add(self, name: str, op: str, inputs, shape, params=None, onnx_node: str = "") -> None:
        self.index[name] = len(self.nodes)
        self.nodes.append(Node(name, op, tuple(inputs), tuple(int(s) for s in shape), params or {}, onnx_node))

    @staticmethod
    def t(a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64))

    def const_operand(self, node, c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """A constant broadcast against a per-sample shape (leading batch axis of size 1 dropped)."""
        c = np.asarray(c, dtype=np.float64)
        if c.ndim == len(shape) + 1:
            if c.shape[0] != 1:
                self.fail("E503", node, f"constant of shape {list(c.shape)} varies along the batch axis")
            c = c[0]
        if c.ndim > len(shape):
            self.fail("E503", node, f"constant of shape {list(c.shape)} has more axes than the tensor {list(shape)}")
        try:
            out = np.broadcast_shapes(c.shape, shape)
        except ValueError:
            out = None
        if out != tuple(shape):
            self.fail("E503", node, f"constant of shape {list(c.shape)} does not broadcast to {list(shape)}")
        return c

    # ------------------------------------------------------------------ build
    def build(self) -> Graph:
        from onnx import numpy_helper

        for init in self.g.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        inputs = [i for i in self.g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(self.g.output) != 1:
            raise HdslError.single(
                "E504", f"{self.path}: hdsl supports networks with exactly one input and one output "
                f"(found {len(inputs)} inputs, {len(self.g.output)} outputs)", path=self.path)
        inp = inputs[0]
        dims = inp.type.tensor_type.shape.dim
        if len(dims) < 2:
            raise HdslError.single("E503", f"{self.path}: input {inp.name!r} needs a batch axis and at least one more "
                                   f"axis (has rank {len(dims)})", path=self.path)
        shape = []
        for d in dims[1:]:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise HdslError.single("E503", f"{self.path}: input {inp.name!r} has a symbolic non-batch "
                                       "dimension; hdsl needs fixed per-sample shapes", path=self.path)
            shape.append(d.dim_value)
        self.add(inp.name, "input", (), shape)
        for node in self.g.node:
            self.convert(node)
        out_name = self.g.output[0].name
        out_node = self.var(out_name)
        if out_node is None:
            raise HdslError.single("E503", f"{self.path}: the output {out_name!r} does not depend on the input",
                                   path=self.path)
        exact = Graph(self.prune(out_node.name), out_node.name, self.path, self.aliases)
        self.require_finite(exact)
        fast = exact.to(dtype=torch.float32)
        fast.exact = exact
        return fast

    def require_finite(self, graph: Graph) -> None:
        """Refuse NaN or infinite parameters (a weight, or a batch norm's variance below -epsilon):
        bounds through them are NaN or infinite, and a NaN compares false with every threshold."""
        for node in graph.nodes:
            for key, value in node.params.items():
                if isinstance(value, torch.Tensor) and value.is_floating_point() and \
                        not bool(torch.isfinite(value).all()):
                    where = f" (ONNX node {node.onnx_node!r})" if node.onnx_node else ""
                    raise HdslError.single("E507", f"{self.path}: the {node.op} computing {node.name!r}{where} has "
                                           f"NaN or infinite {key} values", path=self.path,
                                           hint="check the exported weights (a batch norm's variance must "
                                                "be above -epsilon)")

    def prune(self, out: str) -> list[Node]:
        needed = {out}
        for n in reversed(self.nodes):
            if n.name in needed:
                needed.update(n.inputs)
        return [n for n in self.nodes if n.name in needed or n.op == "input"]

    # ------------------------------------------------------------------ dispatch
    def convert(self, node) -> None:
        op = node.op_type
        ins = list(node.input)
        if op == "Constant":
            a = _attrs(node)
            from onnx import numpy_helper

            if "value" in a:
                self.consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            else:
                key = next(iter(a))
                self.consts[node.output[0]] = np.asarray(a[key])
            return
        if op == "Shape" and self.var(ins[0]) is not None:
            self.consts[node.output[0]] = np.asarray([1, *self.var(ins[0]).shape], dtype=np.int64)
            return
        if all((not i) or i in self.consts for i in ins):
            self.fold(node)
            return
        handler = getattr(self, "op_" + op, None)
        if handler is None or node.domain not in ("", "ai.onnx"):
            self.fail("E502", node, f"unsupported ONNX operator {op!r}", hint=f"supported operators: {SUPPORTED}")
        for i in ins:
            if i and i not in self.consts and self.var(i) is None:
                self.fail("E503", node, f"input {i!r} is neither a constant nor computed earlier")
        handler(node, ins)

    def fold(self, node) -> None:
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        ins = [i for i in node.input if i]
        g = helper.make_graph([node], "fold",
                              [helper.make_tensor_value_info(i, 1, None) for i in ins],
                              [helper.make_tensor_value_info(o, 1, None) for o in node.output])
        try:
            m = helper.make_model(g, opset_imports=self.model.opset_import)
            outs = ReferenceEvaluator(m).run(None, {i: self.consts[i] for i in ins})
        except Exception as err:  # noqa: BLE001
            self.fail("E502", node, f"cannot evaluate this constant expression ({err})")
        for name, v in zip(node.output, outs):
            self.consts[name] = np.asarray(v)

    # ------------------------------------------------------------------ ops
    def op_Identity(self, node, ins):
        self.aliases[node.output[0]] = self.var(ins[0]).name

    op_Dropout = op_Identity

    def op_Cast(self, node, ins):
        from onnx import TensorProto

        if _attrs(node).get("to") not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
            self.fail("E502", node, "only casts between floating-point types are supported on computed tensors")
        self.op_Identity(node, ins)

    def _elementwise(self, node, ins, op):
        self.add(node.output[0], op, (self.var(ins[0]).name,), self.var(ins[0]).shape, onnx_node=node.name)

    def op_Relu(self, node, ins):
        self._elementwise(node, ins, "relu")

    def op_Sigmoid(self, node, ins):
        self._elementwise(node, ins, "sigmoid")

    def op_Tanh(self, node, ins):
        self._elementwise(node, ins, "tanh")

    def op_Neg(self, node, ins):
        x = self.var(ins[0])
        self.add(node.output[0], "affine", (x.name,), x.shape, {"scale": self.t(-1.0), "shift": None}, node.name)

    def _binary(self, node, ins):
        op = node.op_type
        a, b = (self.var(i) for i in ins[:2])
        if a is not None and b is not None:
            if op not in ("Add", "Sub"):
                self.fail("E502", node, f"{op} of two computed tensors is not linear; only Add/Sub of computed "
                          "tensors and Add/Sub/Mul/Div by constants are supported")
            if a.shape != b.shape:
                self.fail("E503", node, f"operands have shapes {list(a.shape)} and {list(b.shape)}; "
                          "broadcasting between computed tensors is not supported")
            self.add(node.output[0], op.lower(), (a.name, b.name), a.shape, onnx_node=node.name)
            return
        x, c, x_first = (a, self.consts[ins[1]], True) if a is not None else (b, self.consts[ins[0]], False)
        c = self.const_operand(node, c, x.shape)
        scale = shift = None
        if op == "Add":
            shift = c
        elif op == "Sub":
            if x_first:
                shift = -c
            else:
                scale, shift = np.asarray(-1.0), c
        elif op == "Mul":
            scale = c
        elif op == "Div":
            if not x_first:
                self.fail("E502", node, "division by a computed tensor is not supported")
            if np.any(c == 0):
                self.fail("E503", node, "division by zero")
            scale = 1.0 / c
        if scale is None and self._fold_shift(node, x, shift):
            return
        params = {"scale": None if scale is None else self.t(scale), "shift": None if shift is None else self.t(shift)}
        self.add(node.output[0], "affine", (x.name,), x.shape, params, node.name)

    op_Add = op_Sub = op_Mul = op_Div = _binary

    def _fold_shift(self, node, x: Node, shift: np.ndarray) -> bool:
        """Fold ``linear/conv + constant`` into the producer's bias when the shift is per output channel."""
        if x.op not in ("linear", "conv") or self.uses[x.name] != 1:
            return False
        full = np.broadcast_to(shift, x.shape)
        if x.op == "linear":  # bias acts on the last axis
            rows = full.reshape(-1, x.shape[-1])
            per_out = rows[0]
            if not np.all(rows == per_out):
                return False
        else:  # conv: bias acts per channel (axis 0)
            cols = full.reshape(x.shape[0], -1)
            per_out = cols[:, 0]
            if not np.all(cols == per_out[:, None]):
                return False
        p = dict(x.params)
        bias = p["bias"].numpy() if p["bias"] is not None else np.zeros(len(per_out))
        p["bias"] = self.t(bias + per_out)
        i = self.index.pop(x.name)
        self.nodes[i] = Node(node.output[0], x.op, x.inputs, x.shape, p, x.onnx_node + "+" + node.name)
        self.index[node.output[0]] = i
        return True

    def op_Gemm(self, node, ins):
        a = _attrs(node)
        x = self.var(ins[0])
        if a.get("transA", 0) or x is None or ins[1] not in self.consts:
            self.fail("E503", node, "only Gemm(computed input, constant weight) without transA is supported")
        if len(x.shape) != 1:
            self.fail("E503", node, f"Gemm input must be a matrix [batch, features]; per-sample shape is {list(x.shape)}")
        w = np.asarray(self.consts[ins[1]], dtype=np.float64)
        w = w if a.get("transB", 0) else w.T  # -> [out, in]
        w = w * a.get("alpha", 1.0)
        if w.shape[1] != x.shape[0]:
            self.fail("E503", node, f"weight shape {list(w.shape)} does not match {x.shape[0]} input features")
        bias = None
        if len(ins) > 2 and ins[2] and self.var(ins[2]) is not None:
            self._gemm_computed_c(node, x, w, self.var(ins[2]), a.get("beta", 1.0))
            return
        if len(ins) > 2 and ins[2]:
            c = np.asarray(self.consts[ins[2]], dtype=np.float64) * a.get("beta", 1.0)
            if c.ndim == 2:
                if c.shape[0] != 1:
                    self.fail("E503", node, "Gemm bias varies along the batch axis")
                c = c[0]
            bias = np.broadcast_to(c, (w.shape[0],)).copy()
        self.add(node.output[0], "linear", (x.name,), (w.shape[0],),
                 {"weight": self.t(w), "bias": None if bias is None else self.t(bias)}, node.name)

    def _gemm_computed_c(self, node, x: Node, w: np.ndarray, c: Node, beta: float) -> None:
        """Gemm whose C is computed (a skip connection written into the Gemm): A·B, then + beta·C."""
        if c.shape != (w.shape[0],):
            self.fail("E503", node, f"Gemm's computed C has per-sample shape {list(c.shape)}; it must be "
                      f"[{w.shape[0]}] (broadcasting a computed C is not supported)")
        product = f"{node.output[0]}#product"
        self.add(product, "linear", (x.name,), (w.shape[0],), {"weight": self.t(w), "bias": None}, node.name)
        term = c.name
        if beta != 1.0:
            term = f"{node.output[0]}#beta_c"
            self.add(term, "affine", (c.name,), c.shape, {"scale": self.t(beta), "shift": None}, node.name)
        self.add(node.output[0], "add", (product, term), (w.shape[0],), onnx_node=node.name)

    def op_MatMul(self, node, ins):
        x = self.var(ins[0])
        if x is None or ins[1] not in self.consts:
            self.fail("E503", node, "only MatMul(computed input, constant matrix) is supported")
        w = np.asarray(self.consts[ins[1]], dtype=np.float64)
        if w.ndim != 2 or w.shape[0] != x.shape[-1]:
            self.fail("E503", node, f"constant of shape {list(w.shape)} does not multiply a tensor of per-sample "
                      f"shape {list(x.shape)}")
        self.add(node.output[0], "linear", (x.name,), (*x.shape[:-1], w.shape[1]),
                 {"weight": self.t(w.T), "bias": None}, node.name)

    def _pads(self, node, a, spatial, kernel, stride, dilation):
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        k = len(spatial)
        if auto in ("NOTSET", ""):
            pads = list(a.get("pads", [0] * (2 * k)))
        elif auto == "VALID":
            pads = [0] * (2 * k)
        else:
            begin, end = [], []
            for n, kk, s, d in zip(spatial, kernel, stride, dilation):
                out = -(-n // s)
                total = max((out - 1) * s + (kk - 1) * d + 1 - n, 0)
                small = total // 2
                begin.append(small if auto == "SAME_UPPER" else total - small)
                end.append(total - begin[-1])
            pads = begin + end
        return tuple(int(p) for p in pads)

    @staticmethod
    def _out_sizes(spatial, kernel, stride, pads, dilation):
        k = len(spatial)
        return [(n + pads[i] + pads[i + k] - d * (kk - 1) - 1) // s + 1
                for i, (n, kk, s, d) in enumerate(zip(spatial, kernel, stride, dilation))]

    def op_Conv(self, node, ins):
        a = _attrs(node)
        x = self.var(ins[0])
        if ins[1] not in self.consts:
            self.fail("E503", node, "only constant convolution weights are supported")
        w = np.asarray(self.consts[ins[1]], dtype=np.float64)
        if w.ndim not in (3, 4) or len(x.shape) != w.ndim - 1:
            self.fail("E503", node, f"only 1-D and 2-D convolutions are supported (weight {list(w.shape)}, "
                      f"input {list(x.shape)})")
        k = w.ndim - 2
        groups = int(a.get("group", 1))
        if x.shape[0] != w.shape[1] * groups:
            self.fail("E503", node, f"{x.shape[0]} input channels do not match weight {list(w.shape)} with "
                      f"group={groups}")
        kernel = tuple(w.shape[2:])
        stride = tuple(a.get("strides", [1] * k))
        dilation = tuple(a.get("dilations", [1] * k))
        pads = self._pads(node, a, x.shape[1:], kernel, stride, dilation)
        out = self._out_sizes(x.shape[1:], kernel, stride, pads, dilation)
        if min(out) <= 0:
            self.fail("E503", node, "the convolution produces an empty output")
        bias = np.asarray(self.consts[ins[2]], dtype=np.float64) if len(ins) > 2 and ins[2] else None
        self.add(node.output[0], "conv", (x.name,), (w.shape[0], *out),
                 {"weight": self.t(w), "bias": None if bias is None else self.t(bias), "stride": stride,
                  "pads": pads, "dilation": dilation, "groups": groups}, node.name)

    def op_BatchNormalization(self, node, ins):
        a = _attrs(node)
        x = self.var(ins[0])
        if a.get("training_mode", 0) or len(node.output) > 1 and any(node.output[1:]):
            self.fail("E503", node, "only inference-mode BatchNormalization is supported")
        scale, b, mean, var = (np.asarray(self.consts[i], dtype=np.float64) for i in ins[1:5])
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN / inf are refused after the import
            s = scale / np.sqrt(var + a.get("epsilon", 1e-5))
        t = b - mean * s
        C = x.shape[0]
        if s.shape != (C,):
            self.fail("E503", node, f"BatchNormalization over {s.shape} channels; the input has {C}")
        if x.op in ("conv", "linear") and self.uses[x.name] == 1 and (x.op == "conv" or len(x.shape) == 1):
            # fold into the producer: it now computes the BN output
            p = dict(x.params)
            w = p["weight"].numpy()
            p["weight"] = self.t(w * s.reshape((-1,) + (1,) * (w.ndim - 1)))
            bias = p["bias"].numpy() if p["bias"] is not None else np.zeros(w.shape[0])
            p["bias"] = self.t(bias * s + t)
            i = self.index.pop(x.name)
            self.nodes[i] = Node(node.output[0], x.op, x.inputs, x.shape, p, x.onnx_node + "+" + node.name)
            self.index[node.output[0]] = i
            return
        bshape = (C,) + (1,) * (len(x.shape) - 1)
        self.add(node.output[0], "affine", (x.name,), x.shape,
                 {"scale": self.t(s.reshape(bshape)), "shift": self.t(t.reshape(bshape))}, node.name)

    def _pool_common(self, node, x):
        if len(x.shape) != 3:
            self.fail("E503", node, f"only 2-D pooling is supported (per-sample shape {list(x.shape)})")
        a = _attrs(node)
        if a.get("ceil_mode", 0):
            self.fail("E503", node, "ceil_mode=1 is not supported")
        kernel = tuple(a["kernel_shape"])
        stride = tuple(a.get("strides", [1, 1]))
        dilation = tuple(a.get("dilations", [1, 1]))
        pads = self._pads(node, a, x.shape[1:], kernel, stride, dilation)
        out = self._out_sizes(x.shape[1:], kernel, stride, pads, dilation)
        return a, kernel, stride, dilation, pads, out

    def op_AveragePool(self, node, ins):
        x = self.var(ins[0])
        a, kernel, stride, dilation, pads, out = self._pool_common(node, x)
        if dilation != (1, 1):
            self.fail("E503", node, "dilated average pooling is not supported")
        cip = bool(a.get("count_include_pad", 0))
        if pads[:2] != pads[2:] and not cip:
            self.fail("E503", node, "asymmetric padding needs count_include_pad=1")
        if any(2 * p > k for p, k in zip(pads, kernel * 2)):
            self.fail("E503", node, "padding larger than half the kernel is not supported")
        self.add(node.output[0], "avgpool", (x.name,), (x.shape[0], *out),
                 {"kernel": kernel, "stride": stride, "pads": pads, "count_include_pad": cip}, node.name)

    def op_GlobalAveragePool(self, node, ins):
        x = self.var(ins[0])
        if len(x.shape) != 3:
            self.fail("E503", node, "only 2-D global average pooling is supported")
        self.add(node.output[0], "avgpool", (x.name,), (x.shape[0], 1, 1),
                 {"kernel": tuple(x.shape[1:]), "stride": (1, 1), "pads": (0, 0, 0, 0), "count_include_pad": True},
                 node.name)

    def op_MaxPool(self, node, ins):
        x = self.var(ins[0])
        if len(node.output) > 1 and node.output[1]:
            self.fail("E503", node, "MaxPool indices output is not supported")
        a, kernel, stride, dilation, pads, out = self._pool_common(node, x)
        if any(2 * p > k for p, k in zip(pads, kernel * 2)):
            self.fail("E503", node, "padding larger than half the kernel is not supported")
        self.add(node.output[0], "maxpool", (x.name,), (x.shape[0], *out),
                 {"kernel": kernel, "stride": stride, "pads": pads, "dilation": dilation}, node.name)

    def op_Flatten(self, node, ins):
        x = self.var(ins[0])
        axis = _attrs(node).get("axis", 1)
        if axis < 0:
            axis += len(x.shape) + 1
        if axis != 1:
            self.fail("E503", node, f"Flatten with axis={axis} mixes the batch axis; only axis=1 is supported")
        self.add(node.output[0], "reshape", (x.name,), (math.prod(x.shape),), {}, node.name)

    def _reshape_to(self, node, x, shape):
        if tuple(shape) == x.shape:
            self.aliases[node.output[0]] = x.name
            return
        if math.prod(shape) != math.prod(x.shape):
            self.fail("E503", node, f"cannot reshape per-sample shape {list(x.shape)} to {list(shape)}")
        self.add(node.output[0], "reshape", (x.name,), shape, {}, node.name)

    def op_Reshape(self, node, ins):
        x = self.var(ins[0])
        if ins[1] not in self.consts:
            self.fail("E503", node, "the target shape must be constant")
        target = [int(v) for v in np.asarray(self.consts[ins[1]]).reshape(-1)]
        allowzero = _attrs(node).get("allowzero", 0)
        full = [1, *x.shape]
        if not allowzero:
            target = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(target)]
        if not target or target[0] not in (1, -1):
            self.fail("E503", node, f"target shape {target} does not keep the batch axis first")
        rest = target[1:]
        n = math.prod(x.shape)
        if rest.count(-1) > 1:
            self.fail("E503", node, f"target shape {target} has more than one -1")
        if -1 in rest:
            known = math.prod(v for v in rest if v != -1)
            if known == 0 or n % known:
                self.fail("E503", node, f"cannot reshape per-sample shape {list(x.shape)} to {target}")
            rest = [n // known if v == -1 else v for v in rest]
        if math.prod(rest) != n:
            self.fail("E503", node, f"reshape to {target} would mix samples of the batch")
        self._reshape_to(node, x, tuple(rest))

    def _axes(self, node, ins):
        a = _attrs(node)
        if "axes" in a:
            return [int(v) for v in a["axes"]]
        if len(ins) > 1 and ins[1]:
            return [int(v) for v in np.asarray(self.consts[ins[1]]).reshape(-1)]
        return None

    def op_Squeeze(self, node, ins):
        x = self.var(ins[0])
        axes = self._axes(node, ins)
        full = [1, *x.shape]
        if axes is None:
            axes = [i for i, d in enumerate(full) if d == 1 and i > 0]
        axes = [a + len(full) if a < 0 else a for a in axes]
        if 0 in axes or any(full[a] != 1 for a in axes):
            self.fail("E503", node, f"cannot squeeze axes {axes} of per-sample shape {list(x.shape)}")
        self._reshape_to(node, x, tuple(d for i, d in enumerate(full) if i not in axes)[1:])

    def op_Unsqueeze(self, node, ins):
        x = self.var(ins[0])
        axes = self._axes(node, ins) or []
        rank = len(x.shape) + 1 + len(axes)
        axes = sorted(a + rank if a < 0 else a for a in axes)
        if 0 in axes:
            self.fail("E503", node, "cannot insert an axis before the batch axis")
        full = [1, *x.shape]
        for a in axes:
            full.insert(a, 1)
        self._reshape_to(node, x, tuple(full[1:]))

    def op_Transpose(self, node, ins):
        x = self.var(ins[0])
        perm = _attrs(node).get("perm", list(reversed(range(len(x.shape) + 1))))
        if perm[0] != 0:
            self.fail("E503", node, f"perm {list(perm)} moves the batch axis")
        p = tuple(int(v) - 1 for v in perm[1:])
        self.add(node.output[0], "transpose", (x.name,), tuple(x.shape[i] for i in p), {"perm": p}, node.name)

    def op_Concat(self, node, ins):
        xs = [self.var(i) for i in ins]
        if any(x is None for x in xs):
            self.fail("E503", node, "concatenating constants with computed tensors is not supported")
        rank = len(xs[0].shape) + 1
        axis = _attrs(node)["axis"]
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            self.fail("E503", node, "concatenation along the batch axis is not supported")
        ax = axis - 1
        base = list(xs[0].shape)
        for x in xs[1:]:
            if len(x.shape) != len(base) or any(d != e for i, (d, e) in enumerate(zip(x.shape, base)) if i != ax):
                self.fail("E503", node, "concatenated tensors have incompatible shapes")
        base[ax] = sum(x.shape[ax] for x in xs)
        self.add(node.output[0], "concat", tuple(x.name for x in xs), base, {"axis": ax}, node.name)
