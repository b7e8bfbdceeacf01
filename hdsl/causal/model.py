"""High-level causal models: typed finite variables and structural equations.

A model is evaluated exactly and vectorised: every variable holds an int64
array (one entry per setting), so the counterfactual labels of millions of
interchange pairs cost a handful of numpy operations.

Value codes: ``bool`` is 0/1, ``int[lo..hi]`` is the integer itself, an enum is
the index of its label. The *class index* of a value (what a network's argmax
is compared with) is ``code - lo`` for ints and the code otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from hdsl.diagnostics import HdslError
from hdsl.source import Span

# --------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class VarType:
    """A finite domain: ``bool``, ``int[lo..hi]`` or ``enum{a, b, ...}``."""

    kind: str  # "bool" | "int" | "enum"
    lo: int = 0
    hi: int = 1
    labels: tuple[str, ...] = ()

    @classmethod
    def boolean(cls) -> "VarType":
        return cls("bool", 0, 1)

    @classmethod
    def integer(cls, lo: int, hi: int) -> "VarType":
        if hi < lo:
            raise ValueError(f"empty integer range {lo}..{hi}")
        return cls("int", lo, hi)

    @classmethod
    def enum(cls, labels: tuple[str, ...]) -> "VarType":
        if not labels:
            raise ValueError("empty enum")
        return cls("enum", 0, len(labels) - 1, tuple(labels))

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1

    def codes(self) -> range:
        return range(self.lo, self.hi + 1)

    def show(self, code: int) -> str:
        if self.kind == "bool":
            return "true" if code else "false"
        if self.kind == "enum":
            return self.labels[code]
        return str(code)

    def __str__(self) -> str:
        if self.kind == "bool":
            return "bool"
        if self.kind == "int":
            return f"int[{self.lo}..{self.hi}]"
        return "enum{" + ", ".join(self.labels) + "}"


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Const:
    value: int
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Ref:
    name: str
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" | "not"
    operand: "Expr"
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * / % == != < <= > >= and or xor
    left: "Expr"
    right: "Expr"
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IfElse:
    cond: "Expr"
    then: "Expr"
    other: "Expr"
    span: Span | None = field(default=None, compare=False, repr=False)


Expr = Union[Const, Ref, Unary, Binary, IfElse]

ARITH = ("+", "-", "*", "/", "%")
COMPARE = ("==", "!=", "<", "<=", ">", ">=")
LOGIC = ("and", "or", "xor")


def refs(expr: Expr) -> set[str]:
    """Names an expression reads (its parents)."""
    if isinstance(expr, Ref):
        return {expr.name}
    if isinstance(expr, Const):
        return set()
    if isinstance(expr, Unary):
        return refs(expr.operand)
    if isinstance(expr, Binary):
        return refs(expr.left) | refs(expr.right)
    return refs(expr.cond) | refs(expr.then) | refs(expr.other)


def show_expr(expr: Expr) -> str:
    if isinstance(expr, Const):
        return str(expr.value)
    if isinstance(expr, Ref):
        return expr.name
    if isinstance(expr, Unary):
        return f"({expr.op} {show_expr(expr.operand)})" if expr.op == "not" else f"(-{show_expr(expr.operand)})"
    if isinstance(expr, Binary):
        return f"({show_expr(expr.left)} {expr.op} {show_expr(expr.right)})"
    return f"(if {show_expr(expr.cond)} then {show_expr(expr.then)} else {show_expr(expr.other)})"


def _eval(expr: Expr, env: dict, n: int):
    import numpy as np

    if isinstance(expr, Const):
        return np.full(n, expr.value, dtype=np.int64)
    if isinstance(expr, Ref):
        return env[expr.name]
    if isinstance(expr, Unary):
        v = _eval(expr.operand, env, n)
        return (v == 0).astype(np.int64) if expr.op == "not" else -v
    if isinstance(expr, IfElse):
        c = _eval(expr.cond, env, n)
        return np.where(c != 0, _eval(expr.then, env, n), _eval(expr.other, env, n))
    a, b = _eval(expr.left, env, n), _eval(expr.right, env, n)
    op = expr.op
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op in ("/", "%"):
        if np.any(b == 0):
            raise HdslError.single("C110", f"division by zero in {show_expr(expr)}", expr.span,
                                   "guard the divisor with `if ... then ... else ...`")
        return np.floor_divide(a, b) if op == "/" else np.mod(a, b)
    if op in COMPARE:
        f = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
             ">": np.greater, ">=": np.greater_equal}[op]
        return f(a, b).astype(np.int64)
    a, b = a != 0, b != 0
    if op == "and":
        return (a & b).astype(np.int64)
    if op == "or":
        return (a | b).astype(np.int64)
    if op == "xor":
        return (a ^ b).astype(np.int64)
    raise HdslError.single("C111", f"unknown operator {op!r}", expr.span)


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class CausalVar:
    """An input (``expr is None``) or an intermediate/output variable with its equation."""

    name: str
    type: VarType
    expr: Expr | None = None
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CausalModel:
    """A finite structural causal model with one output variable."""

    name: str
    inputs: tuple[CausalVar, ...]
    variables: tuple[CausalVar, ...]  # in a topological order (validated)
    output: str
    span: Span | None = field(default=None, compare=False, repr=False)

    # ---------------------------------------------------------------- structure
    def var(self, name: str) -> CausalVar:
        for v in self.inputs + self.variables:
            if v.name == name:
                return v
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.inputs + self.variables)

    @property
    def input_count(self) -> int:
        n = 1
        for v in self.inputs:
            n *= v.type.size
        return n

    def parents(self, name: str) -> set[str]:
        v = self.var(name)
        return set() if v.expr is None else refs(v.expr)

    def descendants(self, name: str) -> set[str]:
        out: set[str] = set()
        frontier = {name}
        while frontier:
            nxt = {v.name for v in self.variables if v.expr is not None and refs(v.expr) & frontier}
            nxt -= out
            out |= nxt
            frontier = nxt
        return out

    @property
    def output_type(self) -> VarType:
        return self.var(self.output).type

    # ---------------------------------------------------------------- evaluation
    def enumerate_inputs(self) -> dict:
        """Every input setting, row-major in declaration order (the last input varies fastest)."""
        import numpy as np

        sizes = [v.type.size for v in self.inputs]
        idx = np.indices(sizes).reshape(len(sizes), -1) if sizes else np.zeros((0, 1), dtype=np.int64)
        return {v.name: idx[i].astype(np.int64) + v.type.lo for i, v in enumerate(self.inputs)}

    def run(self, inputs: dict, interventions: dict | None = None) -> dict:
        """All variables' values; an intervened variable ignores its equation (inputs too)."""
        import numpy as np

        interventions = interventions or {}
        n = len(next(iter(inputs.values()))) if inputs else len(next(iter(interventions.values())))
        env: dict = {}
        for v in self.inputs:
            env[v.name] = np.asarray(interventions.get(v.name, inputs[v.name]), dtype=np.int64)
        for v in self.variables:
            if v.name in interventions:
                env[v.name] = np.asarray(interventions[v.name], dtype=np.int64)
                continue
            val = np.broadcast_to(_eval(v.expr, env, n), (n,)).astype(np.int64)
            bad = (val < v.type.lo) | (val > v.type.hi)
            if np.any(bad):
                example = int(val[np.argmax(bad)])
                raise HdslError.single(
                    "C112", f"equation of {v.name} gives {example}, outside its type {v.type}",
                    v.span, "widen the type or reduce the value (e.g. with `%`)")
            env[v.name] = val
        return env

    def label(self, values: dict):
        """Class index of the output (what the network's readout is compared with)."""
        return values[self.output] - self.output_type.lo


