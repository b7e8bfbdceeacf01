"""CROWN / DeepPoly backward linear relaxation over ``hdsl.nn.Graph``.

``backward_lower`` pushes a linear objective ``A . v_start + const`` from a start
node back to the input, replacing each op by its exact linear map (affine ops,
minus their float32 noise ``|A| err``) or by linear lower/upper relaxations
(ReLU: the DeepPoly triangle with an adaptive or optimisable lower slope;
sigmoid/tanh: a chord-slope parallelogram; max pooling: the largest-lower-bound
input below, the exact input or a constant above), then minimises over the
input box. It only computes *lower* bounds; upper bounds are lower bounds of
the negated objective.

``intermediate_bounds`` computes the pre-activation bounds that the
relaxations need: IBP from the best bounds so far, then CROWN for the unstable
neurons, keeping the intersection, so every node's bounds are at least as tight
as plain IBP's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from hdsl.bounds.fp import TRANSCENDENTAL_TOL, U
from hdsl.bounds.ibp import node_interval
from hdsl.nn.graph import NONLINEAR_OPS, Graph, Node

Interval = tuple[torch.Tensor, torch.Tensor]


@dataclass
class BoundState:
    """Everything the backward pass needs for one batch of input boxes."""

    graph: Graph  # float64 graph on the working device
    lo: torch.Tensor  # [B, *input_shape]
    hi: torch.Tensor
    bounds: dict[str, Interval] = field(default_factory=dict)  # per node, [B, *shape]
    noise: dict[str, torch.Tensor] = field(default_factory=dict)  # float32 error bounds of affine nodes
    fp: bool = True
    method: str = "ibp"
    prior: "BoundState | None" = None  # the CROWN state an alpha state was refined from

    @property
    def batch(self) -> int:
        return self.lo.shape[0]

    def output_interval(self) -> Interval:
        l, u = self.bounds[self.graph.output]
        return l.reshape(self.batch, -1), u.reshape(self.batch, -1)

    def select(self, idx: torch.Tensor) -> "BoundState":
        """The same state restricted to the batch entries ``idx``."""
        return BoundState(self.graph, self.lo[idx], self.hi[idx],
                          {k: (l[idx], u[idx]) for k, (l, u) in self.bounds.items()},
                          {k: v[idx] for k, v in self.noise.items()}, self.fp, self.method,
                          None if self.prior is None else self.prior.select(idx))


# --------------------------------------------------------------------------- relaxations


def relu_relaxation(l: torch.Tensor, u: torch.Tensor, lower_slope: torch.Tensor | None = None):
    """Slopes/intercepts with ``lo_s*z <= relu(z) <= up_s*z + up_b`` on ``[l, u]``.

    ``lower_slope`` (in [0, 1], broadcastable) replaces the adaptive choice
    ``1 if u >= -l else 0`` on unstable neurons (alpha-CROWN).
    """
    active = l >= 0
    unstable = (l < 0) & (u > 0)
    denom = torch.where(unstable, u - l, torch.ones_like(u))
    up_s = torch.where(unstable, u / denom, active.to(u.dtype))
    up_b = torch.where(unstable, -up_s * l, torch.zeros_like(u))
    if lower_slope is None:
        lower_slope = (u >= -l).to(u.dtype)
    lo_s = torch.where(unstable, lower_slope, active.to(u.dtype))
    return lo_s, up_s, up_b


def _sigmoid_critical(s: torch.Tensor) -> torch.Tensor:
    """x >= 0 with sigmoid'(x) = s (s in (0, 1/4])."""
    s = s.clamp(1e-300, 0.25)
    root = torch.sqrt((1 - 4 * s).clamp_min(0))
    sig = ((1 + root) / 2).clamp(max=1 - 1e-16)
    return torch.log(sig / (1 - sig))


def _tanh_critical(s: torch.Tensor) -> torch.Tensor:
    """x >= 0 with tanh'(x) = s (s in (0, 1])."""
    t = torch.sqrt((1 - s).clamp(0, 1)).clamp(max=1 - 1e-16)
    return torch.atanh(t)


