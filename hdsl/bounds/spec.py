"""Specification matrices for disjunctive output specs, and the per-disjunct decision rule.

An ``OutputSpec`` is the *unsafe* set ``OR_k AND_c (expr_c >= 0)`` (``> 0`` when
strict). We bound the rows ``R_c = -expr_c``: a lower bound ``lb(R_c)`` is minus an
upper bound of ``expr_c`` over the region.

Decision rule (sound by construction):
* constraint ``c`` is *refuted* when ``lb(R_c) > 0`` (non-strict: ``expr_c < 0``
  everywhere) or ``lb(R_c) >= 0`` (strict: ``expr_c <= 0`` everywhere);
* a disjunct is refuted when at least one of its constraints is refuted (then
  no point satisfies the whole conjunction);
* a query is **proved only when every unsafe disjunct is refuted**, on every box.
The certified margin ``min_k max_c lb(R_c)`` is a lower bound of the spec's
concrete margin (``OutputSpec.margin``) over the region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hdsl.ir import OutputSpec


@dataclass(frozen=True)
class SpecRows:
    """``R`` [m, n_out] and ``d`` [m] so that row c is ``-expr_c``; ``groups[k]`` are disjunct k's rows."""

    R: np.ndarray
    d: np.ndarray
    groups: tuple[tuple[int, ...], ...]
    strict: np.ndarray  # [m] bool

    @property
    def m(self) -> int:
        return len(self.d)

    def index_matrix(self) -> np.ndarray:
        """[K, max_c] row indices, padded with -1."""
        width = max((len(g) for g in self.groups), default=0)
        out = np.full((len(self.groups), max(width, 1)), -1, dtype=np.int64)
        for k, g in enumerate(self.groups):
            out[k, :len(g)] = g
        return out


def spec_rows(spec: OutputSpec, n_out: int) -> SpecRows:
    """Rows ``-expr`` for every constraint of every unsafe disjunct (shared rows are deduplicated)."""
    rows: dict[tuple, int] = {}
    R, d, strict, groups = [], [], [], []
    for conj in spec.unsafe:
        g = []
        for c in conj.constraints:
            vec = np.zeros(n_out)
            for i, coef in c.expr.terms:
                if not 0 <= i < n_out:
                    raise ValueError(f"output index {i} out of range for a network with {n_out} outputs")
                vec[i] -= coef
            key = (tuple(vec), -c.expr.const, c.strict)
            if key not in rows:
                rows[key] = len(R)
                R.append(vec)
                d.append(-c.expr.const)
                strict.append(c.strict)
            g.append(rows[key])
        groups.append(tuple(g))
    R_arr = np.array(R, dtype=np.float64).reshape(len(R), n_out)
    return SpecRows(R_arr, np.array(d, dtype=np.float64), tuple(groups), np.array(strict, dtype=bool))


@dataclass
class BatchSpec:
    """Per-box specs padded to a common size: ``R`` [B, m, n_out], ``d`` [B, m], ``idx`` [B, K, w].

    ``idx`` holds row indices (-1 = padding); ``kvalid`` [B, K] marks real
    disjuncts (padding disjuncts count as refuted, an empty real one never is).
    """

    R: torch.Tensor
    d: torch.Tensor
    strict: torch.Tensor
    idx: torch.Tensor
    kvalid: torch.Tensor

    @classmethod
    def stack(cls, specs: list[SpecRows], device=None, dtype=torch.float64) -> "BatchSpec":
        B = len(specs)
        n_out = specs[0].R.shape[1] if specs else 0
        m = max([s.m for s in specs] + [1])
        K = max([len(s.groups) for s in specs] + [1])
        w = max([len(g) for s in specs for g in s.groups] + [1])
        R = np.zeros((B, m, n_out))
        d = np.zeros((B, m))
        strict = np.zeros((B, m), dtype=bool)
        idx = np.full((B, K, w), -1, dtype=np.int64)
        kvalid = np.zeros((B, K), dtype=bool)
        for b, s in enumerate(specs):
            R[b, :s.m], d[b, :s.m], strict[b, :s.m] = s.R, s.d, s.strict
            for k, g in enumerate(s.groups):
                idx[b, k, :len(g)] = g
                kvalid[b, k] = True
        t = lambda a, dt=None: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
        return cls(t(R, dtype), t(d, dtype), t(strict), t(idx), t(kvalid))

    @property
    def batch(self) -> int:
        return self.R.shape[0]

    def select(self, i) -> "BatchSpec":
        return BatchSpec(self.R[i], self.d[i], self.strict[i], self.idx[i], self.kvalid[i])

    def repeat_interleave(self, r: int) -> "BatchSpec":
        return BatchSpec(*(t.repeat_interleave(r, 0) for t in (self.R, self.d, self.strict, self.idx, self.kvalid)))


def refuted(lb: torch.Tensor, spec: BatchSpec) -> torch.Tensor:
    """[B, K] bool: disjunct k is refuted on box b given lower bounds ``lb`` [B, m] of its rows."""
    ok = torch.where(spec.strict, lb >= 0, lb > 0)  # [B, m]
    valid = spec.idx >= 0
    gathered = torch.gather(ok, 1, spec.idx.clamp_min(0).flatten(1)).view(spec.idx.shape) & valid
    return gathered.any(-1) | ~spec.kvalid


def certified_margin(lb: torch.Tensor, spec: BatchSpec) -> torch.Tensor:
    """[B]: ``min_k max_{c in k} lb_c`` (``+inf`` without disjuncts): a lower bound of the spec margin."""
    vals = torch.gather(lb, 1, spec.idx.clamp_min(0).flatten(1)).view(spec.idx.shape)
    vals = vals.masked_fill(spec.idx < 0, float("-inf")).max(-1).values
    vals = vals.masked_fill(~spec.kvalid, float("inf"))
    return vals.min(-1).values


def concrete_margin(y: torch.Tensor, spec: BatchSpec) -> torch.Tensor:
    """[B]: the spec margin of outputs ``y`` [B, n_out] (differentiable; ``<= 0`` ~ violated)."""
    vals = torch.einsum("bmn,bn->bm", spec.R.to(y.dtype), y) + spec.d.to(y.dtype)
    return certified_margin(vals, spec)


def proved(lb: torch.Tensor, spec: BatchSpec) -> torch.Tensor:
    """[B] bool: every unsafe disjunct refuted."""
    return refuted(lb, spec).all(-1)
