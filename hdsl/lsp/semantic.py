"""Semantic tokens: colour every use of a name by what it names (TextMate sees only declarations).

Editors layer these over the TextMate grammar: a class name, a hierarchy, a
model, a property or a bound variable gets its colour wherever it is used.
"""

from __future__ import annotations

from lsprotocol import types as lsp

from hdsl.lsp.analysis import Analysis
from hdsl.lsp.references import occurrences

TOKEN_TYPES = ("enumMember", "type", "namespace", "function", "variable", "property", "parameter", "class",
               "interface")
TOKEN_MODIFIERS = ("declaration",)
LEGEND = lsp.SemanticTokensLegend(token_types=list(TOKEN_TYPES), token_modifiers=list(TOKEN_MODIFIERS))

# Declaration kinds (hdsl.lsp.analysis.KINDS) to token types.
_KIND_TYPE = {"classes": "type", "hierarchy": "type", "model": "function", "explainer": "function",
              "const": "variable", "data": "variable", "property": "property", "causal model": "class",
              "alignment": "interface"}


def semantic_tokens(a: Analysis) -> lsp.SemanticTokens:
    """LSP's relative encoding: (delta line, delta start, length, type, modifiers) per token, in order."""
    rows = []
    for span, target, is_decl in occurrences(a.statements):
        if span.path != a.source.path:
            continue
        kind, name = target
        if kind == "bound":
            ttype = "parameter"
        elif name in a.decls:
            ttype = _KIND_TYPE.get(a.decls[name].kind)
        elif name in a.classes:
            ttype = "enumMember"
        elif name in a.groups:
            ttype = "namespace"
        else:
            ttype = None  # built-ins and unknown names keep the grammar's colour
        if ttype is None:
            continue
        (line, start), (end_line, end) = span.lsp_range()
        if end_line != line:
            continue
        rows.append((line, start, end - start, TOKEN_TYPES.index(ttype), 1 if is_decl else 0))
    data: list[int] = []
    prev_line = prev_start = 0
    for line, start, length, ttype, mods in sorted(set(rows)):
        data += [line - prev_line, start - prev_start if line == prev_line else start, length, ttype, mods]
        prev_line, prev_start = line, start
    return lsp.SemanticTokens(data=data)


__all__ = ["LEGEND", "TOKEN_MODIFIERS", "TOKEN_TYPES", "semantic_tokens"]