def smooth_relaxation(op: str, l: torch.Tensor, u: torch.Tensor, fp: bool = True):
    """Chord slope ``s`` and offsets with ``s z + b_lo <= f(z) <= s z + b_up`` on ``[l, u]``.

    ``g(z) = f(z) - s z`` has critical points only at ``+-x*`` with ``f'(x*) = s``
    (``f'`` is even and unimodal), so its extremes are among ``l, u, +-x*``.
    """
    f = torch.sigmoid if op == "sigmoid" else torch.tanh
    crit = _sigmoid_critical if op == "sigmoid" else _tanh_critical
    w = u - l
    narrow = w < 1e-9
    s = torch.where(narrow, torch.zeros_like(w), (f(u) - f(l)) / torch.where(narrow, torch.ones_like(w), w))
    s = s.clamp_min(0)
    xs = crit(torch.where(s > 0, s, torch.full_like(s, 0.25 if op == "sigmoid" else 1.0)))
    cands = [l, u, torch.minimum(torch.maximum(xs, l), u), torch.minimum(torch.maximum(-xs, l), u)]
    gs = torch.stack([f(c) - s * c for c in cands])
    b_lo, b_up = gs.min(0).values, gs.max(0).values
    tol = (TRANSCENDENTAL_TOL if fp else 0.0) + 1e-12 * (1 + s * torch.maximum(l.abs(), u.abs()))
    return s, b_lo - tol, b_up + tol


# --------------------------------------------------------------------------- transposed ops


def _conv_transpose(node: Node, A: torch.Tensor, in_shape, weight: torch.Tensor) -> torch.Tensor:
    """Adjoint of the (padded) convolution: ``A`` [N, C_out, *out] -> [N, C_in, *in]."""
    p = node.params
    k = weight.dim() - 2
    begin, end = p["pads"][:k], p["pads"][k:]
    spatial = in_shape[1:]
    out = A.shape[2:]
    padded = [n + b + e for n, b, e in zip(spatial, begin, end)]
    ks = weight.shape[2:]
    outpad = [P - ((o - 1) * s + d * (kk - 1) + 1) for P, o, s, d, kk in zip(padded, out, p["stride"], p["dilation"], ks)]
    fn = F.conv_transpose2d if k == 2 else F.conv_transpose1d
    res = fn(A, weight, None, stride=p["stride"], padding=0, output_padding=tuple(outpad), groups=p["groups"],
             dilation=p["dilation"])
    if k == 2:
        return res[:, :, begin[0]:begin[0] + spatial[0], begin[1]:begin[1] + spatial[1]]
    return res[:, :, begin[0]:begin[0] + spatial[0]]


def _avgpool_counts(node: Node, in_shape, like: torch.Tensor) -> torch.Tensor:
    p = node.params
    kk = math.prod(p["kernel"])
    pads = p["pads"]
    if p["count_include_pad"] or pads[:2] != pads[2:]:
        return torch.full((1,), float(kk), dtype=like.dtype, device=like.device)
    ones = torch.ones((1, 1, *in_shape[1:]), dtype=like.dtype, device=like.device)
    padded = F.pad(ones, (pads[1], pads[3], pads[0], pads[2]))
    return F.avg_pool2d(padded, p["kernel"], p["stride"]) * kk  # [1, 1, Ho, Wo]


def _maxpool_backward(node: Node, A: torch.Tensor, l: torch.Tensor, u: torch.Tensor):
    """Lower-bound relaxation of max pooling: returns (A_in, const)."""
    p = node.params
    k, s, d, pads = p["kernel"], p["stride"], p["dilation"], p["pads"]
    B, C, H, W = l.shape
    m = A.shape[1]
    padv = (pads[1], pads[3], pads[0], pads[2])
    lp = F.pad(l, padv, value=float("-inf"))
    up = F.pad(u, padv, value=float("-inf"))
    Hp, Wp = lp.shape[-2:]
    kk = k[0] * k[1]
    ul = F.unfold(lp, k, dilation=d, stride=s).view(B, C, kk, -1)
    uu = F.unfold(up, k, dilation=d, stride=s).view(B, C, kk, -1)
    L = ul.shape[-1]
    jstar = ul.argmax(2, keepdim=True)  # [B, C, 1, L]
    lstar = ul.gather(2, jstar).squeeze(2)
    umax = uu.max(2).values
    others = uu.scatter(2, jstar, float("-inf")).max(2).values
    exact = lstar >= others  # the max is always the j* input
    pos = torch.arange(Hp * Wp, dtype=l.dtype, device=l.device).view(1, 1, Hp, Wp)
    pos = F.unfold(pos, k, dilation=d, stride=s).view(1, 1, kk, L).long().expand(B, C, kk, L)
    jpos = pos.gather(2, jstar).squeeze(2)  # [B, C, L]
    A = A.reshape(B, m, C, L)
    a_pos, a_neg = A.clamp_min(0), A.clamp_max(0)
    ex = exact.unsqueeze(1).to(A.dtype)
    sel = a_pos + a_neg * ex
    const = (a_neg * (1 - ex) * umax.unsqueeze(1)).sum((2, 3))
    A_in = torch.zeros(B, m, C, Hp * Wp, dtype=A.dtype, device=A.device)
    A_in = A_in.scatter_add(3, jpos.unsqueeze(1).expand(B, m, C, L), sel)
    A_in = A_in.view(B, m, C, Hp, Wp)[:, :, :, pads[0]:pads[0] + H, pads[1]:pads[1] + W]
    return A_in, const


