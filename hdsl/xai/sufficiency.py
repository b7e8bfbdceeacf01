"""Formal sufficiency of top-k explanations, decided by hdsl's verification portfolio.

``top k of A`` is *sufficient* for image x with label y when every input x'
that agrees with x on the k most relevant features (MoRF order of the
attribution A) and has every other feature free in the model's input range
(or within ``eps`` of x, intersected with that range) is classified y:

    forall x' with x'_S = x_S, x'_p in [l_p, u_p] (p not in S):  argmax f(x') == y

Each such statement is an ordinary ``ir.Query`` over a ``Box`` (fixed
features get ``lo = hi = x``) with the unsafe set of ``argmax == y``
(ties unsafe), decided by ``hdsl.planner.solve_query``: bound propagation
(and branch and bound / Z3 when present) proves it; the attack falsifies it
with a counterexample that the backend replays on onnxruntime. So
*proved* here is as sound as any hdsl proof, and every in-painted completion
of the free features (which stays inside the box) keeps the class: a proof
implies in-painting sufficiency for every in-painter.

Sufficiency is monotone in k (fixing more features shrinks the box), so the
smallest sufficient k is found by bisection; with an incomplete verifier the
answer is an interval ``(largest k not proved, smallest k proved]``, and it is
exact when the lower end was *falsified* and the two are adjacent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from hdsl import ir
from hdsl.diagnostics import HdslError
from hdsl.results import Result, Verdict
from hdsl.xai.metrics import Granularity, rank_map
from hdsl.xai.model import image_layout


@dataclass(frozen=True)
class KResult:
    k: int
    verdict: Verdict
    stage: str
    margin: float | None
    time_s: float
    result: Result | None = None


@dataclass(frozen=True)
class SufficiencyOutcome:
    """All verdicts tried for one image; for a search, the bracket of the smallest sufficient k."""

    index: int
    label: int
    n_features: int
    tried: tuple[KResult, ...]
    k: int | None = None  # the requested k (fixed-k form)
    smallest_proved: int | None = None
    largest_not_proved: int | None = None  # with its verdict below
    largest_not_proved_verdict: Verdict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return (self.smallest_proved is not None and self.largest_not_proved is not None
                and self.largest_not_proved_verdict is Verdict.FALSIFIED
                and self.smallest_proved == self.largest_not_proved + 1)


def fixed_mask(attr: torch.Tensor, image_shape: tuple[int, int, int], k: int, gran: Granularity) -> torch.Tensor:
    """``[1|C, H, W]`` bool: the k most relevant features of one image (MoRF, stable ties)."""
    c, h, w = image_shape
    rmap, nf = rank_map(attr.unsqueeze(0) if attr.dim() == 3 else attr, (1, c, h, w), gran, "morf")
    return rmap[0] < k


def _to_network(a: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """An NCHW-ordered ``[C, H, W]`` array, flattened in the network input's memory order."""
    return (a.transpose(1, 2, 0) if image_layout(tuple(input_shape)) == "hwc" else a).reshape(-1)


def sufficiency_box(network: ir.Network, x_chw: np.ndarray, fixed: np.ndarray,
                    eps: float | None) -> ir.Box:
    """The region of a sufficiency query, in the network's raw input space."""
    c, h, w = x_chw.shape
    fixed = np.broadcast_to(fixed, (c, h, w))
    rng = network.input_range
    if eps is None and rng is None:
        raise HdslError.single("X050", f"model '{network.name}' declares no input range, so free features are "
                                       "unbounded", span=network.span,
                               hint="declare `input [...] in [lo, hi]` on the model, or give linf(EPS)")
    lo_r, hi_r = rng if rng is not None else (-math.inf, math.inf)
    x = x_chw.astype(np.float64)
    if eps is None:
        lo_free = np.full_like(x, lo_r)
        hi_free = np.full_like(x, hi_r)
    else:
        lo_free = np.maximum(x - eps, lo_r)
        hi_free = np.minimum(x + eps, hi_r)
    lo = np.where(fixed, x, lo_free)
    hi = np.where(fixed, x, hi_free)
    shape = tuple(network.input_shape)
    return ir.Box(tuple(_to_network(lo, shape).tolist()), tuple(_to_network(hi, shape).tolist()))


