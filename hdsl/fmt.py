"""Canonical formatting of ``.hspec`` files (``hdsl fmt``), and the AST as JSON.

The formatter prints the AST back with one layout: two-space indentation,
one statement per line (blocks and ``forall`` chains over several lines),
single spaces around operators and the fewest parentheses that keep the
meaning. Comments survive: a comment on its own line stays before the
statement or block item that follows it, and a comment at the end of a line
stays at the end of that item's line; comments inside a one-line expression
move above its statement. Blank lines between statements are kept (at most
one). Formatting twice changes nothing, and the formatted text parses to the
same AST (the tests check both over every spec and random inputs).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from fractions import Fraction

from hdsl import ast
from hdsl.diagnostics import HdslError
from hdsl.parser import parse_source
from hdsl.source import SourceFile

INDENT = "  "
WIDTH = 88

# Binding strength: a child prints in parentheses when it binds more loosely than its slot needs.
_FORALL, _IMPLIES, _OR, _AND, _NOT, _CMP, _SUM, _PROD, _UNARY, _POSTFIX, _ATOM = range(11)
_BINOP = {"implies": _IMPLIES, "or": _OR, "and": _AND, "+": _SUM, "-": _SUM, "*": _PROD, "/": _PROD}


def _prec(e) -> int:
    if isinstance(e, ast.Forall):
        return _FORALL
    if isinstance(e, ast.BinOp):
        return _BINOP[e.op]
    if isinstance(e, ast.Not):
        return _NOT
    if isinstance(e, (ast.Compare, ast.Member)):
        return _CMP
    if isinstance(e, (ast.Neg, ast.Argmax)):
        return _UNARY
    if isinstance(e, (ast.Call, ast.Index)):
        return _POSTFIX
    return _ATOM


def _wrap(e, need: int) -> str:
    text = expr(e)
    return f"({text})" if _prec(e) < need else text


def _sum(e) -> str:
    """An expression in a slot the grammar limits to arithmetic (``sum``)."""
    return _wrap(e, _SUM)


def _string(s: ast.String) -> str:
    return '"' + s.value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _slice(s: ast.Slice) -> str:
    return (_sum(s.start) if s.start is not None else "") + ":" + (_sum(s.stop) if s.stop is not None else "")


def expr(e) -> str:
    """One-line canonical text of an expression."""
    if isinstance(e, ast.Number):
        return e.text
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.String):
        return _string(e)
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.AllLevels):
        return "all"
    if isinstance(e, ast.ListExpr):
        return "[" + ", ".join(expr(i) for i in e.items) + "]"
    if isinstance(e, ast.SetExpr):
        return "{" + ", ".join(expr(i) for i in e.items) + "}"
    if isinstance(e, ast.Keywords):
        return " ".join(f"{k.key} {_wrap(k.value, _SUM)}" for k in e.items)
    if isinstance(e, ast.Call):
        return _wrap(e.func, _POSTFIX) + "(" + ", ".join(expr(a) for a in e.args) + ")"
    if isinstance(e, ast.Index):
        inner = _slice(e.index) if isinstance(e.index, ast.Slice) else _sum(e.index)
        return _wrap(e.target, _POSTFIX) + "[" + inner + "]"
    if isinstance(e, ast.Neg):
        return "-" + _wrap(e.operand, _UNARY)
    if isinstance(e, ast.Argmax):
        return "argmax " + _wrap(e.operand, _UNARY)
    if isinstance(e, ast.Not):
        return "not " + _wrap(e.operand, _NOT)
    if isinstance(e, ast.BinOp):
        p = _BINOP[e.op]
        if e.op == "implies":  # right-associative
            return f"{_wrap(e.left, p + 1)} implies {_wrap(e.right, p)}"
        left, right = _wrap(e.left, p), _wrap(e.right, p + 1)
        if p == _PROD and _prec(e.left) == _ATOM and _prec(e.right) == _ATOM:
            return f"{left}{e.op}{right}"  # 2/255, 3*eps
        return f"{left} {e.op} {right}"
    if isinstance(e, ast.Compare):
        return f"{_wrap(e.left, _SUM)} {e.op} {_wrap(e.right, _SUM)}"
    if isinstance(e, ast.Member):
        return f"{_wrap(e.left, _SUM)} in {_wrap(e.right, _SUM)}"
    if isinstance(e, ast.Forall):
        return f"forall {_binder(e.binders)} in {_wrap(e.domain, _SUM)}: {expr(e.body)}"
    raise TypeError(f"not an expression: {e!r}")  # pragma: no cover - the parser builds only these


def _binder(binders) -> str:
    return binders[0].name if len(binders) == 1 else "(" + ", ".join(b.name for b in binders) + ")"


class _Printer:
    """Emits lines, placing the source's comments next to the items they belong to."""

    def __init__(self, source: SourceFile, module: ast.Module):
        self.text = source.text
        self.comments = list(module.comments)  # (offset, text), in order
        self.lines: list[str] = []

    # ---- comments

    def _before(self, limit: int, indent: str) -> None:
        """Own-line comments that start before ``limit``."""
        while self.comments and self.comments[0][0] < limit:
            self.lines.append(indent + self.comments.pop(0)[1])

    def _trailing(self, end: int) -> str:
        """A comment on the same line right after offset ``end`` (nothing else in between)."""
        if self.comments:
            off, text = self.comments[0]
            gap = self.text[end:off]
            if off >= end and "\n" not in gap and not gap.strip():
                self.comments.pop(0)
                return "  " + text
        return ""

    def item(self, node, indent: str, text: str) -> None:
        """One block item on its own line (comments before it, a trailing one after)."""
        self._before(node.span.start, indent)
        self.lines.append(indent + text + self._trailing(node.span.end))

    # ---- statements

    def module(self, module: ast.Module) -> str:
        last = None  # source offset where the previous top-level line ended
        for stmt in module.statements:
            while self.comments and self.comments[0][0] < stmt.span.start:
                off, text = self.comments.pop(0)
                self._blank(last, off)
                self.lines.append(text)
                last = off + len(text)
            self._blank(last, stmt.span.start)
            self.statement(stmt)
            last = stmt.span.end
        for off, text in self.comments:
            self._blank(last, off)
            self.lines.append(text)
            last = off + len(text)
        self.comments = []
        return "\n".join(self.lines).rstrip("\n") + "\n" if self.lines else ""

    def _blank(self, last: int | None, start: int) -> None:
        """Keep (at most) one blank line where the source had one or more."""
        if last is not None and self.text.count("\n", last, start) >= 2 and self.lines and self.lines[-1]:
            self.lines.append("")

    def _simple(self, stmt, text: str) -> None:
        """A statement without blocks: inner comments move above it."""
        self._before(stmt.span.end, "")
        self.lines.append(text + self._trailing(stmt.span.end))

    def statement(self, s) -> None:
        if isinstance(s, ast.Import):
            self._simple(s, f"import {_string(s.path)}")
        elif isinstance(s, ast.Const):
            self._simple(s, f"const {s.name.name} = {expr(s.value)}")
        elif isinstance(s, ast.Classes):
            self._simple(s, self._words(f"classes {s.name.name} =", [c.name for c in s.classes]))
        elif isinstance(s, ast.HierarchyDecl):
            self.hierarchy(s)
        elif isinstance(s, ast.ModelDecl):
            self.block(s, f"model {s.name.name} = {self._source(s.source)}", s.has_block, s.items, self.model_item, "")
        elif isinstance(s, ast.DataDecl):
            tail = "".join(" " + self._selection(x) for x in s.selections)
            self.block(s, f"data {s.name.name} = {self._source(s.source)}", s.has_block, s.options, self.data_item,
                       tail)
        elif isinstance(s, ast.PropertyDecl):
            self.property(s)
        elif isinstance(s, ast.CheckStmt):
            opts = "".join(" " + self._check_option(o) for o in s.options)
            self._simple(s, "check " + ", ".join(p.name for p in s.properties) + opts)
        elif isinstance(s, ast.ExplainerDecl):
            self._simple(s, f"explainer {s.name.name} = {expr(s.value)}")
        elif isinstance(s, ast.CausalModelDecl):
            self.block(s, f"causal model {s.name.name}", True, s.items, self.causal_item, "")
        elif isinstance(s, ast.AlignmentDecl):
            self.block(s, f"alignment {s.name.name} of {s.model.name} to {s.network.name}", True, s.items,
                       self.align_item, "")
        else:  # pragma: no cover - the parser builds only these
            raise TypeError(f"not a statement: {s!r}")

    def _words(self, head: str, words: list[str]) -> str:
        line = " ".join([head] + words)
        if len(line) <= WIDTH:
            return line
        out, cur = [head], INDENT
        for w in words:
            if len(cur) + len(w) + 1 > WIDTH and cur.strip():
                out.append(cur.rstrip())
                cur = INDENT
            cur += w + " "
        out.append(cur.rstrip())
        return "\n".join(out)

    @staticmethod
    def _source(src: ast.Source) -> str:
        return f"{src.format.name} {_string(src.path)}"

    @staticmethod
    def _selection(sel: ast.Selection) -> str:
        if sel.kind == "slice":
            return "[" + _slice(sel.value) + "]"
        return f"{sel.kind} {_sum(sel.value)}"

    @staticmethod
    def _check_option(o: ast.CheckOption) -> str:
        if o.key in ("backend", "arithmetic"):
            return f"{o.key} {o.value.name}"
        return f"timeout {o.value.text if isinstance(o.value, ast.Duration) else _sum(o.value)}"

    def block(self, s, head: str, has_block: bool, items, render, tail: str) -> None:
        if not has_block:
            self._simple(s, head + tail)
            return
        if not items:
            self._simple(s, head + " {}" + tail)
            return
        self._before(s.span.start, "")
        self.lines.append(head + " {" + self._trailing_after_brace(s, items[0]))
        for it in items:
            self.item(it, INDENT, render(it))
        self._before(s.span.end, INDENT)
        self.lines.append("}" + tail + self._trailing(s.span.end))

    def _trailing_after_brace(self, s, first) -> str:
        """A comment right after the opening ``{`` (before the first item, same line)."""
        brace = self.text.find("{", s.span.start, first.span.start)
        return self._trailing(brace + 1) if brace >= 0 else ""

    @staticmethod
    def model_item(it) -> str:
        if isinstance(it, ast.ModelInput):
            return f"input {_sum(it.shape)}" + (f" in {_sum(it.range)}" if it.range is not None else "")
        if isinstance(it, ast.ModelNormalize):
            return f"normalize mean {_sum(it.mean)} std {_sum(it.std)}"
        return f"outputs {_sum(it.value)}"

    @staticmethod
    def data_item(it: ast.DataOption) -> str:
        if it.key == "layout":
            a, b = it.value.value.split("->")
            return f"layout {a} -> {b}"
        value = _string(it.value) if isinstance(it.value, ast.String) else _sum(it.value)
        return f"{it.key} {value}"

    @staticmethod
    def causal_item(it) -> str:
        if isinstance(it, ast.CausalInput):
            names = ", ".join(n.name for n in it.names)
            return f"input {names}" + (f" in {_sum(it.domain)}" if it.domain is not None else "")
        return f"{it.name.name} = {expr(it.value)}"

    @staticmethod
    def align_item(it: ast.AlignItem) -> str:
        sl = f"[{_slice(it.slice)}]" if it.slice is not None else ""
        return f"{it.variable.name} -> layer {_string(it.layer)}{sl}"

    def hierarchy(self, h: ast.HierarchyDecl) -> None:
        head = f"hierarchy {h.name.name}" + (f" over {h.over.name}" if h.over is not None else "")
        if h.source is not None:
            self._simple(h, f"{head} = {self._source(h.source)}")
            return
        if not h.body:
            self._simple(h, head + " {}")
            return
        self._before(h.span.start, "")
        self.lines.append(head + " {" + self._trailing_after_brace(h, h.body[0]))
        self.hier_items(h.body, INDENT)
        self._before(h.span.end, INDENT)
        self.lines.append("}" + self._trailing(h.span.end))

    def hier_items(self, items, indent: str) -> None:
        run: list[ast.Ident] = []

        def flush():
            if run:
                self._before(run[0].span.start, indent)
                self.lines.append(indent + " ".join(i.name for i in run) + self._trailing(run[-1].span.end))
                run.clear()

        for it in items:
            if isinstance(it, ast.Ident):
                if run and self._comment_between(run[-1].span.end, it.span.start):
                    flush()
                run.append(it)
                continue
            flush()
            self._before(it.span.start, indent)
            simple = bool(it.children) and all(isinstance(c, ast.Ident) for c in it.children)
            one_line = f"{it.name.name} {{ " + " ".join(c.name for c in it.children) + " }" if simple else ""
            if simple and len(indent + one_line) <= WIDTH and not self._comment_between(it.span.start, it.span.end):
                self.lines.append(indent + one_line + self._trailing(it.span.end))
            elif not it.children:
                self.lines.append(indent + f"{it.name.name} {{}}" + self._trailing(it.span.end))
            else:
                self.lines.append(indent + f"{it.name.name} {{" + self._trailing_after_brace(it, it.children[0]))
                self.hier_items(it.children, indent + INDENT)
                self._before(it.span.end, indent + INDENT)
                self.lines.append(indent + "}" + self._trailing(it.span.end))
        flush()

    def _comment_between(self, start: int, end: int) -> bool:
        return any(start <= o < end for o, _ in self.comments)

    def property(self, p: ast.PropertyDecl) -> None:
        stats = ""
        if p.stats:
            stats = " with " + " ".join(f"{o.key} {_sum(o.value)}" for o in p.stats)
        self._before(p.span.end, "")
        body = p.body
        if not isinstance(body, ast.Forall):
            self.lines.append(f"property {p.name.name} = {expr(body)}{stats}" + self._trailing(p.span.end))
            return
        self.lines.append(f"property {p.name.name} =")
        indent = INDENT
        while isinstance(body, ast.Forall):
            self.lines.append(_forall_line(body, indent))
            indent += INDENT
            body = body.body
        self.lines.append(_long(body, indent) + stats + self._trailing(p.span.end))


