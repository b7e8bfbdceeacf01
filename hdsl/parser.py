"""Parse ``.hspec`` text into an ``hdsl.ast.Module``; syntax errors become diagnostics.

The Lark grammar ships inside the package (``hdsl/grammars/hspec.lark``) and
is compiled once per process (``lru_cache``; no on-disk pickle cache, see
lark#1178). Speed: one master regex lexes the text (every quoted word of the
grammar is a reserved keyword), and the AST is built inside the LALR parser
without a parse tree. Lark's exceptions never escape: they become
``Diagnostic`` objects with the expected tokens spelled for people and, at the
end of the input, a location at the real end of the text.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from lark import Lark, Token
from lark.exceptions import VisitError
from lark.lexer import Lexer, PatternStr
from lark.parsers.lalr_analysis import Shift as _SHIFT

from hdsl import ast
from hdsl.diagnostics import Diagnostic, HdslError
from hdsl.source import SourceFile, Span
from hdsl.transform import ToAst

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_COMMENT_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')

# How named terminals read in "expected ..." lists.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": 'a string ("...")',
    "DURATION": "a duration (e.g. 60s)",
    "$END": "end of input",
}


class HspecLexer(Lexer):
    """One master regex; words that are keywords in the grammar lex as those keywords.

    Only used to compile the grammar for ``_Engine`` (which calls ``tokens`` itself).
    """

    __future_interface__ = 1

    def __init__(self, lexer_conf):
        literals = {t.pattern.value: t.name for t in lexer_conf.terminals if isinstance(t.pattern, PatternStr)}
        self.keywords = {v: n for v, n in literals.items() if _WORD.match(v)}
        punct = sorted((v for v in literals if not _WORD.match(v)), key=len, reverse=True)
        self.punct = {v: literals[v] for v in punct}
        regex = {t.name: t.pattern.to_regexp() for t in lexer_conf.terminals}
        parts = [r"(?P<WS>[ \t\r\n\f]+|#[^\n]*)", f"(?P<DURATION>{regex['DURATION']})",
                 f"(?P<NUMBER>{regex['NUMBER']})", f"(?P<STRING>{regex['STRING']})", f"(?P<NAME>{regex['NAME']})",
                 "(?P<PUNCT>" + "|".join(re.escape(v) for v in punct) + ")"]
        self.master = re.compile("|".join(parts))

    def lex(self, lexer_state, parser_state):  # pragma: no cover - the engine lexes by itself
        return self.tokens(lexer_state.text.text)

    def tokens(self, text: str, pos: int = 0):
        """Yield tokens from offset ``pos``; raise ``_Syntax(pos)`` at a character no token starts with."""
        match, n = self.master.match, len(text)
        keywords, punct, new = self.keywords, self.punct, Token._future_new
        while pos < n:
            m = match(text, pos)
            if m is None:
                raise _Syntax(pos)
            kind, value, end = m.lastgroup, m.group(), m.end()
            if kind != "WS":
                if kind == "NAME":
                    kind = keywords.get(value, "NAME")
                elif kind == "PUNCT":
                    kind = punct[value]
                yield new(kind, value, pos, None, None, None, None, end)
            pos = end


class _Syntax(Exception):
    """A syntax error at ``pos``; ``token`` is None for a bad character, ``$END`` at the end."""

    def __init__(self, pos: int, token: Token | None = None, expected: frozenset[str] = frozenset()):
        super().__init__(pos)
        self.pos, self.token, self.expected = pos, token, expected


class _Engine:
    """A tight LALR(1) driver over Lark's parse table and rule callbacks (the AST builder).

    The table is flattened once: a shift is ``(True, state)``, a reduction
    ``(False, (size, callback, nonterminal))``, so the loop does no hashing of
    Lark's rule objects.
    """

    def __init__(self, lark: Lark, to_ast: ToAst):
        inner = lark.parser.parser.parser  # frontend -> LALR_Parser -> _Parser
        table = inner.parse_table
        reductions: dict = {}

        def entry(action, arg):
            if action is _SHIFT:
                return (True, arg)
            if arg not in reductions:
                reductions[arg] = (len(arg.expansion), inner.callbacks[arg], str(arg.origin.name))
            return (False, reductions[arg])

        self.states = {st: {str(k): entry(*v) for k, v in row.items()} for st, row in table.states.items()}
        self.start, self.end = table.start_states["start"], table.end_states["start"]
        self.to_ast = to_ast

    def parse(self, text: str, lexer: HspecLexer, pos: int = 0):
        states = self.states
        state_stack, value_stack = [self.start], []
        push_state, push_value = state_stack.append, value_stack.append
        tokens = lexer.tokens(text, pos)
        while True:
            try:
                tok = next(tokens, None)
            except _Syntax as exc:
                raise _Syntax(exc.pos, None, self.accepts(state_stack)) from None
            if tok is None:
                tok = Token._future_new("$END", "", len(text), None, None, None, None, len(text))
            ttype = tok.type
            while True:
                act = states[state_stack[-1]].get(ttype)
                if act is None:
                    raise _Syntax(tok.start_pos, tok, self.accepts(state_stack))
                if act[0]:
                    push_state(act[1])
                    push_value(tok)
                    break
                size, callback, origin = act[1]
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value = callback(children)
                new_state = states[state_stack[-1]][origin][1]
                push_state(new_state)
                push_value(value)
                if new_state == self.end and ttype == "$END":
                    return value

    def accepts(self, state_stack: list) -> frozenset[str]:
        """The terminals the parser can really take next (default reductions simulated)."""
        ok = set()
        for term in states_terms(self.states[state_stack[-1]]):
            stack = list(state_stack)
            while True:
                act = self.states[stack[-1]].get(term)
                if act is None:
                    break
                if act[0] or (term == "$END" and stack[-1] == self.end):
                    ok.add(term)
                    break
                size, _, origin = act[1]
                if size:
                    del stack[-size:]
                nxt = self.states[stack[-1]].get(origin)
                if nxt is None:
                    break
                stack.append(nxt[1])
                if term == "$END" and nxt[1] == self.end:
                    ok.add(term)
                    break
        return frozenset(ok)


def states_terms(row: dict) -> list[str]:
    return [k for k in row if k.isupper() or k.startswith("$")]


_LOCK = threading.Lock()
_NOWHERE = SourceFile("<none>", "")


@lru_cache(maxsize=None)
def _engine() -> tuple[_Engine, HspecLexer]:
    to_ast = ToAst(SourceFile("<none>", ""))
    lark = Lark.open_from_package(
        "hdsl", "hspec.lark", ("grammars",), parser="lalr", lexer=HspecLexer,
        keep_all_tokens=True, maybe_placeholders=True, transformer=to_ast,
    )
    conf = lark.lexer_conf
    return _Engine(lark, to_ast), HspecLexer(conf)


@lru_cache(maxsize=None)
def get_parser(strict: bool = False) -> Lark:
    """The grammar compiled with Lark's own lexer (``strict=True`` fails on any conflict; used in tests)."""
    return Lark.open_from_package(
        "hdsl", "hspec.lark", ("grammars",),
        parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True, strict=strict,
    )


