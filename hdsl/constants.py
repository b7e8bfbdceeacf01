"""Constant folding with exact fractions.

``2/255`` stays ``Fraction(2, 255)`` until the IR needs a float, so ``eps``
means the same number whichever way it is written. Values are a ``Fraction``
or a tuple of them (a list constant); arithmetic broadcasts a scalar over a
list and works element-wise on lists of equal length.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from typing import Callable, Union

from hdsl import ast
from hdsl.diagnostics import Diagnostic, HdslError

Value = Union[Fraction, tuple]

# Diagnostic codes
E_NOT_CONSTANT = "E301"
E_DIV_ZERO = "E302"
E_SHAPE = "E303"
E_BAD_VALUE = "E304"

# Every constant ends up a float64 in the IR; anything larger in magnitude would become inf (or
# raise OverflowError) there, so the folder rejects it where it is written.
FLOAT_MAX = Fraction(sys.float_info.max)


def _err(code: str, message: str, node, hint: str | None = None) -> HdslError:
    return HdslError([Diagnostic(code, message, getattr(node, "span", None), hint)])


def evaluate(expr, lookup: Callable[[ast.Name], Value | None]) -> Value:
    """Fold ``expr``; ``lookup(name)`` returns a constant's value or None (then: an error)."""
    value = _evaluate(expr, lookup)
    if isinstance(expr, (ast.Number, ast.BinOp)):
        for v in value if isinstance(value, tuple) else (value,):
            if abs(v) > FLOAT_MAX:
                hint = "check for a division by a tiny number" if isinstance(expr, ast.BinOp) else \
                    "write a number below 1.8e308"
                raise _err(E_BAD_VALUE, "this number is too large: constants must fit a 64-bit float "
                           f"(magnitude at most {sys.float_info.max:.4g})", expr, hint)
    return value


def _evaluate(expr, lookup: Callable[[ast.Name], Value | None]) -> Value:
    if isinstance(expr, ast.Number):
        return expr.value
    if isinstance(expr, ast.Name):
        value = lookup(expr)
        if value is None:
            raise _err(E_NOT_CONSTANT, f"'{expr.id}' is not a constant", expr,
                       "only numbers, lists and `const` names may appear here")
        return value
    if isinstance(expr, ast.Neg):
        return _map(lambda a: -a, evaluate(expr.operand, lookup))
    if isinstance(expr, ast.ListExpr):
        items = []
        for item in expr.items:
            v = evaluate(item, lookup)
            if isinstance(v, tuple):
                items.extend(v)  # nested lists flatten (memory order)
            else:
                items.append(v)
        return tuple(items)
    if isinstance(expr, ast.BinOp) and expr.op in "+-*/":
        left, right = evaluate(expr.left, lookup), evaluate(expr.right, lookup)
        return _binary(expr, left, right)
    raise _err(E_NOT_CONSTANT, "expected a constant expression", expr,
               "only numbers, lists, `const` names and + - * / may appear here")


def _map(f, v: Value) -> Value:
    return tuple(f(a) for a in v) if isinstance(v, tuple) else f(v)


def _binary(node: ast.BinOp, a: Value, b: Value) -> Value:
    op = node.op

    def one(x: Fraction, y: Fraction) -> Fraction:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if y == 0:
            raise _err(E_DIV_ZERO, "division by zero", node)
        return x / y

    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) != len(b):
            raise _err(E_SHAPE, f"lists of different lengths ({len(a)} and {len(b)})", node)
        return tuple(one(x, y) for x, y in zip(a, b))
    if isinstance(a, tuple):
        return tuple(one(x, b) for x in a)
    if isinstance(b, tuple):
        return tuple(one(a, y) for y in b)
    return one(a, b)


SEED_MAX = 2**32 - 1  # numpy's legacy seeding takes no more; torch's takes as many


def seed_value(v: Value, node) -> int:
    """A random seed: an integer in [0, 2^32 - 1], or an E304 at ``node``."""
    if isinstance(v, tuple) or v.denominator != 1 or not 0 <= v <= SEED_MAX:
        raise _err(E_BAD_VALUE, f"a seed is an integer from 0 to {SEED_MAX}, not {show(v)}", node)
    return int(v)


def as_float(v: Value) -> float | tuple[float, ...]:
    return tuple(float(x) for x in v) if isinstance(v, tuple) else float(v)


def show(v: Value) -> str:
    """A short human rendering: ``2/255`` or ``[1, 2, 3]``."""
    if isinstance(v, tuple):
        inner = ", ".join(show(x) for x in v[:8])
        return f"[{inner}{', ...' if len(v) > 8 else ''}]"
    return str(v)