def _sum_rest(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], t.shape[1], -1).sum(-1)


def node_backward(node: Node, A: torch.Tensor, state: BoundState, alphas: dict | None = None):
    """One backward step: ``A . node(x) >= sum_i A_i . x_i + const`` for the lower bound.

    Returns ``(list of A_i for node.inputs, const [B, m])``.
    """
    g, op, p = state.graph, node.op, node.params
    B, m = A.shape[:2]
    in_shapes = [g.by_name[i].shape for i in node.inputs]
    const = None
    if op == "linear":
        A_in = A @ p["weight"]
        if p.get("bias") is not None:
            const = _sum_rest(A * p["bias"])
        outs = [A_in]
    elif op == "conv":
        flat = A.reshape(B * m, *node.shape)
        A_in = _conv_transpose(node, flat, in_shapes[0], p["weight"]).reshape(B, m, *in_shapes[0])
        if p.get("bias") is not None:
            const = _sum_rest(A * p["bias"].reshape(-1, *([1] * (len(node.shape) - 1))))
        outs = [A_in]
    elif op == "affine":
        outs = [A * p["scale"] if p.get("scale") is not None else A]
        if p.get("shift") is not None:
            const = _sum_rest(A * p["shift"])
    elif op == "add":
        outs = [A, A]
    elif op == "sub":
        outs = [A, -A]
    elif op == "reshape":
        outs = [A.reshape(B, m, *in_shapes[0])]
    elif op == "transpose":
        perm = p["perm"]
        inv = sorted(range(len(perm)), key=lambda i: perm[i])
        outs = [A.permute(0, 1, *[i + 2 for i in inv])]
    elif op == "concat":
        sizes = [s[p["axis"]] for s in in_shapes]
        outs = list(torch.split(A, sizes, dim=p["axis"] + 2))
    elif op == "avgpool":
        C = node.shape[0]
        cnt = _avgpool_counts(node, in_shapes[0], A)
        flat = (A.reshape(B * m, *node.shape) / cnt.reshape(1, 1, *cnt.shape[2:]) if cnt.dim() == 4
                else A.reshape(B * m, *node.shape) / cnt)
        ones = torch.ones((C, 1, *p["kernel"]), dtype=A.dtype, device=A.device)
        fake = Node(node.name, "conv", node.inputs, node.shape,
                    {"pads": p["pads"], "stride": p["stride"], "dilation": (1, 1), "groups": C})
        outs = [_conv_transpose(fake, flat, in_shapes[0], ones).reshape(B, m, *in_shapes[0])]
    elif op == "relu":
        l, u = state.bounds[node.inputs[0]]
        alpha = alphas.get(node.name) if alphas else None
        lo_s, up_s, up_b = relu_relaxation(l.unsqueeze(1), u.unsqueeze(1), alpha)
        a_pos, a_neg = A.clamp_min(0), A.clamp_max(0)
        outs = [a_pos * lo_s + a_neg * up_s]
        const = _sum_rest(a_neg * up_b)
    elif op in ("sigmoid", "tanh"):
        l, u = state.bounds[node.inputs[0]]
        s, b_lo, b_up = smooth_relaxation(op, l, u, state.fp)
        outs = [A * s.unsqueeze(1)]
        const = _sum_rest(A.clamp_min(0) * b_lo.unsqueeze(1) + A.clamp_max(0) * b_up.unsqueeze(1))
    elif op == "maxpool":
        l, u = state.bounds[node.inputs[0]]
        A_in, const = _maxpool_backward(node, A, l, u)
        outs = [A_in]
    else:  # pragma: no cover - the importer only produces the ops above
        raise TypeError(f"CROWN has no backward rule for op {op!r}")
    if state.fp and node.name in state.noise:
        noise = _sum_rest(A.abs() * state.noise[node.name].unsqueeze(1))
        const = -noise if const is None else const - noise
    return outs, const