@lru_cache(maxsize=None)
def keywords() -> tuple[str, ...]:
    """Every reserved word of the language, sorted (the editor grammars are generated from this)."""
    words = {t.pattern.value for t in get_parser().terminals
             if isinstance(t.pattern, PatternStr) and _WORD.match(t.pattern.value)}
    return tuple(sorted(words))


def _terminal_label(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    for t in get_parser().terminals:
        if t.name == name and isinstance(t.pattern, PatternStr):
            return f"'{t.pattern.value}'"
    return name.lower()


# Groups of tokens that read better as one phrase when all of them are expected.
_GROUPS = (
    ("a comparison (==, !=, <, <=, >, >=)", ("'=='", "'!='", "'<'", "'<='", "'>'", "'>='")),
    ("an arithmetic operator (+ - * /)", ("'+'", "'-'", "'*'", "'/'")),
    ("a new statement", ("'import'", "'const'", "'classes'", "'hierarchy'", "'model'", "'data'", "'property'",
                         "'check'", "'explainer'", "'causal'", "'alignment'")),
)


def expected_labels(names) -> list[str]:
    """Readable, de-duplicated labels for a set of terminal names: single tokens first
    (sorted), then groups such as "a comparison" when every member is expected."""
    labels = {_terminal_label(n) for n in names}
    groups = []
    for phrase, members in _GROUPS:
        if labels.issuperset(members):
            labels.difference_update(members)
            groups.append(phrase)
    return sorted(labels) + groups


def _terminal_label_in(literal: str, names) -> bool:
    return f"'{literal}'" in {_terminal_label(n) for n in names}


def _expected_text(labels: list[str]) -> str:
    if len(labels) > 12:
        labels = labels[:12] + [f"... ({len(labels) - 12} more)"]
    return ", ".join(labels)


MAX_SYNTAX_ERRORS = 20
_STATEMENT_WORDS = ("import", "const", "classes", "hierarchy", "model", "data", "property", "check", "explainer",
                    "causal", "alignment")


def parse_source(source: SourceFile) -> ast.Module:
    """Parse one file; raises ``HdslError`` with its syntax diagnostics on failure.

    After a syntax error the parser skips to the next statement keyword and goes
    on, so one run reports the errors of every broken statement (up to
    ``MAX_SYNTAX_ERRORS``), not only the first.
    """
    engine, lexer = _engine()
    diagnostics: list[Diagnostic] = []
    pos = 0
    with _LOCK:
        engine.to_ast._file = source
        try:
            while True:
                try:
                    module = engine.parse(source.text, lexer, pos)
                    break
                except _Syntax as exc:
                    diagnostics.append(_syntax_diagnostic(source, exc))
                    pos = _recovery_point(source.text, lexer, exc, pos)
                    if pos is None or len(diagnostics) >= MAX_SYNTAX_ERRORS:
                        break
        except VisitError as exc:  # pragma: no cover - the builder does not raise
            if isinstance(exc.orig_exc, HdslError):
                raise exc.orig_exc from None
            raise
        finally:
            engine.to_ast._file = _NOWHERE
    if diagnostics:
        raise HdslError(diagnostics)
    if not isinstance(module, ast.Module):  # pragma: no cover - start always builds a Module
        module = ast.Module((), span=Span(source, 0, len(source.text)))
    comments = tuple((m.start(), m.group()) for m in _COMMENT_SCAN.finditer(source.text) if m.group()[0] == "#")
    return ast.Module(module.statements, comments, module.span)


def _recovery_point(text: str, lexer: HspecLexer, exc: _Syntax, start: int) -> int | None:
    """Where to resume after a syntax error: at the offending token when it starts a statement
    (e.g. the statement before it was cut short), else at the next statement keyword."""
    starts = {lexer.keywords[w] for w in _STATEMENT_WORDS}
    if exc.token is not None and exc.token.type in starts and exc.pos > start and _line_start(text, exc.pos):
        return exc.pos
    return _next_statement(text, lexer, exc.pos + 1, starts)


def _line_start(text: str, pos: int) -> bool:
    """Is ``pos`` the first non-blank character of its line?"""
    return not text[text.rfind("\n", 0, pos) + 1:pos].strip()


def _next_statement(text: str, lexer: HspecLexer, pos: int, starts: set[str]) -> int | None:
    """Offset of the next statement keyword that begins a line, at or after ``pos`` (bad characters skipped)."""
    while pos < len(text):
        try:
            for tok in lexer.tokens(text, pos):
                if tok.type in starts and _line_start(text, tok.start_pos):
                    return tok.start_pos
            return None
        except _Syntax as exc:
            pos = exc.pos + 1
    return None


def parse_text(text: str, path: str = "<string>") -> ast.Module:
    return parse_source(SourceFile(path, text))


def _char_diagnostic(source: SourceFile, pos: int, allowed) -> Diagnostic:
    char = source.text[pos] if pos < len(source.text) else ""
    hint = None
    if char == "'":
        hint = 'strings are written in double quotes: "..."'
    elif char == '"':
        hint = "this string is not closed on its line"
    expected = expected_labels(allowed)
    message = f"unexpected character {char!r}"
    if expected:
        message += f"; expected {_expected_text(expected)}"
    return Diagnostic("E101", message, Span(source, pos, pos + 1), hint)


def _syntax_diagnostic(source: SourceFile, exc: _Syntax) -> Diagnostic:
    """Translate a syntax error into a located diagnostic with the expected tokens."""
    if exc.token is None:
        return _char_diagnostic(source, exc.pos, exc.expected)
    tok, names = exc.token, exc.expected
    if tok.type != "$END":
        expected = expected_labels(names)
        span = Span(source, tok.start_pos, tok.end_pos)
        hint = None
        if names == {"NAME"} and str(tok) in keywords():
            hint = f"'{tok}' is a keyword; choose another name"
        elif str(tok) == "=" and _terminal_label_in("==", names):
            hint = "compare with '==' ('=' only introduces a declaration)"
        return Diagnostic("E102", f"unexpected {str(tok)!r}; expected {_expected_text(expected)}", span, hint)
    # End of input: point at the real end of the text.
    expected = expected_labels(n for n in names if n != "$END")
    message = "unexpected end of input"
    if expected:
        message += f"; expected {_expected_text(expected)}"
    return Diagnostic("E103", message, source.end_span(), "the last statement is incomplete")


__all__ = ["get_parser", "keywords", "parse_source", "parse_text"]
