"""The unsafe output set (an OR of ANDs) as matrices.

Each constraint ``expr_c(y) >= 0`` (unsafe side) becomes a row ``a_c . y + d_c``
with ``a_c . y + d_c = -expr_c(y)``, the *safety* value of the row: a disjunct is
excluded from a region when one of its rows is positive everywhere on it, and the
query is proved when every disjunct is excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdsl.ir import OutputSpec


@dataclass(frozen=True)
class SpecRows:
    A: np.ndarray  # (R, n_out) float64
    d: np.ndarray  # (R,)
    strict: np.ndarray  # (R,) bool: the unsafe side was ``expr > 0``
    disjunct: np.ndarray  # (R,) int: which conjunction the row belongs to
    n_disjuncts: int

    def safety(self, y: np.ndarray) -> np.ndarray:
        """Row safety values ``A y + d`` for outputs ``y`` (batched ``(n, n_out)``)."""
        return np.atleast_2d(y) @ self.A.T + self.d

    def violated(self, y: np.ndarray) -> np.ndarray:
        """Per output vector: does some disjunct hold (every row's ``expr >= 0``)?"""
        s = self.safety(y)  # safety = -expr
        unsafe_row = np.where(self.strict, s < 0, s <= 0)
        out = np.zeros(s.shape[0], dtype=bool)
        for k in range(self.n_disjuncts):
            out |= unsafe_row[:, self.disjunct == k].all(axis=1)
        return out

    def excluded(self, row_lb: np.ndarray, slack: np.ndarray | float = 0.0) -> np.ndarray:
        """Per box ``(n, R)`` of lower bounds: which disjuncts are excluded ``(n, K)``."""
        ok = row_lb > slack
        out = np.zeros((row_lb.shape[0], self.n_disjuncts), dtype=bool)
        for k in range(self.n_disjuncts):
            out[:, k] = ok[:, self.disjunct == k].any(axis=1)
        return out


def spec_rows(spec: OutputSpec, n_out: int) -> SpecRows:
    rows, consts, strict, disj = [], [], [], []
    for k, conj in enumerate(spec.unsafe):
        for c in conj.constraints:
            a = np.zeros(n_out)
            for i, coef in c.expr.terms:
                if not 0 <= i < n_out:
                    raise ValueError(f"output index y[{i}] is out of range for {n_out} outputs")
                a[i] -= coef
            rows.append(a)
            consts.append(-c.expr.const)
            strict.append(c.strict)
            disj.append(k)
    if not rows:
        return SpecRows(np.zeros((0, n_out)), np.zeros(0), np.zeros(0, bool), np.zeros(0, int), len(spec.unsafe))
    return SpecRows(np.array(rows), np.array(consts), np.array(strict), np.array(disj), len(spec.unsafe))
