"""Lark parse tree -> ``hdsl.ast`` nodes with spans.

The only module besides ``hdsl.parser`` that knows Lark's types. It runs
*inside* the LALR parser (``Lark(transformer=...)``, no parse tree is built,
which halves the parse time) with ``keep_all_tokens`` on, so every method sees
all tokens of its rule and computes the node's span from its first and last
child. Each method is named after a grammar rule (or its ``-> alias``).
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from lark import Token, Transformer

from hdsl import ast
from hdsl.source import SourceFile, Span

_ESCAPE = re.compile(r"\\(.)")


@lru_cache(maxsize=4096)
def _fraction(text: str) -> Fraction:
    """Exact value of a number literal (cached: parsing a Fraction from text is slow, literals repeat)."""
    return Fraction(text)


def unquote(text: str) -> str:
    """The value of a string literal: quotes removed, ``\\x`` -> ``x``."""
    return _ESCAPE.sub(r"\1", text[1:-1])


_VALUE_TOKENS = frozenset({"NAME", "NUMBER", "STRING", "DURATION"})


class _Group:
    """A bracketed run of items (a block, a binder) with the positions of its brackets."""

    __slots__ = ("items", "start", "end")

    def __init__(self, items: tuple, start: int, end: int):
        self.items, self.start, self.end = items, start, end


def _start(x) -> int:
    if type(x) is Token:
        return x.start_pos
    if type(x) is _Group:
        return x.start
    return x.span.start


def _end(x) -> int:
    if type(x) is Token:
        return x.end_pos
    if type(x) is _Group:
        return x.end
    return x.span.end


def _values(c: list) -> list:
    """Children without punctuation/keyword tokens and ``None`` placeholders."""
    return [x for x in c if x is not None and not (isinstance(x, Token) and x.type not in _VALUE_TOKENS)]


class ToAst(Transformer):
    """Builds the AST; one instance per source file."""

    def __init__(self, source: SourceFile):
        super().__init__(visit_tokens=False)
        self._file = source

    # ------------------------------------------------------------------ helpers

    def _sp(self, c: list) -> Span:
        first, last = c[0], c[-1]
        if first is None or last is None:
            items = [x for x in c if x is not None]
            first, last = items[0], items[-1]
        return Span(self._file, _start(first), _end(last))

    def _ident(self, tok: Token) -> ast.Ident:
        return ast.Ident(str(tok), Span(self._file, tok.start_pos, tok.end_pos))

    def _string(self, tok: Token) -> ast.String:
        return ast.String(unquote(str(tok)), Span(self._file, tok.start_pos, tok.end_pos))

    def _group(self, c: list) -> _Group:
        return _Group(tuple(_values(c)), _start(c[0]), _end(c[-1]))

    # ------------------------------------------------------------------ statements

    def start(self, c):
        stmts = tuple(c)
        span = Span(self._file, 0, len(self._file.text))
        return ast.Module(stmts, span=span)

    def import_stmt(self, c):
        return ast.Import(self._string(c[1]), self._sp(c))

    def const_decl(self, c):
        return ast.Const(self._ident(c[1]), c[3], self._sp(c))

    def classes_decl(self, c):
        return ast.Classes(self._ident(c[1]), tuple(self._ident(t) for t in c[3:]), self._sp(c))

    def over(self, c):
        return self._ident(c[1])

    def hier_block(self, c):
        return self._group(c)

    def hier_group(self, c):
        return ast.HierGroup(self._ident(c[0]), c[1].items, self._sp(c))

    def hier_leaf(self, c):
        return self._ident(c[0])

    def hierarchy_decl(self, c):
        v = _values(c)  # NAME, [over], block | source
        name, rest = self._ident(v[0]), v[1:]
        over = rest.pop(0) if isinstance(rest[0], ast.Ident) else None
        body = rest[0].items if isinstance(rest[0], _Group) else None
        source = rest[0] if isinstance(rest[0], ast.Source) else None
        return ast.HierarchyDecl(name, over, body, source, self._sp(c))

    def source(self, c):
        return ast.Source(self._ident(c[0]), self._string(c[1]), self._sp(c))

    def model_decl(self, c):
        v = _values(c)  # NAME, source, [block]
        block = v[2] if len(v) > 2 else None
        return ast.ModelDecl(self._ident(v[0]), v[1], block.items if block else (), block is not None, self._sp(c))

    def model_block(self, c):
        return self._group(c)

    def model_input(self, c):
        v = _values(c)
        return ast.ModelInput(v[0], v[1] if len(v) > 1 else None, self._sp(c))

    def model_normalize(self, c):
        v = _values(c)
        return ast.ModelNormalize(v[0], v[1], self._sp(c))

    def model_outputs(self, c):
        return ast.ModelOutputs(c[1], self._sp(c))

    def data_decl(self, c):
        v = _values(c)  # NAME, source, [block], selections...
        rest = v[2:]
        block = rest.pop(0) if rest and isinstance(rest[0], _Group) else None
        return ast.DataDecl(self._ident(v[0]), v[1], block.items if block else (), tuple(rest),
                            block is not None, self._sp(c))

    def data_block(self, c):
        return self._group(c)

    def data_label_column(self, c):
        return ast.DataOption("label column", c[2], self._sp(c))

    def data_label_key(self, c):
        return ast.DataOption("label key", self._string(c[2]), self._sp(c))

    def data_input_key(self, c):
        return ast.DataOption("input key", self._string(c[2]), self._sp(c))

    def data_scale(self, c):
        return ast.DataOption("scale", c[1], self._sp(c))

    def data_layout(self, c):
        value = ast.String(f"{c[1]}->{c[3]}", Span(self._file, c[1].start_pos, c[3].end_pos))
        return ast.DataOption("layout", value, self._sp(c))

    def data_shape(self, c):
        return ast.DataOption("shape", c[1], self._sp(c))

    def data_header(self, c):
        return ast.DataOption("header", c[1], self._sp(c))

    def take(self, c):
        return ast.Selection("take", c[1], self._sp(c))

    def skip(self, c):
        return ast.Selection("skip", c[1], self._sp(c))

    def select(self, c):
        return ast.Selection("slice", c[1], self._sp(c))

    def property_decl(self, c):
        stats = c[4].items if len(c) > 4 else ()
        return ast.PropertyDecl(self._ident(c[1]), c[3], stats, self._sp(c))

    def with_clause(self, c):
        return self._group(c)

    def stat_option(self, c):
        return ast.StatOption(str(c[0]), c[1], self._sp(c))

    def check_stmt(self, c):
        names = tuple(self._ident(t) for t in c if isinstance(t, Token) and t.type == "NAME")
        options = tuple(o for o in c if isinstance(o, ast.CheckOption))
        return ast.CheckStmt(names, options, self._sp(c))

    def check_timeout(self, c):
        value = c[1]
        if isinstance(value, Token):
            value = ast.Duration(str(value), Span(self._file, value.start_pos, value.end_pos))
        return ast.CheckOption("timeout", value, self._sp(c))

    def check_backend(self, c):
        return ast.CheckOption("backend", self._ident(c[1]), self._sp(c))

    def check_arithmetic(self, c):
        return ast.CheckOption("arithmetic", self._ident(c[1]), self._sp(c))

    def explainer_decl(self, c):
        return ast.ExplainerDecl(self._ident(c[1]), c[3], self._sp(c))

    def causal_decl(self, c):
        return ast.CausalModelDecl(self._ident(c[2]), tuple(_values(c[4:])), self._sp(c))

    def causal_input(self, c):
        v = _values(c)
        names = tuple(self._ident(t) for t in v if isinstance(t, Token))
        domain = v[-1] if not isinstance(v[-1], Token) else None
        return ast.CausalInput(names, domain, self._sp(c))

    def causal_var(self, c):
        return ast.CausalVar(self._ident(c[0]), c[2], self._sp(c))

    def alignment_decl(self, c):
        v = _values(c)
        return ast.AlignmentDecl(self._ident(v[0]), self._ident(v[1]), self._ident(v[2]), tuple(v[3:]),
                                 self._sp(c))

    def align_item(self, c):
        v = _values(c)
        return ast.AlignItem(self._ident(v[0]), self._string(v[1]), v[2] if len(v) > 2 else None, self._sp(c))

    # ------------------------------------------------------------------ expressions

    def forall(self, c):
        return ast.Forall(c[1].items, c[3], c[5], self._sp(c))

    def binder(self, c):
        g = self._group(c)
        return _Group(tuple(self._ident(t) for t in g.items), g.start, g.end)

    def atom(self, c):  # "(" expr ")"
        return c[1]

    def implies_(self, c):
        return ast.BinOp("implies", c[0], c[2], self._sp(c))

    def or_(self, c):
        return ast.BinOp("or", c[0], c[2], self._sp(c))

    def and_(self, c):
        return ast.BinOp("and", c[0], c[2], self._sp(c))

    def not_(self, c):
        return ast.Not(c[1], self._sp(c))

    def compare(self, c):
        return ast.Compare(str(c[1]), c[0], c[2], self._sp(c))

    def member(self, c):
        return ast.Member(c[0], c[2], self._sp(c))

    def binop(self, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self._sp(c))

    def neg(self, c):
        return ast.Neg(c[1], self._sp(c))

    def argmax(self, c):
        return ast.Argmax(c[1], self._sp(c))

    def call(self, c):
        return ast.Call(c[0], tuple(_values(c[1:])), self._sp(c))

    def index(self, c):
        return ast.Index(c[0], c[2], self._sp(c))

    def slice(self, c):
        return ast.Slice(c[0], c[2], self._sp(c))

    def keywords(self, c):
        return ast.Keywords(tuple(c), self._sp(c))

    def keyword(self, c):
        return ast.Keyword(str(c[0]), c[1], self._sp(c))

    def number(self, c):
        text = str(c[0])
        return ast.Number(_fraction(text), text, self._sp(c))

    def name(self, c):
        return ast.Name(str(c[0]), self._sp(c))

    def string(self, c):
        return self._string(c[0])

    def all_(self, c):
        return ast.AllLevels(self._sp(c))

    def true_(self, c):
        return ast.Bool(True, self._sp(c))

    def false_(self, c):
        return ast.Bool(False, self._sp(c))

    def list_(self, c):
        return ast.ListExpr(tuple(_values(c)), self._sp(c))

    def set_(self, c):
        return ast.SetExpr(tuple(_values(c)), self._sp(c))
