"""Find references and highlight occurrences: every place a name means the same thing.

Scopes follow the language: a ``forall`` binder is visible in the body of
its ``forall`` only (its domain still sees the outer name), declarations are
global, and the variables of a causal model (and an alignment's items, which
name them) live in their own namespace, so they are left out rather than
confused with global names. File formats (``onnx``) and backend names are not
references.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass

from lsprotocol import types as lsp

from hdsl import ast
from hdsl.lsp.analysis import Analysis
from hdsl.lsp.hover import _location, word_at
from hdsl.lsp.positions import offset_at, span_range
from hdsl.source import Span

# What a name refers to: ("global", name) or ("bound", id of the binder Ident).
Target = tuple[str, object]


def occurrences(statements) -> list[tuple[Span, Target, bool]]:
    """(span, target, is_declaration) for every name in ``statements``."""
    out: list[tuple[Span, Target, bool]] = []
    for stmt in statements:
        _visit(stmt, {}, out, top=True)
    return [o for o in out if o[0] is not None]


def _visit(node, env: dict[str, ast.Ident], out: list, top: bool = False) -> None:
    if isinstance(node, ast.Ident):
        out.append((node.span, ("global", node.name), False))
        return
    if isinstance(node, ast.Name):
        binder = env.get(node.id)
        out.append((node.span, ("bound", id(binder)) if binder is not None else ("global", node.id), False))
        return
    if isinstance(node, ast.Forall):
        _visit(node.domain, env, out)
        inner = dict(env)
        for b in node.binders:
            out.append((b.span, ("bound", id(b)), True))
            inner[b.name] = b
        _visit(node.body, inner, out)
        return
    if isinstance(node, (ast.Source, ast.CheckOption, ast.String)):
        return  # formats and backend names are not references
    if isinstance(node, ast.CausalModelDecl):
        out.append((node.name.span, ("global", node.name.name), True))
        return  # its variables are its own namespace
    if isinstance(node, ast.AlignmentDecl):
        out.append((node.name.span, ("global", node.name.name), True))
        for ident in (node.model, node.network):
            out.append((ident.span, ("global", ident.name), False))
        return
    if top and hasattr(node, "name") and isinstance(node.name, ast.Ident):
        out.append((node.name.span, ("global", node.name.name), True))
    if isinstance(node, ast.Classes):  # a class list declares its classes
        out.extend((c.span, ("global", c.name), True) for c in node.classes)
        return
    if not is_dataclass(node):
        return
    for f in fields(node):
        if f.name == "span" or (top and f.name == "name"):
            continue
        value = getattr(node, f.name)
        for item in value if isinstance(value, tuple) else (value,):
            if is_dataclass(item) and not isinstance(item, Span):
                if isinstance(item, ast.HierGroup):
                    out.append((item.name.span, ("global", item.name.name), True))
                    for child in item.children:
                        _visit(child, env, out)
                else:
                    _visit(item, env, out)


def _target_at(a: Analysis, offset: int) -> Target | None:
    hit = word_at(a.source, offset)
    if hit is None or hit[3] != "name":
        return None
    start = hit[0]
    for span, target, _ in occurrences(a.statements):
        if span.start == start and span.path == a.source.path:
            return target
    return None


def references_at(a: Analysis, line: int, character: int, include_declaration: bool = True) -> list[lsp.Location]:
    """Every place in the document (and the declaration, wherever it is) that means the name under the cursor."""
    target = _target_at(a, offset_at(a.source, line, character))
    if target is None:
        return []
    found = [(span, decl) for span, t, decl in occurrences(a.statements) if t == target]
    spans = [span for span, decl in found if include_declaration or not decl]
    if include_declaration and target[0] == "global" and target[1] in a.decls:
        decl = a.decls[target[1]].span  # declared in an imported file
        if decl is not None and decl.path != a.source.path:
            spans.insert(0, decl)
    return [_location(s, a) for s in spans]


def highlights_at(a: Analysis, line: int, character: int) -> list[lsp.DocumentHighlight]:
    """The occurrences in this document: declarations as writes, uses as reads."""
    target = _target_at(a, offset_at(a.source, line, character))
    if target is None:
        return []
    return [lsp.DocumentHighlight(span_range(span),
                                  lsp.DocumentHighlightKind.Write if decl else lsp.DocumentHighlightKind.Read)
            for span, t, decl in occurrences(a.statements) if t == target and span.path == a.source.path]


__all__ = ["highlights_at", "occurrences", "references_at"]
