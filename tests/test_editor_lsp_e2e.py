"""End to end: start ``hdsl lsp --stdio`` with a pygls client and talk LSP to it."""

import asyncio
import sys

import pytest

pytest.importorskip("pygls")

from lsprotocol import types as lsp  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

BROKEN = 'classes c = cat dog\n# 𝔼é\nproperty p = "𝔼é" == 1 = 2\n'
SPEC = """\
classes c = cat dog car  # 𝔼é
hierarchy h over c { animal { cat dog } car }
const k = 1/2
const j = k * 2
data d = npz "𝔼é.npz" take 1  hierarchy g over cc { x }
"""


def _at(text: str, needle: str, delta: int = 0) -> lsp.Position:
    """The LSP position of ``needle`` (+ delta code points), UTF-16 columns computed by hand."""
    i = text.index(needle) + delta
    line = text.count("\n", 0, i)
    col = text[text.rfind("\n", 0, i) + 1:i]
    return lsp.Position(line, len(col.encode("utf-16-le")) // 2)


async def _session(tmp_path):
    client = LanguageClient("hdsl-test", "0")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def _diagnostics(params: lsp.PublishDiagnosticsParams):
        published.put_nowait(params)

    await client.start_io(sys.executable, "-m", "hdsl", "lsp", "--stdio")  # as the VS Code client starts it
    try:
        # The client would rather count UTF-8 bytes; the server must still answer in UTF-16.
        caps = lsp.ClientCapabilities(general=lsp.GeneralClientCapabilities(
            position_encodings=[lsp.PositionEncodingKind.Utf8, lsp.PositionEncodingKind.Utf16]))
        init = await asyncio.wait_for(client.initialize_async(lsp.InitializeParams(capabilities=caps)), 60)
        client.initialized(lsp.InitializedParams())
        uri = (tmp_path / "spec.hspec").as_uri()
        out = {"init": init}

        client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "hspec", 1, BROKEN)))
        out["open"] = await asyncio.wait_for(published.get(), 60)

        whole = lsp.Range(lsp.Position(0, 0), lsp.Position(3, 0))
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=2), [lsp.TextDocumentContentChangePartial(whole, SPEC)]))
        out["change"] = await asyncio.wait_for(published.get(), 60)

        # The data file appears on disk: the client reports it, the server checks again.
        import numpy as np

        np.savez(tmp_path / "𝔼é.npz", x=np.zeros((2, 3), np.float32), y=np.array([0, 1]))
        client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
            [lsp.FileEvent((tmp_path / "𝔼é.npz").as_uri(), lsp.FileChangeType.Created)]))
        out["watched"] = await asyncio.wait_for(published.get(), 60)

        doc = lsp.TextDocumentIdentifier(uri)
        out["hover"] = await client.text_document_hover_async(lsp.HoverParams(doc, _at(SPEC, "animal", 2)))
        out["complete"] = await client.text_document_completion_async(
            lsp.CompletionParams(doc, _at(SPEC, "car }")))
        out["definition"] = await client.text_document_definition_async(
            lsp.DefinitionParams(doc, _at(SPEC, "k * 2")))
        out["format"] = await client.text_document_formatting_async(
            lsp.DocumentFormattingParams(doc, lsp.FormattingOptions(2, True)))
        (unknown,) = out["watched"].diagnostics  # sent back as the client got it (its data included)
        out["actions"] = await client.text_document_code_action_async(
            lsp.CodeActionParams(doc, unknown.range, lsp.CodeActionContext(diagnostics=[unknown])))
        out["tokens"] = await client.text_document_semantic_tokens_full_async(lsp.SemanticTokensParams(doc))
        return out
    finally:
        try:
            await asyncio.wait_for(client.shutdown_async(None), 10)
            client.exit(None)
            await asyncio.wait_for(client.stop(), 10)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - never leave the server running
            if client._server is not None and client._server.returncode is None:
                client._server.kill()


def test_stdio_session(tmp_path):
    out = asyncio.run(asyncio.wait_for(_session(tmp_path), 120))
    assert out["init"].capabilities.position_encoding == lsp.PositionEncodingKind.Utf16
    caps = out["init"].capabilities
    assert caps.hover_provider and caps.definition_provider and caps.references_provider
    assert caps.semantic_tokens_provider.legend.token_types[0] == "enumMember"

    (d,) = out["open"].diagnostics
    assert d.code == "E102" and d.source == "hdsl"
    assert d.range.start == _at(BROKEN, "= 2")  # after "𝔼é": 𝔼 counts two UTF-16 units
    assert d.range.start.character == BROKEN.splitlines()[2].index("= 2") + 1

    assert out["change"].version == 2  # the checker's diagnostics, after the edit
    missing, unknown = sorted(out["change"].diagnostics, key=lambda x: x.range.start.character)
    assert missing.code == "E401" and "𝔼é.npz" in missing.message  # resolved next to the document
    assert missing.range.start == _at(SPEC, '"𝔼é') and missing.range.end == _at(SPEC, " take")
    assert unknown.code == "E202" and "'cc'" in unknown.message
    assert unknown.range.start == _at(SPEC, "cc") and unknown.range.end.character == unknown.range.start.character + 2

    assert [x.code for x in out["watched"].diagnostics] == ["E202"]  # the data file is found now

    hover = out["hover"]
    assert "node** `animal` of hierarchy `h`" in hover.contents.value and "cat, dog" in hover.contents.value
    assert hover.range.start == _at(SPEC, "animal")

    items = {i.label: i for i in out["complete"].items}
    assert {"cat", "dog", "car", "animal"} <= set(items) and "}" not in items
    assert "model" not in items and items["cat"].kind == lsp.CompletionItemKind.EnumMember

    (loc,) = out["definition"]
    assert loc.uri == (tmp_path / "spec.hspec").as_uri() and loc.range.start == _at(SPEC, "k = 1/2")

    from hdsl.fmt import format_text

    (edit,) = out["format"]
    assert edit.new_text == format_text(SPEC) and edit.range.start == lsp.Position(0, 0)

    (action,) = out["actions"]
    (edit,) = action.edit.changes[(tmp_path / "spec.hspec").as_uri()]
    assert edit.new_text == "c" and edit.range.start == _at(SPEC, "cc")
    assert len(out["tokens"].data) % 5 == 0 and out["tokens"].data
