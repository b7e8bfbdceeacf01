"""A stable, readable text form of the IR (``hdsl ir``; golden tests compare it).

Floats print with ``repr`` (shortest round-trip form), so the text changes only
when the IR does. Paths print relative to ``base`` (the spec's directory), so
the text does not depend on where the repository lives.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields, is_dataclass

from hdsl import ir


def _num(x: float) -> str:
    return repr(float(x)) if x != int(x) or abs(x) == float("inf") else str(int(x))


def _path(p: str, base: str | None) -> str:
    if base is None:
        return p
    try:
        return os.path.relpath(p, base).replace(os.sep, "/")
    except ValueError:  # pragma: no cover - other drive on Windows
        return p


def format_linear(e: ir.LinearExpr) -> str:
    parts = []
    for i, c in e.terms:
        sign = "-" if c < 0 else "+"
        mag = abs(c)
        term = f"y{i}" if mag == 1 else f"{_num(mag)}*y{i}"
        parts.append((sign, term))
    if e.const or not parts:
        parts.append(("-" if e.const < 0 else "+", _num(abs(e.const))))
    text = ("-" if parts[0][0] == "-" else "") + parts[0][1]
    for sign, term in parts[1:]:
        text += f" {sign} {term}"
    return text


def format_constraint(c: ir.Constraint) -> str:
    return f"{format_linear(c.expr)} {'>' if c.strict else '>='} 0"


def format_spec(spec: ir.OutputSpec, indent: str = "") -> list[str]:
    if not spec.unsafe:
        return [f"{indent}unsafe: nothing (always safe)"]
    lines = []
    for k, conj in enumerate(spec.unsafe):
        head = "unsafe: " if k == 0 else "     or "
        body = " and ".join(format_constraint(c) for c in conj.constraints) or "true (always unsafe)"
        lines.append(f"{indent}{head}{body}")
    return lines


def format_region(r, base: str | None) -> str:
    if isinstance(r, ir.Box):
        if len(r.lower) <= 8:
            return "box(" + ", ".join(f"[{_num(lo)}, {_num(hi)}]" for lo, hi in zip(r.lower, r.upper)) + ")"
        return f"box({len(r.lower)} dims, lower [{_num(min(r.lower))}..{_num(max(r.lower))}], " \
               f"upper [{_num(min(r.upper))}..{_num(max(r.upper))}])"
    if isinstance(r, ir.LinfBall):
        lo, hi = r.domain
        return f"linf({r.center.data.name}[{r.center.index}], {_num(r.eps)}) within [{_num(lo)}, {_num(hi)}]"
    if isinstance(r, ir.UnionRegion):
        return "union(" + ", ".join(format_region(p, base) for p in r.parts) + ")"
    return repr(r)


def _hier(node) -> str:
    if isinstance(node, str):
        return node
    return f"{node.name} {{ " + " ".join(_hier(c) for c in node.children) + " }"


def format_program(program: ir.Program, base: str | None = None) -> str:
    out: list[str] = []
    for n in program.networks:
        line = f"network {n.name} = onnx \"{_path(n.path, base)}\" input {list(n.input_shape)}"
        if n.input_range:
            line += f" in [{_num(n.input_range[0])}, {_num(n.input_range[1])}]"
        if n.mean:
            line += f" mean {[float(v) for v in n.mean]} std {[float(v) for v in n.std]}"
        line += f" outputs {n.num_outputs}"
        if n.classes:
            line += " (" + " ".join(n.classes) + ")"
        out.append(line)
    for d in program.datasets:
        opts = " ".join(f"{k}={v}" for k, v in d.options)
        rows = "all" if d.indices is None else len(d.indices)
        out.append(f"data {d.name} = {d.format} \"{_path(d.path, base)}\" rows {rows}" + (f" {opts}" if opts else ""))
    for h in program.hierarchies:
        out.append(f"hierarchy {h.name} depth {h.depth()}: {_hier(h.root)}")
    for check in program.checks:
        o = check.options
        timeout = "default" if o.timeout is None else f"{_num(o.timeout)}s"
        arithmetic = f" arithmetic {o.arithmetic}" if o.arithmetic != "float32" else ""
        out.append(f"check {check.property} timeout {timeout} backend {o.backend}{arithmetic} "
                   f"({len(check.items)} items)")
        for item in check.items:
            if not isinstance(item, ir.Query):
                out.append(f"  item {item!r}")
                continue
            meta = []
            if item.label is not None:
                meta.append(f"label {item.label}")
            if item.level is not None:
                meta.append(f"level {item.level}")
            if item.eps is not None:
                meta.append(f"eps {_num(item.eps)}")
            out.append(f"  query {item.id} on {item.network.name}" + (f" ({', '.join(meta)})" if meta else ""))
            out.append(f"    region {format_region(item.region, base)}")
            out.extend(format_spec(item.spec, "    "))
    return "\n".join(out) + "\n"


def to_json(obj, base: str | None = None):
    """Plain data for ``hdsl ir --json``: dataclass fields that take part in equality (no spans),
    paths relative to ``base``, infinities as strings."""
    if is_dataclass(obj):
        out = {"kind": type(obj).__name__}
        for f in fields(obj):
            if not f.compare:
                continue
            value = getattr(obj, f.name)
            out[f.name] = _path(value, base) if f.name == "path" and isinstance(value, str) else to_json(value, base)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_json(x, base) for x in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj
