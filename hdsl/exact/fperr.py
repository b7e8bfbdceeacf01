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
The input itself is a float32 point, so ``e_0 = 0``. A spec row ``c . y + d``
then differs by at most ``|c| . e_out``.
"""

from __future__ import annotations

import numpy as np

U32 = 2.0**-24


def gamma(n: int, u: float = U32) -> float:
    return n * u / (1 - n * u)


def output_error(layers, magnitudes: list[np.ndarray], upper: list[np.ndarray] | None = None) -> np.ndarray:
    """Per-output bound on ``|f_float32(x) - f_real(x)|`` over a region.

    ``magnitudes[l]`` bounds ``|h_l|`` (input of layer ``l``) elementwise, shape
    ``(..., in_l)``; a leading batch dimension (one per box) is allowed.
    ``upper[l]``, when given, is an upper bound of layer ``l``'s real
    pre-activation: a ReLU whose ``upper + error < 0`` outputs exactly 0 in both
    the real and the float32 network, so it passes no error on.
    """
    e = np.zeros_like(np.asarray(magnitudes[0], dtype=np.float64))
    for k, (layer, M) in enumerate(zip(layers, magnitudes)):
        W = np.abs(np.asarray(layer.weight, dtype=np.float64))
        b = np.abs(np.asarray(layer.bias, dtype=np.float64))
        g = gamma(layer.fan_in + 3)  # +2: headroom for elementwise ops folded into the layer
        e = e @ W.T + g * ((np.asarray(M, dtype=np.float64) + e) @ W.T + b)
        if upper is not None and layer.relu:
            e = np.where(np.asarray(upper[k]) + e * (1 + 1e-6) < 0, 0.0, e)
    # Outward slack for the float64 arithmetic used to compute this bound.
    return e * (1 + 1e-6) + 1e-30


def spec_slack(rows: np.ndarray, out_err: np.ndarray) -> np.ndarray:
    """Slack per spec row ``rows @ y``: ``|rows| @ out_err`` (batched over boxes)."""
    return out_err @ np.abs(rows).T
