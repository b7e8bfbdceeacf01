"""How far the float32 network can be from the exact real-valued one.

Proofs (Z3 or bounds) reason about the network over the reals, with the
float32 weights taken as exact rationals. The deployed network computes in
float32, so a real-valued margin of 1e-7 proves nothing about it. This module
bounds the difference, so every proof can demand a margin larger than it.

Model (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1): a layer
``z = W h + b`` with fan-in ``n`` computed in float32 in *any* summation order
(with or without FMA) satisfies ``|fl(z) - z| <= gamma_{n+1} (|W| |h| + |b|)``,
``gamma_k = k u / (1 - k u)``, ``u = 2^-24``. With ``e_l`` the error already in
``h_l`` (ReLU is 1-Lipschitz and exact in float32), the error after the layer is

    e_{l+1} <= |W| e_l + gamma_{n+1} (|W| (M_l + e_l) + |b|)

where ``M_l`` bounds ``|h_l|`` over the region (from interval or CROWN bounds).
Adding an exact zero does not round, so ``n`` counts only the live inputs: a
ReLU whose pre-activation is below zero by more than its error outputs exactly
0 in float32, and on small branch-and-bound boxes half of them are (ACAS Xu:
the slack drops by a quarter).
The input itself is a float32 point, so ``e_0 = 0``. A spec row ``c . y + d``
then differs by at most ``|c| . e_out``.

That bound multiplies by ``|W|`` at every layer and so ignores every sign
cancellation; on a 6 x 50 ACAS Xu network it comes out near 1e-3 where the
real float32 error is near 1e-7, which blocks proofs of tight properties.
``row_error`` is the tighter companion used by branch and bound: with
``delta_k`` the rounding injected at layer ``k`` and ``F_k`` the exact map
from layer ``k``'s pre-activation to the output,

    f_float(x) - f_real(x) = sum_k F_k(z~_k) - F_k(z~_k - delta_k)

(a telescoping sum), and each term is ``J delta_k`` for a ``J`` in the hull of
``F_k``'s Jacobians along a segment whose points, and their exact downstream
trajectories, stay within ``e`` (the crude bound above) of the real
pre-activations. So an interval Jacobian of ``c . F_k`` computed from the
pre-activation bounds widened by ``e`` bounds each term by ``|c J|max . g_k``,
``g_k`` the rounding bound of layer ``k`` alone.
"""

from __future__ import annotations

import numpy as np

U32 = 2.0**-24


def gamma(n, u: float = U32):
    """``n u / (1 - n u)``; ``n`` a term count or an array of them."""
    return n * u / (1 - n * u)


def sum_error(adds, peak, terms, u: float = U32):
    """Rounding bound of a dot product plus bias summed in float with at most ``adds`` additions.

    In any summation tree (any order, blocked, with or without FMA) every
    addition rounds its exact result relatively by ``u``, and that result is a
    partial sum of the terms plus the children's errors. So ``|error| <=
    u (sum over additions of |partial sum| + 2 adds E) + u terms``, with
    ``terms >= P + N`` (``P``, ``N`` the sums of the positive and of the negative
    terms; this pays for the products' own rounding) and ``E`` the error itself.
    A partial sum lies in ``[-N, P]``, so it is at most ``peak >= max(P, N)``.
    When the terms cancel, ``peak`` is about half of ``terms`` and the bound
    about half of Higham's ``gamma_n (P + N)``; without cancellation it is the same.
    """
    adds = np.asarray(adds, dtype=np.float64)
    return (adds * u * peak + u * terms) / (1 - 2 * adds * u)


def output_error(layers, magnitudes: list[np.ndarray], upper: list[np.ndarray] | None = None,
                 u: float = U32) -> np.ndarray:
    """Per-output bound on ``|f_float32(x) - f_real(x)|`` over a region.

    ``magnitudes[l]`` bounds ``|h_l|`` (input of layer ``l``) elementwise, shape
    ``(..., in_l)``; a leading batch dimension (one per box) is allowed.
    ``upper[l]``, when given, is an upper bound of layer ``l``'s real
    pre-activation: a ReLU whose ``upper + error < 0`` outputs exactly 0 in both
    the real and the float32 network, so it passes no error on.
    """
    *_, e = _layer_errors(layers, magnitudes, upper, u)
    # Outward slack for the float64 arithmetic used to compute this bound.
    return _outward(e)


def _outward(e: np.ndarray) -> np.ndarray:
    return e * (1 + 1e-6) + 1e-30