def backward_lower(state: BoundState, start: str, A: torch.Tensor, const: torch.Tensor | None = None,
                   alphas: dict | None = None) -> torch.Tensor:
    """Lower bound of ``A . v_start + const`` over the input box, ``A`` of shape [B, m, *shape(start)]."""
    g = state.graph
    B, m = A.shape[:2]
    total = torch.zeros(B, m, dtype=A.dtype, device=A.device) if const is None else const.clone()
    pending: dict[str, torch.Tensor] = {start: A}
    order = [n.name for n in g.nodes]
    for name in reversed(order[:order.index(start) + 1]):
        if name not in pending:
            continue
        node = g.by_name[name]
        Ac = pending.pop(name)
        if node.op == "input":
            pending[name] = Ac
            break
        outs, c = node_backward(node, Ac, state, alphas)
        if c is not None:
            total = total + c
        for inp, Ai in zip(node.inputs, outs):
            pending[inp] = pending[inp] + Ai if inp in pending else Ai
    A_in = pending.get(g.input_name)
    if A_in is None:  # the objective does not depend on the input
        return total
    lo, hi = state.lo.unsqueeze(1), state.hi.unsqueeze(1)
    centre, radius = (lo + hi) / 2, (hi - lo) / 2
    return total + _sum_rest(A_in * centre) - _sum_rest(A_in.abs() * radius)


# --------------------------------------------------------------------------- intermediate bounds


def _needs_crown(g: Graph) -> dict[str, bool]:
    """Nodes whose IBP bounds are not already exact (a nonlinearity, add/sub or two mixing maps above)."""
    mixing: dict[str, int] = {}
    inexact: dict[str, bool] = {}
    for n in g.nodes:
        if n.op == "input":
            mixing[n.name], inexact[n.name] = 0, False
            continue
        mix = sum(mixing[i] for i in n.inputs) + (n.op in ("linear", "conv", "avgpool"))
        bad = any(inexact[i] for i in n.inputs) or n.op in NONLINEAR_OPS or n.op in ("add", "sub") or mix > 1
        mixing[n.name], inexact[n.name] = mix, bad
    return inexact


