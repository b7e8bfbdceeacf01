"""Editor features as pure functions of an ``Analysis`` and a position: LSP types in, LSP types out.

Positions are LSP's (0-based lines, UTF-16 columns); ``hdsl.lsp.positions``
converts them. Keyword completion asks Lark's interactive parser which
terminals it accepts after the text before the cursor, so it follows the
grammar instead of a hand-kept list.
"""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as lsp
from pygments.token import Comment, Error, Keyword, Name, Operator, String

from hdsl import ast
from hdsl.diagnostics import Diagnostic, HdslError, Severity
from hdsl.highlight import KEYWORDS, HspecLexer
from hdsl.lsp.analysis import Analysis, Decl, analyse, binders_at, statement_starts
from hdsl.lsp.positions import offset_at, offsets_range, span_range, whole_document
from hdsl.source import SourceFile, Span

_WORD_END = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_LINES = 12

# One line per reserved word that deserves a hover.
KEYWORD_DOCS = {
    "import": 'import "other.hspec": declarations of another spec (path relative to this file)',
    "const": "const NAME = EXPR: a named constant (exact rational arithmetic: 2/255)",
    "classes": "classes NAME = c1 c2 ...: class names, in the order of the model's outputs",
    "hierarchy": "hierarchy NAME over CLASSES { group { ... } ... }, or = json/newick/nbdt \"file\"",
    "model": 'model NAME = onnx "net.onnx" { input SHAPE in [lo, hi]  normalize mean [...] std [...]  outputs CLASSES }',
    "data": 'data NAME = npz/npy/csv "file" { ... } [a:b] take n skip n: labelled inputs',
    "property": "property NAME = EXPR [with confidence c samples n seed s]: a statement to verify or measure",
    "check": "check P1, P2 timeout 60s backend auto: the properties `hdsl check` decides",
    "explainer": "explainer NAME = method(net, ...): an attribution method for the XAI properties",
    "causal": "causal model NAME { input a, b in [lo, hi]  v = EXPR }: a high-level causal model",
    "alignment": 'alignment NAME of CAUSAL to NET { var -> layer "name"[a:b] }: variables to neurons',
    "forall": "forall x in DOMAIN: EXPR, or forall (x, y) in DATA: EXPR (inputs and their labels)",
    "argmax": "argmax net(x): the predicted class; `argmax f(x) in S` means strictly above every class outside S",
    "implies": "a implies b: logical implication (binds loosest)",
    "in": "x in SET: membership; also `forall x in DOMAIN`",
    "level": "ancestor(h, y, level k): the ancestor at depth k (root = 0); `level all` gives one verdict per level",
    "all": "level all: every level of the hierarchy, one verdict each",
    "timeout": "timeout 60s: the time budget per property (ms, s, min, h)",
    "backend": "backend auto | bounds | z3 | attack: which decision procedure to use",
    "with": "with confidence c samples n seed s: statistics for measured properties",
    "normalize": "normalize mean [...] std [...]: the model sees (x - mean) / std per channel",
    "input": "input SHAPE in [lo, hi]: the model's input shape (without batch) and valid range",
    "outputs": "outputs CLASSES (or a number): names the model's outputs",
    "take": "take n (first n rows) or take [i, j, ...] (those rows)",
    "skip": "skip n: drop the first n rows",
}

BUILTIN_DOCS = {
    "linf": "linf(x, eps): the L-infinity ball of radius eps around x, within the model's input range",
    "box": "box(lo, hi): the input box lo <= x <= hi (element-wise)",
    "ancestor": "ancestor(h, y, level k): the classes under y's ancestor at depth k of hierarchy h",
    "faithfulness": "faithfulness(net, explainer, data, metric ..., removal ...): a measured XAI property",
    "sufficient": "sufficient(net, explainer, data, top k ...): formal sufficiency of the top-k features",
    "iia": "iia(alignment, data, ...): interchange-intervention accuracy of an alignment",
    "certified_radius": "certified_radius(net, data, ...): the certified robustness radius",
}