def argmax_spec(label: int, n_outputs: int) -> ir.OutputSpec:
    from hdsl.passes import ArgmaxIn, unsafe_spec

    return unsafe_spec(ArgmaxIn(frozenset((int(label),))), n_outputs)


class Decider:
    """Decides ``sufficient at k`` for one image with the planner, caching verdicts per k."""

    def __init__(self, network: ir.Network, x_chw: np.ndarray, attr: torch.Tensor, label: int, *,
                 eps: float | None = None, granularity: Granularity = Granularity(), timeout: float = 10.0,
                 deadline: float | None = None, query_id: str = "sufficient", property_name: str = "",
                 index: int = 0, options: ir.CheckOptions = ir.CheckOptions()):
        self.network, self.x, self.attr, self.label = network, x_chw, attr, int(label)
        self.eps, self.gran, self.timeout, self.deadline = eps, granularity, timeout, deadline
        self.qid, self.prop, self.index = query_id, property_name, index
        self.options = options  # the check's backend and arithmetic; the timeout is per k (``timeout``)
        c, h, w = x_chw.shape
        self.n_features = granularity.feature_map(c, h, w)[1]
        self.spec = argmax_spec(label, network.num_outputs or _n_outputs(network))
        self.cache: dict[int, KResult] = {}

    def query(self, k: int) -> ir.Query:
        mask = fixed_mask(self.attr, tuple(self.x.shape), k, self.gran).numpy()
        box = sufficiency_box(self.network, self.x, mask, self.eps)
        return ir.Query(f"{self.qid}@k{k}", self.network, box, self.spec, self.prop,
                        replace(self.options, timeout=self.timeout), self.index, self.label, None, self.eps)

    def __call__(self, k: int) -> KResult:
        if k in self.cache:
            return self.cache[k]
        from hdsl.planner import solve_query

        budget = self.timeout
        if self.deadline is not None:
            budget = max(0.0, min(budget, self.deadline - time.monotonic()))
        t0 = time.monotonic()
        if budget <= 0:
            r = KResult(k, Verdict.TIMEOUT, "", None, 0.0)
        else:
            res = solve_query(self.query(k), budget)
            r = KResult(k, res.verdict, res.stage, res.margin, time.monotonic() - t0, res)
        self.cache[k] = r
        return r


def _n_outputs(network: ir.Network) -> int:
    from hdsl.nn import load_onnx

    return load_onnx(network.path).output_size


def check_k(decider: Decider, k: int) -> SufficiencyOutcome:
    """The fixed-k form: one query."""
    r = decider(k)
    return SufficiencyOutcome(decider.index, decider.label, decider.n_features, (r,), k=k)


def smallest_sufficient_k(decider: Decider) -> SufficiencyOutcome:
    """Bisection for the smallest proved k (valid because sufficiency is monotone in k)."""
    nf = decider.n_features
    top = decider(nf)  # everything fixed: the point itself
    if top.verdict is not Verdict.PROVED:
        return SufficiencyOutcome(decider.index, decider.label, nf, tuple(decider.cache.values()),
                                  extra={"reason": "the model does not classify the image itself as its label"
                                         if top.verdict is Verdict.FALSIFIED else "undecided at k = all features"})
    bottom = decider(0)
    if bottom.verdict is Verdict.PROVED:
        return SufficiencyOutcome(decider.index, decider.label, nf, tuple(decider.cache.values()),
                                  smallest_proved=0)
    lo, hi = 0, nf  # lo not proved, hi proved
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if decider(mid).verdict is Verdict.PROVED:
            hi = mid
        else:
            lo = mid
    tried = tuple(sorted(decider.cache.values(), key=lambda r: r.k))
    return SufficiencyOutcome(decider.index, decider.label, nf, tried, smallest_proved=hi, largest_not_proved=lo,
                              largest_not_proved_verdict=decider.cache[lo].verdict)
