"""Syntax highlighting for ``.hspec``: a Pygments lexer and highlighted diagnostics.

The lexer is registered under the ``pygments.lexers`` entry point, so
``pygmentize -l hspec spec.hspec``, Sphinx, mkdocs and ``rich.syntax.Syntax``
all find it (by the alias ``hdsl`` or the ``*.hspec`` file name). Its keyword groups are the single list the editor
grammars follow: ``tests/test_editor_keywords.py`` keeps the union equal to
the grammar's reserved words (``hdsl.parser.keywords()``) and the VS Code
TextMate grammar equal to these groups, so the three cannot drift. The lists
are written out (not computed from the Lark grammar) so that importing the
lexer stays cheap: Pygments loads every registered plugin when it guesses.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

# Every reserved word of the language, by the role it plays (and the colour it gets).
KEYWORD_GROUPS: dict[str, tuple[str, ...]] = {
    # start a statement and declare a name
    "declaration": ("alignment", "causal", "check", "classes", "const", "data", "explainer", "hierarchy",
                    "import", "model", "property"),
    "quantifier": ("forall",),
    "operator": ("and", "argmax", "implies", "in", "not", "or"),
    "constant": ("all", "false", "true"),
    # options inside blocks, calls and statements
    "option": ("arithmetic", "backend", "baseline", "column", "confidence", "header", "input", "intervene", "key", "label",
               "layer", "layout", "level", "mean", "metric", "normalize", "of", "outputs", "over", "removal",
               "samples", "scale", "seed", "shape", "skip", "std", "steps", "take", "target", "timeout", "to",
               "top", "with"),
}

KEYWORDS: tuple[str, ...] = tuple(sorted(w for group in KEYWORD_GROUPS.values() for w in group))

# Declarations whose next word is the declared name.
_DECLARES = ("alignment", "classes", "const", "data", "explainer", "hierarchy", "model", "property")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_END = r"(?![A-Za-z0-9_])"


class HspecLexer(RegexLexer):
    """Lexer for hdsl specification files (``.hspec``)."""

    name = "hdsl spec"
    # ``hspec`` alone names Pygments' own Haskell Hspec lexer, and Pygments looks up its built-in
    # aliases before plugins: ``pygmentize -l hdsl`` (or the ``*.hspec`` file name) selects this one.
    aliases = ["hdsl", "hspec"]
    filenames = ["*.hspec"]
    mimetypes = ["text/x-hspec"]
    url = "https://github.com/hdsl/hdsl"
    version_added = ""

    tokens = {
        "root": [
            (r"[ \t\r\f]+", Whitespace),
            (r"\n", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"', String.Double, "string"),
            # ``causal model NAME`` and ``KEYWORD NAME`` declare a name
            (rf"(causal)(\s+)(model)(\s+)({_NAME})",
             bygroups(Keyword.Declaration, Whitespace, Keyword.Declaration, Whitespace, Name.Class)),
            (rf"({'|'.join(_DECLARES)})(\s+)(?!(?:{'|'.join(KEYWORDS)}){_END})({_NAME})",
             bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (words(KEYWORD_GROUPS["declaration"], suffix=_END), Keyword.Declaration),
            (words(KEYWORD_GROUPS["quantifier"], suffix=_END), Keyword.Reserved),
            (words(KEYWORD_GROUPS["operator"], suffix=_END), Operator.Word),
            (words(KEYWORD_GROUPS["constant"], suffix=_END), Keyword.Constant),
            (words(KEYWORD_GROUPS["option"], suffix=_END), Keyword),
            (r"\d+(\.\d+)?(ms|s|min|h)" + _END, Number.Float),  # a duration: 60s, 500ms
            (r"(\d+\.\d*|\.\d+)([eE][+-]?\d+)?|\d+[eE][+-]?\d+", Number.Float),
            (r"\d+", Number.Integer),
            (rf"{_NAME}(?=[ \t]*\()", Name.Function),
            (rf'{_NAME}(?=[ \t]*")', Name.Builtin),  # a file format: onnx "net.onnx"
            (_NAME, Name),
            (r"->|<=|>=|==|!=|[<>=+\-*/]", Operator),
            (r"[()\[\]{},:]", Punctuation),
            (r".", Error),
        ],
        "string": [
            (r'[^"\\\n]+', String.Double),
            (r"\\.", String.Escape),
            (r'"', String.Double, "#pop"),
            (r"\n", Error, "#pop"),  # strings end on their line
        ],
    }


# --------------------------------------------------------------------------- diagnostics on a terminal


def _theme():
    """rich's ANSI dark theme without underlines, so the only underline is the error's."""
    from rich.style import Style
    from rich.syntax import ANSI_DARK, ANSISyntaxTheme

    return ANSISyntaxTheme({t: s + Style(underline=False) for t, s in ANSI_DARK.items()})



def highlight_excerpt(diagnostic):
    """A ``rich`` renderable of ``diagnostic``: the plain layout, with the source line highlighted.

    Used by the CLI when standard error is a terminal; ``Diagnostic.render``
    stays the plain-text form (logs, tests, pipes). The columns and the caret
    line are the same as in the plain form.
    """
    from rich.syntax import Syntax
    from rich.text import Text

    colour = {"error": "bold red", "warning": "bold yellow", "note": "bold cyan"}.get(diagnostic.severity.value, "bold")
    out = Text()
    out.append(f"{diagnostic.location}: ", style="bold")
    out.append(f"{diagnostic.severity.value}[{diagnostic.code}]", style=colour)
    out.append(f": {diagnostic.message}")
    span = diagnostic.span
    if span is not None:
        src = span.source
        line, col = src.line_col(span.start)
        end_line, end_col = src.line_col(span.end)
        text = src.line_text(line)
        width = max(1, (end_col - col) if end_line == line else len(text) - col + 1)
        code = Syntax(text, HspecLexer(), theme=_theme(), background_color="default").highlight(text)
        code.rstrip()
        code.stylize(f"underline {colour}", col - 1, col - 1 + width)
        gutter = f"{line:>4} | "
        out.append("\n")
        out.append(gutter, style="dim")
        out.append_text(code)
        out.append("\n" + " " * (len(gutter) - 2) + "| ", style="dim")
        out.append(" " * (col - 1) + "^" + "~" * (width - 1), style=colour)
    if diagnostic.hint:
        out.append("\n  hint: ", style="bold cyan")
        out.append(diagnostic.hint)
    return out


__all__ = ["HspecLexer", "KEYWORDS", "KEYWORD_GROUPS", "highlight_excerpt"]