_COMPLETION_KIND = {
    "const": lsp.CompletionItemKind.Constant, "classes": lsp.CompletionItemKind.Enum,
    "hierarchy": lsp.CompletionItemKind.Struct, "model": lsp.CompletionItemKind.Module,
    "data": lsp.CompletionItemKind.Variable, "property": lsp.CompletionItemKind.Property,
    "explainer": lsp.CompletionItemKind.Function, "causal model": lsp.CompletionItemKind.Class,
    "alignment": lsp.CompletionItemKind.Interface,
}
_SYMBOL_KIND = {
    "const": lsp.SymbolKind.Constant, "classes": lsp.SymbolKind.Enum, "hierarchy": lsp.SymbolKind.Struct,
    "model": lsp.SymbolKind.Module, "data": lsp.SymbolKind.Variable, "property": lsp.SymbolKind.Property,
    "explainer": lsp.SymbolKind.Function, "causal model": lsp.SymbolKind.Class,
    "alignment": lsp.SymbolKind.Interface,
}
# After these words only names of one kind make sense.
_NAME_CONTEXT = {"over": {"classes"}, "outputs": {"classes"}, "check": {"property"}, "of": {"causal model"},
                 "to": {"model"}}


def _builtins() -> tuple[str, ...]:
    try:
        from hdsl.lower import BUILTINS
    except Exception:  # noqa: BLE001 - the lowering is optional for the editor
        return tuple(BUILTIN_DOCS)
    return tuple(BUILTINS)


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


# --------------------------------------------------------------------------- diagnostics


def path_to_uri(path: str) -> str:
    p = Path(path)
    return p.resolve().as_uri() if p.is_absolute() or p.exists() else path


def to_lsp_diagnostic(d: Diagnostic, a: Analysis) -> lsp.Diagnostic:
    """Diagnostics in this file keep their place; those in an imported file point at its import."""
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    span = d.span
    if span is not None and span.path != a.source.path:
        message = f"{span}: {message}"
        span = _import_span(a, span.path)
    elif span is None and d.path is not None and d.path != a.source.path:
        message = f"{d.path}: {message}"
    rng = span_range(span) if span is not None else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
    severity = {Severity.ERROR: lsp.DiagnosticSeverity.Error, Severity.WARNING: lsp.DiagnosticSeverity.Warning,
                Severity.NOTE: lsp.DiagnosticSeverity.Information}[d.severity]
    return lsp.Diagnostic(rng, message, severity=severity, code=d.code, source="hdsl")


def _import_span(a: Analysis, other: str) -> Span | None:
    imports = [s for s in a.statements if isinstance(s, ast.Import)]
    base = Path(a.source.path).parent
    for stmt in imports:
        try:
            if (base / stmt.path.value).resolve() == Path(other).resolve():
                return stmt.path.span
        except OSError:  # pragma: no cover - odd paths
            continue
    return imports[0].path.span if imports else None


def lsp_diagnostics(a: Analysis) -> list[lsp.Diagnostic]:
    return [to_lsp_diagnostic(d, a) for d in a.diagnostics]


def diagnostics_for(uri: str, text: str, deep: bool = True) -> list[lsp.Diagnostic]:
    """The checker's diagnostics for ``text`` as the document at ``uri``."""
    return lsp_diagnostics(analyse(uri, text, deep))


# --------------------------------------------------------------------------- words at the cursor


def _line_bounds(text: str, offset: int) -> tuple[int, int]:
    end = text.find("\n", offset)
    return text.rfind("\n", 0, offset) + 1, len(text) if end < 0 else end


def word_at(source: SourceFile, offset: int) -> tuple[int, int, str, str] | None:
    """(start, end, text, role) of the word under the cursor; role is 'name' or 'keyword'.

    Words inside comments and strings are not words here. No token spans two
    lines (strings end on their line, comments at its end), so lexing the
    cursor's line alone is exact.
    """
    first, last = _line_bounds(source.text, offset)
    hit = None
    for start, ttype, value in HspecLexer().get_tokens_unprocessed(source.text[first:last]):
        start += first
        end = start + len(value)
        if start > offset:
            break
        if not (start <= offset <= end) or not _WORD_END.match(value):
            continue
        if ttype in Comment or ttype in String or ttype in Error:
            continue
        role = "keyword" if ttype in Keyword or ttype in Operator.Word else "name" if ttype in Name else None
        if role is not None:
            hit = (start, end, value, role)
            if offset < end:
                break
    return hit


# --------------------------------------------------------------------------- hover


def _declaration_text(decl: Decl) -> str:
    span = getattr(decl.node, "span", None)
    if span is None:
        return ""
    lines = span.text.splitlines()
    if len(lines) > _MAX_LINES:
        lines = lines[:_MAX_LINES] + ["  ..."]
    return "\n".join(lines)


