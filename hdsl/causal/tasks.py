"""Example tasks with known ground truth, trained in seconds on CPU and exported to ONNX.

* ``heq``: hierarchical equality, output (W = X) = (Y = Z) over 6 entities
  (one-hot), 1,296 inputs. The network is *modular*: block-diagonal first two
  layers, so node ``h`` holds f(W, X) in neurons 0..7 and g(Y, Z) in 8..15.
  Splicing f's block from a source gives exactly the activations of the
  recombined input (W_s, X_s, Y_b, Z_b): the right alignment's IIA equals the
  task accuracy on all inputs (1), and the wrong/null alignments' IIA are
  rationals fixed by the causal model alone (97/162, 13/18).
* ``bool``: (a and b) or (c and d) with P = a and b in ``h[0:4]`` and
  Q = c and d in ``h[4:8]``; wrong alignment P -> Q's units gives 65/128.

Networks are built as ONNX directly (``onnx.helper``) with named nodes, so
alignments can name ``"h"`` and the files go through the real import path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hdsl.causal.model import Binary, CausalModel, CausalVar, Ref, VarType, validate

# --------------------------------------------------------------------------- causal models


def heq_model(entities: int = 6) -> CausalModel:
    ent = VarType.integer(0, entities - 1)
    b = VarType.boolean()
    return validate(CausalModel(
        "heq",
        tuple(CausalVar(n, ent) for n in "WXYZ"),
        (CausalVar("WX", b, Binary("==", Ref("W"), Ref("X"))),
         CausalVar("YZ", b, Binary("==", Ref("Y"), Ref("Z"))),
         CausalVar("O", b, Binary("==", Ref("WX"), Ref("YZ")))),
        "O"))


def bool_model() -> CausalModel:
    b = VarType.boolean()
    return validate(CausalModel(
        "circuit",
        tuple(CausalVar(n, b) for n in "abcd"),
        (CausalVar("P", b, Binary("and", Ref("a"), Ref("b"))),
         CausalVar("Q", b, Binary("and", Ref("c"), Ref("d"))),
         CausalVar("O", b, Binary("or", Ref("P"), Ref("Q")))),
        "O"))


# --------------------------------------------------------------------------- a tiny torch net with the graph interface


@dataclass
class Layer:
    name: str  # name of the node whose output this layer produces (after ReLU when relu)
    weight: "object"  # torch [out, in]
    bias: "object"
    relu: bool


class TorchMLP:
    """An MLP with the ``forward(x, record, patch)`` interface of ``hdsl.nn`` graphs.

    Node names: ``fcK`` (affine) and the layer's own name (its ReLU output).
    """

    def __init__(self, layers: list[Layer]):
        self.layers = layers

    @property
    def node_names(self) -> list[str]:
        out = []
        for i, layer in enumerate(self.layers):
            out += [f"fc{i + 1}", layer.name] if layer.relu else [layer.name]
        return out

    def forward(self, x, record=(), patch=None):
        import torch

        patch = patch or {}
        acts = {}
        h = x.reshape(x.shape[0], -1)
        for i, layer in enumerate(self.layers):
            h = h @ layer.weight.T + layer.bias
            names = [f"fc{i + 1}", layer.name] if layer.relu else [layer.name]
            if layer.relu:
                if names[0] in patch:
                    h = patch[names[0]](h)
                if names[0] in record:
                    acts[names[0]] = h
                h = torch.relu(h)
            if names[-1] in patch:
                h = patch[names[-1]](h)
            if names[-1] in record:
                acts[names[-1]] = h
        return h, acts


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TaskSpec:
    name: str
    model: CausalModel
    modules: tuple[tuple[int, ...], ...]  # input-feature indices of each module
    hidden: tuple[int, int]  # per-module widths of layers 1 and 2 (layer 2 is node "h")
    head: int
    right: tuple[tuple[str, int, int], ...]  # (variable, start, stop) in node "h"
    wrong: tuple[tuple[str, int, int], ...]


def heq_task() -> TaskSpec:
    return TaskSpec("heq", heq_model(), (tuple(range(0, 12)), tuple(range(12, 24))), (16, 8), 16,
                    (("WX", 0, 8), ("YZ", 8, 16)), (("WX", 8, 16),))


def bool_task() -> TaskSpec:
    return TaskSpec("bool", bool_model(), (tuple(range(0, 4)), tuple(range(4, 8))), (8, 4), 8,
                    (("P", 0, 4), ("Q", 4, 8)), (("P", 4, 8),))


TASKS = {"heq": heq_task, "bool": bool_task}


def _block_mask(rows_per: list[int], cols_per: list[list[int]], n_in: int):
    import torch

    mask = torch.zeros(sum(rows_per), n_in)
    r = 0
    for rows, cols in zip(rows_per, cols_per):
        mask[r:r + rows, cols] = 1.0
        r += rows
    return mask


def train(task: TaskSpec, seed: int = 0, max_steps: int = 3000, margin: float = 2.0) -> TorchMLP:
    """Full-batch Adam on every input (class-balanced) until all are right with logit margin >= ``margin``.

    Runs on one thread: the matrices are tiny, and extra threads only add contention.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(task, seed, max_steps, margin)
    finally:
        torch.set_num_threads(threads)


