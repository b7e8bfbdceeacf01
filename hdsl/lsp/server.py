"""The pygls wiring: LSP requests and notifications to the pure functions in ``hdsl.lsp.features``.

Diagnostics are published when a document opens, changes (after a short
pause, off the event loop) or is saved, and when files it may depend on
change on disk (the client watches them). The server always speaks UTF-16
columns, which every client supports, because spans convert to them in one
place (``hdsl.source.Span.lsp_range``).
"""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from hdsl import __version__
from hdsl.lsp import features
from hdsl.lsp.analysis import Analysis, analyse, uri_to_path

DEBOUNCE_S = 0.25


class _Utf16Protocol(LanguageServerProtocol):
    """Negotiates UTF-16 positions whatever the client prefers (UTF-16 is mandatory for clients)."""

    @lsp_method(lsp.INITIALIZE)
    def lsp_initialize(self, params: lsp.InitializeParams):
        if params.capabilities.general is not None:
            params.capabilities.general.position_encodings = [lsp.PositionEncodingKind.Utf16]
        return (yield from super().lsp_initialize(params))


class HdslLanguageServer(LanguageServer):
    """Keeps the latest analysis of every open document."""

    def __init__(self) -> None:
        super().__init__("hdsl", __version__, protocol_cls=_Utf16Protocol,
                         text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.analyses: dict[str, Analysis] = {}
        self.versions: dict[str, int | None] = {}

    def analysis(self, uri: str) -> Analysis:
        """The analysis of the document's current text (computed now if it is stale)."""
        doc = self.workspace.get_text_document(uri)
        current = self.analyses.get(uri)
        if current is None or current.source.text != doc.source:
            current = self.refresh(uri, doc.source)
        return current

    def refresh(self, uri: str, text: str) -> Analysis:
        return self.store(uri, analyse(uri, text, previous=self.analyses.get(uri)))

    def store(self, uri: str, result: Analysis) -> Analysis:
        if result.checker_error:  # the editor keeps working on the syntax alone; say why in the log
            self.window_log_message(lsp.LogMessageParams(
                lsp.MessageType.Warning, f"hdsl checker failed on {uri}: {result.checker_error}"))
        self.analyses[uri] = result
        return result

    def publish(self, uri: str, result: Analysis, version: int | None) -> None:
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=features.lsp_diagnostics(result), version=version))


server = HdslLanguageServer()


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: HdslLanguageServer, params: lsp.DidOpenTextDocumentParams) -> None:
    doc = params.text_document
    ls.versions[doc.uri] = doc.version
    ls.publish(doc.uri, ls.refresh(doc.uri, doc.text), doc.version)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: HdslLanguageServer, params: lsp.DidChangeTextDocumentParams) -> None:
    uri, version = params.text_document.uri, params.text_document.version
    ls.versions[uri] = version
    await asyncio.sleep(DEBOUNCE_S)
    if ls.versions.get(uri) != version:
        return  # a newer change will publish
    text = ls.workspace.get_text_document(uri).source
    result = await asyncio.to_thread(analyse, uri, text, True, ls.analyses.get(uri))
    if ls.versions.get(uri) != version:
        return
    ls.publish(uri, ls.store(uri, result), version)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: HdslLanguageServer, params: lsp.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    text = ls.workspace.get_text_document(uri).source
    ls.publish(uri, ls.refresh(uri, text), ls.versions.get(uri))


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: HdslLanguageServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.analyses.pop(uri, None)
    ls.versions.pop(uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def watched_files_changed(ls: HdslLanguageServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    """A model, data set or imported spec changed on disk: check the open documents again."""
    for uri in list(ls.analyses):
        text = ls.workspace.get_text_document(uri).source
        ls.publish(uri, ls.refresh(uri, text), ls.versions.get(uri))


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def hover(ls: HdslLanguageServer, params: lsp.HoverParams) -> lsp.Hover | None:
    pos = params.position
    return features.hover_at(ls.analysis(params.text_document.uri), pos.line, pos.character)


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["(", ","]))
def completion(ls: HdslLanguageServer, params: lsp.CompletionParams) -> lsp.CompletionList:
    pos = params.position
    items = features.complete_at(ls.analysis(params.text_document.uri), pos.line, pos.character)
    return lsp.CompletionList(is_incomplete=False, items=items)


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def definition(ls: HdslLanguageServer, params: lsp.DefinitionParams) -> list[lsp.Location]:
    pos = params.position
    return features.definition_at(ls.analysis(params.text_document.uri), pos.line, pos.character)


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
def references(ls: HdslLanguageServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
    pos = params.position
    return features.references_at(ls.analysis(params.text_document.uri), pos.line, pos.character,
                                  params.context.include_declaration)


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT)
def document_highlight(ls: HdslLanguageServer, params: lsp.DocumentHighlightParams) -> list[lsp.DocumentHighlight]:
    pos = params.position
    return features.highlights_at(ls.analysis(params.text_document.uri), pos.line, pos.character)


@server.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, features.LEGEND)
def semantic_tokens_full(ls: HdslLanguageServer, params: lsp.SemanticTokensParams) -> lsp.SemanticTokens:
    return features.semantic_tokens(ls.analysis(params.text_document.uri))


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
def code_action(ls: HdslLanguageServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    return features.code_actions(params.text_document.uri, list(params.context.diagnostics))


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: HdslLanguageServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit]:
    uri = params.text_document.uri
    try:
        return features.format_edits(ls.workspace.get_text_document(uri).source, uri_to_path(uri))
    except Exception as exc:  # noqa: BLE001 - a formatter bug must not break the editor
        ls.window_log_message(lsp.LogMessageParams(lsp.MessageType.Error, f"hdsl fmt failed: {exc!r}"))
        return []


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbol(ls: HdslLanguageServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    return features.document_symbols(ls.analysis(params.text_document.uri))


@server.feature(lsp.TEXT_DOCUMENT_FOLDING_RANGE)
def folding_range(ls: HdslLanguageServer, params: lsp.FoldingRangeParams) -> list[lsp.FoldingRange]:
    return features.folding_ranges(ls.analysis(params.text_document.uri))


def main(tcp: tuple[str, int] | None = None) -> None:
    """Serve over standard input/output (what editors use), or TCP for debugging."""
    logging.basicConfig(level=logging.WARNING)
    if tcp is not None:
        server.start_tcp(*tcp)
    else:
        server.start_io()


__all__ = ["HdslLanguageServer", "main", "server"]