def _facts(decl: Decl, a: Analysis) -> list[str]:
    """What the checker worked out about a declaration (shapes, sizes, values)."""
    spec = a.spec
    out: list[str] = []
    if spec is None:
        return out
    if decl.kind == "const" and decl.name in getattr(spec, "consts", {}):
        from hdsl.constants import show

        value = spec.consts[decl.name]
        text = show(value)
        if not isinstance(value, tuple) and value.denominator != 1:
            text += f" (= {float(value):.6g})"
        out.append(f"value: {text}")
    elif decl.kind == "classes" and decl.name in getattr(spec, "classes", {}):
        out.append(f"{len(spec.classes[decl.name])} classes")
    elif decl.kind == "hierarchy" and decl.name in getattr(spec, "hierarchies", {}):
        h = spec.hierarchies[decl.name]
        top = [c if isinstance(c, str) else c.name for c in h.root.children]
        out.append(f"{len(h.classes)} leaves, depth {h.depth()}; level 1: {', '.join(top)}")
        if getattr(decl.node, "source", None) is not None:  # read from a file: show the tree
            out.append("tree: `" + " ".join(_tree_text(c) for c in h.root.children)[:400] + "`")
    elif decl.kind == "model" and decl.name in getattr(spec, "models", {}):
        net = spec.models[decl.name].network
        facts = [f"input {list(net.input_shape)}"]
        if net.input_range is not None:
            facts[-1] += f" in [{net.input_range[0]:g}, {net.input_range[1]:g}]"
        if net.num_outputs is not None:
            facts.append(f"{net.num_outputs} outputs")
        out.append(", ".join(facts))
    elif decl.kind == "property" and decl.name in (getattr(spec, "plans", None) or {}):
        out.extend(_plan_facts(spec.plans[decl.name]))
    elif decl.kind == "data" and decl.name in getattr(spec, "datasets", {}):
        ds = spec.datasets[decl.name]
        if ds.indices is not None:
            out.append(f"{len(ds.indices)} rows selected")
    return out


def _tree_text(node) -> str:
    if isinstance(node, str):
        return node
    return f"{node.name} {{ " + " ".join(_tree_text(c) for c in node.children) + " }"


def _plan_facts(plan) -> list[str]:
    """The lowering's reading of a property (read defensively: ``hdsl.lower.Plan`` may grow)."""
    facts = []
    net = getattr(plan, "network", None)
    data = getattr(plan, "data", None)
    if net is not None:
        facts.append(f"model `{net.name}`")
    if data is not None:
        rows = len(data.indices) if getattr(data, "indices", None) is not None else None
        facts.append(f"over data `{data.name}`" + (f" ({rows} rows)" if rows is not None else ""))
    region, eps = getattr(plan, "region", None), getattr(plan, "eps", None)
    if region == "linf" and eps is not None:
        facts.append(f"L-infinity ball, eps = {eps} (= {float(eps):.6g})")
    elif region == "box":
        facts.append(f"{len(getattr(plan, 'boxes', ()) or ())} input box(es)")
    levels = getattr(plan, "levels", None)
    if levels:
        facts.append("hierarchy levels " + ", ".join(map(str, levels)))
    return facts


def _markdown(*parts: str) -> lsp.MarkupContent:
    return lsp.MarkupContent(lsp.MarkupKind.Markdown, "\n\n".join(p for p in parts if p))


def _where(span: Span | None, a: Analysis) -> str:
    if span is None or span.path == a.source.path:
        return ""
    return f"from `{Path(span.path).name}`"


def _hier_node(a: Analysis, hierarchy: str, name: str):
    h = getattr(a.spec, "hierarchies", {}).get(hierarchy) if a.spec is not None else None
    if h is None:
        return None, None

    def walk(node, level):
        if not isinstance(node, str):
            if node.name == name:
                return node, level
            for child in node.children:
                found = walk(child, level + 1)
                if found[0] is not None:
                    return found
        return None, None

    return h, walk(h.root, 0)


