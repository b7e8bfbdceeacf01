"""Bound propagation: IBP, CROWN/DeepPoly and optimised slopes, batched over boxes and specs.

``compute_bounds(graph, lo, hi, C, d, method)`` returns sound lower/upper bounds
of ``C y + d`` for every box ``[lo_b, hi_b]`` of a batch, where ``y`` is the
network output (flattened) and ``C`` a specification matrix ``[B, m, n_out]``
(or ``[m, n_out]`` shared by the batch). Soundness under floating point is
explained in ``hdsl.bounds.fp``. Work runs in float64 on ``device`` (CUDA when
available by default).

Guarantees the tests check: every bound contains sampled outputs (float64 and
onnxruntime float32); ``crown`` is never looser than ``ibp`` (intermediate
bounds are intersected with IBP and the final bound with the interval bound);
``alpha`` is never looser than ``crown`` (running maximum from CROWN's bound).

Lower-level pieces for other backends (branch and bound, the lambda
optimisation of disjunctions): ``prepare``, ``intermediate_bounds``
(-> ``BoundState``), ``spec_lower_bound`` (differentiable in ``C`` and the
slopes), ``alpha_spec_lower_bound``, ``init_alphas``.
"""

from __future__ import annotations

import os
import time

import torch

from hdsl.bounds.alpha import alpha_spec_lower_bound, init_alphas, optimise_slopes
from hdsl.bounds.crown import (BoundState, BoundsTimeout, interval_spec_lower, intermediate_bounds,
                               spec_lower_bound)
from hdsl.bounds.fp import final_margin, unit_roundoff
from hdsl.nn.graph import Graph

METHODS = ("ibp", "crown", "alpha")

_PREPARED: dict[tuple[int, str], tuple[Graph, Graph]] = {}


#: Environment variable that picks the device of every bound computation (``cpu``, ``cuda``, ``cuda:1``);
#: ``hdsl check --device`` sets it, so worker processes inherit the choice.
DEVICE_ENV = "HDSL_DEVICE"


