"""Source files and spans.

Spans store 0-based code-point offsets; conversions to the coordinates people
(1-based line/column), LSP clients (0-based, UTF-16 units) and rich need live
here, in one place, so they cannot disagree.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A named text with a line-start table."""

    path: str
    text: str
    line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                starts.append(i + 1)
        object.__setattr__(self, "line_starts", tuple(starts))

    @classmethod
    def read(cls, path: str | Path) -> "SourceFile":
        p = Path(path)
        return cls(str(p), p.read_text(encoding="utf-8"))

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a 0-based code-point offset."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line + 1, offset - self.line_starts[line] + 1

    def offset(self, line: int, col: int) -> int:
        """0-based offset of a 1-based (line, column)."""
        line = max(1, min(line, len(self.line_starts)))
        return min(self.line_starts[line - 1] + col - 1, len(self.text))

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        if line < 1 or line > len(self.line_starts):
            return ""
        start = self.line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]

    def span(self, start: int, end: int | None = None) -> "Span":
        return Span(self, start, start if end is None else end)

    def end_span(self) -> "Span":
        """An empty span at the real end of the text (for end-of-input errors)."""
        return Span(self, len(self.text), len(self.text))


def utf16_units(text: str) -> int:
    """Number of UTF-16 code units in ``text`` (LSP's default column unit)."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range of code points in a source file."""

    source: SourceFile = field(repr=False)
    start: int
    end: int

    @property
    def path(self) -> str:
        return self.source.path

    @property
    def line(self) -> int:
        return self.source.line_col(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.line_col(self.start)[1]

    @property
    def end_line_col(self) -> tuple[int, int]:
        return self.source.line_col(self.end)

    def lsp_range(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((line, character), (line, character)), 0-based, UTF-16 columns."""

        def pos(offset: int) -> tuple[int, int]:
            line, col = self.source.line_col(offset)
            prefix = self.source.line_text(line)[: col - 1]
            return line - 1, utf16_units(prefix)

        return pos(self.start), pos(self.end)

    def merge(self, other: "Span") -> "Span":
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"
