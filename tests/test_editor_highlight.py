"""The Pygments lexer: registered, no error tokens on real specs, tokens agree with the parser's lexer."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

from hdsl.diagnostics import Diagnostic
from hdsl.highlight import HspecLexer, highlight_excerpt
from hdsl.parser import get_parser, keywords
from hdsl.source import SourceFile, Span

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted({*ROOT.glob("specs/**/*.hspec"), *ROOT.glob("editors/**/*.hspec")})  # all valid
OTHERS = sorted(ROOT.glob("tests/**/*.hspec"))  # may hold deliberate errors


def _parses(path: Path) -> bool:
    from hdsl.diagnostics import HdslError
    from hdsl.parser import parse_text

    try:
        parse_text(path.read_text(encoding="utf-8"))
    except HdslError:
        return False
    return True

MIXED = '''\
# é ü 𝔼 — comments and strings may hold any text
const eps = 2/255 + 1.5e-3 - .5
model net = onnx "mödels/ñet.onnx" { input [3, 32, 32] in [0, 1] }
data d = npz "a\\"b.npz" take 5
property p = forall (x, y) in d: forall x2 in linf(x, eps): argmax net(x2) in ancestor(h, y, level all)
check p timeout 60s backend auto
'''


def test_registered_under_the_pygments_entry_point():
    assert isinstance(get_lexer_for_filename("spec.hspec"), HspecLexer)
    assert isinstance(get_lexer_by_name("hdsl"), HspecLexer)


def test_pygmentize_highlights_a_spec(tmp_path):
    f = tmp_path / "spec.hspec"
    f.write_text(MIXED, encoding="utf-8")
    for args in (["-l", "hdsl"], []):
        out = subprocess.run([sys.executable, "-m", "pygments", *args, "-f", "raw", str(f)],
                             capture_output=True, text=True, encoding="utf-8", timeout=60)
        assert out.returncode == 0, out.stderr
        assert "Token.Keyword.Declaration\t'model'" in out.stdout
        assert "Token.Error" not in out.stdout


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_error_tokens_on_shipped_specs(path):
    text = path.read_text(encoding="utf-8")
    bad = [(t, v) for t, v in HspecLexer().get_tokens(text) if t in Error]
    assert not bad, bad


def test_there_are_samples():
    assert any(p.parts[-3:-1] == ("vscode", "tests") for p in SAMPLES)


def _significant(text: str) -> list[tuple[object, str]]:
    """Lexer tokens without white space and comments; the pieces of one string literal joined."""
    out: list = []
    glued = False  # the previous token was a string piece directly before this one
    for ttype, value in HspecLexer().get_tokens(text):
        if ttype in Whitespace or ttype in Comment:
            glued = False
            continue
        if ttype in String and glued and not (len(out[-1][1]) > 1 and out[-1][1].endswith('"')
                                               and not out[-1][1].endswith('\\"')):
            out[-1] = (String, out[-1][1] + value)
        else:
            out.append((String if ttype in String else ttype, value))
        glued = ttype in String
    return out


def _expected_type(parser_type: str, value: str):
    if parser_type == "NAME":
        return Name
    if parser_type in ("NUMBER", "DURATION"):
        return Number
    if parser_type == "STRING":
        return String
    if value in keywords():
        return Keyword if value not in ("and", "or", "not", "implies", "in", "argmax") else Operator.Word
    return Operator if value in ("->", "<=", ">=", "==", "!=", "<", ">", "=", "+", "-", "*", "/") else Punctuation


@pytest.mark.parametrize("path", [None] + SAMPLES + [p for p in OTHERS if _parses(p)],
                         ids=lambda p: "mixed" if p is None else str(p.relative_to(ROOT)))
def test_tokens_agree_with_the_parser_lexer(path):
    text = MIXED if path is None else path.read_text(encoding="utf-8")
    ours = _significant(text)
    theirs = [(t.type, str(t)) for t in get_parser().lex(text)]
    assert [v for _, v in ours] == [v for _, v in theirs]
    for (ttype, value), (ptype, _) in zip(ours, theirs):
        assert ttype in _expected_type(ptype, value), (value, ttype, ptype)


def test_unclosed_string_and_stray_character_are_errors():
    toks = list(HspecLexer().get_tokens('const s = "open\nconst t = 1 $\n'))
    assert [v for t, v in toks if t in Error] == ["\n", "$"]


def test_highlighted_excerpt_keeps_the_plain_layout():
    src = SourceFile("x.hspec", "const é = 1\nproperty p = argmax net(x) = 3\n")
    start = src.text.index("= 3")
    d = Diagnostic("E102", "unexpected '='", Span(src, start, start + 1), "compare with '=='")
    text = highlight_excerpt(d)
    assert text.plain == d.render()
    underlined = [s for s in text.spans if re.search(r"(?<!not )underline", str(s.style))]
    marked = [s for s in text.spans if str(s.style) == "underline bold red"]
    assert underlined == marked  # the theme underlines nothing else (declared names, say)
    assert [text.plain[s.start:s.end] for s in marked] == ["="]
    assert text.plain[marked[0].start:].startswith("= 3")


def test_cli_highlights_diagnostics_only_on_a_terminal():
    import io

    from rich.console import Console

    from hdsl.cli import print_diagnostics

    src = SourceFile("x.hspec", 'const k = "é" + 1 = 2\n')
    start = src.text.index("= 2")
    d = Diagnostic("E102", "unexpected '='", Span(src, start, start + 1), "compare with '=='")
    plain = io.StringIO()
    print_diagnostics([d], Console(file=plain, force_terminal=False, width=200))
    assert plain.getvalue() == d.render() + "\n"
    tty = io.StringIO()
    print_diagnostics([d], Console(file=tty, force_terminal=True, color_system="standard", width=200))
    assert "\x1b[" in tty.getvalue()
    assert re.sub(r"\x1b\[[0-9;]*m", "", tty.getvalue()) == d.render() + "\n"
