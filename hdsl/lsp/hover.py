"""Hover and go to definition: what a name under the cursor is and where it is declared.

A declaration's hover shows its kind, its text and what the checker worked out
(values, shapes, sizes, the lowering's reading of a property); a class shows
its output index and ancestors; a hierarchy node its leaves.
"""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as lsp
from pygments.token import Comment, Error, Keyword, Name, Operator, String

from hdsl import ast
from hdsl.highlight import HspecLexer
from hdsl.lsp.analysis import Analysis, Decl, binders_at, nodes
from hdsl.lsp.diagnostics import path_to_uri
from hdsl.lsp.positions import offset_at, offsets_range, span_range
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
    "arithmetic": "arithmetic float32 | real: what proved covers; float32 (default): the real-valued network and "
                  "any float32 execution of it; real: the real-valued network only (as α,β-CROWN and Marabou)",
    "with": "with confidence c samples n seed s: statistics for measured properties",
    "normalize": "normalize mean [...] std [...]: the model sees (x - mean) / std per channel",
    "input": "input [3, 32, 32] in [0, 1]: a model's input shape (no batch) and range; in a data block, "
             '`input key "x"`; in a causal model, its input variables',
    "outputs": "outputs CLASSES (or a number): names the model's outputs",
    "take": "take n (first n rows) or take [i, j, ...] (those rows)",
    "skip": "skip n: drop the first n rows",
}


BUILTIN_DOCS = {
    "linf": "linf(x, eps): the L-infinity ball of radius eps around x, within the model's input range",
    "box": "box(lo, hi): the input box lo <= x <= hi (element-wise)",
    "ancestor": "ancestor(h, y, level k): the classes under y's ancestor at depth k of hierarchy h",
    "group": "group(h, node): the classes under that node of hierarchy h",
    "union": "union(r1, r2, ...): the union of box and linf regions",
    "faithfulness": "faithfulness(net, explainer, data, metric ..., removal ...): a measured XAI property",
    "sufficient": "sufficient(net, explainer, data, top k ...): formal sufficiency of the top-k features",
    "iia": "iia(alignment, data, ...): interchange-intervention accuracy of an alignment",
    "certified_radius": "certified_radius(net, data, ...): the certified robustness radius",
}


def _builtins() -> tuple[str, ...]:
    try:
        from hdsl.lower import BUILTINS
    except Exception:  # noqa: BLE001 - the lowering is optional for the editor
        return tuple(BUILTIN_DOCS)
    return tuple(BUILTINS)


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


def group_call_at(a: Analysis, offset: int) -> str | None:
    """The hierarchy named in ``group(H, NODE)`` when ``offset`` is on NODE (the node then belongs to H)."""
    for stmt in a.statements:
        span = getattr(stmt, "span", None)
        if span is None or not span.start <= offset <= span.end:
            continue
        for node in nodes(stmt):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "group" and \
                    len(node.args) == 2 and isinstance(node.args[0], ast.Name) and isinstance(node.args[1], ast.Name):
                target = node.args[1].span
                if target is not None and target.start <= offset <= target.end:
                    return node.args[0].id
    return None


def _node_parts(a: Analysis, word: str, only: str | None) -> list[str]:
    """Hover text for a hierarchy node named ``word`` (in hierarchy ``only``, or in any)."""
    parts = [_group_text(word, ref.hierarchy, ref.level, ref.leaves) for ref in a.groups.get(word, [])
             if only is None or ref.hierarchy == only]
    if not parts and a.spec is not None:  # nodes of hierarchies read from files
        for hname in sorted(getattr(a.spec, "hierarchies", {})):
            if only is not None and hname != only:
                continue
            h, (node, level) = _hier_node(a, hname, word)
            if node is not None and level:
                parts.append(_group_text(word, hname, level, h.leaves(node)))
    return parts


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
    in_group = group_call_at(a, offset)
    if in_group is not None:  # group(h, NODE): a node of h, whatever else the name means
        parts = _node_parts(a, word, in_group)
        return lsp.Hover(_markdown(*parts), rng) if parts else None
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
    parts.extend(_node_parts(a, word, None))
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
    for stmt in a.statements:
        for node in nodes(stmt):
            if isinstance(node, ast.Forall) and any(b is ident for b in node.binders):
                return node
    return None


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
    in_group = group_call_at(a, offset)
    if in_group is not None:
        spans.extend(ref.span for ref in a.groups.get(word, []) if ref.hierarchy == in_group)
    elif word in bound:
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


__all__ = ["definition_at", "group_call_at", "hover_at", "word_at"]