def validate(model: CausalModel) -> CausalModel:
    """Name resolution, types of equations, cycles; returns the model with variables topologically sorted."""
    seen: dict[str, CausalVar] = {}
    for v in model.inputs + model.variables:
        if v.name in seen:
            raise HdslError.single("C101", f"variable {v.name!r} is declared twice in causal model {model.name!r}",
                                   v.span)
        seen[v.name] = v
    input_names = {v.name for v in model.inputs}
    for v in model.variables:
        if v.expr is None:
            raise HdslError.single("C102", f"variable {v.name!r} has no equation", v.span,
                                   "declare it as an `input` or give it `= expression`")
        for r in sorted(refs(v.expr)):
            if r not in seen:
                raise HdslError.single("C103", f"unknown variable {r!r} in the equation of {v.name!r}",
                                       _ref_span(v.expr, r) or v.span,
                                       "known variables: " + ", ".join(seen))
    # topological sort (Kahn), reporting a cycle with its members
    pending = {v.name: refs(v.expr) - input_names for v in model.variables}
    order: list[CausalVar] = []
    done: set[str] = set()
    while pending:
        ready = [n for n, deps in pending.items() if deps <= done]
        if not ready:
            cyc = sorted(pending)
            raise HdslError.single("C104", "causal model " + repr(model.name) + " has a cycle among "
                                   + ", ".join(cyc), seen[cyc[0]].span,
                                   "structural equations must form a directed acyclic graph")
        for n in [v.name for v in model.variables if v.name in ready]:
            order.append(seen[n])
            done.add(n)
            del pending[n]
    if model.output not in seen:
        raise HdslError.single("C105", f"output {model.output!r} is not a variable of {model.name!r}", model.span)
    if not model.inputs:
        raise HdslError.single("C106", f"causal model {model.name!r} has no inputs", model.span)
    out = CausalModel(model.name, model.inputs, tuple(order), model.output, model.span)
    _check_ranges(out)
    return out


def _ref_span(expr: Expr, name: str) -> Span | None:
    if isinstance(expr, Ref):
        return expr.span if expr.name == name else None
    for child in _children(expr):
        s = _ref_span(child, name)
        if s is not None:
            return s
    return None


def _children(expr: Expr) -> tuple:
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, IfElse):
        return (expr.cond, expr.then, expr.other)
    return ()


def _check_ranges(model: CausalModel, limit: int = 1_000_000) -> None:
    """Every equation must stay in its type for *every* parent setting (interventions reach them all)."""
    import numpy as np

    for v in model.variables:
        ps = sorted(refs(v.expr))
        sizes = [model.var(p).type.size for p in ps]
        total = int(np.prod(sizes)) if sizes else 1
        if total > limit:
            continue  # checked at evaluation time instead
        grid = np.indices(sizes).reshape(len(sizes), -1) if sizes else np.zeros((0, 1), dtype=np.int64)
        env = {p: grid[i].astype(np.int64) + model.var(p).type.lo for i, p in enumerate(ps)}
        val = np.broadcast_to(_eval(v.expr, env, total), (total,))
        bad = (val < v.type.lo) | (val > v.type.hi)
        if np.any(bad):
            j = int(np.argmax(bad))
            at = ", ".join(f"{p}={model.var(p).type.show(int(env[p][j]))}" for p in ps)
            raise HdslError.single(
                "C112", f"equation of {v.name} gives {int(val[j])} at {at}, outside its type {v.type}",
                v.span, "widen the type or keep the value in range (e.g. with `%`); interventions can set "
                        "parents to any value of their type")
