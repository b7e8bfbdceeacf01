"""hdsl diagnostics as LSP diagnostics: UTF-16 ranges; problems in imported files shown at the import."""

from __future__ import annotations

import re
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
    data = _fix(d) if span is d.span else None
    return lsp.Diagnostic(rng, message, severity=severity, code=d.code, source="hdsl", data=data)


_DID_YOU_MEAN = re.compile(r"did you mean '([A-Za-z_][A-Za-z0-9_]*)'\?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _fix(d: Diagnostic) -> dict | None:
    """The replacement a diagnostic's hint proposes for its span (a quick fix), if it proposes one."""
    if d.span is None or not d.hint:
        return None
    text = d.span.text
    m = _DID_YOU_MEAN.search(d.hint)
    if m and _NAME.match(text) and text != m.group(1):
        return {"replace": m.group(1)}
    if text == "=" and "'=='" in d.hint:
        return {"replace": "=="}
    return None


def code_actions(uri: str, diagnostics: list[lsp.Diagnostic]) -> list[lsp.CodeAction]:
    """Quick fixes for the client's diagnostics that carry a replacement (from ``to_lsp_diagnostic``)."""
    actions = []
    for diag in diagnostics:
        data = diag.data if isinstance(diag.data, dict) else None
        new = data.get("replace") if data else None
        if diag.source != "hdsl" or not isinstance(new, str):
            continue
        edit = lsp.WorkspaceEdit(changes={uri: [lsp.TextEdit(diag.range, new)]})
        actions.append(lsp.CodeAction(f"Replace with '{new}'", kind=lsp.CodeActionKind.QuickFix, edit=edit,
                                      diagnostics=[diag], is_preferred=True))
    return actions


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


__all__ = ["code_actions", "diagnostics_for", "lsp_diagnostics", "path_to_uri", "to_lsp_diagnostic"]