def resolve_device(name: str) -> torch.device:
    """The device ``name`` names; a ``RuntimeError`` when it asks for CUDA and torch sees none."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{name}: torch sees no CUDA device")
    return device


def default_device() -> torch.device:
    """``$HDSL_DEVICE`` when set, else CUDA when available, else the CPU."""
    chosen = os.environ.get(DEVICE_ENV, "").strip()
    if chosen:
        try:
            return resolve_device(chosen)
        except RuntimeError as err:
            raise RuntimeError(f"{DEVICE_ENV}={err}") from None
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare(graph: Graph, device=None) -> Graph:
    """The float64 twin of ``graph`` on ``device`` (cached)."""
    device = torch.device(device) if device is not None else default_device()
    key = (id(graph), str(device))
    hit = _PREPARED.get(key)
    if hit is None or hit[0] is not graph:
        hit = (graph, graph.to(device=device, dtype=torch.float64))
        _PREPARED[key] = hit
    return hit[1]


def as_box(graph: Graph, lo, hi, device) -> tuple[torch.Tensor, torch.Tensor]:
    lo = torch.as_tensor(lo, dtype=torch.float64, device=device)
    hi = torch.as_tensor(hi, dtype=torch.float64, device=device)
    if lo.dim() == 1 or tuple(lo.shape) == tuple(graph.input_shape):
        lo, hi = lo.unsqueeze(0), hi.unsqueeze(0)
    B = lo.shape[0]
    lo, hi = lo.reshape(B, *graph.input_shape), hi.reshape(B, *graph.input_shape)
    if bool((lo > hi).any()):
        raise ValueError("empty box: some lower bound exceeds its upper bound")
    return lo, hi


def bound_state(graph: Graph, lo, hi, method: str = "crown", device=None, fp: bool = True,
                max_elems: int = 2 ** 25, deadline: float | None = None, prior: BoundState | None = None,
                alpha_iters: int = 10, alpha_lr: float = 0.25, arithmetic: str = "float32") -> BoundState:
    """Intermediate bounds of every node for a batch of boxes (reusable across specs).

    ``method="alpha"`` also optimises the slopes for the intermediate bounds
    (``alpha_iters`` per layer), starting from ``prior`` (a CROWN state of the
    same boxes) when given. ``deadline`` (``time.monotonic()``): raises
    ``BoundsTimeout`` once passed (for ``alpha`` with a prior: stops optimising).
    ``arithmetic="real"`` bounds the real-valued network only (``hdsl.bounds.fp``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown bound method {method!r}; use one of {METHODS}")
    g64 = prepare(graph, device)
    lo, hi = as_box(graph, lo, hi, g64.device)
    unit = unit_roundoff(arithmetic)
    with torch.no_grad():
        if method == "alpha":
            if prior is None:
                prior = intermediate_bounds(g64, lo, hi, "crown", fp, max_elems, deadline, unit=unit)
            state = intermediate_bounds(g64, lo, hi, "crown", fp, max_elems, deadline, prior, alpha_iters, alpha_lr,
                                        unit=unit)
            state.method = "alpha"
            state.prior = prior
            return state
        return intermediate_bounds(g64, lo, hi, "ibp" if method == "ibp" else "crown", fp, max_elems, deadline,
                                   unit=unit)


def spec_bounds(state: BoundState, C: torch.Tensor, d: torch.Tensor | None = None, method: str = "crown",
                alpha_iters: int = 20, alpha_lr: float = 0.25, deadline: float | None = None,
                done=None) -> torch.Tensor:
    """Sound lower bounds ``[B, m]`` of ``C y + d`` from a ``BoundState``."""
    dev = state.lo.device
    C = torch.as_tensor(C, dtype=torch.float64, device=dev)
    d = None if d is None else torch.as_tensor(d, dtype=torch.float64, device=dev)
    with torch.no_grad():
        if method == "ibp":
            lb = interval_spec_lower(state, C, d)
        else:
            lb = spec_lower_bound(state, C, d)
    if method == "alpha":
        lb = alpha_spec_lower_bound(state, C, d, iters=alpha_iters, lr=alpha_lr, deadline=deadline, done=done,
                                    start=lb)
    return final_margin(lb) if state.fp else lb


def compute_bounds(graph: Graph, lo, hi, C=None, d=None, method: str = "crown", need_upper: bool = True,
                   device=None, fp: bool = True, alpha_iters: int = 20, alpha_lr: float = 0.25,
                   deadline: float | None = None, alpha_intermediate_iters: int = 10, arithmetic: str = "float32"):
    """Bounds ``(lb, ub)`` of ``C y + d`` over boxes ``[lo, hi]`` (``ub`` is ``None`` unless ``need_upper``).

    ``lo``/``hi``: ``[B, *input_shape]`` (or flattened, or one unbatched box).
    ``C``: ``[B, m, n_out]`` or ``[m, n_out]``; ``None`` means the outputs themselves.
    ``arithmetic``: what the bounds hold for (``hdsl.bounds.fp``; see ``bound_state``).
    """
    state = bound_state(graph, lo, hi, method, device, fp, deadline=deadline, alpha_iters=alpha_intermediate_iters,
                        alpha_lr=alpha_lr, arithmetic=arithmetic)
    B, n_out = state.batch, graph.output_size
    dev = state.lo.device
    C = torch.eye(n_out, dtype=torch.float64, device=dev) if C is None else \
        torch.as_tensor(C, dtype=torch.float64, device=dev)
    C = C.expand(B, *C.shape[-2:]) if C.dim() == 2 else C
    m = C.shape[1]
    if d is not None:
        d = torch.as_tensor(d, dtype=torch.float64, device=dev).expand(B, m)
    rows = torch.cat([C, -C], 1) if need_upper else C
    drows = None if d is None else (torch.cat([d, -d], 1) if need_upper else d)
    lb = spec_bounds(state, rows, drows, method, alpha_iters, alpha_lr, deadline)
    if need_upper:
        return lb[:, :m], -lb[:, m:]
    return lb, None


__all__ = ["METHODS", "BoundState", "BoundsTimeout", "bound_state", "compute_bounds", "init_alphas", "intermediate_bounds",
           "prepare", "spec_bounds", "spec_lower_bound", "alpha_spec_lower_bound", "optimise_slopes",
           "default_device", "resolve_device", "DEVICE_ENV"]
