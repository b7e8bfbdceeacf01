"""Interval bound propagation (IBP), one node at a time, with the float32 noise model.

``node_interval`` maps the input intervals of one node to its output interval
and, for affine nodes, the per-neuron float32 noise bound ``err`` (see
``hdsl.bounds.fp``) that CROWN reuses. Affine maps use the centre/radius form,
which is exact for a single affine map over a box.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hdsl.bounds.fp import TRANSCENDENTAL_TOL, U, gamma
from hdsl.nn.graph import Graph, Node, _conv

Interval = tuple[torch.Tensor, torch.Tensor]


def fan_in(node: Node) -> int:
    """Dot-product length of one output of an affine node (for the float32 error model)."""
    p = node.params
    if node.op == "linear":
        return int(p["weight"].shape[1])
    if node.op == "conv":
        return int(math.prod(p["weight"].shape[1:]))
    if node.op == "avgpool":
        return int(math.prod(p["kernel"]))
    return 1


def abs_apply(node: Node, rs: list[torch.Tensor]) -> torch.Tensor:
    """Apply the linear part of an affine node with absolute-valued weights (no bias)."""
    op, p = node.op, node.params
    if op == "linear":
        return F.linear(rs[0], p["weight"].abs())
    if op == "conv":
        return _conv(node, rs, weight=p["weight"].abs(), bias=None)
    if op == "affine":
        return rs[0] * p["scale"].abs() if p.get("scale") is not None else rs[0]
    if op in ("add", "sub"):
        return rs[0] + rs[1]
    return node.apply(rs)  # avgpool (positive weights), reshape, transpose, concat


def abs_bias(node: Node):
    p = node.params
    if node.op in ("linear",) and p.get("bias") is not None:
        return p["bias"].abs()
    if node.op == "conv" and p.get("bias") is not None:
        return p["bias"].abs().reshape(-1, *([1] * (p["weight"].dim() - 2)))
    if node.op == "affine" and p.get("shift") is not None:
        return p["shift"].abs()
    return 0.0


EXACT_OPS = frozenset({"reshape", "transpose", "concat"})


def node_interval(node: Node, ins: list[Interval], fp: bool = True,
                  unit: float = U) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Output interval of ``node`` and its rounding noise bound in unit roundoff ``unit`` (``None`` when exact)."""
    op = node.op
    if op in EXACT_OPS:
        return node.apply([l for l, _ in ins]), node.apply([u for _, u in ins]), None
    if op == "relu":
        l, u = ins[0]
        return l.clamp_min(0), u.clamp_min(0), None
    if op == "maxpool":
        l, u = ins[0]
        return node.apply([l]), node.apply([u]), None
    if op in ("sigmoid", "tanh"):
        l, u = ins[0]
        f = torch.sigmoid if op == "sigmoid" else torch.tanh
        tol = TRANSCENDENTAL_TOL if fp else 0.0
        return f(l) - tol, f(u) + tol, None
    # affine ops: centre / radius
    cs = [(l + u) / 2 for l, u in ins]
    rs = [(u - l) / 2 for l, u in ins]
    mid = node.apply(cs)
    rad = abs_apply(node, rs)
    err = None
    if fp:
        mags = [torch.maximum(l.abs(), u.abs()) for l, u in ins]
        err = gamma(fan_in(node), unit) * (abs_apply(node, mags) + abs_bias(node))
        rad = rad + err
    return mid - rad, mid + rad, err
