"""Output conditions -> unsafe sets (OR of ANDs), and pure IR -> IR passes.

A property's output condition is a small boolean formula over two kinds of
atoms: ``argmax y in S`` and linear comparisons ``e(y) op 0``. A query must
show the condition holds everywhere, so the IR stores its *negation* as a
disjunction of conjunctions (``hdsl.ir.OutputSpec``). Negating first keeps it
small: the unsafe set of ``argmax y in S`` over ``n`` classes is

    OR_{k not in S} AND_{j in S} (y_k - y_j >= 0)        (a tie is unsafe)

|K| disjuncts of |S| constraints, and a negated membership (``argmax y in S``
is what must *not* happen) is ``OR_{j in S} AND_{k not in S} (y_j - y_k > 0)``.
Only ``and``/``or`` across atoms multiply disjuncts; that product is capped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product
from typing import Union

from hdsl import ir

MAX_DISJUNCTS = 4096


class TooComplex(Exception):
    """The unsafe set would need more than ``MAX_DISJUNCTS`` disjuncts."""


@dataclass(frozen=True, slots=True)
class ArgmaxIn:
    """``argmax y`` (strict: every class in ``classes`` beats every class outside)."""

    classes: frozenset[int]


@dataclass(frozen=True, slots=True)
class Linear:
    """``expr op 0`` with ``op`` one of ``>= > == !=``."""

    expr: ir.LinearExpr
    op: str


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple["Formula", ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple["Formula", ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: "Formula"


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


Formula = Union[ArgmaxIn, Linear, And, Or, Not, Const]
_DNF = list[tuple[ir.Constraint, ...]]


def _neg(e: ir.LinearExpr) -> ir.LinearExpr:
    return ir.LinearExpr(tuple((i, -c) for i, c in e.terms), -e.const)


def _diff(a: int, b: int) -> ir.LinearExpr:
    """``y_a - y_b``."""
    return ir.LinearExpr(((a, 1.0), (b, -1.0)))


def _dnf(f: Formula, holds: bool, n: int) -> _DNF:
    """Disjuncts (each a conjunction) describing where ``f`` is ``holds``."""
    if isinstance(f, Const):
        return [()] if f.value == holds else []
    if isinstance(f, Not):
        return _dnf(f.part, not holds, n)
    if isinstance(f, (And, Or)):
        conjunctive = isinstance(f, And) == holds
        parts = [_dnf(p, holds, n) for p in f.parts]
        if not conjunctive:
            return [c for p in parts for c in p]
        size = 1
        for p in parts:
            size *= len(p)
        if size > MAX_DISJUNCTS:
            raise TooComplex(size)
        return [tuple(c for conj in combo for c in conj) for combo in product(*parts)]
    if isinstance(f, ArgmaxIn):
        inside = sorted(f.classes)
        outside = [k for k in range(n) if k not in f.classes]
        if holds:  # some j in S strictly beats every k outside
            if not outside:
                return [()]
            return [tuple(ir.Constraint(_diff(j, k), strict=True) for k in outside) for j in inside]
        # argmax leaves S: some k outside reaches every j in S (ties count as leaving)
        if not inside:
            return [()]
        return [tuple(ir.Constraint(_diff(k, j)) for j in inside) for k in outside]
    if isinstance(f, Linear):
        e, op = f.expr, f.op
        if not holds:
            op = {">=": "<", ">": "<=", "==": "!=", "!=": "=="}[op]
        if op == ">=":
            return [(ir.Constraint(e),)]
        if op == ">":
            return [(ir.Constraint(e, strict=True),)]
        if op == "<=":
            return [(ir.Constraint(_neg(e)),)]
        if op == "<":
            return [(ir.Constraint(_neg(e), strict=True),)]
        if op == "==":
            return [(ir.Constraint(e), ir.Constraint(_neg(e)))]
        return [(ir.Constraint(e, strict=True),), (ir.Constraint(_neg(e), strict=True),)]
    raise TypeError(f"not a formula: {f!r}")  # pragma: no cover - internal misuse


def dnf_size(f: Formula, n: int, holds: bool = False) -> int:
    """How many disjuncts ``_dnf(f, holds, n)`` will have (before de-duplication), without building them."""
    if isinstance(f, Const):
        return 1 if f.value == holds else 0
    if isinstance(f, Not):
        return dnf_size(f.part, n, not holds)
    if isinstance(f, (And, Or)):
        sizes = [dnf_size(p, n, holds) for p in f.parts]
        if isinstance(f, And) == holds:
            total = 1
            for s in sizes:
                total *= s
            return total
        return sum(sizes)
    if isinstance(f, ArgmaxIn):
        inside = len(f.classes)
        if holds:
            return inside if inside < n else 1
        return n - inside if inside else 1
    return 2 if (f.op == "==" and not holds) or (f.op == "!=" and holds) else 1


def unsafe_spec(condition: Formula, num_outputs: int) -> ir.OutputSpec:
    """The unsafe set of ``condition`` over ``num_outputs`` outputs (raises ``TooComplex``)."""
    disjuncts = []
    seen = set()
    for conj in _dnf(condition, False, num_outputs):
        unique = tuple(dict.fromkeys(conj))
        if unique not in seen:
            seen.add(unique)
            disjuncts.append(ir.Conjunction(unique))
    return ir.OutputSpec(tuple(disjuncts))


# --------------------------------------------------------------------------- IR passes


def drop_subsumed_disjuncts(program: ir.Program) -> ir.Program:
    """Remove a disjunct whose constraints include all of another's (it adds no unsafe point)."""

    def simplify(spec: ir.OutputSpec) -> ir.OutputSpec:
        sets = [frozenset(c.constraints) for c in spec.unsafe]
        keep = [c for i, c in enumerate(spec.unsafe)
                if not any(j != i and sets[j] < sets[i] for j in range(len(sets)))]
        return spec if len(keep) == len(spec.unsafe) else ir.OutputSpec(tuple(keep))

    checks = []
    for check in program.checks:
        items = tuple(replace(q, spec=simplify(q.spec)) if isinstance(q, ir.Query) else q for q in check.items)
        checks.append(replace(check, items=items))
    return replace(program, checks=tuple(checks))


PASSES = (drop_subsumed_disjuncts,)


def run_passes(program: ir.Program) -> ir.Program:
    for p in PASSES:
        program = p(program)
    return program
