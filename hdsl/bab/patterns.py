"""Deciding a box with few unstable ReLUs by enumerating their activation patterns.

With every ReLU's state fixed the network is affine, so on a box with ``k``
unstable ReLUs the unsafe set splits into ``2^k`` polyhedra: the box, the
pattern's sign constraints ``s_t z_t(x) >= 0`` and the unsafe conjunction
``safety_r(x) <= slack_r``. Each is empty iff a Farkas certificate exists:
``λ`` in the simplex and ``μ >= 0`` with

    min over the box of  sum_r λ_r (safety_r(x) - slack_r) - sum_t μ_t s_t z_t(x)  >  0,

because at a point of the polyhedron the bracket is ``<= 0``. Every ``(λ, μ)``
gives a sound bound (the minimum of an affine function over a box is exact),
and the best one is the LP dual, so no relaxation gap is left, only the
optimiser's; we find it with Adam, batched over boxes × patterns, starting at
the best single row with ``μ = 0``.

Why: on ACAS Xu 3_3 property 2 the boxes that reach Z3 have 4-5 unstable ReLUs,
a true margin of 0.001-0.003 and a CROWN gap of about 0.01; Z3 needs about
0.1 s a box and there are thousands. This is the per-pattern LP of nnenum, in
Lagrangian form so that it runs as tensor arithmetic. Boxes it cannot close
still go to Z3 or are split further.
"""

from __future__ import annotations

import numpy as np
import torch

from hdsl.exact.net import PwlNet
from hdsl.exact.spec import SpecRows

#: Float64 allowance per unit of magnitude, far above the rounding error of composing a few
#: hundred float64 products (about 1e-14 relative).
_F64_ALLOWANCE = 1e-10


def _pattern_maps(net: PwlNet, pre_np, boxes: np.ndarray, max_pairs: int):
    """The affine network of every (box, pattern) pair, and each pattern's sign constraints.

    Returns ``(owner, M, c, G, g, Mabs, cabs, Gmag)``: pair ``n`` belongs to box
    ``owner[n]``; its outputs are ``M[n] x + c[n]``; its constraints
    ``G[n, t] x + g[n, t] >= 0`` (already multiplied by the pattern's sign, zero
    rows where a box has fewer unstable ReLUs); ``Mabs``, ``cabs`` and ``Gmag``
    are the same compositions in absolute values, which bound the float64
    rounding. None when there are more than ``max_pairs`` pairs.
    """
    relu = [k for k, layer in enumerate(net.layers) if layer.relu]
    slots = []  # per box: list of (layer, neuron)
    for b in boxes:
        s = []
        for k in relu:
            l, u = pre_np[k][0][b], pre_np[k][1][b]
            s += [(k, int(j)) for j in np.nonzero((l < 0) & (u > 0))[0]]
        slots.append(s)
    counts = np.array([1 << len(s) for s in slots])
    if counts.sum() > max_pairs:
        return None
    kmax = max((len(s) for s in slots), default=0)
    N = int(counts.sum())
    owner = np.repeat(np.arange(len(boxes)), counts)
    slot_layer = np.full((N, max(kmax, 1)), -1)
    slot_j = np.zeros((N, max(kmax, 1)), dtype=int)
    sign = np.zeros((N, max(kmax, 1)))
    masks = {k: np.zeros((N, net.layers[k].weight.shape[0])) for k in relu}
    start = 0
    for bi, (b, s) in enumerate(zip(boxes, slots)):
        P = counts[bi]
        rows = slice(start, start + P)
        for k in relu:
            masks[k][rows] = (pre_np[k][0][b] >= 0)[None, :]
        bits = (np.arange(P)[:, None] >> np.arange(len(s))[None, :]) & 1
        for t, (k, j) in enumerate(s):
            masks[k][rows, j] = bits[:, t]
            slot_layer[rows, t] = k
            slot_j[rows, t] = j
            sign[rows, t] = np.where(bits[:, t] == 1, 1.0, -1.0)
        start += P
    n_in = net.input_size
    M = torch.eye(n_in, dtype=torch.float64).expand(N, n_in, n_in)
    c = torch.zeros(N, n_in, dtype=torch.float64)
    Mabs, cabs = M.clone(), c.clone()
    G = torch.zeros(N, max(kmax, 1), n_in, dtype=torch.float64)
    g = torch.zeros(N, max(kmax, 1), dtype=torch.float64)
    Gmag = torch.zeros(N, max(kmax, 1), dtype=torch.float64)
    for k, layer in enumerate(net.layers):
        W = torch.as_tensor(np.asarray(layer.weight, dtype=np.float64))
        bias = torch.as_tensor(np.asarray(layer.bias, dtype=np.float64))
        M = torch.einsum("oi,nik->nok", W, M)
        c = c @ W.T + bias
        Mabs = torch.einsum("oi,nik->nok", W.abs(), Mabs)
        cabs = cabs @ W.abs().T + bias.abs()
        if not layer.relu:
            continue
        for t in range(slot_layer.shape[1]):
            sel = torch.as_tensor(np.nonzero(slot_layer[:, t] == k)[0])
            if len(sel) == 0:
                continue
            j = torch.as_tensor(slot_j[sel.numpy(), t])
            s = torch.as_tensor(sign[sel.numpy(), t])
            G[sel, t] = s[:, None] * M[sel, j]
            g[sel, t] = s * c[sel, j]
            Gmag[sel, t] = Mabs[sel, j].sum(-1) + cabs[sel, j]
        m = torch.as_tensor(masks[k])
        M, c = M * m[:, :, None], c * m
        Mabs, cabs = Mabs * m[:, :, None], cabs * m
    return owner, M, c, G, g, Mabs, cabs, Gmag


