"""Completion: the keywords the grammar accepts at the cursor, then the names that fit there.

Lark's interactive parser is fed the current statement up to the cursor (the
grammar is ``start: _stmt*``, so nothing before that statement changes the
parser's state) and asked which terminals it accepts next.
"""

from __future__ import annotations

from lsprotocol import types as lsp
from pygments.token import Comment, String

from hdsl.highlight import KEYWORDS, HspecLexer
from hdsl.lsp.analysis import STARTERS, Analysis, binders_at, statement_starts
from hdsl.lsp.hover import _WORD_END, BUILTIN_DOCS, _builtins, _line_bounds
from hdsl.lsp.positions import offset_at

_COMPLETION_KIND = {
    "const": lsp.CompletionItemKind.Constant, "classes": lsp.CompletionItemKind.Enum,
    "hierarchy": lsp.CompletionItemKind.Struct, "model": lsp.CompletionItemKind.Module,
    "data": lsp.CompletionItemKind.Variable, "property": lsp.CompletionItemKind.Property,
    "explainer": lsp.CompletionItemKind.Function, "causal model": lsp.CompletionItemKind.Class,
    "alignment": lsp.CompletionItemKind.Interface,
}


# After these words only names of one kind make sense.
_NAME_CONTEXT = {"over": {"classes"}, "outputs": {"classes"}, "check": {"property"}, "of": {"causal model"},
                 "to": {"model"}}


def _backends() -> tuple[str, ...]:
    """The names ``check ... backend NAME`` takes (the checker's list, registered backends included)."""
    try:
        from hdsl.check import backend_names

        return tuple(backend_names())
    except Exception:  # noqa: BLE001 - the checker's API may move; never break completion
        return ("auto",)


def _formats() -> dict[str, tuple[str, ...]]:
    from hdsl.check import DATA_FORMATS, HIERARCHY_FORMATS, MODEL_FORMATS

    return {"model": MODEL_FORMATS, "data": DATA_FORMATS, "hierarchy": HIERARCHY_FORMATS}


def accepted_terminals(text: str) -> frozenset[str] | None:
    """Terminal names the grammar accepts after ``text`` (None when ``text`` does not parse)."""
    from lark.exceptions import LarkError

    from hdsl.parser import get_parser

    try:
        ip = get_parser().parse_interactive(text)
        ip.exhaust_lexer()
        return frozenset(ip.accepts())
    except LarkError:
        return None


def _terminal_words() -> dict[str, str]:
    from lark.lexer import PatternStr

    from hdsl.parser import get_parser

    return {t.name: t.pattern.value for t in get_parser().terminals
            if isinstance(t.pattern, PatternStr) and t.pattern.value in KEYWORDS}


def _significant_words(text: str) -> list[str]:
    """Words and symbols of ``text`` without comments and strings (for the completion context)."""
    out = []
    for _, ttype, value in HspecLexer().get_tokens_unprocessed(text):
        if ttype in Comment or value.isspace():
            continue
        out.append(value)
    return out


def complete_at(a: Analysis, line: int, character: int) -> list[lsp.CompletionItem]:
    """Keywords the parser accepts at the cursor, then names that fit there."""
    offset = offset_at(a.source, line, character)
    text = a.source.text
    if _in_literal(text, offset):
        return []
    partial = _WORD_END.search(text, max(0, offset - 200), offset) if offset else None
    prefix_end = partial.start() if partial and partial.end() == offset else offset
    # The grammar is `start: _stmt*`, so the parser state inside a statement depends on that
    # statement alone: feed it from the statement's first word (fast on long files).
    starts = statement_starts(text[:prefix_end])
    prefix = text[starts[-1] if starts else 0:prefix_end]
    accepts = accepted_terminals(prefix)
    if accepts is None:  # an error earlier in the statement: offer what starts a statement, and names
        accepts = frozenset(n for n, w in _terminal_words().items() if w in _statement_words()) | {"NAME"}
    words = _terminal_words()
    items = [lsp.CompletionItem(words[t], kind=lsp.CompletionItemKind.Keyword, detail="keyword",
                                sort_text="1" + words[t])
             for t in sorted(accepts) if t in words]
    line_start = text.rfind("\n", 0, prefix_end) + 1
    if not text[line_start:prefix_end].strip():  # at the start of a line: whole statements too
        items.extend(_snippet(word) for word in SNIPPETS if word in {words.get(t) for t in accepts})
    if "NAME" in accepts:
        items.extend(_name_items(a, prefix, offset))
    return items


# Statement templates (LSP snippet syntax), offered where their first word is accepted.
SNIPPETS = {
    "classes": "classes ${1:labels} = ${2:class1 class2}",
    "hierarchy": "hierarchy ${1:name} over ${2:labels} {\n  ${3:group} { ${4:class1 class2} }\n}",
    "model": 'model ${1:net} = onnx "${2:model.onnx}" {\n  input [${3:3, 32, 32}] in [${4:0, 1}]\n'
             "  outputs ${5:labels}\n}",
    "data": 'data ${1:test} = ${2|npz,npy,csv|} "${3:data.npz}" take ${4:100}',
    "property": "property ${1:robust} =\n  forall (x, y) in ${2:test}:\n    forall x2 in linf(x, ${3:2/255}):\n"
                "      argmax ${4:net}(x2) == y",
    "check": "check ${1:robust} timeout ${2:60s}",
}


