"""Bounds for ``argmax f(x) in S``: per-pair witnesses and the convex-combination (λ) relaxation.

The unsafe set of ``argmax in S`` is ``OR_{k not in S} AND_{j in S} (y_k >= y_j)``.
Disjunct ``k`` is excluded when ``min_x max_{j in S} (y_j - y_k) > 0``. Since
``max_j z_j >= Σ λ_j z_j`` for every ``λ`` in the simplex,
``CROWN-LB(Σ λ_j (y_j - y_k)) > 0`` excludes it, for *any* λ: the optimisation
below only has to be good, never exact, to stay sound. With λ at a simplex
vertex this is the naive per-pair witness test, so starting at the best vertex
and keeping the best value seen makes λ never worse than the naive test.

CROWN here is the back-substitution of Zhang et al. (2018) on a sequential
``hdsl.nn.Graph`` (affine ops and ReLUs), in float64 on the importer's exact
parameters: pre-activation bounds layer by layer (the first by exact interval
arithmetic), then the spec rows. With fixed intermediate bounds and lower
slopes ``α`` the bound is ``min`` over the relaxation of a linear function of
the spec row, hence concave in λ; we run projected (super)gradient ascent on
λ jointly with per-row ``α`` (clamped to [0, 1], every value of which is a
valid lower relaxation).

Float32: the deployed network computes in float32. We bound *that* network:
each affine op's output is the real value plus a rounding term
``|δ| <= γ_{n+1} (|A| |x| + |b|)`` (Higham's model for any summation order,
``n`` the fan-in), with ``|x|`` from the bounds of the float32 input; the
backward pass subtracts ``|Λ| · δ`` at every affine op, so intermediate and
final bounds hold for the float32 network (ReLU is exact in float32). The
parameters are the importer's exact float64 twin, i.e. the float32 weights.

``arithmetic="real"`` (``hdsl.ir.CheckOptions``) keeps the same model with
``hdsl.bounds.fp.U_REAL`` (2^-48) in place of float32's 2^-24: the bounds then
hold for the real-valued network only and pay just for their own float64
arithmetic, as in ``hdsl.bounds.fp`` (point 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

DTYPE = torch.float64
U32 = 2.0**-24
_SEQ_OPS = frozenset({"linear", "conv", "affine", "reshape", "transpose", "avgpool", "relu"})


class Unsupported(ValueError):
    """The graph is not a chain of affine ops and ReLUs."""


def _gamma(n: int, unit: float = U32) -> float:
    return n * unit / (1 - n * unit)


def unit_of(arithmetic: str) -> float:
    """The unit roundoff of the rounding model: float32's, or the real-arithmetic one of ``hdsl.bounds.fp``."""
    from hdsl.bounds.fp import unit_roundoff

    u = unit_roundoff(arithmetic)  # validates the name; float32's is doubled there, Higham's 2^-24 here
    return U32 if arithmetic == "float32" else u


@dataclass
class SeqNet:
    """A sequential view of a graph: the nodes after the input, in order."""

    nodes: list
    input_shape: tuple[int, ...]
    device: torch.device = torch.device("cpu")

    @classmethod
    def of(cls, graph, device=None) -> "SeqNet":
        """The chain of ``graph`` in float64 on ``device`` (None: ``hdsl.bounds.default_device()``)."""
        from hdsl.bounds import default_device

        device = torch.device(device) if device is not None else default_device()
        g = graph.to(device, DTYPE)
        prev = g.input_name
        nodes = []
        for node in g.nodes[1:]:
            if node.op not in _SEQ_OPS:
                raise Unsupported(f"operator {node.op!r} is not supported by the disjunction bounds")
            if tuple(node.inputs) != (prev,):
                raise Unsupported("the graph is not a chain (branches or merges)")
            nodes.append(node)
            prev = node.name
        if prev != g.output:
            raise Unsupported("the output is not the last node")
        return cls(nodes, tuple(g.input_shape), device)


def _apply(node, x: torch.Tensor) -> torch.Tensor:
    return node.apply([x])


def _linear_part(node, x: torch.Tensor) -> torch.Tensor:
    """The op without its bias/shift (for |W| products and the backward map)."""
    p = node.params
    if node.op == "linear":
        return torch.nn.functional.linear(x, p["weight"])
    if node.op == "conv":
        from hdsl.nn.graph import _conv

        return _conv(node, [x], bias=None)
    if node.op == "affine":
        return x * p["scale"] if p.get("scale") is not None else x
    return _apply(node, x)  # reshape, transpose, avgpool: linear already