def _farkas(a, e, amag, emag, G, g, Gmag, lo, hi, xmax, start_row, iters: int) -> torch.Tensor:
    """The best certificate value found per pair by Adam over ``λ = softmax(θ)`` and ``μ >= 0``.

    ``a``/``e`` (N, m, n)/(N, m) the conjunction's rows (slack already
    subtracted), ``G``/``g`` (N, t, n)/(N, t) the pattern's constraints (``>= 0``),
    ``*mag`` their absolute-value compositions for the float64 allowance. The
    search stops early once every pair is positive.
    """
    theta = torch.zeros(e.shape, dtype=torch.float64)
    theta[torch.arange(len(e)), start_row] = 4.0  # start near the best single row
    theta.requires_grad_(True)
    mu = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
    mu_lr = 0.1 * float(a.abs().sum(-1).mean()) + 1e-12  # μ in units of the rows' coefficients
    opt = torch.optim.Adam([{"params": [theta], "lr": 0.1}, {"params": [mu], "lr": mu_lr}])
    best = torch.full((len(e),), -torch.inf, dtype=torch.float64)

    def bound(lam, mu_):
        w = torch.einsum("nm,nmi->ni", lam, a) - torch.einsum("nt,nti->ni", mu_, G)
        val = (lam * e).sum(1) - (mu_ * g).sum(1) + _box_min(w, lo, hi)
        mag = torch.einsum("nm,nmi->ni", lam, amag).mul(xmax).sum(1) + (lam * emag).sum(1) \
            + (mu_ * Gmag).sum(1) * (1 + xmax.sum(1))
        return val - _F64_ALLOWANCE * (mag + 1.0)

    for _ in range(iters):
        val = bound(torch.softmax(theta, dim=1), mu)
        with torch.no_grad():
            best = torch.maximum(best, val)
            if bool((best > 0).all()):
                break
        opt.zero_grad()
        (-val.sum()).backward()
        opt.step()
        with torch.no_grad():
            mu.clamp_(min=0)
    with torch.no_grad():
        return torch.maximum(best, bound(torch.softmax(theta, dim=1), mu))


def _box_min(w: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, w * lo, w * hi).sum(-1)


