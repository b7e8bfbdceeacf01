from hdsl.diagnostics import Diagnostic
from hdsl.source import SourceFile


def test_line_col_and_excerpt():
    src = SourceFile("a.hspec", "classes c = a b\nproperty p = foo bar\n")
    d = Diagnostic("E001", "unknown name", src.span(29, 32), hint="declare it")
    text = d.render()
    assert text.startswith("a.hspec:2:14: error[E001]: unknown name")
    assert "^~~" in text and "hint: declare it" in text


def test_end_span_points_at_real_end():
    src = SourceFile("a.hspec", "ab\ncd")
    assert (src.end_span().line, src.end_span().column) == (2, 3)


def test_lsp_range_counts_utf16_units():
    src = SourceFile("a.hspec", "# 😀 é\nx")
    start = src.text.index("é")
    (line, char), _ = src.span(start, start + 1).lsp_range()
    assert (line, char) == (0, 5)  # '#', ' ', surrogate pair (2), ' '
