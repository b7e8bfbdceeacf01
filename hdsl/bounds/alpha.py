"""Optimised ReLU lower slopes (alpha-CROWN style) for the final specification.

Every row (a spec row, or one bound of one intermediate neuron) gets its own
lower slope per unstable ReLU neuron above it, initialised at CROWN's adaptive
choice and improved by projected Adam on the sum of the rows' lower bounds.
Any slope in [0, 1] gives a sound bound, so the running elementwise maximum
over iterations (starting from CROWN's bound) is returned: never looser than
CROWN. ``hdsl.bounds.crown.intermediate_bounds(..., alpha_iters=k)`` applies
the same optimisation to the pre-activation bounds, layer by layer.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from hdsl.bounds.crown import BoundState, backward_lower, spec_lower_bound


def init_alphas(state: BoundState, m: int, before: str | None = None) -> dict[str, torch.Tensor]:
    """CROWN's adaptive slopes, one copy per row: {relu node: [B, m, *shape]} (relus above ``before`` only)."""
    names = [n.name for n in state.graph.nodes]
    stop = names.index(before) if before is not None else len(names)
    alphas = {}
    for n in state.graph.nodes[:stop]:
        if n.op != "relu":
            continue
        l, u = state.bounds[n.inputs[0]]
        if not bool(((l < 0) & (u > 0)).any()):
            continue
        a = (u >= -l).to(l.dtype).unsqueeze(1).expand(l.shape[0], m, *l.shape[1:]).clone()
        alphas[n.name] = a.requires_grad_(True)
    return alphas


def optimise_slopes(state: BoundState, start: str, A: torch.Tensor, const: torch.Tensor | None,
                    best: torch.Tensor, iters: int, lr: float = 0.25, deadline: float | None = None,
                    done: Callable[[torch.Tensor], bool] | None = None) -> torch.Tensor:
    """Raise the lower bounds ``best`` [B, m] of ``A . v_start + const`` by optimising ReLU slopes.

    Every iterate is a sound bound, so the elementwise running maximum is returned.
    """
    alphas = init_alphas(state, A.shape[1], before=start)
    if not alphas or iters <= 0:
        return best
    opt = _Adam(list(alphas.values()), lr)
    with torch.enable_grad():
        for _ in range(iters):
            if deadline is not None and time.monotonic() > deadline:
                break
            lb = backward_lower(state, start, A, const, alphas)
            best = torch.maximum(best, lb.detach())
            if done is not None and done(best):
                break
            grads = torch.autograd.grad(-lb.sum(), opt.params, allow_unused=True)
            opt.step(grads, 0.0, 1.0)
        else:
            with torch.no_grad():
                best = torch.maximum(best, backward_lower(state, start, A, const, alphas))
    return best.detach()


def alpha_spec_lower_bound(state: BoundState, C: torch.Tensor, d: torch.Tensor | None = None,
                           iters: int = 20, lr: float = 0.25, deadline: float | None = None,
                           done: Callable[[torch.Tensor], bool] | None = None,
                           start: torch.Tensor | None = None) -> torch.Tensor:
    """Lower bound of ``C y + d`` with optimised slopes; ``>=`` the CROWN bound (``start`` if given).

    ``done(best)`` may stop early (e.g. once every disjunct is refuted);
    ``deadline`` is a ``time.monotonic()`` value.
    """
    B = state.batch
    C = C.expand(B, *C.shape[-2:]) if C.dim() == 2 else C
    m = C.shape[1]
    with torch.no_grad():
        best = spec_lower_bound(state, C, d) if start is None else start.clone()
    if done is not None and done(best):
        return best
    g = state.graph
    const = None if d is None else d.expand(B, m)
    return optimise_slopes(state, g.output, C.reshape(B, m, *g.output_shape), const, best, iters, lr, deadline, done)


class _Adam:
    """Projected Adam (a few lines; ``torch.optim`` costs seconds to import through dynamo)."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, grads, lo: float, hi: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            if g is None:
                continue
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            mhat = m / (1 - b1 ** self.t)
            vhat = v / (1 - b2 ** self.t)
            p.sub_(self.lr * mhat / (vhat.sqrt() + self.eps)).clamp_(lo, hi)
