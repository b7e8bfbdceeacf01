"""One document's analysis: the checker's diagnostics and a symbol index that survives syntax errors.

While someone types, the file is often broken. Every statement of an
``.hspec`` file starts with a reserved word that appears nowhere else, so the
text splits into statements without parsing; the statement a syntax error is
in is blanked (offsets stay put) and the rest parsed again, so the other
statements still give names for hover, completion and go-to while the
diagnostics come from the whole text. Nothing here imports pygls: the
functions are pure and tested directly.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from hdsl import ast
from hdsl.diagnostics import Diagnostic, HdslError
from hdsl.parser import parse_source
from hdsl.source import SourceFile, Span

# Words that start a statement (``model`` also follows ``causal`` inside one).
STARTERS = frozenset({"import", "const", "classes", "hierarchy", "model", "data", "property", "check",
                      "explainer", "causal", "alignment"})
_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[^\sA-Za-z_"#]+|\s+')
_NOT_NEWLINE = re.compile(r"[^\n]")
_SYNTAX = ("E101", "E102", "E103")  # hdsl.parser's codes

KINDS = {
    ast.Const: "const", ast.Classes: "classes", ast.HierarchyDecl: "hierarchy", ast.ModelDecl: "model",
    ast.DataDecl: "data", ast.PropertyDecl: "property", ast.ExplainerDecl: "explainer",
    ast.CausalModelDecl: "causal model", ast.AlignmentDecl: "alignment",
}


@dataclass(frozen=True)
class Decl:
    """A declared name: kind, declaration node, and the span of the name itself."""

    name: str
    kind: str
    node: object
    span: Span | None


@dataclass(frozen=True)
class ClassRef:
    """A class name listed in a ``classes`` declaration (its output index there)."""

    name: str
    classes: str
    index: int
    span: Span | None


@dataclass(frozen=True)
class GroupRef:
    """An inner node of an inline hierarchy: its name, hierarchy, depth and leaves."""

    name: str
    hierarchy: str
    level: int
    leaves: tuple[str, ...]
    span: Span | None


@dataclass
class Analysis:
    """What the editor features need to know about one version of a document."""

    uri: str
    source: SourceFile
    module: ast.Module | None  # the whole text parsed (None on a syntax error)
    statements: tuple  # statements that parse (all of them when ``module`` is not None)
    spec: object | None  # hdsl.check.Spec of the text (or of its statements that parse)
    diagnostics: tuple[Diagnostic, ...]
    checker_error: str | None = None  # a crash inside the checker (reported to the client's log)
    decls: dict[str, Decl] = field(default_factory=dict)
    classes: dict[str, list[ClassRef]] = field(default_factory=dict)
    groups: dict[str, list[GroupRef]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.source.path


def uri_to_path(uri: str) -> str:
    """The file-system path of a ``file:`` URI (relative paths in a spec resolve against it)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    path = unquote(parsed.path)
    if re.match(r"/[A-Za-z]:/", path):  # file:///C:/x -> C:/x
        path = path[1:]
    return str(Path(path))


def statement_starts(text: str) -> list[int]:
    """Offsets where a statement starts (outside strings and comments)."""
    starts, previous = [], ""
    for m in _SCAN.finditer(text):
        word = m.group()
        if word in STARTERS and not (word == "model" and previous == "causal"):
            starts.append(m.start())
        if not word.isspace():
            previous = word
    return starts


def _blank(text: str) -> str:
    return _NOT_NEWLINE.sub(" ", text)


def tolerant_text(text: str, path: str) -> str:
    """``text`` with every statement that does not parse on its own blanked out (offsets unchanged)."""
    starts = statement_starts(text)
    bounds = zip([0] + starts, starts + [len(text)])
    return "".join(text[s:e] if _parses(text[s:e], path) else _blank(text[s:e]) for s, e in bounds)


def _parses(piece: str, path: str) -> bool:
    try:
        parse_source(SourceFile(path, piece))
    except HdslError:
        return False
    return True


def tolerant_parse(text: str, path: str, error_at: int | None = None, rounds: int = 8) -> tuple[SourceFile, tuple]:
    """The statements of ``text`` that parse, and the text they were parsed from (broken ones blanked).

    Each round blanks the statement a syntax error is in (or the one before,
    when the error is at a statement's first word: that one is unfinished) and
    parses again, so a file with one mistake costs one more parse when the
    first error's offset is known (``error_at``). After ``rounds`` mistakes,
    every statement is tried on its own.
    """
    starts = statement_starts(text)
    firsts = [0] + starts
    bounds = list(zip(firsts, starts + [len(text)]))
    broken: set[int] = set()
    pos = error_at
    for _ in range(rounds):
        if pos is not None:
            i = bisect.bisect_right(firsts, pos) - 1
            if firsts[i] == pos and i > 0:
                i -= 1  # the error is a statement's first word: the one before it is unfinished
            while i in broken and i > 0:
                i -= 1
            if i in broken:
                break
            broken.add(i)
        current = "".join(_blank(text[s:e]) if i in broken else text[s:e] for i, (s, e) in enumerate(bounds))
        source = SourceFile(path, current)
        try:
            return source, parse_source(source).statements
        except HdslError as err:
            span = err.diagnostics[0].span
            pos = span.start if span is not None else len(text)
    source = SourceFile(path, tolerant_text(text, path))
    try:
        return source, parse_source(source).statements
    except HdslError:  # pragma: no cover - every kept statement parses on its own
        return source, ()


