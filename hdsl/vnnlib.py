"""VNN-LIB 1.0 (the subset VNN-COMP benchmarks use): parse into hdsl's IR, and write it back.

A VNN-LIB file declares inputs ``X_i`` and outputs ``Y_j`` and asserts input
bounds plus the *unsafe* output condition; ``sat`` means a counterexample
exists. This maps directly onto ``hdsl.ir``: the input assertions become a
``Box`` (or a ``UnionRegion`` of boxes for a disjunction, ACAS Xu property 6)
and the output assertions an ``OutputSpec`` (an OR of ANDs of constraints).

Why a hand-written tokenizer rather than the ``vnnlib`` package on PyPI:
``vnnlib`` 1.0.x targets VNN-LIB 2.0 and rejects the 1.0 files the
benchmarks use (``declare-const`` is a syntax error there); the parser must
also point diagnostics into the file (line, column, caret) and be fast on
files with thousands of assertions (3072 inputs for marabou_cifar10).

Semantics: ``(<= A B)`` is ``B - A >= 0``; ``<`` and ``>`` are strict;
``=`` is both ``<=`` and ``>=``. Input constraints must bound one variable by
a constant (``X_i`` with coefficient +1 or -1, so no rounding is introduced);
every input needs a lower and an upper bound in every disjunct. A disjunction
that mixes input and output variables is not supported (it couples them).
Constants are read as float64 (``-0.5``, ``1e-3``, ``(- 0.5)``).
"""

from __future__ import annotations

import gzip
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Sequence, Union

from hdsl.diagnostics import Diagnostic, HdslError
from hdsl.ir import Box, Conjunction, Constraint, LinearExpr, OutputSpec, Query, Region, UnionRegion
from hdsl.source import SourceFile, Span

__all__ = [
    "VnnlibProperty",
    "parse_vnnlib",
    "load_vnnlib",
    "read_vnnlib_text",
    "write_vnnlib",
    "property_from_query",
    "region_boxes",
    "format_counterexample",
]

# Refuse to expand formulas into more than this many disjuncts (DNF blow-up).
MAX_DISJUNCTS = 100_000

_TOKEN = re.compile(r";[^\n]*|[()]|[^\s();]+")  # comments, parentheses, atoms (whitespace skipped)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")
_VAR = re.compile(r"([XY])_(\d+)\Z")
_CMP = {"<=", ">=", "<", ">", "="}
_IGNORED_COMMANDS = {"set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"}


# --------------------------------------------------------------------------- result type


@dataclass(frozen=True, slots=True)
class VnnlibProperty:
    """A parsed VNN-LIB file: input region (flattened ONNX memory order) and unsafe output set."""

    path: str
    num_inputs: int
    num_outputs: int
    region: Region  # Box, or UnionRegion of Boxes
    spec: OutputSpec

    @property
    def boxes(self) -> tuple[Box, ...]:
        return region_boxes(self.region)

    def contains(self, x: Sequence[float]) -> bool:
        """True iff ``x`` lies in one of the input boxes (closed, zero tolerance)."""
        if len(x) != self.num_inputs:
            return False
        vals = [float(v) for v in x]
        if any(math.isnan(v) for v in vals):
            return False
        return any(
            all(lo <= v <= hi for lo, v, hi in zip(b.lower, vals, b.upper)) for b in self.boxes
        )


def region_boxes(region: Region) -> tuple[Box, ...]:
    """The boxes of a Box / (nested) UnionRegion of Boxes; TypeError for other regions."""
    if isinstance(region, Box):
        return (region,)
    if isinstance(region, UnionRegion):
        out: list[Box] = []
        for part in region.parts:
            out.extend(region_boxes(part))
        return tuple(out)
    raise TypeError(f"not a box region: {type(region).__name__}")


# --------------------------------------------------------------------------- reading