def _abs_part(node, x: torch.Tensor) -> torch.Tensor:
    """``|A| x`` for the op's linear part ``A`` (x >= 0)."""
    p = node.params
    if node.op == "linear":
        return torch.nn.functional.linear(x, p["weight"].abs())
    if node.op == "conv":
        from hdsl.nn.graph import _conv

        return _conv(node, [x], weight=p["weight"].abs(), bias=None)
    if node.op == "affine":
        return x * p["scale"].abs() if p.get("scale") is not None else x
    return _apply(node, x)


def _fan_in(node) -> int:
    p = node.params
    if node.op == "linear":
        return int(p["weight"].shape[1])
    if node.op == "conv":
        return int(np.prod(p["weight"].shape[1:]))
    if node.op == "avgpool":
        return int(np.prod(p["kernel"]))
    if node.op == "affine":
        return 1
    return 0  # reshape/transpose: exact


class Bounder:
    """CROWN on one box, with the state needed to bound many spec rows cheaply."""

    def __init__(self, net: SeqNet, lo: np.ndarray, hi: np.ndarray, chunk: int = 2048, arithmetic: str = "float32"):
        self.net = net
        self.chunk = chunk
        self.arithmetic = arithmetic
        self.unit = unit_of(arithmetic)
        shape = net.input_shape
        self.device = dev = net.device
        self.lo = torch.as_tensor(np.asarray(lo, np.float64), device=dev).reshape(1, *shape)
        self.hi = torch.as_tensor(np.asarray(hi, np.float64), device=dev).reshape(1, *shape)
        # record each node's input shape (the backward pass needs it)
        s = shape
        for node in net.nodes:
            node.params["_in_shape"] = tuple(s)
            s = tuple(node.shape)
        self._pair_lb: torch.Tensor | None = None
        self.pre: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # relu index -> (l, u) of its input
        self.ibp: list[tuple[torch.Tensor, torch.Tensor]] = []  # bounds of each node's output
        self.delta: dict[int, torch.Tensor] = {}  # float32 rounding bound of each affine node's output
        self._compute_intermediate()
        n_out = int(np.prod(net.nodes[-1].shape))
        # the bounds already hold for the float32 (or real) network; this covers the float64 arithmetic
        self.out_err = torch.full((n_out,), 1e-9, dtype=DTYPE, device=dev)

    # ---- intermediate bounds

    def _compute_intermediate(self) -> None:
        """Bounds of every node of the *float32* network: each affine op adds a rounding term
        ``|δ_i| <= γ_{n+1} (|A| |input| + |bias|)`` (Higham), which the backward pass carries."""
        l, u = self.lo, self.hi
        for i, node in enumerate(self.net.nodes):
            if node.op == "relu":
                if i > 0 and not self._first_affine_block(i):
                    cl, cu = self._crown_node(i - 1)
                    l, u = torch.maximum(l, cl), torch.minimum(u, cu)
                    self.ibp[i - 1] = (l, u)
                self.pre[i] = (l, u)
                l, u = l.clamp(min=0), u.clamp(min=0)
            else:
                mag = torch.maximum(l.abs(), u.abs())
                self.delta[i] = _rounding(node, mag, self.unit)
                c, r = (l + u) / 2, (u - l) / 2
                cc = _apply(node, c)
                rr = _abs_part(node, r) + self.delta[i]
                l, u = cc - rr, cc + rr
            self.ibp.append((l, u))

    def _first_affine_block(self, i: int) -> bool:
        """True when nodes[0:i] contain no ReLU: interval arithmetic is exact for one affine map
        composed of several affine ops only if it is a single op; be conservative."""
        return all(n.op != "relu" for n in self.net.nodes[:i]) and sum(
            n.op in ("linear", "conv", "avgpool") for n in self.net.nodes[:i]) <= 1

    def _crown_node(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """CROWN lower/upper bounds of every output of node ``j`` (rows in chunks)."""
        shape = tuple(self.net.nodes[j].shape)
        n = int(np.prod(shape))
        lows, ups = [], []
        for s in range(0, n, self.chunk):
            e = min(n, s + self.chunk)
            C = torch.zeros((e - s, n), dtype=DTYPE, device=self.device)
            C[torch.arange(e - s, device=self.device), torch.arange(s, e, device=self.device)] = 1.0
            C = C.reshape(e - s, *shape)
            lows.append(self.backward(C, j, None))
            ups.append(-self.backward(-C, j, None))
        return torch.cat(lows).reshape(1, *shape), torch.cat(ups).reshape(1, *shape)

    # ---- the backward pass

    def backward(self, C: torch.Tensor, last: int, alpha: dict | None) -> torch.Tensor:
        """Lower bound of ``C · out(node last)`` over the box, one per row of ``C``.

        ``alpha[i]`` (rows × neurons of ReLU ``i``) are lower slopes in [0, 1];
        missing ones use the adaptive choice (1 when ``u > -l``, else 0).
        """
        lam = C
        const = torch.zeros(C.shape[0], dtype=DTYPE, device=C.device)
        for i in range(last, -1, -1):
            node = self.net.nodes[i]
            if node.op == "relu":
                l, u = self.pre[i]
                l, u = l[0], u[0]
                active = l >= 0
                dead = u <= 0
                unstable = ~(active | dead)
                denom = torch.where(unstable, u - l, torch.ones_like(u))
                s_up = torch.where(unstable, u / denom, active.to(DTYPE))
                b_up = torch.where(unstable, -s_up * l, torch.zeros_like(l))
                if alpha is not None and i in alpha:
                    a_lo = torch.where(unstable, alpha[i].reshape(-1, *l.shape), active.to(DTYPE))
                else:
                    a_lo = torch.where(unstable, (u > -l).to(DTYPE), active.to(DTYPE))
                pos, neg = lam.clamp(min=0), lam.clamp(max=0)
                const = const + (neg * b_up).flatten(1).sum(1)
                lam = pos * a_lo + neg * s_up
            else:
                in_shape = node.params["_in_shape"]
                zero = torch.zeros((1,) + tuple(in_shape), dtype=DTYPE, device=lam.device)
                bias = _apply(node, zero)[0] - _linear_part(node, zero)[0]
                const = const + (lam * bias).flatten(1).sum(1)
                if i in self.delta:
                    const = const - (lam.abs() * self.delta[i][0]).flatten(1).sum(1)
                lam = _vjp(node, lam, in_shape)
        c = (self.lo + self.hi) / 2
        r = (self.hi - self.lo) / 2
        return const + (lam * c).flatten(1).sum(1) - (lam.abs() * r).flatten(1).sum(1)

    def lower(self, C: torch.Tensor, alpha: dict | None = None) -> torch.Tensor:
        """Lower bounds of ``C @ y`` (C: rows × outputs)."""
        last = len(self.net.nodes) - 1
        return self.backward(C.reshape(C.shape[0], *self.net.nodes[last].shape), last, alpha)

def _rounding(node, mag: torch.Tensor, unit: float = U32) -> torch.Tensor:
    """Bound on ``|fl32(op(x)) - op(x)|`` for inputs with ``|x| <= mag`` (any summation order);
    with ``unit = U_REAL``, on the float64 rounding of the bound computation only."""
    if node.op in ("reshape", "transpose"):
        return torch.zeros_like(_apply(node, mag))
    zero = torch.zeros_like(mag)
    bias = (_apply(node, zero) - _linear_part(node, zero)).abs()
    g = _gamma(2, unit) if node.op == "affine" else _gamma(_fan_in(node) + 1, unit)
    return (g * (_abs_part(node, mag) + bias)) * (1 + 1e-6) + 1e-30


def _vjp(node, lam: torch.Tensor, in_shape) -> torch.Tensor:
    """``lam · A`` for the op's linear part ``A`` (rows of lam independent)."""
    p = node.params
    if node.op == "linear":
        return lam @ p["weight"]
    if node.op == "affine":
        return lam * p["scale"] if p.get("scale") is not None else lam
    if node.op == "reshape":
        return lam.reshape(lam.shape[0], *in_shape)
    if node.op == "transpose":
        perm = [a + 1 for a in p["perm"]]
        inv = [0] * (len(perm) + 1)
        for dst, src in enumerate([0] + perm):
            inv[src] = dst
        return lam.permute(*inv)
    x = torch.zeros((lam.shape[0],) + tuple(in_shape), dtype=DTYPE, device=lam.device, requires_grad=True)
    with torch.enable_grad():
        y = _linear_part(node, x)
        (g,) = torch.autograd.grad(y, x, grad_outputs=lam, create_graph=lam.requires_grad)
    return g


# --------------------------------------------------------------------------- simplex


def project_simplex(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row onto the simplex over its ``mask`` entries."""
    big = torch.where(mask, v, torch.full_like(v, -1e30))
    s, _ = torch.sort(big, dim=1, descending=True)
    cs = s.cumsum(1) - 1
    k = torch.arange(1, v.shape[1] + 1, dtype=v.dtype, device=v.device)
    cond = (s - cs / k > 0) & (s > -1e29)
    rho = cond.to(torch.int64).cumsum(1).argmax(1, keepdim=True)
    theta = cs.gather(1, rho) / (rho + 1).to(v.dtype)
    return torch.where(mask, (v - theta).clamp(min=0), torch.zeros_like(v))


# --------------------------------------------------------------------------- levels


@dataclass(frozen=True)
class LevelBound:
    """Outcome for one set ``S``: the outside classes still open and the certified margin.

    ``stage`` is "pairs" when the per-pair witnesses closed every outside class,
    "lambda" when λ was needed for at least one; ``margin`` is the smallest
    certified lower bound (after the float32 slack) over the closed classes.
    """

    open_outside: tuple[int, ...]
    stage: str
    margin: float | None
    pair_closed: int = 0
    lambda_closed: int = 0


def pair_matrix(n: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """All ``y_j - y_k`` rows (j != k) and their (j, k)."""
    pairs = [(j, k) for j in range(n) for k in range(n) if j != k]
    C = np.zeros((len(pairs), n))
    for r, (j, k) in enumerate(pairs):
        C[r, j], C[r, k] = 1.0, -1.0
    return C, pairs


def level_bounds(graph, lo, hi, sets: Sequence[tuple[Sequence[int], Sequence[int]]], *, use_pairs: bool = True,
                 use_lambda: bool = True, lambda_steps: int = 25, optimize_alpha: bool = True,
                 stop_when_proved: bool = True, bounder: Bounder | None = None,
                 arithmetic: str = "float32") -> list[LevelBound]:
    """Decide ``argmax in S`` for several ``(S, outside)`` over one box with one CROWN pass.

    ``arithmetic`` applies when no ``bounder`` is given (a bounder carries its own).
    Raises ``Unsupported`` for graphs that are not chains of affine ops and ReLUs.
    """
    b = bounder or Bounder(SeqNet.of(graph), lo, hi, arithmetic=arithmetic)
    n = int(np.prod(b.net.nodes[-1].shape))
    err = b.out_err
    C, pairs = pair_matrix(n)
    lb = getattr(b, "_pair_lb", None)
    if lb is None:  # one pass over all pair differences serves every set on this box
        with torch.no_grad():
            lb = b._pair_lb = b.lower(torch.as_tensor(C, device=b.device))
    row = {p: r for r, p in enumerate(pairs)}
    # certified value of each pair row after the float32 slack
    js, ks = (torch.as_tensor(col, device=b.device) for col in zip(*pairs))
    cert = (lb - (err[js] + err[ks])).cpu().numpy()
    out: list[LevelBound] = []
    todo: list[tuple[int, int, tuple[int, ...], int]] = []  # (set idx, k, S, best witness j)
    per_set: list[dict] = []
    for si, (S, outside) in enumerate(sets):
        S = tuple(S)
        info = {"open": [], "margin": math.inf, "pairs": 0, "lambda": 0}
        for k in outside:
            vals = [cert[row[(j, k)]] for j in S]
            best = int(np.argmax(vals))
            if use_pairs and vals[best] > 0:
                info["margin"] = min(info["margin"], float(vals[best]))
                info["pairs"] += 1
            else:
                info["open"].append(k)
                todo.append((si, k, S, best))
        per_set.append(info)
    if use_lambda and todo:
        unique = list({(k, S): (si, k, S, j) for si, k, S, j in todo}.values())  # levels may share a set
        solved = dict(zip([(k, S) for _, k, S, _ in unique],
                          optimise_lambda(b, unique, n, lambda_steps, optimize_alpha, stop_when_proved)))
        results = [solved[(k, S)] for _, k, S, _ in todo]
        for (si, k, S, _), val in zip(todo, results):
            if val > 0:
                info = per_set[si]
                info["open"].remove(k)
                info["margin"] = min(info["margin"], float(val))
                info["lambda"] += 1
    for info in per_set:
        stage = "lambda" if info["lambda"] else "pairs"
        margin = None if info["open"] or math.isinf(info["margin"]) else info["margin"]
        out.append(LevelBound(tuple(info["open"]), stage, margin, info["pairs"], info["lambda"]))
    return out


def optimise_lambda(b: Bounder, todo, n: int, steps: int, optimize_alpha: bool,
                    stop_when_proved: bool = True) -> list[float]:
    """Best certified ``LB(Σ λ_j (y_j - y_k)) - slack`` per disjunct, by projected gradient ascent.

    ``todo`` rows are ``(_, k, S, best_j)``; λ starts at the vertex ``best_j``.
    """
    P = len(todo)
    m = max(len(S) for _, _, S, _ in todo)
    mask_np = np.zeros((P, m), dtype=bool)
    idx_np = np.zeros((P, m), dtype=np.int64)
    lam_np = np.zeros((P, m))
    for p, (_, k, S, j) in enumerate(todo):
        mask_np[p, : len(S)] = True
        idx_np[p, : len(S)] = S
        lam_np[p, j] = 1.0
    dev = b.device
    mask, idx, lam = (torch.as_tensor(a, device=dev) for a in (mask_np, idx_np, lam_np))
    ks = torch.as_tensor([k for _, k, _, _ in todo], device=dev)
    rows_p = torch.arange(P, device=dev)
    err = b.out_err

    def rows(lam):
        C = torch.zeros((P, n), dtype=DTYPE, device=dev)
        C = C.scatter_add(1, idx, lam * mask)
        C[rows_p, ks] -= 1.0
        return C

    def slack(lam):
        return (lam * err[idx] * mask).sum(1) + err[ks]

    alpha = None
    if optimize_alpha:
        alpha = {}
        for i, (l, u) in b.pre.items():
            l, u = l.reshape(-1), u.reshape(-1)
            alpha[i] = (u > -l).to(DTYPE).expand(P, -1).clone().requires_grad_(True)
    best = torch.full((P,), -math.inf, dtype=DTYPE, device=dev)
    lam_best = lam.clone()
    g_best = torch.zeros_like(lam)
    alpha_best = {i: a.detach().clone() for i, a in alpha.items()} if alpha else None
    ga_best = {i: torch.zeros_like(a) for i, a in alpha.items()} if alpha else None
    step = torch.full((P, 1), 0.5, dtype=DTYPE, device=dev)
    astep = torch.full((P, 1), 0.25, dtype=DTYPE, device=dev)
    lam = lam.clone().requires_grad_(True)
    history: list[float] = []
    patience = 6
    for it in range(max(1, steps)):
        val = b.lower(rows(lam), alpha) - slack(lam)
        params = [lam] + (list(alpha.values()) if alpha else [])
        grads = torch.autograd.grad(val.sum(), params, allow_unused=True)
        with torch.no_grad():
            v = val.detach()
            better = v > best
            best = torch.where(better, v, best)
            g = grads[0] if grads[0] is not None else torch.zeros_like(lam)
            lam_best = torch.where(better[:, None], lam.detach(), lam_best)
            g_best = torch.where(better[:, None], g, g_best)
            # keep the step after an improvement, halve it after a failure (nonsmooth ascent)
            step = torch.where(better[:, None], step, step * 0.5)
            astep = torch.where(better[:, None], astep, astep * 0.5)
            if alpha:
                for (i, a), ga in zip(list(alpha.items()), grads[1:]):
                    ga = ga if ga is not None else torch.zeros_like(a)
                    alpha_best[i] = torch.where(better[:, None], a.detach(), alpha_best[i])
                    ga_best[i] = torch.where(better[:, None], ga, ga_best[i])
        history.append(float(best.clamp(max=0).sum()) if stop_when_proved else float(best.sum()))
        stalled = len(history) > patience and history[-1] <= history[-1 - patience] + 1e-9
        if (stop_when_proved and bool((best > 0).all())) or it == steps - 1 or stalled:
            break
        with torch.no_grad():
            gn = g_best.norm(dim=1, keepdim=True).clamp(min=1e-12)
            lam = project_simplex(lam_best + step * g_best / gn, mask).requires_grad_(True)
            if alpha:
                alpha = {i: (alpha_best[i] + astep * ga_best[i].sign()).clamp(0, 1).requires_grad_(True)
                         for i in alpha}
    return best.cpu().tolist()
