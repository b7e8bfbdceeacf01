"""No proofs about computations that may overflow.

Every bound in hdsl is computed in float64 on finite numbers, and the float32 rounding arguments
(``hdsl.bounds.fp``, ``hdsl.exact.fperr``) assume that no value overflows float32. A region in
which some value of the network could reach float32's range (an input box of ±1e30, weights of
1e20) breaks both: the deployed network would compute inf and then NaN there, and the bound
arithmetic itself can meet inf · 0 = NaN, which compares false with every threshold. So a
``proved`` is kept only where interval bounds of every value of the network, inputs included,
stay below ``LIMIT``; elsewhere it becomes ``unknown`` and says why. Under ``arithmetic real``
the network is the real-valued one, which does not overflow, and only the float64 bound
arithmetic needs headroom (``LIMIT_REAL``). Counterexamples need no guard: they are replayed on
the real model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Half of float32's largest value (3.4e38): room for the rounding of the sums that produce a value.
LIMIT = 2.0 ** 126
# For the real-valued network: far below float64's 1.8e308, so that bound arithmetic stays finite.
LIMIT_REAL = 2.0 ** 900


def limit_for(arithmetic: str) -> float:
    """The largest magnitude a proof in ``arithmetic`` may meet."""
    return LIMIT_REAL if arithmetic == "real" else LIMIT


def largest_values(graph, lo, hi) -> tuple[torch.Tensor, list[str]]:
    """Per box, the largest interval bound of any value of ``graph`` (inputs included) over boxes
    ``[lo, hi]`` (``[B, *input_shape]``), NaN where a bound is NaN; and the node of each maximum."""
    import torch

    from hdsl.bounds import bound_state

    lo, hi = torch.as_tensor(lo, dtype=torch.float64), torch.as_tensor(hi, dtype=torch.float64)
    batch = lo.shape[0]
    best = torch.maximum(lo.abs(), hi.abs()).reshape(batch, -1).amax(1)
    where = ["the input"] * batch
    state = bound_state(graph, lo, hi, method="ibp", device="cpu", fp=False)
    for name, (low, high) in state.bounds.items():
        if low.numel() == 0:
            continue
        size = torch.maximum(low.abs(), high.abs()).reshape(batch, -1).amax(1)  # both propagate NaN
        grow = ~(size <= best) & ~torch.isnan(best)  # larger, or NaN; a NaN already found stays
        best = torch.where(grow, size, best)
        where = [name if g else w for g, w in zip(grow.tolist(), where)]
    return best, where


# (network, its imported graph, arithmetic, box bytes) -> reason or None. The levels of one input
# share a ball, and a query can pass the guard twice (the Query handler, then solve_query): one
# interval pass each. The imported graph object stands for the file's contents (hdsl.nn caches
# one per content digest), so a model rewritten in place is bounded again.
_RISKS: dict[tuple, str | None] = {}


def overflow_risk(query) -> str | None:
    """Why ``query``'s region may overflow (the largest interval bound and where), or None."""
    import numpy as np

    from hdsl.check_options import arithmetic_of
    from hdsl.nn import load_onnx, network_graph
    from hdsl.regions import boxes

    region_boxes = boxes(query.region, query.network)
    lo = np.stack([b[0] for b in region_boxes])
    hi = np.stack([b[1] for b in region_boxes])
    arithmetic = arithmetic_of(query)
    key = (query.network, load_onnx(query.network.path), arithmetic, lo.tobytes(), hi.tobytes())
    if key not in _RISKS:
        if len(_RISKS) >= 1024:
            _RISKS.clear()
        graph = network_graph(query.network)
        shape = (len(region_boxes), *graph.input_shape)
        sizes, where = largest_values(graph, lo.reshape(shape), hi.reshape(shape))
        _RISKS[key] = _reason(sizes.tolist(), where, limit_for(arithmetic))
    return _RISKS[key]


def _reason(sizes: list[float], where: list[str], limit: float) -> str | None:
    for size, name in zip(sizes, where):
        if not size < limit:  # NaN-safe
            if name == "the input":
                return f"the input region reaches {size:.3g}"
            return f"interval bounds reach {size:.3g} at {name!r}" if math.isfinite(size) else \
                f"interval bounds are not finite at {name!r}"
    return None


def without_overflowing_proofs(result, query):
    """``result``, with a ``proved`` downgraded to ``unknown`` when the region may overflow."""
    from dataclasses import replace

    from hdsl.check_options import arithmetic_of
    from hdsl.results import Verdict

    if result.verdict is not Verdict.PROVED:
        return result
    why = overflow_risk(query)
    if why is None:
        return result
    what = "exceed hdsl's float64 bound arithmetic" if arithmetic_of(query) == "real" else "overflow float32"
    note = (f"not proved: values of the network may {what} in this region ({why}); hdsl proves nothing "
            "about computations that overflow")
    return replace(result, verdict=Verdict.UNKNOWN, margin=None,
                   message=note + (f"; {result.message}" if result.message else ""))
