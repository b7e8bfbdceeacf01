"""What the branch-and-bound searches return, and the rounding slack per box."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hdsl.exact.fperr import rows_slack
from hdsl.exact.net import PwlNet
from hdsl.results import Counterexample


@dataclass
class BabOutcome:
    status: str  # "proved" | "falsified" | "unknown" | "timeout"
    counterexample: Counterexample | None = None
    message: str = ""
    stats: dict = field(default_factory=dict)
    decided_by: str = "bab"  # "bab" or "z3" (when an exact leaf produced the counterexample)


#: Absolute allowance for the float64 rounding of the searches' own bounds (their outputs are O(1)-O(1e3)).
FLOAT64_ALLOWANCE = 1e-9


def batch_slack(net: PwlNet, A: np.ndarray, pre_np, lo: np.ndarray, hi: np.ndarray,
                arithmetic: str = "float32") -> np.ndarray:
    """Per box and spec row: float32 rounding slack plus a float64 allowance, (B, R).

    ``arithmetic="real"`` (``hdsl.ir.CheckOptions``) proves the real-valued network only: the
    float64 allowance alone."""
    if arithmetic == "real":
        return np.full((len(lo), A.shape[0]), FLOAT64_ALLOWANCE)
    mags = [np.maximum(np.abs(lo), np.abs(hi))]
    for (l, u), layer in zip(pre_np[:-1], net.layers[:-1]):
        mags.append(np.maximum(u, 0) if layer.relu else np.maximum(np.abs(l), np.abs(u)))
    # Both fperr bounds are sound; the Jacobian one is far tighter once most ReLUs are stable.
    return rows_slack(net.layers, mags, pre_np, A, (lo, hi)) + FLOAT64_ALLOWANCE
