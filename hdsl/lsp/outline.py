"""Whole-document features: formatting through ``hdsl fmt``, the outline, and folding ranges."""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from hdsl import ast
from hdsl.diagnostics import HdslError
from hdsl.lsp.analysis import KINDS, Analysis, nodes
from hdsl.lsp.positions import span_range, whole_document
from hdsl.source import SourceFile

_SYMBOL_KIND = {
    "const": lsp.SymbolKind.Constant, "classes": lsp.SymbolKind.Enum, "hierarchy": lsp.SymbolKind.Struct,
    "model": lsp.SymbolKind.Module, "data": lsp.SymbolKind.Variable, "property": lsp.SymbolKind.Property,
    "explainer": lsp.SymbolKind.Function, "causal model": lsp.SymbolKind.Class,
    "alignment": lsp.SymbolKind.Interface,
}


def format_edits(text: str, path: str) -> list[lsp.TextEdit]:
    """``hdsl fmt`` as one whole-document edit (none when the text is formatted or does not parse)."""
    from hdsl.fmt import format_text

    try:
        formatted = format_text(text, path)
    except HdslError:
        return []
    if formatted == text:
        return []
    return [lsp.TextEdit(whole_document(SourceFile(path, text)), formatted)]


def document_symbols(a: Analysis) -> list[lsp.DocumentSymbol]:
    out = []
    for stmt in a.statements:
        kind = _decl_kind(stmt)
        if kind is None or stmt.span is None or stmt.name.span is None:
            continue
        children = _group_symbols(stmt.body) if isinstance(stmt, ast.HierarchyDecl) and stmt.body else None
        out.append(lsp.DocumentSymbol(stmt.name.name, _SYMBOL_KIND[kind], span_range(stmt.span),
                                      span_range(stmt.name.span), detail=kind, children=children))
    return out


def _decl_kind(stmt) -> str | None:
    return KINDS.get(type(stmt))


def _group_symbols(items) -> list[lsp.DocumentSymbol]:
    out = []
    for item in items:
        if isinstance(item, ast.HierGroup) and item.span is not None:
            out.append(lsp.DocumentSymbol(item.name.name, lsp.SymbolKind.Namespace, span_range(item.span),
                                          span_range(item.name.span), detail="node",
                                          children=_group_symbols(item.children)))
    return out


def folding_ranges(a: Analysis) -> list[lsp.FoldingRange]:
    """Multi-line statements and blocks, runs of comment lines, and ``# region`` / ``# endregion``."""
    out: dict[tuple[int, int], lsp.FoldingRange] = {}
    for stmt in a.statements:
        for node in nodes(stmt):
            span = getattr(node, "span", None)
            if span is None or not isinstance(node, (*_STATEMENTS, ast.HierGroup, ast.Forall)):
                continue
            first, last = span.line - 1, span.end_line_col[0] - 1
            if last > first:
                out.setdefault((first, last), lsp.FoldingRange(first, last))
    lines = a.source.text.split("\n")
    run_start = None
    regions: list[int] = []
    for i, text in enumerate(lines + [""]):
        stripped = text.strip()
        if re.match(r"#\s*region\b", stripped):
            regions.append(i)
        elif re.match(r"#\s*endregion\b", stripped) and regions:
            first = regions.pop()
            out[(first, i)] = lsp.FoldingRange(first, i, kind=lsp.FoldingRangeKind.Region)
        if stripped.startswith("#"):
            run_start = i if run_start is None else run_start
        else:
            if run_start is not None and i - 1 > run_start:
                out.setdefault((run_start, i - 1), lsp.FoldingRange(run_start, i - 1, kind=lsp.FoldingRangeKind.Comment))
            run_start = None
    return [out[k] for k in sorted(out)]


_STATEMENTS = (ast.Const, ast.Classes, ast.HierarchyDecl, ast.ModelDecl, ast.DataDecl, ast.PropertyDecl,
               ast.CheckStmt, ast.ExplainerDecl, ast.CausalModelDecl, ast.AlignmentDecl)


__all__ = ["document_symbols", "folding_ranges", "format_edits"]