def _node_items(a: Analysis, hierarchy: str) -> list[lsp.CompletionItem]:
    """The inner nodes of ``hierarchy`` (inline, or read from a file by the checker)."""
    names = {ref.name for refs in a.groups.values() for ref in refs if ref.hierarchy == hierarchy}
    h = getattr(a.spec, "hierarchies", {}).get(hierarchy) if a.spec is not None else None
    if h is not None:
        stack = list(h.root.children)
        while stack:
            node = stack.pop()
            if not isinstance(node, str):
                names.add(node.name)
                stack.extend(node.children)
    return [lsp.CompletionItem(n, kind=lsp.CompletionItemKind.EnumMember, detail=f"node of {hierarchy}",
                               sort_text="0" + n) for n in sorted(names)]


def _snippet(word: str) -> lsp.CompletionItem:
    return lsp.CompletionItem(f"{word} …", kind=lsp.CompletionItemKind.Snippet, detail=f"{word} statement",
                              insert_text=SNIPPETS[word], insert_text_format=lsp.InsertTextFormat.Snippet,
                              filter_text=word, sort_text="3" + word)


def _in_literal(text: str, offset: int) -> bool:
    """Whether ``offset`` is inside a comment or a string literal (neither spans lines)."""
    first, _ = _line_bounds(text, offset)
    in_string = False
    for start, ttype, value in HspecLexer().get_tokens_unprocessed(text[first:offset]):
        if ttype in Comment:
            return True
        if ttype in String and value == '"':
            in_string = not in_string
    return in_string


def _statement_words() -> set[str]:
    return set(STARTERS)


def _name_items(a: Analysis, prefix: str, offset: int) -> list[lsp.CompletionItem]:
    context = _significant_words(prefix)
    previous = context[-1] if context else ""
    items: list[lsp.CompletionItem] = []
    # A name being declared: nothing to offer.
    if previous in ("const", "classes", "hierarchy", "model", "data", "property", "explainer", "alignment"):
        return items
    # A file format after ``model/data/hierarchy NAME [over C] =`` (the context is this statement alone).
    if previous == "=" and context and context[0] in _formats() and context.count("=") == 1:
        return [lsp.CompletionItem(f, kind=lsp.CompletionItemKind.EnumMember, detail=f"{context[0]} format",
                                   sort_text="0" + f) for f in _formats()[context[0]]]
    if previous == "arithmetic":
        from hdsl.ir import ARITHMETICS

        return [lsp.CompletionItem(a, kind=lsp.CompletionItemKind.EnumMember, detail="arithmetic", sort_text="0" + a)
                for a in ARITHMETICS]
    if previous == "backend":
        return [lsp.CompletionItem(b, kind=lsp.CompletionItemKind.EnumMember, detail="backend", sort_text="0" + b)
                for b in _backends()]
    wanted = _NAME_CONTEXT.get(previous)
    if previous == "," and context and context[0] == "check":
        wanted = {"property"}
    elif previous == "(" and len(context) >= 2 and context[-2] in ("ancestor", "group"):
        wanted = {"hierarchy"}  # ancestor(h, y, level k), group(h, node)
    elif previous == "," and context[-4:-2] == ["group", "("]:
        return _node_items(a, context[-2])
    elif previous == "in" and context[-6:-1] == ["(", context[-5], ",", context[-3], ")"] and \
            len(context) >= 7 and context[-7] == "forall":
        wanted = {"data"}  # forall (x, y) in DATA
    for name, decl in sorted(a.decls.items()):
        if wanted is None or decl.kind in wanted:
            items.append(lsp.CompletionItem(name, kind=_COMPLETION_KIND.get(decl.kind, lsp.CompletionItemKind.Text),
                                            detail=decl.kind, sort_text="0" + name))
    if wanted is not None:
        return items
    for name, var in sorted(binders_at(a.statements, offset).items()):
        items.append(lsp.CompletionItem(name, kind=lsp.CompletionItemKind.Variable, detail="bound variable",
                                        sort_text="0" + name))
    for name, refs in sorted(a.classes.items()):
        items.append(lsp.CompletionItem(name, kind=lsp.CompletionItemKind.EnumMember,
                                        detail=f"class of {refs[0].classes}", sort_text="2" + name))
    for name, refs in sorted(a.groups.items()):
        items.append(lsp.CompletionItem(name, kind=lsp.CompletionItemKind.EnumMember,
                                        detail=f"node of hierarchy {refs[0].hierarchy}", sort_text="2" + name))
    for name in _builtins():
        if name not in a.decls:
            items.append(lsp.CompletionItem(name, kind=lsp.CompletionItemKind.Function, detail="built-in",
                                            documentation=BUILTIN_DOCS.get(name), sort_text="1" + name))
    seen: set[str] = set()
    return [i for i in items if not (i.label in seen or seen.add(i.label))]


__all__ = ["accepted_terminals", "complete_at"]