def hover_at(a: Analysis, line: int, character: int) -> lsp.Hover | None:
    """A declaration's kind, definition and checked facts; a class's output index and ancestors;
    a hierarchy node's leaves; a bound variable's domain; a keyword's or built-in's one-line help."""
    offset = offset_at(a.source, line, character)
    hit = word_at(a.source, offset)
    if hit is None:
        return None
    start, end, word, role = hit
    rng = offsets_range(a.source, start, end)
    if role == "keyword":
        doc = KEYWORD_DOCS.get(word)
        return lsp.Hover(_markdown(f"**{word}** (keyword)", doc or ""), rng) if doc else None
    bound = binders_at(a.statements, offset)
    if word in bound and not _is_decl_name(a, start):
        forall = _binding_forall(a, bound[word])
        domain = f"`forall ... in {forall.domain.span.text}`" if forall is not None and forall.domain.span else ""
        return lsp.Hover(_markdown(f"**{word}**: bound variable", domain), rng)
    decl = a.decls.get(word)
    if decl is not None:
        facts = _facts(decl, a)
        return lsp.Hover(_markdown(f"**{decl.kind}** `{word}` {_where(decl.span, a)}".rstrip(),
                                   f"```hspec\n{_declaration_text(decl)}\n```", "\n".join(f"- {f}" for f in facts)),
                         rng)
    parts = []
    for ref in a.classes.get(word, []):
        parts.append(f"**class** `{word}`: output {ref.index} of `{ref.classes}`")
        for hname, h in sorted(getattr(a.spec, "hierarchies", {}).items()) if a.spec is not None else []:
            if word in h.classes:
                try:
                    path = h.path_to(word)
                except KeyError:
                    continue
                trail = " > ".join(n if isinstance(n, str) else n.name for n in path)
                parts.append(f"- in `{hname}`: {trail}")
    for ref in a.groups.get(word, []):
        parts.append(_group_text(word, ref.hierarchy, ref.level, ref.leaves))
    if not a.groups.get(word) and a.spec is not None:  # nodes of hierarchies read from files
        for hname in sorted(getattr(a.spec, "hierarchies", {})):
            h, (node, level) = _hier_node(a, hname, word)
            if node is not None and level:
                parts.append(_group_text(word, hname, level, h.leaves(node)))
    if parts:
        return lsp.Hover(_markdown(*parts), rng)
    if word in BUILTIN_DOCS and word in _builtins():
        return lsp.Hover(_markdown(f"**{word}** (built-in)", BUILTIN_DOCS[word]), rng)
    return None


def _group_text(name: str, hierarchy: str, level: int, leaves: tuple[str, ...]) -> str:
    return f"**node** `{name}` of hierarchy `{hierarchy}` (level {level})\n\n" \
           f"{len(leaves)} leaves: {', '.join(leaves)}"


def _is_decl_name(a: Analysis, start: int) -> bool:
    return any(d.span is not None and d.span.path == a.source.path and d.span.start == start
               for d in a.decls.values())


def _binding_forall(a: Analysis, ident: ast.Ident) -> ast.Forall | None:
    from hdsl.lsp.analysis import nodes

    for stmt in a.statements:
        for node in nodes(stmt):
            if isinstance(node, ast.Forall) and any(b is ident for b in node.binders):
                return node
    return None


# --------------------------------------------------------------------------- definition


def definition_at(a: Analysis, line: int, character: int) -> list[lsp.Location]:
    """Where the name under the cursor is declared: a binder, a declaration (maybe in an imported
    file), a class in its ``classes`` list, or a node of an inline hierarchy; on an import's path,
    the imported file."""
    offset = offset_at(a.source, line, character)
    for stmt in a.statements:
        span = stmt.path.span if isinstance(stmt, ast.Import) else None
        if span is not None and span.start <= offset <= span.end:
            target = Path(a.source.path).parent / stmt.path.value
            start = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
            return [lsp.Location(path_to_uri(str(target)), start)] if target.is_file() else []
    hit = word_at(a.source, offset)
    if hit is None or hit[3] != "name":
        return []
    start, _, word, _ = hit
    bound = binders_at(a.statements, offset)
    spans: list[Span | None] = []
    if word in bound:
        spans.append(bound[word].span)
    elif word in a.decls:
        spans.append(a.decls[word].span)
    else:
        spans.extend(ref.span for ref in a.classes.get(word, []))
        spans.extend(ref.span for ref in a.groups.get(word, []))
    return [_location(s, a) for s in spans if s is not None]


