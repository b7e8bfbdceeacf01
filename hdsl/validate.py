"""IR invariants, checked after lowering and after every pass in the tests.

A violation is a bug in hdsl (not in the user's spec), so this returns plain
messages; the tests assert the list is empty.
"""

from __future__ import annotations

import math

from hdsl import ir


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def query_problems(q: ir.Query) -> list[str]:
    out: list[str] = []
    net = q.network
    n_out = net.num_outputs
    if n_out is None or n_out <= 0:
        out.append(f"{q.id}: network {net.name} has no output count")
    if not net.input_shape or any(d <= 0 for d in net.input_shape):
        out.append(f"{q.id}: bad input shape {net.input_shape}")
    for k, conj in enumerate(q.spec.unsafe):
        for c in conj.constraints:
            for i, coef in c.expr.terms:
                if n_out is not None and not 0 <= i < n_out:
                    out.append(f"{q.id}: disjunct {k} uses output y{i} of {n_out}")
                if not math.isfinite(coef) or coef == 0:
                    out.append(f"{q.id}: disjunct {k} has coefficient {coef} on y{i}")
            idx = [i for i, _ in c.expr.terms]
            if len(idx) != len(set(idx)):
                out.append(f"{q.id}: disjunct {k} repeats an output in one constraint")
            if not math.isfinite(c.expr.const):
                out.append(f"{q.id}: disjunct {k} has a non-finite constant")
    for r in (q.region.parts if isinstance(q.region, ir.UnionRegion) else (q.region,)):
        out.extend(_region_problems(q, r, net))
    if q.label is not None and n_out is not None and not 0 <= q.label < n_out:
        out.append(f"{q.id}: label {q.label} out of range")
    return out


def _region_problems(q: ir.Query, r, net: ir.Network) -> list[str]:
    out: list[str] = []
    if isinstance(r, ir.Box):
        if len(r.lower) != len(r.upper) or len(r.lower) != _size(net.input_shape):
            out.append(f"{q.id}: box has {len(r.lower)}/{len(r.upper)} bounds for input size {_size(net.input_shape)}")
        elif any(lo > hi for lo, hi in zip(r.lower, r.upper)):
            out.append(f"{q.id}: empty box")
    elif isinstance(r, ir.LinfBall):
        if not r.eps >= 0:
            out.append(f"{q.id}: negative eps {r.eps}")
        if r.domain[0] > r.domain[1]:
            out.append(f"{q.id}: empty domain {r.domain}")
        ds = r.center.data
        if ds.indices is not None and not 0 <= r.center.index < len(ds.indices):
            out.append(f"{q.id}: data point {r.center.index} outside the selection of {ds.name}")
        if q.eps is not None and q.eps != r.eps:
            out.append(f"{q.id}: eps {q.eps} differs from the region's {r.eps}")
    else:
        out.append(f"{q.id}: unexpected region {type(r).__name__}")
    return out


def program_problems(program: ir.Program) -> list[str]:
    out: list[str] = []
    ids: set[str] = set()
    for check in program.checks:
        for item in check.items:
            if isinstance(item, ir.Query):
                if item.id in ids:
                    out.append(f"duplicate query id {item.id}")
                ids.add(item.id)
                if item.property != check.property:
                    out.append(f"{item.id}: belongs to {item.property}, listed under {check.property}")
                out.extend(query_problems(item))
            own = ir.options_of(item)
            if own is not None and own != check.options:
                out.append(f"{getattr(item, 'id', item)}: options differ from its check's")
    for n in program.networks:
        if n.classes is not None and n.num_outputs is not None and len(n.classes) != n.num_outputs:
            out.append(f"network {n.name}: {len(n.classes)} classes for {n.num_outputs} outputs")
    return out