def prove_by_patterns(
    net: PwlNet,
    rows: SpecRows,
    lo: np.ndarray,
    hi: np.ndarray,
    pre_np,
    excl: np.ndarray,
    slack: np.ndarray,
    candidates: np.ndarray,
    *,
    iters: int = 60,
    max_pairs: int = 16384,
) -> np.ndarray:
    """Which of the ``candidates`` boxes (indices) are proved: every open disjunct, every pattern excluded.

    ``lo``/``hi`` (B, n), ``pre_np`` per layer ``(B, width)`` bounds valid on
    each box, ``excl`` (B, K) disjuncts already excluded, ``slack`` (B, R) the
    float32 slack of each row. Returns a bool array over all B boxes. Runs on the CPU
    whatever device the search uses: the LPs are small and built from the search's numpy arrays.
    """
    with torch.device("cpu"):
        return _prove_by_patterns(net, rows, lo, hi, pre_np, excl, slack, candidates, iters, max_pairs)


def _prove_by_patterns(net, rows, lo, hi, pre_np, excl, slack, candidates, iters: int, max_pairs: int) -> np.ndarray:
    proved = np.zeros(len(lo), dtype=bool)
    candidates = np.asarray(candidates, dtype=int)
    if len(candidates) == 0 or rows.A.shape[0] == 0:
        return proved
    maps = _pattern_maps(net, pre_np, candidates, max_pairs)
    if maps is None:  # too many patterns in one go: halve the batch
        half = len(candidates) // 2
        if half == 0:
            return proved
        for part in (candidates[:half], candidates[half:]):
            proved |= prove_by_patterns(net, rows, lo, hi, pre_np, excl, slack, part, iters=iters,
                                        max_pairs=max_pairs)
        return proved
    owner, M, c, G, g, Mabs, cabs, Gmag = maps
    box = candidates[owner]
    lo_t = torch.as_tensor(lo[box], dtype=torch.float64)
    hi_t = torch.as_tensor(hi[box], dtype=torch.float64)
    xmax = torch.maximum(lo_t.abs(), hi_t.abs())
    A = torch.as_tensor(rows.A)
    # Spec rows of each pair: safety_r(x) = a[n, r] . x + e[n, r]
    a = torch.einsum("ro,noi->nri", A, M)
    e = c @ A.T + torch.as_tensor(rows.d)
    amag = torch.einsum("ro,noi->nri", A.abs(), Mabs)
    emag = cabs @ A.abs().T + torch.as_tensor(np.abs(rows.d))
    sl = torch.as_tensor(slack[box], dtype=torch.float64)
    # Normalise the constraints (a positive scale keeps each one's meaning) so one step size suits all.
    gnorm = G.abs().sum(-1) + g.abs()
    scale = torch.where(gnorm > 0, 1.0 / gnorm, torch.zeros_like(gnorm))
    G, g, Gmag = G * scale[..., None], g * scale, Gmag * scale
    excluded_all = np.ones(len(owner), dtype=bool)
    for k in range(rows.n_disjuncts):
        pairs = np.nonzero(~excl[box, k])[0]
        if len(pairs) == 0:
            continue
        idx = torch.as_tensor(np.nonzero(rows.disjunct == k)[0])
        p = torch.as_tensor(pairs)
        ak, ek = a[p][:, idx], e[p][:, idx] - sl[p][:, idx]
        amk, emk = amag[p][:, idx], emag[p][:, idx]
        lk, hk, xk = lo_t[p], hi_t[p], xmax[p]
        # The best single row with μ = 0 first; most pairs need nothing more.
        single = ek + _box_min(ak, lk[:, None], hk[:, None])
        best = (single - _F64_ALLOWANCE * (amk.mul(xk[:, None]).sum(-1) + emk + 1.0)).max(1).values
        rest = torch.nonzero(best <= 0).flatten()
        if len(rest):
            r = p[rest]
            best[rest] = _farkas(ak[rest], ek[rest], amk[rest], emk[rest], G[r], g[r], Gmag[r],
                                 lk[rest], hk[rest], xk[rest], single[rest].argmax(1), iters)
        excluded_all[pairs[(best <= 0).numpy()]] = False
    bad_boxes = np.unique(box[~excluded_all])
    proved[candidates] = True
    proved[bad_boxes] = False
    return proved
