"""LSP positions (0-based line, UTF-16 column) to and from code-point offsets.

``hdsl.source.Span.lsp_range`` goes one way; this module goes back, with the
same line table, so a position round-trips through both.
"""

from __future__ import annotations

from lsprotocol import types as lsp

from hdsl.source import SourceFile, Span


def offset_at(source: SourceFile, line: int, character: int) -> int:
    """The code-point offset of an LSP position (clamped to the line and the text)."""
    if line < 0:
        return 0
    if line >= len(source.line_starts):
        return len(source.text)
    start = source.line_starts[line]
    text = source.line_text(line + 1)
    units = 0
    for i, ch in enumerate(text):
        if units >= character:
            return start + i
        units += 2 if ord(ch) > 0xFFFF else 1
    return start + len(text)


def span_range(span: Span) -> lsp.Range:
    (l0, c0), (l1, c1) = span.lsp_range()
    return lsp.Range(lsp.Position(l0, c0), lsp.Position(l1, c1))


def offsets_range(source: SourceFile, start: int, end: int) -> lsp.Range:
    return span_range(Span(source, start, end))


def whole_document(source: SourceFile) -> lsp.Range:
    return offsets_range(source, 0, len(source.text))