def _chunks(total: int, per_item: int, budget_elems: int) -> int:
    return max(1, min(total, budget_elems // max(per_item, 1)))


def crown_node_bounds(state: BoundState, node: Node, mask: torch.Tensor, max_elems: int,
                      alpha_iters: int = 0, alpha_lr: float = 0.25, deadline: float | None = None) -> Interval:
    """CROWN lower/upper bounds for the neurons of ``node`` selected by ``mask`` [B, *shape].

    Each box gets its own rows (its selected neurons, padded to the largest
    count in the chunk), so a batch costs what its boxes cost one by one.
    """
    l, u = state.bounds[node.name]
    B = state.batch
    n = node.numel
    flat_mask = mask.reshape(B, n)
    counts = flat_mask.sum(1)
    widest = max(gn.numel for gn in state.graph.nodes[:state.graph.nodes.index(node) + 1])
    lf, uf = l.reshape(B, n).clone(), u.reshape(B, n).clone()
    # order neurons so that each box's selected ones come first
    order = torch.argsort((~flat_mask).to(torch.int8), dim=1, stable=True)
    kmax = int(counts.max()) if B else 0
    if kmax == 0:
        return l, u
    rows_per = max(1, _chunks(2 * kmax, widest, max_elems) // 2)
    for r0 in range(0, kmax, rows_per):
        k = min(rows_per, kmax - r0)
        bsz = _chunks(B, 2 * k * widest, max_elems)
        for b0 in range(0, B, bsz):
            b1 = min(B, b0 + bsz)
            nb = b1 - b0
            rid = order[b0:b1, r0:r0 + k]  # [nb, k]
            valid = (torch.arange(r0, r0 + k, device=l.device).unsqueeze(0) < counts[b0:b1].unsqueeze(1))
            if not bool(valid.any()):
                continue
            sub = state.select(torch.arange(b0, b1, device=l.device))
            A = torch.zeros(nb, 2 * k, n, dtype=l.dtype, device=l.device)
            one = valid.to(l.dtype)
            A[:, :k].scatter_(2, rid.unsqueeze(2), one.unsqueeze(2))
            A[:, k:].scatter_(2, rid.unsqueeze(2), -one.unsqueeze(2))
            A = A.reshape(nb, 2 * k, *node.shape)
            cur_l, cur_u = lf[b0:b1].gather(1, rid), uf[b0:b1].gather(1, rid)
            if alpha_iters > 0:  # optimised slopes, starting from the current (sound) bounds
                from hdsl.bounds.alpha import optimise_slopes

                lb = optimise_slopes(sub, node.name, A, None, torch.cat([cur_l, -cur_u], 1), alpha_iters,
                                     alpha_lr, deadline)
            else:
                lb = backward_lower(sub, node.name, A)
            new_l = torch.where(valid, torch.maximum(cur_l, lb[:, :k]), cur_l)
            new_u = torch.where(valid, torch.minimum(cur_u, -lb[:, k:]), cur_u)
            lf[b0:b1] = lf[b0:b1].scatter(1, rid, new_l)
            uf[b0:b1] = uf[b0:b1].scatter(1, rid, new_u)
    return lf.reshape(l.shape), uf.reshape(u.shape)


class BoundsTimeout(Exception):
    """The deadline passed while computing bounds."""


def intermediate_bounds(graph: Graph, lo: torch.Tensor, hi: torch.Tensor, method: str = "crown",
                        fp: bool = True, max_elems: int = 2 ** 25, deadline: float | None = None,
                        prior: BoundState | None = None, alpha_iters: int = 0,
                        alpha_lr: float = 0.25, unit: float = U) -> BoundState:
    """Bounds of every node: IBP, refined by CROWN on the inputs of nonlinear ops (``method != 'ibp'``).

    ``prior`` (bounds of the same boxes, e.g. from CROWN) are intersected in;
    with ``alpha_iters`` > 0 the refinement optimises the ReLU slopes per neuron
    bound (alpha-CROWN on intermediate layers), starting from the prior bounds,
    and a passed deadline just stops the optimisation. Without a prior, raises
    ``BoundsTimeout`` when ``deadline`` (``time.monotonic()``) passes between nodes.
    """
    import time

    state = BoundState(graph, lo, hi, fp=fp, method=method)
    state.bounds[graph.input_name] = (lo, hi)
    inexact = _needs_crown(graph) if method != "ibp" else {}
    for node in graph.nodes[1:]:
        l, u, err = node_interval(node, [state.bounds[i] for i in node.inputs], fp, unit)
        if err is not None:
            state.noise[node.name] = err
        if prior is not None and node.name in prior.bounds:
            pl, pu = prior.bounds[node.name]
            l, u = torch.maximum(l, pl), torch.minimum(u, pu)
        state.bounds[node.name] = (l, u)
        if method == "ibp" or not inexact.get(node.name):
            continue
        consumers = [graph.by_name[c].op for c in graph.consumers[node.name]]
        if not any(op in NONLINEAR_OPS for op in consumers):
            continue
        if all(op == "relu" for op in consumers):
            mask = (l < 0) & (u > 0)
        else:
            mask = torch.ones_like(l, dtype=torch.bool)
        if deadline is not None and time.monotonic() > deadline:
            if prior is not None:
                continue
            raise BoundsTimeout(f"bounds for {node.name!r} not reached before the deadline")
        if prior is not None and alpha_iters <= 0:
            continue  # the prior already holds CROWN's bounds
        if bool(mask.any()):
            state.bounds[node.name] = crown_node_bounds(state, node, mask, max_elems, alpha_iters, alpha_lr,
                                                        deadline)
    return state


def spec_lower_bound(state: BoundState, C: torch.Tensor, d: torch.Tensor | None = None,
                     alphas: dict | None = None, use_interval: bool = True) -> torch.Tensor:
    """Lower bound of ``C y + d`` ([B, m]) with CROWN from the output; never looser than the interval bound."""
    g = state.graph
    B = state.batch
    C = C.expand(B, *C.shape[-2:]) if C.dim() == 2 else C
    m = C.shape[1]
    lb = backward_lower(state, g.output, C.reshape(B, m, *g.output_shape),
                        None if d is None else d.expand(B, m), alphas)
    if use_interval:
        lb = torch.maximum(lb, interval_spec_lower(state, C, d))
        if state.prior is not None:
            # CROWN is not monotone in its intermediate bounds: keep the prior state's bound too
            lb = torch.maximum(lb, spec_lower_bound(state.prior, C, d))
    return lb


def interval_spec_lower(state: BoundState, C: torch.Tensor, d: torch.Tensor | None = None) -> torch.Tensor:
    """Lower bound of ``C y + d`` from the output interval alone."""
    l, u = state.output_interval()
    C = C.expand(state.batch, *C.shape[-2:]) if C.dim() == 2 else C
    lb = (C.clamp_min(0) * l.unsqueeze(1)).sum(-1) + (C.clamp_max(0) * u.unsqueeze(1)).sum(-1)
    return lb if d is None else lb + d