def _location(span: Span, a: Analysis) -> lsp.Location:
    uri = a.uri if span.path == a.source.path else path_to_uri(span.path)
    return lsp.Location(uri, span_range(span))


# --------------------------------------------------------------------------- completion


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
    if "NAME" in accepts:
        items.extend(_name_items(a, prefix, offset))
    return items


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
    from hdsl.lsp.analysis import STARTERS

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
    if previous == "backend":
        return [lsp.CompletionItem(b, kind=lsp.CompletionItemKind.EnumMember, detail="backend", sort_text="0" + b)
                for b in _backends()]
    wanted = _NAME_CONTEXT.get(previous)
    if previous == "," and "check" in context:
        last_kw = max((i for i, w in enumerate(context) if w in _statement_words()), default=-1)
        if last_kw >= 0 and context[last_kw] == "check":
            wanted = {"property"}
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


# --------------------------------------------------------------------------- formatting, outline, folding


def format_edits(text: str, path: str) -> list[lsp.TextEdit]:
    """``hdsl fmt`` as one whole-document edit (none when the text is formatted or does not parse)."""
    from hdsl.fmt import format_text

    try:
        formatted = format_text(text, path)
    except HdslError:
        return []
    if formatted == text:
        return []
    return [lsp.TextEdit(whole_document(SourceFile(path, text)), formatted)]


def document_symbols(a: Analysis) -> list[lsp.DocumentSymbol]:
    out = []
    for stmt in a.statements:
        kind = _decl_kind(stmt)
        if kind is None or stmt.span is None or stmt.name.span is None:
            continue
        children = _group_symbols(stmt.body) if isinstance(stmt, ast.HierarchyDecl) and stmt.body else None
        out.append(lsp.DocumentSymbol(stmt.name.name, _SYMBOL_KIND[kind], span_range(stmt.span),
                                      span_range(stmt.name.span), detail=kind, children=children))
    return out


def _decl_kind(stmt) -> str | None:
    from hdsl.lsp.analysis import KINDS

    return KINDS.get(type(stmt))


def _group_symbols(items) -> list[lsp.DocumentSymbol]:
    out = []
    for item in items:
        if isinstance(item, ast.HierGroup) and item.span is not None:
            out.append(lsp.DocumentSymbol(item.name.name, lsp.SymbolKind.Namespace, span_range(item.span),
                                          span_range(item.name.span), detail="node",
                                          children=_group_symbols(item.children)))
    return out


def folding_ranges(a: Analysis) -> list[lsp.FoldingRange]:
    """Multi-line statements and blocks, runs of comment lines, and ``# region`` / ``# endregion``."""
    from hdsl.lsp.analysis import nodes

    out: dict[tuple[int, int], lsp.FoldingRange] = {}
    for stmt in a.statements:
        for node in nodes(stmt):
            span = getattr(node, "span", None)
            if span is None or not isinstance(node, (*_STATEMENTS, ast.HierGroup, ast.Forall)):
                continue
            first, last = span.line - 1, span.end_line_col[0] - 1
            if last > first:
                out.setdefault((first, last), lsp.FoldingRange(first, last))
    lines = a.source.text.split("\n")
    run_start = None
    regions: list[int] = []
    for i, text in enumerate(lines + [""]):
        stripped = text.strip()
        if re.match(r"#\s*region\b", stripped):
            regions.append(i)
        elif re.match(r"#\s*endregion\b", stripped) and regions:
            first = regions.pop()
            out[(first, i)] = lsp.FoldingRange(first, i, kind=lsp.FoldingRangeKind.Region)
        if stripped.startswith("#"):
            run_start = i if run_start is None else run_start
        else:
            if run_start is not None and i - 1 > run_start:
                out.setdefault((run_start, i - 1), lsp.FoldingRange(run_start, i - 1, kind=lsp.FoldingRangeKind.Comment))
            run_start = None
    return [out[k] for k in sorted(out)]


_STATEMENTS = (ast.Const, ast.Classes, ast.HierarchyDecl, ast.ModelDecl, ast.DataDecl, ast.PropertyDecl,
               ast.CheckStmt, ast.ExplainerDecl, ast.CausalModelDecl, ast.AlignmentDecl)


__all__ = ["complete_at", "definition_at", "diagnostics_for", "document_symbols", "folding_ranges", "format_edits",
           "hover_at", "lsp_diagnostics", "to_lsp_diagnostic", "word_at"]
