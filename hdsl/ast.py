"""The surface syntax tree of an ``.hspec`` file.

Frozen dataclasses that mirror the grammar one to one; every node carries a
``span`` kept out of equality, so two texts that differ only in layout give
equal trees (the formatter's tests rely on it). Only ``hdsl.transform`` builds
these nodes from Lark trees; nothing here imports Lark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Union

from hdsl.source import Span


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Ident:
    """A name at a place in the text (declared names and name lists)."""

    name: str
    span: Span | None = _span()


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Number:
    value: Fraction
    text: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AllLevels:
    """The word ``all`` (as in ``level all``)."""

    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple["Expr", ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class SetExpr:
    items: tuple["Expr", ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Keyword:
    """``key value`` inside a call, e.g. ``level 1`` or ``steps 32``."""

    key: str
    value: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Keywords:
    """Keyword arguments written side by side in one argument slot: ``top k of ig``."""

    items: tuple[Keyword, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Call:
    func: "Expr"
    args: tuple[Union["Expr", Keywords], ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Slice:
    start: "Expr | None"
    stop: "Expr | None"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Index:
    target: "Expr"
    index: "Expr | Slice"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Neg:
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Argmax:
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class BinOp:
    """Arithmetic (``+ - * /``) and logic (``and or implies``)."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # <= >= < > == !=
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Member:
    """``left in right``."""

    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Forall:
    binders: tuple[Ident, ...]  # one name, or (input, label)
    domain: "Expr"
    body: "Expr"
    span: Span | None = _span()


Expr = Union[Number, Name, String, Bool, AllLevels, ListExpr, SetExpr, Call, Index, Neg, Argmax,
             BinOp, Not, Compare, Member, Forall]

# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class Source:
    """``FORMAT "path"``."""

    format: Ident
    path: String
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Import:
    path: String
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Const:
    name: Ident
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Classes:
    name: Ident
    classes: tuple[Ident, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class HierGroup:
    name: Ident
    children: tuple[Union["HierGroup", Ident], ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class HierarchyDecl:
    name: Ident
    over: Ident | None
    body: tuple[Union[HierGroup, Ident], ...] | None  # inline tree (children of the root)
    source: Source | None  # or a file
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ModelInput:
    shape: Expr
    range: Expr | None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ModelNormalize:
    mean: Expr
    std: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ModelOutputs:
    value: Expr  # a classes name or a number
    span: Span | None = _span()


ModelItem = Union[ModelInput, ModelNormalize, ModelOutputs]


@dataclass(frozen=True, slots=True)
class ModelDecl:
    name: Ident
    source: Source
    items: tuple[ModelItem, ...]
    has_block: bool = False
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class DataOption:
    """One data block item: ``label column``, ``label key``, ``input key``, ``scale``,
    ``layout`` (value ``"hwc->chw"``), ``shape`` or ``header``."""

    key: str
    value: Expr | String
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Selection:
    """``[a:b]`` (kind ``slice``, value a Slice), ``take n`` / ``take [i, j]``, ``skip n``."""

    kind: str
    value: Expr | Slice
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class DataDecl:
    name: Ident
    source: Source
    options: tuple[DataOption, ...]
    selections: tuple[Selection, ...]
    has_block: bool = False
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class StatOption:
    key: str  # confidence | samples | seed
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class PropertyDecl:
    name: Ident
    body: Expr
    stats: tuple[StatOption, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Duration:
    """A time with its unit, as written: ``60s``, ``500ms``, ``2min``, ``1h``."""

    text: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class CheckOption:
    key: str  # timeout | backend | arithmetic
    value: Expr | Ident | Duration  # timeout: a Duration or a number of seconds; backend, arithmetic: an Ident
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class CheckStmt:
    properties: tuple[Ident, ...]
    options: tuple[CheckOption, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ExplainerDecl:
    name: Ident
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class CausalInput:
    names: tuple[Ident, ...]
    domain: Expr | None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class CausalVar:
    name: Ident
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class CausalModelDecl:
    name: Ident
    items: tuple[CausalInput | CausalVar, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AlignItem:
    variable: Ident
    layer: String
    slice: Slice | None
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AlignmentDecl:
    name: Ident
    model: Ident
    network: Ident
    items: tuple[AlignItem, ...]
    span: Span | None = _span()


Stmt = Union[Import, Const, Classes, HierarchyDecl, ModelDecl, DataDecl, PropertyDecl, CheckStmt,
             ExplainerDecl, CausalModelDecl, AlignmentDecl]


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed file: its statements in order, and its comments (for the formatter)."""

    statements: tuple[Stmt, ...]
    comments: tuple[tuple[int, str], ...] = field(default=(), compare=False, repr=False)  # (offset, text)
    span: Span | None = _span()