def analyse(uri: str, text: str, deep: bool = True, previous: "Analysis | None" = None) -> Analysis:
    """Check ``text`` as the file at ``uri``; never raises for a bad spec.

    On a syntax error, names come from the statements that parse, and what the
    checker knew about them (values, shapes, trees) from ``previous`` (the last
    analysis of the document) when there is one.
    """
    source = SourceFile(uri_to_path(uri), text)
    spec, checker_error = None, None
    try:
        from hdsl.check import check_source

        spec = check_source(source, deep=deep)
        diagnostics = tuple(spec.diagnostics)
        module = spec.module
    except Exception as exc:  # noqa: BLE001 - a checker bug must not take the editor down
        checker_error = f"{type(exc).__name__}: {exc}"
        spec = None
        try:
            module = parse_source(source)
            diagnostics = ()
        except HdslError as err:
            module, diagnostics = None, err.diagnostics
    statements: tuple = module.statements if module is not None else ()
    symbol_spec = spec
    if module is None:
        first = next((d.span.start for d in diagnostics if d.code in _SYNTAX and d.span is not None
                      and d.span.path == source.path), None)
        good, statements = tolerant_parse(text, source.path, first)
        symbol_spec = previous.spec if previous is not None and previous.spec is not None else None
        if symbol_spec is None and statements and checker_error is None:
            try:
                from hdsl.check import check_source

                symbol_spec = check_source(good, deep=False)
            except Exception:  # noqa: BLE001 - symbols then come from the statements alone
                symbol_spec = None
    result = Analysis(uri, source, module, statements, symbol_spec, diagnostics, checker_error)
    _index(result)
    return result


# --------------------------------------------------------------------------- symbol index


def _index(a: Analysis) -> None:
    decl_nodes = []
    for stmt in a.statements:  # this text's declarations first: their spans are current
        kind = KINDS.get(type(stmt))
        if kind is not None and stmt.name.name not in a.decls:
            a.decls[stmt.name.name] = Decl(stmt.name.name, kind, stmt, stmt.name.span)
            decl_nodes.append(stmt)
    symbols = getattr(a.spec, "symbols", None) or {}
    for sym in symbols.values():  # then imported ones (and, after a syntax error, the last good ones)
        if sym.name not in a.decls and (sym.span is None or sym.span.path != a.source.path):
            a.decls[sym.name] = Decl(sym.name, sym.kind, sym.node, sym.span)
            decl_nodes.append(sym.node)
    for node in decl_nodes:
        if isinstance(node, ast.Classes):
            for i, ident in enumerate(node.classes):
                a.classes.setdefault(ident.name, []).append(ClassRef(ident.name, node.name.name, i, ident.span))
        elif isinstance(node, ast.HierarchyDecl) and node.body is not None:
            _index_groups(a, node.name.name, node.body, 1)


def _index_groups(a: Analysis, hierarchy: str, items, level: int) -> None:
    for item in items:
        if isinstance(item, ast.HierGroup):
            a.groups.setdefault(item.name.name, []).append(
                GroupRef(item.name.name, hierarchy, level, _leaves(item), item.name.span))
            _index_groups(a, hierarchy, item.children, level + 1)


def _leaves(group: ast.HierGroup) -> tuple[str, ...]:
    out: list[str] = []
    for child in group.children:
        out.extend(_leaves(child) if isinstance(child, ast.HierGroup) else [child.name])
    return tuple(out)


def nodes(node):
    """Every AST node under ``node`` (itself included), depth first."""
    yield node
    if not is_dataclass(node):
        return
    for f in fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if is_dataclass(item) and not isinstance(item, (Span, SourceFile)):
                yield from nodes(item)


def binders_at(statements, offset: int) -> dict[str, ast.Ident]:
    """Variables bound by the ``forall``s around ``offset`` (innermost wins)."""
    found: dict[str, ast.Ident] = {}
    for stmt in statements:
        span = getattr(stmt, "span", None)
        if span is None or not span.start <= offset <= span.end:
            continue
        for node in nodes(stmt):
            if isinstance(node, ast.Forall) and node.span is not None and node.span.start <= offset <= node.span.end:
                for ident in node.binders:
                    found[ident.name] = ident  # nodes() goes outside-in, so inner binders overwrite
    return found


__all__ = ["Analysis", "ClassRef", "Decl", "GroupRef", "analyse", "binders_at", "nodes", "statement_starts",
           "tolerant_parse", "tolerant_text", "uri_to_path"]
