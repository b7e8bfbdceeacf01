"""Falsifier: concrete checks and PGD with random restarts on the spec's margin.

Both work on a batch of boxes at once and return, per box, the input with the
lowest margin found (``OutputSpec.margin``: ``<= 0`` means an unsafe disjunct
holds). They run on the torch graph (float32), so every candidate must still be
confirmed with ``hdsl.replay`` on the original ONNX file before it is reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from hdsl.bounds.spec import BatchSpec, concrete_margin
from hdsl.nn.graph import Graph


@dataclass
class Found:
    """Best input per box: ``x`` [B, n] (float64, raw space), ``margin`` [B], ``y`` [B, n_out]."""

    x: np.ndarray
    margin: np.ndarray
    y: np.ndarray


def _eval(graph: Graph, x: torch.Tensor, spec: BatchSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Margins of points ``x`` [B*R, n] grouped box-major (``spec`` has B entries)."""
    y = graph.forward(x.reshape(x.shape[0], *graph.input_shape))
    r = x.shape[0] // spec.batch
    return concrete_margin(y.to(torch.float64), spec.repeat_interleave(r) if r > 1 else spec), y


def _keep_best(best: Found | None, x: torch.Tensor, margin: torch.Tensor, y: torch.Tensor, B: int) -> Found:
    """x: [B*R, n] grouped box-major; keep each box's lowest margin."""
    R = x.shape[0] // B
    mg = margin.detach().reshape(B, R)
    i = mg.argmin(1)
    ar = torch.arange(B, device=x.device)
    bx = x.detach().reshape(B, R, -1)[ar, i].double().cpu().numpy()
    bm = mg[ar, i].double().cpu().numpy()
    by = y.detach().reshape(B, R, -1)[ar, i].double().cpu().numpy()
    if best is None:
        return Found(bx, bm, by)
    better = bm < best.margin
    best.x[better], best.margin[better], best.y[better] = bx[better], bm[better], by[better]
    return best


def concrete_check(graph: Graph, lo: torch.Tensor, hi: torch.Tensor, spec: BatchSpec, samples: int = 16,
                   seed: int = 0) -> Found:
    """Centres, all corners (up to 10 input dimensions) and ``samples`` uniform points per box."""
    B, n = lo.shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    pts = [(lo + hi) / 2]
    if n <= 10:
        bits = torch.tensor([[(k >> j) & 1 for j in range(n)] for k in range(2 ** n)], dtype=lo.dtype)
        bits = bits.to(lo.device)
        pts.append((lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * bits).reshape(-1, n).reshape(B, 2 ** n, n)
                   .reshape(B * 2 ** n, n))
    if samples:
        u = torch.rand(B, samples, n, generator=gen, dtype=lo.dtype).to(lo.device)
        pts.append((lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * u).reshape(B * samples, n))
    # regroup box-major
    per = [p.reshape(B, -1, n) for p in pts]
    x = torch.cat(per, 1).reshape(-1, n)
    with torch.no_grad():
        margin, y = _eval(graph, x, spec)
    return _keep_best(None, x, margin, y, B)


def pgd(graph: Graph, lo: torch.Tensor, hi: torch.Tensor, spec: BatchSpec, restarts: int = 8, steps: int = 40,
        deadline: float | None = None, seed: int = 0, start: Found | None = None) -> Found:
    """Projected sign-gradient descent on the margin from ``restarts`` points per box (centre first).

    ``lo``/``hi``: [B, n] float32 boxes on the graph's device. Stops early once
    every box has a point with margin < 0, or at ``deadline``.
    """
    B, n = lo.shape
    R = max(1, restarts)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    lo_r, hi_r = lo.repeat_interleave(R, 0), hi.repeat_interleave(R, 0)
    u = torch.rand(B * R, n, generator=gen, dtype=lo.dtype).to(lo.device)
    x = lo_r + (hi_r - lo_r) * u
    x.view(B, R, n)[:, 0] = (lo + hi) / 2
    if start is not None and R > 1:
        x.view(B, R, n)[:, 1] = torch.as_tensor(start.x, dtype=lo.dtype, device=lo.device)
    width = hi_r - lo_r
    best = start
    for t in range(steps):
        if deadline is not None and time.monotonic() > deadline:
            break
        x = x.detach().requires_grad_(True)
        margin, y = _eval(graph, x, spec)
        best = _keep_best(best, x, margin, y, B)
        if np.all(best.margin < 0):
            return best
        (grad,) = torch.autograd.grad(margin.sum(), x)
        step = width * (0.2 * 0.5 * (1 + math.cos(math.pi * t / steps)) + 0.01)
        x = torch.minimum(torch.maximum(x - step * grad.sign(), lo_r), hi_r)
    with torch.no_grad():
        margin, y = _eval(graph, x.detach(), spec)
    return _keep_best(best, x, margin, y, B)
