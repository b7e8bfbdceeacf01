"""Language-server features as pure functions: diagnostics, hover, completion, definition, formatting."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lsprotocol")

from lsprotocol import types as lsp  # noqa: E402

from hdsl.lsp.analysis import analyse, statement_starts, tolerant_parse, tolerant_text, uri_to_path  # noqa: E402
from hdsl.lsp.features import (  # noqa: E402
    complete_at,
    definition_at,
    diagnostics_for,
    document_symbols,
    folding_ranges,
    format_edits,
    hover_at,
    word_at,
)
from hdsl.lsp.positions import offset_at  # noqa: E402
from hdsl.lsp.references import references_at  # noqa: E402
from hdsl.source import SourceFile, Span  # noqa: E402

SPEC = """\
# 𝔼 é: non-ASCII text in a comment
const eps = 1/255

classes c3 = cat dog car
hierarchy h over c3 {
  animal { cat dog }
  car
}

model net = onnx "net.onnx" { input [4] in [0, 1]  outputs c3 }
data d = npz "d.npz" take 2

property p =
  forall (x, y) in d:
    forall x2 in linf(x, eps):
      argmax net(x2) in ancestor(h, y, level 1)

check p
"""


@pytest.fixture()
def spec_file(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    np.savez(folder / "d.npz", x=np.zeros((3, 4), np.float32), y=np.array([0, 1, 2]))
    _tiny_onnx(folder / "net.onnx")
    path = folder / "spec.hspec"
    path.write_text(SPEC, encoding="utf-8")
    return path


def _tiny_onnx(path: Path) -> None:
    """x[1, 4] -> Gemm -> y[1, 3], built with onnx.helper (no torch needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "w")
    b = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def _pos(text: str, needle: str, nth: int = 0, delta: int = 0) -> tuple[int, int]:
    """LSP (line, UTF-16 character) of the nth occurrence of ``needle`` (plus ``delta`` code points)."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    (line, char), _ = Span(SourceFile("x", text), i + delta, i + delta).lsp_range()
    return line, char


def test_positions_round_trip_through_utf16():
    text = "a𝔼b\n𝔼𝔼 x é\n\nlast"
    src = SourceFile("x", text)
    for offset in range(len(text) + 1):
        (line, char), _ = Span(src, offset, offset).lsp_range()
        assert offset_at(src, line, char) == offset
    assert offset_at(src, 1, 2) == text.index("\n") + 2  # after the first 𝔼 of line 2 (two UTF-16 units)
    assert offset_at(src, 9, 0) == len(text)


def test_uri_to_path(tmp_path):
    assert uri_to_path((tmp_path / "a b.hspec").as_uri()) == str(tmp_path / "a b.hspec")
    assert uri_to_path("untitled:Untitled-1") == "untitled:Untitled-1"


def test_syntax_error_position_counts_utf16_units():
    text = 'const k = 1\nproperty p = "𝔼é" == 1 = 2\n'
    (d,) = diagnostics_for("file:///nowhere/x.hspec", text)
    assert d.code == "E102" and d.severity == lsp.DiagnosticSeverity.Error
    col = text.splitlines()[1].index("= 2")
    assert (d.range.start.line, d.range.start.character) == (1, col + 1)  # 𝔼 is two UTF-16 units
    assert (d.range.end.line, d.range.end.character) == (1, col + 2)


def test_checker_diagnostics_resolve_files_next_to_the_document(spec_file, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    assert diagnostics_for(spec_file.as_uri(), SPEC) == []
    moved = (tmp_path / "other.hspec").as_uri()
    found = {(d.code, d.range.start.line) for d in diagnostics_for(moved, SPEC)}
    assert found == {("E411", 9), ("E401", 10)}  # the model and the data are not next to other.hspec
    bad = SPEC.replace("hierarchy h over c3", "hierarchy h over c4")
    codes = {(x.code, x.range.start.line, x.range.start.character) for x in diagnostics_for(spec_file.as_uri(), bad)}
    assert ("E202", 4, 17) in codes


def test_diagnostics_of_an_imported_file_point_at_the_import(tmp_path):
    (tmp_path / "lib.hspec").write_text("classes c = a b\nconst z = \n", encoding="utf-8")
    text = 'import "lib.hspec"\nconst k = 1\n'
    (d,) = diagnostics_for((tmp_path / "main.hspec").as_uri(), text)
    assert d.range.start.line == 0 and d.range.start.character == 7
    assert "lib.hspec:3:1" in d.message


def test_hover_declaration_kind_definition_and_facts(spec_file):
    a = analyse(spec_file.as_uri(), SPEC)
    h = hover_at(a, *_pos(SPEC, "eps", 1))
    assert "**const** `eps`" in h.contents.value and "const eps = 1/255" in h.contents.value
    assert "0.00392157" in h.contents.value
    assert (h.range.start.line, h.range.start.character) == _pos(SPEC, "eps", 1)
    hd = hover_at(a, *_pos(SPEC, "in d", 0, 3))
    assert "**data** `d`" in hd.contents.value and "2 rows selected" in hd.contents.value


def test_hover_hierarchy_node_lists_its_leaves(spec_file):
    a = analyse(spec_file.as_uri(), SPEC)
    h = hover_at(a, *_pos(SPEC, "animal"))
    assert "node** `animal` of hierarchy `h` (level 1)" in h.contents.value
    assert "2 leaves: cat, dog" in h.contents.value
    c = hover_at(a, *_pos(SPEC, "dog", 1))
    assert "output 1 of `c3`" in c.contents.value and "h > animal > dog" in c.contents.value
    hh = hover_at(a, *_pos(SPEC, "ancestor(h", 0, 9))
    assert "**hierarchy** `h`" in hh.contents.value and "3 leaves, depth 2" in hh.contents.value


def test_hover_binder_keyword_builtin_and_nothing_in_comments(spec_file):
    a = analyse(spec_file.as_uri(), SPEC)
    assert "bound variable" in hover_at(a, *_pos(SPEC, "x2", 0, 1)).contents.value
    assert "forall x in DOMAIN" in hover_at(a, *_pos(SPEC, "forall")).contents.value
    assert "L-infinity" in hover_at(a, *_pos(SPEC, "linf")).contents.value
    assert hover_at(a, *_pos(SPEC, "non-ASCII")) is None
    assert hover_at(a, *_pos(SPEC, "d.npz")) is None


def test_definition_of_names_classes_nodes_and_binders(spec_file):
    a = analyse(spec_file.as_uri(), SPEC)
    (loc,) = definition_at(a, *_pos(SPEC, "eps", 1))
    assert loc.uri == spec_file.as_uri() and (loc.range.start.line, loc.range.start.character) == (1, 6)
    (loc,) = definition_at(a, *_pos(SPEC, "dog", 1))
    assert (loc.range.start.line, loc.range.start.character) == _pos(SPEC, "dog")
    (loc,) = definition_at(a, *_pos(SPEC, "(x, eps", 0, 1))
    assert (loc.range.start.line, loc.range.start.character) == _pos(SPEC, "(x, y)", 0, 1)
    assert definition_at(a, *_pos(SPEC, "forall")) == []


def test_definition_in_an_imported_file(tmp_path):
    lib = tmp_path / "lib.hspec"
    lib.write_text("# shared\nconst eps = 2/255\n", encoding="utf-8")
    text = 'import "lib.hspec"\nconst k = eps * 2\n'
    a = analyse((tmp_path / "main.hspec").as_uri(), text)
    (loc,) = definition_at(a, *_pos(text, "eps"))
    assert loc.uri == lib.resolve().as_uri() and (loc.range.start.line, loc.range.start.character) == (1, 6)
    (loc,) = definition_at(a, *_pos(text, "lib.hspec", 0, 2))  # on the import's path: the file itself
    assert loc.uri == lib.resolve().as_uri() and loc.range.start == lsp.Position(0, 0)


def _labels(items):
    return {i.label for i in items}


def test_completion_keywords_come_from_the_parser(spec_file):
    a = analyse(spec_file.as_uri(), SPEC)
    top = _labels(complete_at(a, *_pos(SPEC, "check p")))
    assert {"model", "data", "property", "check", "hierarchy"} <= top
    assert "forall" not in top and "eps" not in top  # a statement or an operator continues here
    text = "model net = onnx \"m.onnx\" {\n  \n}\n"
    block = _labels(complete_at(analyse("file:///x/y.hspec", text), 1, 2))
    assert block == {"input", "normalize", "outputs"}


def test_completion_names_fit_the_context(spec_file):
    text = SPEC + "check "
    a = analyse(spec_file.as_uri(), text)
    lines = text.split("\n")
    at_check = _labels(complete_at(a, len(lines) - 1, len("check ")))
    assert at_check == {"p"}  # only properties after `check`
    text2 = SPEC + "hierarchy g over "
    a2 = analyse(spec_file.as_uri(), text2)
    assert _labels(complete_at(a2, len(text2.split("\n")) - 1, len("hierarchy g over "))) == {"c3"}
    text3 = SPEC + "property q = argmax y in {"
    a3 = analyse(spec_file.as_uri(), text3)
    items = _labels(complete_at(a3, len(text3.split("\n")) - 1, len("property q = argmax y in {")))
    assert {"cat", "dog", "animal", "eps", "d", "linf", "ancestor", "argmax", "forall", "not"} <= items
    for tail, names in [("property q = forall (u, v) in ", {"d"}), ("property q = argmax y in ancestor(", {"h"})]:
        text5 = SPEC + tail
        got = complete_at(analyse(spec_file.as_uri(), text5), len(text5.split("\n")) - 1, len(tail))
        assert {i.label for i in got if i.kind != lsp.CompletionItemKind.Keyword} == names, tail
    for tail, expected in [("model m = ", {"onnx"}), ("hierarchy g over c3 = ", {"json", "newick", "nbdt"}),
                           ("data e = ", {"npz", "npy", "csv"}), ("check p backend ", {"auto", "bounds", "z3", "attack"}),
                           ("check p arithmetic ", {"float32", "real"})]:
        text4 = SPEC + tail
        a4 = analyse(spec_file.as_uri(), text4)
        assert expected <= _labels(complete_at(a4, len(text4.split("\n")) - 1, len(tail))), tail


def test_completion_survives_a_syntax_error_and_skips_comments_and_strings(spec_file):
    broken = SPEC.replace("const eps = 1/255", "const eps = 1/")
    a = analyse(spec_file.as_uri(), broken)
    assert a.module is None and "h" in a.decls and "animal" in a.groups
    text = broken + "check "
    a = analyse(spec_file.as_uri(), text)
    assert _labels(complete_at(a, len(text.split("\n")) - 1, 6)) == {"p"}
    assert complete_at(a, *_pos(text, "non-ASCII", 0, 3)) == []
    assert complete_at(a, *_pos(text, "d.npz", 0, 1)) == []


def test_statement_split_and_tolerant_text():
    text = 'causal model m { input a }\nconst k = "model" # const\nproperty p = \nconst j = 2\n'
    assert [text[s:s + 5] for s in statement_starts(text)] == ["causa", "const", "prope", "const"]
    kept = tolerant_text(text, "x")
    assert len(kept) == len(text) and "property" not in kept and "const j = 2" in kept


@pytest.mark.parametrize("text,kept", [
    ("const a = 1\nconst b = \nconst c = 3\n", ["a", "c"]),  # error at the next statement's first word
    ("const a = 1\nconst = 2\nclasses k = x y\nproperty p = (\n", ["a", "k"]),  # two errors, one at the end
    ("zz const a = 1\nhierarchy h over k { g { x } \nconst c = $\nconst d = 4", ["a", "d"]),
])
def test_tolerant_parse_keeps_the_statements_that_parse(text, kept):
    source, statements = tolerant_parse(text, "x.hspec")
    assert [s.name.name for s in statements] == kept
    from hdsl.diagnostics import HdslError
    from hdsl.parser import parse_text

    with pytest.raises(HdslError) as err:
        parse_text(text)
    again, same = tolerant_parse(text, "x.hspec", err.value.diagnostics[0].span.start)
    assert again.text == source.text and same == statements
    assert len(source.text) == len(text) and source.text.count("\n") == text.count("\n")
    for stmt in statements:
        assert stmt.span.text == text[stmt.span.start:stmt.span.end]  # offsets are the original text's


def test_formatting_is_one_whole_document_edit():
    ugly = "const   k =   1\n\n\n\nclasses c = a   b\n"
    (edit,) = format_edits(ugly, "x.hspec")
    assert edit.range.start == lsp.Position(0, 0) and edit.range.end.line == 5
    from hdsl.fmt import format_text

    assert edit.new_text == format_text(ugly, "x.hspec")
    assert format_edits(edit.new_text, "x.hspec") == []
    assert format_edits("const k = ", "x.hspec") == []


def test_symbols_and_folding(spec_file):
    a = analyse(spec_file.as_uri(), SPEC)
    symbols = document_symbols(a)
    assert [s.name for s in symbols] == ["eps", "c3", "h", "net", "d", "p"]
    assert [c.name for c in symbols[2].children] == ["animal"]
    folds = {(f.start_line, f.end_line) for f in folding_ranges(a)}
    assert (4, 7) in folds and (12, 15) in folds


def test_word_at_ignores_strings_and_comments():
    src = SourceFile("x", 'data d = npz "word.npz" # word\n')
    assert word_at(src, src.text.index("word")) is None
    assert word_at(src, src.text.index("# word") + 3) is None
    assert word_at(src, 5)[2:] == ("d", "name")
    assert word_at(src, 6)[2:] == ("d", "name")  # just after the word
    assert word_at(src, 0)[2:] == ("data", "keyword")


def test_a_checker_crash_falls_back_to_syntax_diagnostics(monkeypatch):
    import hdsl.check

    def boom(*args, **kwargs):
        raise RuntimeError("checker bug")

    monkeypatch.setattr(hdsl.check, "check_source", boom)
    good = analyse("file:///x/y.hspec", "classes c = a b\n")
    assert good.checker_error == "RuntimeError: checker bug" and good.diagnostics == () and "c" in good.decls
    bad = analyse("file:///x/y.hspec", "classes c = a b\nconst k = \n")
    assert [d.code for d in bad.diagnostics] == ["E103"] and "c" in bad.decls


def test_hover_property_shows_the_lowering_reading(spec_file):
    a = analyse(spec_file.as_uri(), SPEC)
    text = hover_at(a, *_pos(SPEC, "property p", 0, 9)).contents.value
    assert "**property** `p`" in text and "model `net`" in text and "over data `d` (2 rows)" in text
    assert "eps = 1/255" in text


def test_hover_hierarchy_from_a_file_shows_its_tree(tmp_path):
    tree = Path(__file__).resolve().parents[1] / "hierarchies" / "cifar10_3level.hier.json"
    (tmp_path / "h.json").write_text(tree.read_text(encoding="utf-8"), encoding="utf-8")
    text = ("classes cifar10 = airplane automobile bird cat deer dog frog horse ship truck\n"
            'hierarchy h3 over cifar10 = json "h.json"\n')
    a = analyse((tmp_path / "s.hspec").as_uri(), text)
    assert a.diagnostics == ()
    hover = hover_at(a, 1, 11).contents.value
    assert "10 leaves, depth 3; level 1: vehicle, animal" in hover
    assert "mammal { cat deer dog horse }" in hover
    cat = hover_at(a, *_pos(text, "cat")).contents.value
    assert "output 3 of `cifar10`" in cat and "root > animal > mammal > cat" in cat


SPECS = sorted((Path(__file__).resolve().parents[1] / "specs").glob("*.hspec"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_position_of_the_shipped_specs_answers(path):
    """Hover, definition and completion at every token (and mid-word) of real specs, without errors."""
    text = path.read_text(encoding="utf-8")
    a = analyse(path.resolve().as_uri(), text)
    assert a.diagnostics == () or all(d.severity.value != "error" for d in a.diagnostics)
    src = a.source
    from hdsl.highlight import HspecLexer

    hovered = 0
    tokens = [(start, value) for start, _, value in HspecLexer().get_tokens_unprocessed(text) if not value.isspace()]
    for n, (start, value) in enumerate(tokens):
        for offset in {start, start + len(value) // 2}:
            (line, char), _ = Span(src, offset, offset).lsp_range()
            hovered += hover_at(a, line, char) is not None
            for loc in definition_at(a, line, char):
                assert loc.range.start.line >= 0
            refs = references_at(a, line, char)
            assert all(r.uri for r in refs)
        if n % 4 == 0:  # completion parses the statement up to the cursor: sample it
            complete_at(a, *Span(src, start, start).lsp_range()[0])
    assert hovered > 0


def test_references_follow_scopes_and_namespaces():
    from hdsl.lsp.features import highlights_at

    text = (
        "classes c = x y\n"
        "const x2 = 1\n"
        "data x = npz \"d.npz\"\n"
        "property p = forall x in linf(x, x2): argmax x in {x} and (forall x in box([0], [1]): x)\n"
        "causal model m { input x  v = x }\n"
        "alignment al of m to net { x -> layer \"h\" }\n"
        "check p\n"
    )
    a = analyse("file:///nowhere/r.hspec", text)
    assert a.module is not None

    def where(locs):
        return [(loc.range.start.line, loc.range.start.character) for loc in locs]

    line3 = text.split("\n")[3]
    inner = line3.index("forall x in box") + len("forall ")
    # the first binder: its uses in the body, not the domain's x (the data set), not the inner binder's
    first = line3.index("forall x") + len("forall ")
    uses = [line3.index("argmax x") + 7, line3.index("{x}") + 1]
    assert where(references_at(a, 3, first)) == [(3, first)] + [(3, u) for u in uses]
    assert where(references_at(a, 3, uses[0], include_declaration=False)) == [(3, u) for u in uses]
    # the global x (data set and class) from the domain: the class list, the data declaration, the domain use
    dom = line3.index("linf(x") + 5
    refs = where(references_at(a, 3, dom))
    assert (0, 12) in refs and (2, 5) in refs and (3, dom) in refs
    assert (3, inner) not in refs and all(line not in (4, 5) for line, _ in refs)  # causal variables differ
    assert where(references_at(a, 6, 6)) == [(3, 9), (6, 6)]  # property p: declaration and check
    kinds = {(h.range.start.line, h.kind) for h in highlights_at(a, 6, 6)}
    assert kinds == {(3, lsp.DocumentHighlightKind.Write), (6, lsp.DocumentHighlightKind.Read)}
    assert references_at(a, 0, 1) == []  # a keyword


def test_semantic_tokens_colour_uses_by_what_they_name(spec_file):
    from hdsl.lsp.semantic import TOKEN_TYPES, semantic_tokens

    text = SPEC + 'model m2 = onnx "𝔼é.onnx" { outputs c3 }\n'
    a = analyse(spec_file.as_uri(), text)
    data = semantic_tokens(a).data
    assert len(data) % 5 == 0
    lines = text.split("\n")
    line = col = 0
    tokens = {}
    for i in range(0, len(data), 5):
        dl, dc, length, ttype, mods = data[i:i + 5]
        line, col = line + dl, (col + dc if dl == 0 else dc)
        units = lines[line].encode("utf-16-le")  # columns are UTF-16 units
        tokens[(line, units[2 * col:2 * (col + length)].decode("utf-16-le"))] = (TOKEN_TYPES[ttype], bool(mods))

    def at(prefix):
        return next(i for i, ln in enumerate(lines) if ln.lstrip().startswith(prefix))

    assert tokens[(at("const eps"), "eps")] == ("variable", True)
    assert tokens[(at("classes"), "c3")] == ("type", True) and tokens[(at("hierarchy"), "c3")] == ("type", False)
    assert tokens[(at("animal"), "animal")] == ("namespace", True)
    assert tokens[(at("animal"), "cat")] == ("enumMember", False)
    assert tokens[(at("forall x2"), "x2")] == ("parameter", True)
    assert tokens[(at("forall x2"), "eps")] == ("variable", False)
    assert tokens[(at("argmax"), "net")] == ("function", False) and tokens[(at("argmax"), "y")] == ("parameter", False)
    assert tokens[(at("check"), "p")] == ("property", False)
    assert tokens[(at("model m2"), "c3")] == ("type", False)  # after "𝔼é": found at its UTF-16 column
    assert not any(w in ("linf", "ancestor") for _, w in tokens)  # built-ins keep the grammar's colour


def _apply(text: str, edit: lsp.TextEdit) -> str:
    src = SourceFile("x", text)
    start = offset_at(src, edit.range.start.line, edit.range.start.character)
    end = offset_at(src, edit.range.end.line, edit.range.end.character)
    return text[:start] + edit.new_text + text[end:]


@pytest.mark.parametrize("text,new", [
    ('data d = npz "𝔼.npz" take 1  classes cifar = a b\nhierarchy h over cifr { g { a b } }\n', "cifar"),
    ('const k = 1\nproperty p = "𝔼é" in {1} and argmax n(x) = 3\n', "=="),
])
def test_quick_fixes_apply_the_hint(tmp_path, text, new):
    from hdsl.lsp.features import code_actions

    uri = (tmp_path / "q.hspec").as_uri()
    diags = diagnostics_for(uri, text)
    fixable = [d for d in diags if d.data]
    assert [d.data for d in fixable] == [{"replace": new}]
    (action,) = code_actions(uri, diags)
    assert action.kind == lsp.CodeActionKind.QuickFix and action.diagnostics == fixable
    (edit,) = action.edit.changes[uri]
    fixed = _apply(text, edit)
    after = diagnostics_for(uri, fixed)
    assert not any(d.code == fixable[0].code and d.range.start == fixable[0].range.start for d in after)


def test_hdsl_lsp_without_pygls_is_a_diagnostic(monkeypatch, capsys):
    import sys

    from hdsl.cli import main

    monkeypatch.setitem(sys.modules, "hdsl.lsp.server", None)  # as if pygls were not installed
    with pytest.raises(SystemExit) as exit_:
        main(["lsp"])
    assert exit_.value.code == 3
    err = capsys.readouterr().err
    assert "E901" in err and "pip install 'hdsl[lsp]'" in err


def test_statement_snippets_parse_and_appear_at_line_starts(spec_file):
    import re

    from hdsl.lsp.completion import SNIPPETS
    from hdsl.parser import parse_text

    for word, snippet in SNIPPETS.items():  # with every placeholder at its default, a snippet is a statement
        text = re.sub(r"\$\{\d+\|([^,|]+)[^}]*\}", r"\1", snippet)
        text = re.sub(r"\$\{\d+:([^}]*)\}", r"\1", text)
        assert "$" not in text and type(parse_text(text).statements[0]).__name__.lower().startswith(word[:4])
    a = analyse(spec_file.as_uri(), SPEC + "\n")
    items = complete_at(a, len(SPEC.split("\n")), 0)
    snippets = {i.filter_text for i in items if i.kind == lsp.CompletionItemKind.Snippet}
    assert snippets == set(SNIPPETS)
    inline = complete_at(a, *_pos(SPEC, "check p", 0, 6))  # after `check `: no statement templates
    assert not any(i.kind == lsp.CompletionItemKind.Snippet for i in inline)


def test_group_calls_name_nodes_of_their_hierarchy(tmp_path):
    tree = Path(__file__).resolve().parents[1] / "hierarchies" / "cifar10_3level.hier.json"
    (tmp_path / "h.json").write_text(tree.read_text(encoding="utf-8"), encoding="utf-8")
    text = ("classes cifar10 = airplane automobile bird cat deer dog frog horse ship truck\n"
            "hierarchy h over cifar10 { animal { bird cat deer dog frog horse } vehicle { airplane automobile ship truck } }\n"
            'hierarchy h3 over cifar10 = json "h.json"\n'
            "property p = forall x in box([0], [1]): argmax x in group(h3, animal) and argmax x in group(h, animal)\n"
            "property q = argmax x in group(h3, ")
    a = analyse((tmp_path / "g.hspec").as_uri(), text)
    line = text.split("\n")[3]
    in_h3, in_h = line.index("h3, animal") + 5, line.index("(h, animal") + 5
    assert "of hierarchy `h3` (level 1)" in hover_at(a, 3, in_h3).contents.value
    assert "of hierarchy `h` (level 1)" in hover_at(a, 3, in_h).contents.value
    assert definition_at(a, 3, in_h3) == []  # h3's nodes live in a JSON file
    (loc,) = definition_at(a, 3, in_h)
    assert (loc.range.start.line, loc.range.start.character) == (1, text.split("\n")[1].index("animal"))
    last = text.split("\n")[4]
    names = {i.label for i in complete_at(a, 4, len(last)) if i.kind != lsp.CompletionItemKind.Keyword}
    assert names == {"vehicle", "air", "land", "water", "animal", "birds", "mammal", "amphibian"}
    first = {i.label for i in complete_at(a, 4, len("property q = argmax x in group("))
             if i.kind != lsp.CompletionItemKind.Keyword}
    assert first == {"h", "h3"}
