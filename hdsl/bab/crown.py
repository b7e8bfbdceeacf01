"""Batched CROWN over many input boxes, with optional ReLU split constraints.

Branch and bound needs three things the generic bound propagator does not
give in one call: intermediate (pre-activation) bounds per box, the linear
coefficients of each spec row on the input (for the split heuristic and for a
candidate counterexample), and bounds *under ReLU split constraints*. This is
CROWN (Zhang et al., 2018) with adaptive lower slopes, in float64 torch,
batched over boxes ``(B, n_in)``.

A split neuron fixed active (``z >= 0``) or inactive (``z <= 0``) has its
pre-activation interval clamped to ``[max(l, 0), u]`` or ``[l, min(u, 0)]``;
on that sub-domain its ReLU is linear, so the bounds remain valid for every
input of the box that satisfies the splits (an over-approximation of the
sub-domain: sound, not tight; the exact leaves are decided by Z3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hdsl.exact.net import PwlNet

DTYPE = torch.float64


@dataclass
class TorchNet:
    """The network's float64 parameters on one device; the searches keep their domains in numpy
    and move each batch here with ``tensor`` and back with ``to_numpy``."""

    W: list[torch.Tensor]
    b: list[torch.Tensor]
    relu: list[bool]
    device: torch.device = torch.device("cpu")

    @classmethod
    def of(cls, net: PwlNet, device=None) -> "TorchNet":
        device = torch.device(device if device is not None else "cpu")
        return cls(
            [torch.as_tensor(np.asarray(l.weight, dtype=np.float64), device=device) for l in net.layers],
            [torch.as_tensor(np.asarray(l.bias, dtype=np.float64), device=device) for l in net.layers],
            [l.relu for l in net.layers],
            device,
        )

    def tensor(self, a, dtype=DTYPE) -> torch.Tensor:
        """``a`` (numpy or torch) as a tensor on this net's device."""
        return torch.as_tensor(a, dtype=dtype, device=self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for W, b, r in zip(self.W, self.b, self.relu):
            h = h @ W.T + b
            if r:
                h = h.clamp(min=0)
        return h


@dataclass
class CrownOut:
    row_lb: torch.Tensor  # (B, R) lower bounds of the spec rows (safety values)
    coef: torch.Tensor  # (B, R, n_in) their linear coefficients on the input
    pre: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (B, n_l) pre-activation bounds
    lam: list[torch.Tensor | None]  # per layer: (B, R, n_l) row coefficients at relu inputs (relu layers)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a numpy array, from any device."""
    return t.detach().cpu().numpy()


def _relax(l: torch.Tensor, u: torch.Tensor):
    """Upper slope/intercept and lower slope of the ReLU relaxation on [l, u]."""
    active = l >= 0
    inactive = u <= 0
    unstable = ~(active | inactive)
    denom = torch.where(unstable, u - l, torch.ones_like(u))
    s_up = torch.where(unstable, u / denom, active.to(u.dtype))
    t_up = torch.where(unstable, -s_up * l, torch.zeros_like(u))
    s_lo = torch.where(unstable, (u > -l).to(u.dtype), active.to(u.dtype))
    return s_up, t_up, s_lo


def _clamp(l, u, fixed):
    if fixed is None:
        return l, u
    return torch.where(fixed > 0, l.clamp(min=0), l), torch.where(fixed < 0, u.clamp(max=0), u)


def _backward(net: TorchNet, lam: torch.Tensor, k: int, pre, lo, hi, record: list | None = None,
              alpha: dict | None = None, beta: dict | None = None, sign: dict | None = None):
    """Lower bound of ``lam . z_k`` over the box; ``lam`` is (B, R, n_k).

    ``alpha[j]`` (B, R, n_j) replaces the adaptive lower slopes of layer ``j``'s
    unstable ReLUs (any value in [0, 1] is sound); ``beta[j]``, ``sign[j]`` add
    the split constraints ``sign * z_j >= 0`` dualised (see ``hdsl.bab.beta``).
    """
    bias = lam @ net.b[k]
    lam = lam @ net.W[k]
    for j in range(k - 1, -1, -1):
        if net.relu[j]:
            if record is not None:
                record[j] = lam
            l, u = pre[j]
            s_up, t_up, s_lo = _relax(l, u)
            lower = s_lo.unsqueeze(1)
            if alpha is not None and j in alpha:
                lower = torch.where(((l < 0) & (u > 0)).unsqueeze(1), alpha[j], lower)
            pos, neg = lam.clamp(min=0), lam.clamp(max=0)
            bias = bias + (neg * t_up.unsqueeze(1)).sum(-1)
            lam = pos * lower + neg * s_up.unsqueeze(1)
            if beta is not None and beta.get(j) is not None:
                lam = lam - beta[j] * sign[j]
        bias = bias + lam @ net.b[j]
        lam = lam @ net.W[j]
    lb = bias + (lam.clamp(min=0) * lo.unsqueeze(1)).sum(-1) + (lam.clamp(max=0) * hi.unsqueeze(1)).sum(-1)
    return lb, lam


def forward_bounds(net: TorchNet, lo: torch.Tensor, hi: torch.Tensor, fixed=None, prior=None):
    """Pre-activation bounds by forward symbolic propagation (Neurify/DeepPoly without back-substitution).

    Each neuron carries a lower and an upper linear function of the input; with
    few inputs (ACAS Xu has 5) this costs ``O(n^2 n_in)`` per layer instead of
    CROWN's ``O(L n^3)``, at some loss of tightness on deep networks.
    """
    B, n_in = lo.shape
    c, r = (lo + hi) / 2, (hi - lo) / 2
    # Linear functions stored as (coef (B, n, n_in), const (B, n)); input: identity.
    eye = torch.eye(n_in, dtype=DTYPE, device=lo.device).expand(B, n_in, n_in)
    Lc, Lk = eye, torch.zeros(B, n_in, dtype=DTYPE, device=lo.device)
    Uc, Uk = eye, Lk
    pre = []
    for k in range(len(net.W)):
        W, b = net.W[k], net.b[k]
        Wp, Wn = W.clamp(min=0), W.clamp(max=0)
        # einsum, not ``Wp @ Lc``: a 2-D matrix times a batch is broadcast into B small products (4x slower)
        nLc = torch.einsum("ij,bjk->bik", Wp, Lc) + torch.einsum("ij,bjk->bik", Wn, Uc)
        nUc = torch.einsum("ij,bjk->bik", Wp, Uc) + torch.einsum("ij,bjk->bik", Wn, Lc)
        nLk = Lk @ Wp.T + Uk @ Wn.T + b
        nUk = Uk @ Wp.T + Lk @ Wn.T + b
        l = nLk + torch.einsum("bik,bk->bi", nLc, c) - torch.einsum("bik,bk->bi", nLc.abs(), r)
        u = nUk + torch.einsum("bik,bk->bi", nUc, c) + torch.einsum("bik,bk->bi", nUc.abs(), r)
        if prior is not None:
            l, u = torch.maximum(l, prior[k][0]), torch.minimum(u, prior[k][1])
        if net.relu[k]:
            l, u = _clamp(l, u, fixed[k] if fixed is not None else None)
            s_up, t_up, s_lo = _relax(l, u)
            Lc, Lk = nLc * s_lo.unsqueeze(-1), nLk * s_lo
            Uc, Uk = nUc * s_up.unsqueeze(-1), nUk * s_up + t_up
        else:
            Lc, Lk, Uc, Uk = nLc, nLk, nUc, nUk
        pre.append((l, u))
    return pre


def _tighten_unstable(net: TorchNet, k: int, pre, lo, hi, l: torch.Tensor, u: torch.Tensor):
    """Valid bounds ``(l, u)`` of layer ``k`` with CROWN's intersected in at each box's unstable
    neurons (new tensors; ``pre`` holds the layers before ``k``).

    One back-substitution per (box, unstable neuron) pair, each with its own box's relaxations:
    a batch's union of unstable neurons is about twice the largest per-box count and five times
    the mean on ACAS Xu, and a stable neuron's relaxation does not depend on its bounds.
    """
    l, u = l.clone(), u.clone()
    box, neuron = ((l < 0) & (u > 0)).nonzero(as_tuple=True)
    if box.numel():
        n = net.W[k].shape[0]
        pairs = torch.arange(box.numel(), device=lo.device)
        lam = torch.zeros(box.numel(), 2, n, dtype=DTYPE, device=lo.device)
        lam[pairs, 0, neuron] = 1.0
        lam[pairs, 1, neuron] = -1.0
        lb, _ = _backward(net, lam, k, [(pl[box], pu[box]) for pl, pu in pre], lo[box], hi[box])
        l[box, neuron] = torch.maximum(l[box, neuron], lb[:, 0])
        u[box, neuron] = torch.minimum(u[box, neuron], -lb[:, 1])
    return l, u


def crown(
    net: TorchNet,
    lo: torch.Tensor,
    hi: torch.Tensor,
    C: torch.Tensor,
    d: torch.Tensor,
    fixed: list[torch.Tensor | None] | None = None,
    reuse: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    start: int = 0,
    intermediate: str = "crown",
    prior: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> CrownOut:
    """Bounds of the rows ``C y + d`` over boxes ``[lo, hi]`` (B, n_in).

    ``fixed[l]`` (B, n_l) in {-1, 0, +1} are ReLU splits; ``reuse`` gives
    already-computed (unclamped-by-new-splits) pre-activation bounds of layers
    ``< start``, valid for these boxes. ``prior`` are pre-activation bounds
    known to hold on the boxes (a parent box's), intersected into every layer.
    ``intermediate`` picks how the pre-activation bounds are computed:
    ``"crown"`` (backward, tight, ``O(L n^3)``), ``"forward"`` (symbolic
    forward, cheap for few inputs) or ``"hybrid"`` (forward, then CROWN for the
    neurons it leaves unstable).
    """
    L = len(net.W)
    pre: list[tuple[torch.Tensor, torch.Tensor]] = []
    fwd = None
    if intermediate == "forward":
        pre = forward_bounds(net, lo, hi, fixed, prior)
    elif intermediate == "hybrid":
        fwd = forward_bounds(net, lo, hi, fixed, prior)
    for k in range(len(pre), L):
        if reuse is not None and k < start:
            l, u = reuse[k]
        elif k == 0:
            W = net.W[0]
            c = (lo + hi) / 2
            r = (hi - lo) / 2
            mid = c @ W.T + net.b[0]
            rad = r @ W.abs().T
            l, u = mid - rad, mid + rad
        elif fwd is not None:
            # Hybrid: forward bounds everywhere, CROWN only for neurons some box finds unstable.
            l, u = _tighten_unstable(net, k, pre, lo, hi, *fwd[k]) if net.relu[k] else fwd[k]
        elif reuse is not None and k < len(reuse) and net.relu[k]:
            # Valid bounds are known: a neuron stable in them stays stable, and a stable ReLU's
            # relaxation does not depend on its bounds, so only the unstable ones are recomputed.
            l, u = _tighten_unstable(net, k, pre, lo, hi, *reuse[k])
        else:
            n = net.W[k].shape[0]
            eye = torch.eye(n, dtype=DTYPE, device=lo.device)
            lam = torch.cat([eye, -eye]).unsqueeze(0).expand(lo.shape[0], 2 * n, n)
            lb, _ = _backward(net, lam, k, pre, lo, hi)
            l, u = lb[:, :n], -lb[:, n:]
            if reuse is not None and k < len(reuse):
                l, u = torch.maximum(l, reuse[k][0]), torch.minimum(u, reuse[k][1])
        if prior is not None:
            l, u = torch.maximum(l, prior[k][0]), torch.minimum(u, prior[k][1])
        if net.relu[k]:
            l, u = _clamp(l, u, fixed[k] if fixed is not None else None)
        pre.append((l, u))
    record: list = [None] * L
    lam = C.unsqueeze(0).expand(lo.shape[0], *C.shape) if C.dim() == 2 else C
    lb, coef = _backward(net, lam, L - 1, pre, lo, hi, record)
    return CrownOut(lb + d, coef, pre, record)