def _forall_line(f: ast.Forall, indent: str) -> str:
    """``forall x in DOMAIN:``; a long call such as ``box(lo, hi)`` gets one argument per line."""
    head = f"{indent}forall {_binder(f.binders)} in "
    line = head + _wrap(f.domain, _SUM) + ":"
    dom = f.domain
    if len(line) <= WIDTH or not (isinstance(dom, ast.Call) and isinstance(dom.func, ast.Name) and len(dom.args) > 1):
        return line
    open_ = head + dom.func.id + "("
    pad = " " * len(open_)
    args = [expr(a) for a in dom.args]
    return "\n".join([open_ + args[0] + ","] + [pad + a + "," for a in args[1:-1]] + [pad + args[-1] + "):"])


def _chain(e, op: str) -> list:
    """The operands of a left-nested chain ``a op b op c`` (``and``/``or``)."""
    if isinstance(e, ast.BinOp) and e.op == op:
        return _chain(e.left, op) + [e.right]
    return [e]


def _long(e, indent: str) -> str:
    """A condition on one line, or, when too long, one ``and``/``or`` operand per line."""
    text = indent + expr(e)
    if len(text) <= WIDTH or not (isinstance(e, ast.BinOp) and e.op in ("and", "or")):
        return text
    p = _BINOP[e.op]
    parts = _chain(e, e.op)
    first = indent + _wrap(parts[0], p)
    return "\n".join([first] + [f"{indent}{INDENT}{e.op} {_wrap(x, p + 1)}" for x in parts[1:]])


def format_source(source: SourceFile) -> str:
    """The canonical text of ``source`` (raises ``HdslError`` on a syntax error)."""
    module = parse_source(source)
    try:
        return _Printer(source, module).module(module)
    except RecursionError:
        raise HdslError.single("E316", "an expression is nested too deeply to format", source.span(0, 0)) from None


def format_text(text: str, path: str = "<string>") -> str:
    return format_source(SourceFile(path, text))


# --------------------------------------------------------------------------- AST as JSON


def ast_to_json(node):
    """A plain-data view of the AST (``hdsl parse --json``): node type, fields, and ``at`` line:column."""
    if isinstance(node, Fraction):
        return str(node)
    if isinstance(node, (list, tuple)):
        return [ast_to_json(x) for x in node]
    if is_dataclass(node):
        out = {"node": type(node).__name__}
        span = getattr(node, "span", None)
        if span is not None:
            out["at"] = f"{span.line}:{span.column}"
        for f in fields(node):
            if f.name in ("span", "comments"):
                continue
            out[f.name] = ast_to_json(getattr(node, f.name))
        return out
    return node
