"""Editor features as pure functions of an ``Analysis`` and a position: LSP types in, LSP types out.

Positions are LSP's (0-based lines, UTF-16 columns); ``hdsl.lsp.positions``
converts them. One module per feature; this one gathers them for the server.
"""

from __future__ import annotations

from hdsl.lsp.completion import accepted_terminals, complete_at
from hdsl.lsp.diagnostics import code_actions, diagnostics_for, lsp_diagnostics, path_to_uri, to_lsp_diagnostic
from hdsl.lsp.hover import BUILTIN_DOCS, KEYWORD_DOCS, definition_at, hover_at, word_at
from hdsl.lsp.outline import document_symbols, folding_ranges, format_edits
from hdsl.lsp.references import highlights_at, references_at
from hdsl.lsp.semantic import LEGEND, semantic_tokens

__all__ = ["BUILTIN_DOCS", "KEYWORD_DOCS", "LEGEND", "accepted_terminals", "code_actions", "complete_at", "definition_at", "diagnostics_for",
           "document_symbols", "folding_ranges", "format_edits", "highlights_at", "hover_at", "lsp_diagnostics",
           "path_to_uri", "references_at", "semantic_tokens", "to_lsp_diagnostic", "word_at"]