def _layer_errors(layers, magnitudes, upper, u: float, inputs=None):
    """Per layer the rounding injected there ``g_k`` and the error of its pre-activation ``e_k``;
    then the error of the output (after a final ReLU's zeroing).

    ``inputs``, when given, is the input box ``(lo, hi)``: its signs tighten the
    first layer's partial-sum bound (``sum_error``) as a ReLU's do for the others.
    """
    e = np.zeros_like(np.asarray(magnitudes[0], dtype=np.float64))
    live = None  # per box, how many of the layer's inputs may be nonzero in float32 (None: all)
    gs, es = [], []
    for k, (layer, M) in enumerate(zip(layers, magnitudes)):
        Ws = np.asarray(layer.weight, dtype=np.float64)
        bs = np.asarray(layer.bias, dtype=np.float64)
        W, b = np.abs(Ws), np.abs(bs)
        # A product with an exact zero adds exactly, so only the live products and the bias are
        # summed: n + 1 terms, n additions (one more kept as headroom), never more than the fan-in.
        n = layer.fan_in if live is None else np.minimum(layer.fan_in, live)[..., None]
        h = np.asarray(M, dtype=np.float64) + e  # bounds |computed input|
        if k == 0 and inputs is not None:
            h_lo, h_hi = np.asarray(inputs[0], dtype=np.float64), np.asarray(inputs[1], dtype=np.float64)
        elif k > 0 and layers[k - 1].relu:
            h_lo, h_hi = np.zeros_like(h), h
        else:
            h_lo, h_hi = -h, h
        Wp, Wn = np.maximum(Ws, 0), np.maximum(-Ws, 0)
        up, down = np.maximum(h_hi, 0), np.maximum(-h_lo, 0)
        positive = up @ Wp.T + down @ Wn.T + np.maximum(bs, 0)  # the largest sum of positive terms
        negative = down @ Wp.T + up @ Wn.T + np.maximum(-bs, 0)
        g = sum_error(np.asarray(n, dtype=np.float64) + 1, np.maximum(positive, negative), h @ W.T + b, u)
        e = e @ W.T + g
        gs.append(g)
        es.append(e)
        live = None
        if upper is not None and layer.relu:
            # a ReLU that is off with margin outputs exactly 0 in both networks: no error passes on
            off = np.asarray(upper[k]) + e * (1 + 1e-6) < 0
            e = np.where(off, 0.0, e)
            live = (~off).sum(axis=-1)
    return gs, es, e


def interval_gradients(layers, rows: np.ndarray, pre):
    """Bounds on the gradient of ``rows . y`` with respect to each layer's pre-activation.

    Yields ``(k, g_lo, g_hi)``, each ``(B, R, n_k)``, for ``k = L-1, ..., 0``
    and last ``(-1, ...)`` for the input. ``rows`` is ``(R, n_out)`` or
    ``(B, R, n_out)``; ``pre[k]`` bounds layer ``k``'s pre-activation, so a
    ReLU's derivative is 1 where it is positive, 0 where negative and anywhere
    in [0, 1] otherwise (ReluVal, Wang et al. 2018).
    """
    B = np.asarray(pre[0][0]).shape[0]
    rows = np.asarray(rows, dtype=np.float64)
    g_lo = g_hi = np.broadcast_to(rows, (B, *rows.shape[-2:])) if rows.ndim == 2 else rows
    for k in range(len(layers) - 1, -1, -1):
        if layers[k].relu:
            d_lo = (np.asarray(pre[k][0]) > 0).astype(np.float64)[:, None, :]
            d_hi = (np.asarray(pre[k][1]) >= 0).astype(np.float64)[:, None, :]
            cands = (g_lo * d_lo, g_lo * d_hi, g_hi * d_lo, g_hi * d_hi)
            g_lo, g_hi = np.minimum.reduce(cands), np.maximum.reduce(cands)
        yield k, g_lo, g_hi
        W = np.asarray(layers[k].weight, dtype=np.float64)
        c, r = (g_lo + g_hi) / 2 @ W, (g_hi - g_lo) / 2 @ np.abs(W)
        g_lo, g_hi = c - r, c + r
    yield -1, g_lo, g_hi


def row_error(layers, magnitudes: list[np.ndarray], pre: list[tuple[np.ndarray, np.ndarray]], rows: np.ndarray,
              u: float = U32, inputs=None) -> np.ndarray:
    """Per box and spec row, a bound on ``|c . (f_float(x) - f_real(x))|`` over the region, ``(B, R)``.

    ``pre[k]`` are bounds ``(B, n_k)`` of the real pre-activations of layer
    ``k`` over the region, ``magnitudes`` as for ``output_error`` and ``rows``
    ``(R, n_out)``. ``u`` is the unit roundoff (float32 unless a test says otherwise); ``inputs``
    the input boxes ``(lo, hi)``, as for ``_layer_errors``.
    """
    return _row_error(layers, pre, rows, *_layer_errors(layers, magnitudes, [hi for _, hi in pre], u, inputs)[:2])


def _row_error(layers, pre, rows, gs, es) -> np.ndarray:
    widened = [(np.asarray(l) - e, np.asarray(h) + e) for (l, h), e in zip(pre, es)]
    total = 0.0
    for k, g_lo, g_hi in interval_gradients(layers, rows, widened):
        if k >= 0:
            total = total + (np.maximum(np.abs(g_lo), np.abs(g_hi)) * gs[k][:, None, :]).sum(-1)
    return _outward(total)


def rows_slack(layers, magnitudes: list[np.ndarray], pre: list[tuple[np.ndarray, np.ndarray]],
               rows: np.ndarray, inputs=None) -> np.ndarray:
    """The smaller of the two sound float32 bounds per box and row (one pass over the layers);
    ``inputs`` the input boxes ``(lo, hi)``, as for ``_layer_errors``."""
    gs, es, e_out = _layer_errors(layers, magnitudes, [hi for _, hi in pre], U32, inputs)
    return np.minimum(spec_slack(rows, _outward(e_out)), _row_error(layers, pre, rows, gs, es))


def spec_slack(rows: np.ndarray, out_err: np.ndarray) -> np.ndarray:
    """Slack per spec row ``rows @ y``: ``|rows| @ out_err`` (batched over boxes)."""
    return out_err @ np.abs(rows).T
