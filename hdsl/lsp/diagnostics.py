"""hdsl diagnostics as LSP diagnostics: UTF-16 ranges; problems in imported files shown at the import."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from hdsl import ast
from hdsl.diagnostics import Diagnostic, Severity
from hdsl.lsp.analysis import Analysis, analyse
from hdsl.lsp.positions import span_range
from hdsl.source import Span


def path_to_uri(path: str) -> str:
    p = Path(path)
    return p.resolve().as_uri() if p.is_absolute() or p.exists() else path


def to_lsp_diagnostic(d: Diagnostic, a: Analysis) -> lsp.Diagnostic:
    """Diagnostics in this file keep their place; those in an imported file point at its import."""
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    span = d.span
    if span is not None and span.path != a.source.path:
        message = f"{span}: {message}"
        span = _import_span(a, span.path)
    elif span is None and d.path is not None and d.path != a.source.path:
        message = f"{d.path}: {message}"
    rng = span_range(span) if span is not None else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    severity = {Severity.ERROR: lsp.DiagnosticSeverity.Error, Severity.WARNING: lsp.DiagnosticSeverity.Warning,
                Severity.NOTE: lsp.DiagnosticSeverity.Information}[d.severity]
    return lsp.Diagnostic(rng, message, severity=severity, code=d.code, source="hdsl")


def _import_span(a: Analysis, other: str) -> Span | None:
    imports = [s for s in a.statements if isinstance(s, ast.Import)]
    base = Path(a.source.path).parent
    for stmt in imports:
        try:
            if (base / stmt.path.value).resolve() == Path(other).resolve():
                return stmt.path.span
        except OSError:  # pragma: no cover - odd paths
            continue
    return imports[0].path.span if imports else None


def lsp_diagnostics(a: Analysis) -> list[lsp.Diagnostic]:
    return [to_lsp_diagnostic(d, a) for d in a.diagnostics]


def diagnostics_for(uri: str, text: str, deep: bool = True) -> list[lsp.Diagnostic]:
    """The checker's diagnostics for ``text`` as the document at ``uri``."""
    return lsp_diagnostics(analyse(uri, text, deep))


__all__ = ["diagnostics_for", "lsp_diagnostics", "path_to_uri", "to_lsp_diagnostic"]