def _train(task: TaskSpec, seed: int, max_steps: int, margin: float) -> TorchMLP:
    import numpy as np
    import torch

    from hdsl.causal.alignment import Alignment, encode_inputs

    g = torch.Generator().manual_seed(seed)
    model = task.model
    inputs = model.enumerate_inputs()
    x = torch.from_numpy(encode_inputs(model, Alignment("", model.name, "", ()), inputs))
    y = torch.from_numpy(model.label(model.run(inputs)).astype(np.int64))
    n_in = x.shape[1]
    m = len(task.modules)
    h1, h2 = task.hidden
    mask1 = _block_mask([h1] * m, [list(c) for c in task.modules], n_in)
    mask2 = _block_mask([h2] * m, [list(range(i * h1, (i + 1) * h1)) for i in range(m)], h1 * m)

    def init(o, i):
        return (torch.randn(o, i, generator=g) * (2.0 / i) ** 0.5).requires_grad_(), torch.zeros(o, requires_grad=True)

    w1, b1 = init(h1 * m, n_in)
    w2, b2 = init(h2 * m, h1 * m)
    w3, b3 = init(task.head, h2 * m)
    w4, b4 = init(2, task.head)
    params = [w1, b1, w2, b2, w3, b3, w4, b4]
    opt = torch.optim.Adam(params, lr=1e-2)
    counts = torch.bincount(y, minlength=2).float()
    weight = counts.sum() / (2 * counts.clamp(min=1))

    def logits():
        a = torch.relu(x @ (w1 * mask1).T + b1)
        a = torch.relu(a @ (w2 * mask2).T + b2)
        a = torch.relu(a @ w3.T + b3)
        return a @ w4.T + b4

    for step in range(max_steps):
        out = logits()
        loss = torch.nn.functional.cross_entropy(out, y, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 49:
            with torch.no_grad():
                o = logits()
                gap = (o[torch.arange(len(y)), y] - o[torch.arange(len(y)), 1 - y]).min()
            if gap >= margin:
                break
    with torch.no_grad():
        return TorchMLP([
            Layer("a1", (w1 * mask1).detach().clone(), b1.detach().clone(), True),
            Layer("h", (w2 * mask2).detach().clone(), b2.detach().clone(), True),
            Layer("a3", w3.detach().clone(), b3.detach().clone(), True),
            Layer("logits", w4.detach().clone(), b4.detach().clone(), False),
        ])


def to_onnx(net: TorchMLP, path: str | Path, opset: int = 17) -> Path:
    """Write the MLP as ONNX (Gemm + Relu, nodes and tensors named as in ``TorchMLP``)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    prev = "x"
    for i, layer in enumerate(net.layers):
        w = layer.weight.detach().cpu().numpy().astype(np.float32)
        b = layer.bias.detach().cpu().numpy().astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i + 1}"), numpy_helper.from_array(b, f"B{i + 1}")]
        affine = f"fc{i + 1}" if layer.relu else layer.name
        nodes.append(helper.make_node("Gemm", [prev, f"W{i + 1}", f"B{i + 1}"], [affine], name=affine, transB=1))
        prev = affine
        if layer.relu:
            nodes.append(helper.make_node("Relu", [prev], [layer.name], name=layer.name))
            prev = layer.name
    d_in = net.layers[0].weight.shape[1]
    d_out = net.layers[-1].weight.shape[0]
    graph = helper.make_graph(
        nodes, "causal_task",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", d_in])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", d_out])],
        inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="hdsl")
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path


def task_accuracy(net, task: TaskSpec) -> float:
    import torch

    from hdsl.causal.alignment import Alignment, encode_inputs
    from hdsl.causal.intervene import readout

    model = task.model
    inputs = model.enumerate_inputs()
    x = torch.from_numpy(encode_inputs(model, Alignment("", model.name, "", ()), inputs))
    with torch.no_grad():
        out, _ = net.forward(x)
    return float((readout(out).numpy() == model.label(model.run(inputs))).mean())


def rotate_after(net: TorchMLP, layer: str = "h", seed: int = 0, name: str = "hr"):
    """Insert a linear node ``name`` = Q h after ``layer`` (Q random orthogonal) and undo it in the next layer.

    The function is unchanged, but the variables are now spread over all of ``name``'s
    neurons: neuron ranges no longer align, the rotation ``Q^T`` (rows) does. Returns (net, Q).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    i = [lay.name for lay in net.layers].index(layer)
    width = net.layers[i].weight.shape[0]
    q, _ = torch.linalg.qr(torch.randn(width, width, generator=g, dtype=torch.float64))
    nxt = net.layers[i + 1]
    layers = list(net.layers[:i + 1]) + [
        Layer(name, q.float(), torch.zeros(width), False),
        Layer(nxt.name, (nxt.weight.double() @ q.T).float(), nxt.bias.clone(), nxt.relu),
    ] + list(net.layers[i + 2:])
    return TorchMLP(layers), q
