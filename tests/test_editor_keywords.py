"""The keyword lists of the Pygments lexer and of the TextMate grammar equal the grammar's reserved words."""

import json
import re
from pathlib import Path

from hdsl.highlight import _DECLARES, KEYWORD_GROUPS, KEYWORDS
from hdsl.parser import keywords

ROOT = Path(__file__).resolve().parents[1]
TM = ROOT / "editors" / "vscode" / "syntaxes" / "hspec.tmLanguage.json"
ALT = re.compile(r"\\b\(\?:([a-z|]+)\)\\b")


def _words(regex: str) -> list[str]:
    m = ALT.fullmatch(regex)
    assert m, f"not a keyword alternation: {regex}"
    return m.group(1).split("|")


def test_lexer_keywords_equal_the_grammar_keywords():
    missing, extra = set(keywords()) - set(KEYWORDS), set(KEYWORDS) - set(keywords())
    assert not missing and not extra, (
        f"reserved words {sorted(missing)} are not in hdsl.highlight.KEYWORD_GROUPS, {sorted(extra)} are no longer "
        "reserved: edit the groups, then run python editors/vscode/sync_keywords.py")
    assert len(KEYWORDS) == sum(len(g) for g in KEYWORD_GROUPS.values())  # the groups do not overlap


def test_textmate_keyword_groups_equal_the_lexer_groups():
    repo = json.loads(TM.read_text(encoding="utf-8"))["repository"]
    for group, words in KEYWORD_GROUPS.items():
        assert sorted(_words(repo[f"keyword-{group}"]["match"])) == sorted(words), group
    tm_all = [w for k, v in repo.items() if k.startswith("keyword-") for w in _words(v["match"])]
    assert sorted(tm_all) == sorted(keywords())


def test_declared_name_rules_agree():
    repo = json.loads(TM.read_text(encoding="utf-8"))["repository"]
    simple = repo["declaration"]["patterns"][1]["match"]
    declares = re.match(r"\\b\(([a-z|]+)\)", simple).group(1).split("|")
    assert declares == list(_DECLARES)
    assert set(_DECLARES) <= set(KEYWORD_GROUPS["declaration"])
    # the look-ahead that keeps keywords from being coloured as declared names lists every keyword
    for pattern in repo["declaration"]["patterns"]:
        guard = re.search(r"\(\?!(\\b\(\?:[a-z|]+\)\\b)\)", pattern["match"]).group(1)
        assert sorted(_words(guard)) == sorted(keywords())


def test_the_sync_script_reproduces_the_grammar():
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_keywords", ROOT / "editors" / "vscode" / "sync_keywords.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    grammar = json.loads(TM.read_text(encoding="utf-8"))
    assert sync.synced(json.loads(TM.read_text(encoding="utf-8"))) == grammar


def test_every_symbol_of_the_grammar_lexes_without_error():
    from lark.lexer import PatternStr
    from pygments.token import Error, Operator, Punctuation

    from hdsl.highlight import HspecLexer
    from hdsl.parser import get_parser

    symbols = {t.pattern.value for t in get_parser().terminals
               if isinstance(t.pattern, PatternStr) and not t.pattern.value.isidentifier()}
    assert {"->", "<=", "{", "}"} <= symbols
    for sym in symbols:
        tokens = [(t, v) for t, v in HspecLexer().get_tokens(sym) if v != "\n"]
        assert tokens == [(tokens[0][0], sym)] and tokens[0][0] not in Error, sym
        assert tokens[0][0] in Operator or tokens[0][0] in Punctuation, sym


def test_every_symbol_of_the_grammar_has_a_textmate_scope():
    from lark.lexer import PatternStr

    from hdsl.parser import get_parser

    repo = json.loads(TM.read_text(encoding="utf-8"))["repository"]
    patterns = [p["match"] for key in ("operator", "punctuation") for p in repo[key]["patterns"]]
    for t in get_parser().terminals:
        if isinstance(t.pattern, PatternStr) and not t.pattern.value.isidentifier():
            sym = t.pattern.value
            assert any(re.fullmatch(p, sym) for p in patterns), sym
