"""Optimised ReLU lower slopes (alpha-CROWN style) for the final specification.

Every spec row gets its own lower slope per unstable ReLU neuron, initialised
at CROWN's adaptive choice and improved by projected Adam on the sum of the
rows' lower bounds. Any slope in [0, 1] gives a sound bound, so the running
elementwise maximum over iterations (starting from CROWN's bound) is returned:
never looser than CROWN. Intermediate bounds stay those of CROWN.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from hdsl.bounds.crown import BoundState, spec_lower_bound


def init_alphas(state: BoundState, m: int) -> dict[str, torch.Tensor]:
    """CROWN's adaptive slopes, one copy per spec row: {relu node: [B, m, *shape]}."""
    alphas = {}
    for n in state.graph.nodes:
        if n.op != "relu":
            continue
        l, u = state.bounds[n.inputs[0]]
        if not bool(((l < 0) & (u > 0)).any()):
            continue
        a = (u >= -l).to(l.dtype).unsqueeze(1).expand(l.shape[0], m, *l.shape[1:]).clone()
        alphas[n.name] = a.requires_grad_(True)
    return alphas


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
    with torch.no_grad():
        best = spec_lower_bound(state, C, d) if start is None else start.clone()
    if done is not None and done(best):
        return best
    alphas = init_alphas(state, C.shape[1])
    if not alphas:
        return best
    opt = _Adam(list(alphas.values()), lr)
    for _ in range(iters):
        if deadline is not None and time.monotonic() > deadline:
            break
        lb = spec_lower_bound(state, C, d, alphas, use_interval=False)
        best = torch.maximum(best, lb.detach())
        if done is not None and done(best):
            break
        grads = torch.autograd.grad(-lb.sum(), opt.params, allow_unused=True)
        opt.step(grads, 0.0, 1.0)
    else:
        with torch.no_grad():
            best = torch.maximum(best, spec_lower_bound(state, C, d, alphas, use_interval=False))
    return best.detach()


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