def read_vnnlib_text(path: str | Path) -> str:
    """The text of a .vnnlib file, transparently gunzipped (by magic bytes, so the suffix does not matter)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise HdslError.single("V001", f"VNN-LIB file not found: {p}", path=str(p)) from None
    except OSError as err:
        raise HdslError.single("V001", f"cannot read VNN-LIB file {p}: {err.strerror}", path=str(p)) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise HdslError.single("V002", f"corrupt gzip file {p}: {err}", path=str(p)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HdslError.single("V002", f"{p} is not UTF-8 text (byte {err.start})", path=str(p),
                               hint="VNN-LIB files are plain text, optionally gzipped") from None


def load_vnnlib(path: str | Path) -> VnnlibProperty:
    """Read and parse a .vnnlib or .vnnlib.gz file."""
    return parse_vnnlib(read_vnnlib_text(path), str(path))


# --------------------------------------------------------------------------- s-expressions


@dataclass(slots=True)
class _Node:
    """An atom (``items is None``) or a parenthesised list, with its character range."""

    start: int
    end: int
    atom: str | None = None
    items: list["_Node"] | None = None


def _sexprs(src: SourceFile) -> list[_Node]:
    text = src.text
    stack: list[_Node] = []
    top: list[_Node] = []
    for m in _TOKEN.finditer(text):
        tok = m.group()
        first = tok[0]
        if first == ";":
            continue
        start = m.start()
        if first == "(":
            stack.append(_Node(start, start, items=[]))
        elif first == ")":
            if not stack:
                raise _error(src, "V101", "unbalanced ')'", start, start + 1, "remove this parenthesis")
            node = stack.pop()
            node.end = start + 1
            (stack[-1].items if stack else top).append(node)  # type: ignore[union-attr]
        else:
            if not stack:
                raise _error(src, "V102", f"unexpected '{tok}' outside parentheses", start, m.end())
            stack[-1].items.append(_Node(start, m.end(), atom=tok))  # type: ignore[union-attr]
    if stack:
        open_ = stack[-1]
        raise _error(src, "V101", "unclosed '(' (end of file reached)", open_.start, open_.start + 1,
                     "add the missing ')'")
    return top


def _error(src: SourceFile, code: str, message: str, start: int, end: int, hint: str | None = None) -> HdslError:
    return HdslError([Diagnostic(code, message, Span(src, start, end), hint)])


# --------------------------------------------------------------------------- formulas

# A linear term: (coefficients by (kind, index), constant).
_Lin = tuple[dict[tuple[str, int], float], float]


@dataclass(frozen=True, slots=True)
class _Atom:
    """``expr >= 0`` (``> 0`` when strict) over one kind of variable, with its span for diagnostics."""

    kind: str  # "X" or "Y"
    coeffs: tuple[tuple[int, float], ...]
    const: float
    strict: bool
    start: int
    end: int


_Formula = Union[_Atom, tuple]  # ("and"|"or", [formulas], node)


class _Parser:
    def __init__(self, src: SourceFile):
        self.src = src
        self.declared: dict[str, tuple[str, int]] = {}

    def err(self, node: _Node, code: str, message: str, hint: str | None = None) -> HdslError:
        return _error(self.src, code, message, node.start, node.end, hint)

    # ---- commands

    def run(self) -> VnnlibProperty:
        input_dnfs: list[list[list[_Atom]]] = []
        output_dnfs: list[list[list[_Atom]]] = []
        for cmd in _sexprs(self.src):
            if not cmd.items or cmd.items[0].atom is None:
                raise self.err(cmd, "V103", "expected a command such as (declare-const X_0 Real) or (assert ...)")
            head = cmd.items[0].atom
            if head == "declare-const":
                self.declare(cmd)
            elif head == "assert":
                if len(cmd.items) != 2:
                    raise self.err(cmd, "V103", "(assert F) takes exactly one formula")
                self.assertion(cmd.items[1], input_dnfs, output_dnfs)
            elif head in _IGNORED_COMMANDS:
                continue
            else:
                raise self.err(cmd.items[0], "V104", f"unsupported command '{head}'",
                               "VNN-LIB 1.0 files use declare-const and assert")
        return self.finish(input_dnfs, output_dnfs)

    def declare(self, cmd: _Node) -> None:
        items = cmd.items or []
        if len(items) != 3 or items[1].atom is None or items[2].atom is None:
            raise self.err(cmd, "V105", "expected (declare-const NAME Real)")
        name, sort = items[1].atom, items[2].atom
        m = _VAR.match(name)
        if not m:
            raise self.err(items[1], "V105", f"unsupported variable name '{name}'",
                           "inputs are named X_0, X_1, ... and outputs Y_0, Y_1, ...")
        if sort != "Real":
            raise self.err(items[2], "V105", f"unsupported sort '{sort}'", "VNN-LIB variables are declared Real")
        if name in self.declared:
            raise self.err(items[1], "V105", f"'{name}' is declared twice")
        self.declared[name] = (m.group(1), int(m.group(2)))

    def assertion(self, node: _Node, input_dnfs: list, output_dnfs: list) -> None:
        formula = self.formula(node)
        kinds = _kinds(formula)
        if kinds == {"X"}:
            input_dnfs.append(self.dnf(formula))
        elif kinds == {"Y"}:
            output_dnfs.append(self.dnf(formula))
        elif not kinds:
            return  # (and) with no atoms: true
        else:
            # Mixed: a pure conjunction splits into its input and output atoms; a disjunction couples them.
            bad = _first_or(formula)
            if bad is not None:
                raise self.err(bad, "V110", "a disjunction that mixes input (X) and output (Y) constraints is not supported",
                               "write input bounds and output conditions in separate asserts")
            atoms = list(_atoms(formula))
            xs = [a for a in atoms if a.kind == "X"]
            ys = [a for a in atoms if a.kind == "Y"]
            input_dnfs.append([xs])
            output_dnfs.append([ys])

    # ---- formulas

    def formula(self, node: _Node) -> _Formula:
        if node.items is None:
            if node.atom == "true":
                return ("and", [], node)
            raise self.err(node, "V106", f"expected a formula, got '{node.atom}'")
        if not node.items or node.items[0].atom is None:
            raise self.err(node, "V106", "expected a formula such as (<= X_0 1.0), (and ...) or (or ...)")
        head = node.items[0].atom
        args = node.items[1:]
        if head in ("and", "or"):
            return (head, [self.formula(a) for a in args], node)
        if head in _CMP:
            if len(args) != 2:
                raise self.err(node, "V107", f"({head} A B) takes two arguments, got {len(args)}",
                               "chained comparisons are not supported; split them")
            return self.comparison(head, args[0], args[1], node)
        if head == "not":
            raise self.err(node.items[0], "V108", "negation is not supported in VNN-LIB 1.0 properties",
                           "negate the comparison instead, e.g. (not (<= A B)) is (> A B)")
        raise self.err(node.items[0], "V108", f"unsupported operator '{head}'",
                       "supported: and, or, <=, >=, <, >, =")

    def comparison(self, op: str, a: _Node, b: _Node, node: _Node):
        la, lb = self.linear(a), self.linear(b)
        # diff = a - b
        coeffs: dict[tuple[str, int], float] = dict(la[0])
        for k, c in lb[0].items():
            coeffs[k] = coeffs.get(k, 0.0) - c
        const = la[1] - lb[1]
        coeffs = {k: c for k, c in coeffs.items() if c != 0.0}
        kinds = {k for k, _ in coeffs}
        if len(kinds) > 1:
            raise self.err(node, "V109", "a comparison mixing input (X) and output (Y) variables is not supported")
        if not kinds:
            raise self.err(node, "V109", "a comparison without variables is not supported")
        kind = kinds.pop()
        terms = tuple(sorted((i, c) for (_, i), c in coeffs.items()))

        def atom(sign: float, strict: bool) -> _Atom:
            return _Atom(kind, tuple((i, sign * c) for i, c in terms), sign * const + 0.0, strict, node.start, node.end)

        if op == ">=":
            return atom(1.0, False)
        if op == ">":
            return atom(1.0, True)
        if op == "<=":
            return atom(-1.0, False)
        if op == "<":
            return atom(-1.0, True)
        return ("and", [atom(1.0, False), atom(-1.0, False)], node)  # "="

    def linear(self, node: _Node) -> _Lin:
        if node.items is None:
            tok = node.atom or ""
            if _NUMBER.match(tok):
                v = float(tok)
                if not math.isfinite(v):
                    raise self.err(node, "V111", f"constant '{tok}' is not finite")
                return {}, v
            var = self.declared.get(tok)
            if var is None:
                if _VAR.match(tok):
                    raise self.err(node, "V112", f"'{tok}' is used but not declared",
                                   f"add (declare-const {tok} Real)")
                raise self.err(node, "V111", f"expected a number or a variable, got '{tok}'")
            return {var: 1.0}, 0.0
        if not node.items or node.items[0].atom is None:
            raise self.err(node, "V111", "expected an arithmetic term")
        head, args = node.items[0].atom, [self.linear(a) for a in node.items[1:]]
        if head == "+" and args:
            return _lin_sum(args, [1.0] * len(args))
        if head == "-" and len(args) == 1:
            return _lin_scale(args[0], -1.0)
        if head == "-" and args:
            return _lin_sum(args, [1.0] + [-1.0] * (len(args) - 1))
        if head == "*" and args:
            consts = [a for a in args if not a[0]]
            varying = [a for a in args if a[0]]
            if len(varying) > 1:
                raise self.err(node, "V113", "non-linear term: a product of variables")
            factor = 1.0
            for _, c in consts:
                factor *= c
            return _lin_scale(varying[0], factor) if varying else ({}, factor)
        if head == "/" and len(args) == 2 and not args[1][0]:
            if args[1][1] == 0.0:
                raise self.err(node, "V113", "division by zero")
            return _lin_scale(args[0], 1.0 / args[1][1])
        raise self.err(node.items[0], "V113", f"unsupported arithmetic '{head}'", "supported: + - * / by a constant")

    # ---- normal forms

    def dnf(self, formula: _Formula) -> list[list[_Atom]]:
        if isinstance(formula, _Atom):
            return [[formula]]
        op, parts, node = formula
        if op == "or":
            out: list[list[_Atom]] = []
            for p in parts:
                out.extend(self.dnf(p))
            return out
        return self.conjoin([self.dnf(p) for p in parts], node)

    def conjoin(self, dnfs: Iterable[list[list[_Atom]]], node: _Node | None) -> list[list[_Atom]]:
        acc: list[list[_Atom]] = [[]]
        for d in dnfs:
            if len(d) == 1:
                for conj in acc:
                    conj.extend(d[0])
                continue
            if len(acc) * len(d) > MAX_DISJUNCTS:
                where = node if node is not None else _Node(0, 0)
                raise self.err(where, "V114", f"the formula expands to more than {MAX_DISJUNCTS} disjuncts")
            acc = [a + b for a in acc for b in d]
        return acc

    # ---- assembly

    def finish(self, input_dnfs: list, output_dnfs: list) -> VnnlibProperty:
        xs = sorted(i for k, i in self.declared.values() if k == "X")
        ys = sorted(i for k, i in self.declared.values() if k == "Y")
        for name, seq in (("X", xs), ("Y", ys)):
            if seq != list(range(len(seq))):
                missing = next(i for i in range(len(seq) + 1) if i not in set(seq))
                raise HdslError.single("V115", f"{name}_{missing} is not declared but {name}_{seq[-1]} is",
                                       Span(self.src, 0, 0), hint="declare inputs and outputs as X_0..X_{n-1}, Y_0..Y_{m-1}")
        if not xs:
            raise HdslError.single("V115", "no input variables (X_0, X_1, ...) are declared", Span(self.src, 0, 0))
        n = len(xs)
        input_dnf = self.conjoin(input_dnfs, None)
        boxes = [self.box(conj, n) for conj in input_dnf]
        region: Region = boxes[0] if len(boxes) == 1 else UnionRegion(tuple(boxes))
        output_dnf = self.conjoin(output_dnfs, None)
        unsafe = tuple(
            Conjunction(tuple(Constraint(LinearExpr(a.coeffs, a.const), a.strict) for a in conj))
            for conj in output_dnf
        )
        return VnnlibProperty(self.src.path, n, len(ys), region, OutputSpec(unsafe))

    def box(self, conj: list[_Atom], n: int) -> Box:
        lower = [-math.inf] * n
        upper = [math.inf] * n
        for a in conj:
            if len(a.coeffs) != 1 or abs(a.coeffs[0][1]) != 1.0:
                raise _error(self.src, "V116", "input constraints must bound one variable by a constant",
                             a.start, a.end, "general input polytopes are not supported; use boxes")
            if a.strict:
                raise _error(self.src, "V116", "strict input bounds (< or >) are not supported",
                             a.start, a.end, "input regions are closed boxes: use <= or >=")
            i, c = a.coeffs[0]
            if c > 0:  # x_i + const >= 0  ->  x_i >= -const
                lower[i] = max(lower[i], -a.const)
            else:  # -x_i + const >= 0  ->  x_i <= const
                upper[i] = min(upper[i], a.const)
        for i in range(n):
            if not (math.isfinite(lower[i]) and math.isfinite(upper[i])):
                side = "lower" if not math.isfinite(lower[i]) else "upper"
                raise HdslError.single("V117", f"input X_{i} has no {side} bound", Span(self.src, 0, 0),
                                       hint=f"add (assert ({'>=' if side == 'lower' else '<='} X_{i} c))")
            if lower[i] > upper[i]:
                raise HdslError.single("V117", f"input X_{i} has an empty range [{lower[i]!r}, {upper[i]!r}]",
                                       Span(self.src, 0, 0))
        return Box(tuple(lower), tuple(upper))


def _lin_sum(args: list[_Lin], signs: list[float]) -> _Lin:
    coeffs: dict[tuple[str, int], float] = {}
    const = 0.0
    for (cs, k), s in zip(args, signs):
        for var, c in cs.items():
            coeffs[var] = coeffs.get(var, 0.0) + s * c
        const += s * k
    return coeffs, const


def _lin_scale(a: _Lin, factor: float) -> _Lin:
    return {k: factor * c for k, c in a[0].items()}, factor * a[1]


def _atoms(f: _Formula):
    if isinstance(f, _Atom):
        yield f
    else:
        for p in f[1]:
            yield from _atoms(p)


def _kinds(f: _Formula) -> set[str]:
    return {a.kind for a in _atoms(f)}


def _first_or(f: _Formula) -> _Node | None:
    if isinstance(f, _Atom):
        return None
    op, parts, node = f
    if op == "or" and len(parts) > 1:
        return node
    for p in parts:
        found = _first_or(p)
        if found is not None:
            return found
    return None


def parse_vnnlib(text: str, path: str = "<vnnlib>") -> VnnlibProperty:
    """Parse VNN-LIB text; diagnostics point into ``path`` (file:line:col with a caret)."""
    return _Parser(SourceFile(path, text)).run()


# --------------------------------------------------------------------------- writing


def _num(v: float) -> str:
    """Shortest exact decimal for a float64, without exponent (SMT-LIB decimals have none)."""
    if not math.isfinite(v):
        raise ValueError(f"cannot write non-finite constant {v!r} to VNN-LIB")
    if v == 0.0:
        return "0.0"
    s = format(Decimal(repr(float(v))), "f")
    return s if "." in s else s + ".0"


def _constraint_sexpr(c: Constraint) -> str:
    """``expr >= 0`` as a comparison that simple VNN-LIB readers understand, without rounding."""
    op = ">" if c.strict else ">="
    rop = "<" if c.strict else "<="
    terms = [(i, w) for i, w in c.expr.terms if w != 0.0]
    k = c.expr.const
    if len(terms) == 1:
        i, w = terms[0]
        if w == 1.0:
            return f"({op} Y_{i} {_num(-k)})"
        if w == -1.0:
            return f"({rop} Y_{i} {_num(k)})"
    if len(terms) == 2 and k == 0.0:
        (i, a), (j, b) = terms
        if a == 1.0 and b == -1.0:
            return f"({op} Y_{i} Y_{j})"
        if a == -1.0 and b == 1.0:
            return f"({op} Y_{j} Y_{i})"
    if not terms:
        raise ValueError("a constraint without output variables cannot be written to VNN-LIB")
    body = " ".join(f"(* {_num(w)} Y_{i})" for i, w in terms)
    lhs = body if len(terms) == 1 else f"(+ {body})"
    return f"({op} {lhs} {_num(-k)})"


def _box_atoms(b: Box) -> list[str]:
    out = []
    for i, (lo, hi) in enumerate(zip(b.lower, b.upper)):
        out.append(f"(<= X_{i} {_num(hi)})")
        out.append(f"(>= X_{i} {_num(lo)})")
    return out


def property_from_query(query: Query, center: Sequence[float] | None = None) -> VnnlibProperty:
    """The VNN-LIB view of a query: its region as boxes in the ONNX input space, and its spec.

    Regions live in hdsl's *raw* input space; when the model declares a
    normalisation, the boxes are mapped through it (per channel, channel-first)
    and rounded outward by one ulp, so the exported box contains the true image.
    An ``LinfBall``'s centre is read from its dataset unless ``center`` (flattened) is given;
    the ball is written as the box ``[c - eps, c + eps]`` clipped to the model's input domain.
    """
    from hdsl.ir import LinfBall

    net = query.network
    n = math.prod(net.input_shape) if net.input_shape else None

    def boxes_of(region) -> list[Box]:
        if isinstance(region, Box):
            return [region]
        if isinstance(region, UnionRegion):
            return [b for p in region.parts for b in boxes_of(p)]
        if isinstance(region, LinfBall):
            point = center if center is not None else _data_point(region)
            lo_d, hi_d = region.domain
            lower = tuple(max(float(c) - region.eps, lo_d) for c in point)
            upper = tuple(min(float(c) + region.eps, hi_d) for c in point)
            return [Box(lower, upper)]
        raise HdslError.single("V201", f"query {query.id}: region {type(region).__name__} cannot be written to VNN-LIB",
                               query.span)

    boxes = boxes_of(query.region)
    if net.mean is not None or net.std is not None:
        boxes = [_normalise_box(b, net.input_shape, net.mean, net.std) for b in boxes]
    if n is None:
        n = len(boxes[0].lower)
    for b in boxes:
        if len(b.lower) != n or len(b.upper) != n:
            raise HdslError.single("V202", f"query {query.id}: the region has {len(b.lower)} inputs but the network takes {n}",
                                   query.span)
    m = net.num_outputs
    used = [i for conj in query.spec.unsafe for c in conj.constraints for i, _ in c.expr.terms]
    if m is None:
        m = (max(used) + 1) if used else 1
    region: Region = boxes[0] if len(boxes) == 1 else UnionRegion(tuple(boxes))
    return VnnlibProperty(net.path, n, m, region, query.spec)


def _data_point(ball) -> list[float]:
    """The flattened centre of an L-infinity ball, read from its dataset (raw input space)."""
    from hdsl.data import load_dataset

    data = load_dataset(ball.center.data)
    return [float(v) for v in data.x[ball.center.index].reshape(-1)]


def _normalise_box(b: Box, shape: tuple[int, ...], mean, std) -> Box:
    """Map a raw-space box through ``(x - mean) / std`` (per channel of a channel-first input), outward rounded."""
    n = len(b.lower)
    channels = len(mean if mean is not None else std)
    per = n // channels if channels and n % channels == 0 else None
    if per is None:
        raise HdslError.single("V203", f"cannot apply a {channels}-channel normalisation to {n} inputs")
    lower, upper = [], []
    for i, (lo, hi) in enumerate(zip(b.lower, b.upper)):
        c = i // per
        mu = float(mean[c]) if mean is not None else 0.0
        sd = float(std[c]) if std is not None else 1.0
        a, z = (lo - mu) / sd, (hi - mu) / sd
        if sd < 0:
            a, z = z, a
        lower.append(math.nextafter(a, -math.inf))
        upper.append(math.nextafter(z, math.inf))
    return Box(tuple(lower), tuple(upper))


def format_vnnlib(prop: VnnlibProperty, comment: str | None = None) -> str:
    """The VNN-LIB text of a property (declarations, input box(es), unsafe output condition)."""
    lines: list[str] = []
    if comment:
        lines.extend(f"; {ln}" for ln in comment.splitlines())
        lines.append("")
    lines.extend(f"(declare-const X_{i} Real)" for i in range(prop.num_inputs))
    lines.append("")
    lines.extend(f"(declare-const Y_{j} Real)" for j in range(prop.num_outputs))
    lines.append("")
    boxes = prop.boxes
    lines.append("; input region")
    if len(boxes) == 1:
        lines.extend(f"(assert {a})" for a in _box_atoms(boxes[0]))
    else:
        lines.append("(assert (or")
        lines.extend(f"    (and {' '.join(_box_atoms(b))})" for b in boxes)
        lines.append("))")
    lines.append("")
    lines.append("; unsafe outputs (sat = counterexample)")
    unsafe = prop.spec.unsafe
    if not unsafe:
        # Nothing is unsafe: an unsatisfiable output condition with non-strict comparisons only.
        lines.append("(assert (>= Y_0 1.0))")
        lines.append("(assert (<= Y_0 0.0))")
    elif len(unsafe) == 1:
        lines.extend(f"(assert {_constraint_sexpr(c)})" for c in unsafe[0].constraints)
    else:
        lines.append("(assert (or")
        lines.extend(f"    (and {' '.join(_constraint_sexpr(c) for c in conj.constraints)})" for conj in unsafe)
        lines.append("))")
    return "\n".join(lines) + "\n"


def write_vnnlib(query: Query, out_path_or_none: str | Path | None = None, *,
                 center: Sequence[float] | None = None) -> str:
    """Export a query to VNN-LIB 1.0 so other verifiers can run it; returns the text (and writes it when a path is given).

    The variables are the ONNX model's inputs and outputs (flattened memory
    order); the file asserts the query's input region and its *unsafe* output
    set, so ``unsat`` from another tool means the query is proved.
    """
    prop = property_from_query(query, center)
    comment = f"hdsl query {query.id} (property {query.property}); network {query.network.path}"
    text = format_vnnlib(prop, comment)
    if out_path_or_none is not None:
        p = Path(out_path_or_none)
        data = text.encode("utf-8")
        p.write_bytes(gzip.compress(data) if p.suffix == ".gz" else data)
    return text


# --------------------------------------------------------------------------- counterexamples


def format_counterexample(x: Sequence[float], y: Sequence[float]) -> str:
    """The VNN-COMP counterexample block: ``((X_0 v)`` / `` (X_1 v)`` ... `` (Y_m v))``.

    Values are written with ``repr`` (exact for the float32 values a model sees).
    """
    entries = [f"(X_{i} {float(v)!r})" for i, v in enumerate(x)]
    entries += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(y)]
    if not entries:
        return "()"
    return "(" + "\n ".join(entries) + ")"


# --------------------------------------------------------------------------- queries


def to_query(prop: VnnlibProperty, network, query_id: str, property_name: str | None = None,
             options=None) -> Query:
    """The hdsl query of a VNN-LIB property over ``network`` (an ``hdsl.ir.Network`` without normalisation).

    Raises a diagnostic when the file's variables do not match the network's inputs or outputs.
    """
    from hdsl.ir import CheckOptions

    n = math.prod(network.input_shape)
    if prop.num_inputs != n:
        raise HdslError.single(
            "V301", f"{prop.path} declares {prop.num_inputs} inputs but {network.path} takes {n} "
            f"(shape {list(network.input_shape)})", path=prop.path,
            hint="X_i index the ONNX input flattened in memory order")
    if network.num_outputs is not None and prop.num_outputs > network.num_outputs:
        raise HdslError.single(
            "V301", f"{prop.path} declares {prop.num_outputs} outputs but {network.path} has {network.num_outputs}",
            path=prop.path)
    if network.mean is not None or network.std is not None:
        raise HdslError.single("V302", "VNN-LIB properties refer to the raw ONNX inputs; the network must have no normalisation",
                               path=prop.path)
    return Query(
        id=query_id,
        network=network,
        region=prop.region,
        spec=prop.spec,
        property=property_name or Path(prop.path).name,
        options=options if options is not None else CheckOptions(),
    )
