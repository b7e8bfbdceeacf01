"""Structured diagnostics: code, message, span, hint.

Every problem a user can cause (bad syntax, unknown names, unreadable files,
unsupported operators) becomes a ``Diagnostic``; the CLI renders them with a
caret excerpt and never shows a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable

from hdsl.source import Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem, located in a source file when it has a location."""

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: Severity = Severity.ERROR
    path: str | None = None  # for problems in a file we could not parse as a source

    @property
    def location(self) -> str:
        if self.span is not None:
            return str(self.span)
        return self.path or "<hdsl>"

    def excerpt(self) -> str:
        """The source line with a caret (and tildes) under the span."""
        if self.span is None:
            return ""
        src = self.span.source
        line, col = src.line_col(self.span.start)
        end_line, end_col = src.line_col(self.span.end)
        text = src.line_text(line)
        width = max(1, (end_col - col) if end_line == line else len(text) - col + 1)
        gutter = f"{line:>4} | "
        marker = " " * (len(gutter) - 2) + "| " + " " * (col - 1) + "^" + "~" * (width - 1)
        return f"{gutter}{text}\n{marker}"

    def render(self) -> str:
        """Plain-text rendering: ``file:line:col: error[CODE]: message``, excerpt, hint."""
        parts = [f"{self.location}: {self.severity.value}[{self.code}]: {self.message}"]
        ex = self.excerpt()
        if ex:
            parts.append(ex)
        if self.hint:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)

    def to_json(self) -> dict:
        d: dict = {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
            "file": self.span.path if self.span else self.path,
        }
        if self.span is not None:
            (l0, c0), (l1, c1) = self.span.source.line_col(self.span.start), self.span.end_line_col
            d.update(line=l0, column=c0, end_line=l1, end_column=c1)
        return d


class HdslError(Exception):
    """Raised with one or more diagnostics when a stage cannot go on."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))

    @classmethod
    def single(cls, code: str, message: str, span: Span | None = None, hint: str | None = None,
               path: str | None = None) -> "HdslError":
        return cls([Diagnostic(code, message, span, hint, path=path)])


def article(noun: str) -> str:
    """``a model``, ``an explainer``: the indefinite article a message needs."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)
