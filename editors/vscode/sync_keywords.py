"""Rewrite the TextMate grammar's keyword patterns from ``hdsl.highlight.KEYWORD_GROUPS``.

When the Lark grammar gains a reserved word, ``tests/test_editor_keywords.py``
fails: put the word in a group in ``hdsl/highlight.py``, run
``python editors/vscode/sync_keywords.py``, then refresh the grammar snapshots
(``npx -p vscode-tmgrammar-test@0.1.3 vscode-tmgrammar-snap --updateSnapshot "tests/snap/*.hspec"``
in ``editors/vscode``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GRAMMAR = Path(__file__).resolve().parent / "syntaxes" / "hspec.tmLanguage.json"
NAME = "[A-Za-z_][A-Za-z0-9_]*"


def alternation(words) -> str:
    return "\\b(?:" + "|".join(words) + ")\\b"


def synced(grammar: dict) -> dict:
    from hdsl.highlight import _DECLARES, KEYWORD_GROUPS, KEYWORDS

    repo = grammar["repository"]
    for group, words in KEYWORD_GROUPS.items():
        repo[f"keyword-{group}"]["match"] = alternation(words)
    causal, simple = repo["declaration"]["patterns"]
    causal["match"] = f"\\b(causal)\\s+(model)\\s+(?!{alternation(KEYWORDS)})({NAME})"
    simple["match"] = f"\\b({'|'.join(_DECLARES)})\\s+(?!{alternation(KEYWORDS)})({NAME})"
    return grammar


def main() -> int:
    before = GRAMMAR.read_text(encoding="utf-8")
    after = json.dumps(synced(json.loads(before)), indent=2) + "\n"
    if after != before:
        GRAMMAR.write_text(after, encoding="utf-8")
        print(f"updated {GRAMMAR}")
    else:
        print("already in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
