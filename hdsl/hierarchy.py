"""Class hierarchies: file formats, validation and the per-level class sets.

Three file formats load into one ``hdsl.ir.Hierarchy``:

* ``json`` -- hdsl's own format (``*.hier.json``)::

      {"format": "hdsl-hierarchy/1",
       "classes": ["airplane", "automobile", ...],        # output order
       "root": {"name": "root", "children": [
           {"name": "vehicle", "children": ["airplane", "automobile", "ship", "truck"]},
           {"name": "animal",  "children": ["bird", "frog",
               {"name": "mammal", "children": ["cat", "deer", "dog", "horse"]}]}]}}

  A child is either a class name (a leaf) or a ``{name, children}`` object.
* ``newick`` -- nested parentheses, commas between siblings, an optional internal
  label after ``)``, optional ``:length`` (ignored), ``[comments]``, ``;`` at the end.
  Unlabelled internal nodes get generated names ``n1, n2, ...`` (pre-order).
* ``nbdt`` -- networkx node-link JSON as written by Neural-Backed Decision Trees
  (``nodes`` with ``id``/``label``, ``links`` or ``edges`` with ``source``/``target``).
  A node is named by its ``label`` when it has one, else by its ``id``.

Semantics (see the IR): level = depth, the root is level 0; the set of a label at
level ``k`` is the leaves under its ancestor at depth ``k`` (the label itself when
its leaf is shallower than ``k``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Union

from hdsl.diagnostics import Diagnostic, HdslError, Severity
from hdsl.ir import Hierarchy, HierarchyNode
from hdsl.source import SourceFile, Span

FORMAT_TAG = "hdsl-hierarchy/1"
FORMATS = ("json", "newick", "nbdt")

Locator = Callable[[str], Union[Span, None]]

# Diagnostic codes (all hierarchy problems are H0xx).
H_UNREADABLE = "H001"
H_SYNTAX = "H002"
H_BAD_FORMAT = "H003"
H_MISSING_CLASS = "H010"
H_DUPLICATE_LEAF = "H011"
H_UNKNOWN_CLASS = "H012"
H_EMPTY_GROUP = "H013"
H_DUPLICATE_NODE = "H014"
H_NAME_CLASH = "H015"
H_DUPLICATE_CLASS = "H016"
H_CLASS_COUNT = "H017"
H_NOT_A_TREE = "H018"
H_CLASS_ORDER = "H019"


# --------------------------------------------------------------------------- levels


def level_sets(h: Hierarchy, label: int | str) -> list[tuple[int, tuple[int, ...]]]:
    """``[(level, class_indices)]`` for levels ``0 .. depth(label)``, root first.

    Level 0 is the root (every class); the last entry is the label alone.
    """
    cls = h.classes[label] if isinstance(label, int) else label
    path = h.path_to(cls)
    return [(level, h.class_indices(node)) for level, node in enumerate(path)]


def level_set(h: Hierarchy, label: int | str, level: int) -> tuple[int, ...]:
    """Class indices of ``ancestor(h, label, level)`` (the label alone below its depth)."""
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    cls = h.classes[label] if isinstance(label, int) else label
    return h.class_indices(h.ancestor(cls, level))


def leaf_depth(h: Hierarchy, label: int | str) -> int:
    cls = h.classes[label] if isinstance(label, int) else label
    return len(h.path_to(cls)) - 1


def node_name(node: HierarchyNode | str) -> str:
    return node if isinstance(node, str) else node.name


def lca_depth(h: Hierarchy, a: int | str, b: int | str) -> int:
    """Depth of the lowest common ancestor of two classes (0 = only the root is shared).

    Used as counterexample *severity*: the smaller, the worse the mistake.
    """
    ca = h.classes[a] if isinstance(a, int) else a
    cb = h.classes[b] if isinstance(b, int) else b
    pa, pb = h.path_to(ca), h.path_to(cb)
    depth = 0
    for i, (x, y) in enumerate(zip(pa, pb)):
        if node_name(x) != node_name(y):
            break
        depth = i
    return depth


def canonical(node: HierarchyNode | str):
    """An order- and name-independent form of a subtree (for comparing imports)."""
    if isinstance(node, str):
        return node
    return frozenset(canonical(c) for c in node.children)


def iter_nodes(node: HierarchyNode | str, depth: int = 0):
    """Pre-order ``(depth, node)`` over a subtree, leaves included."""
    yield depth, node
    if not isinstance(node, str):
        for child in node.children:
            yield from iter_nodes(child, depth + 1)


def to_json(h: Hierarchy) -> dict:
    """The hdsl-hierarchy/1 document of ``h``."""

    def enc(node):
        if isinstance(node, str):
            return node
        return {"name": node.name, "children": [enc(c) for c in node.children]}

    return {"format": FORMAT_TAG, "name": h.name, "classes": list(h.classes), "root": enc(h.root)}


def to_newick(h: Hierarchy) -> str:
    def q(s: str) -> str:
        return s if re.fullmatch(r"[A-Za-z0-9_.\-]+", s) else "'" + s.replace("'", "''") + "'"

    def enc(node):
        if isinstance(node, str):
            return q(node)
        return "(" + ",".join(enc(c) for c in node.children) + ")" + q(node.name)

    return enc(h.root) + ";"


# --------------------------------------------------------------------------- validation


def validate_hierarchy(h: Hierarchy, locate: Locator, num_outputs: int | None = None) -> list[Diagnostic]:
    """Every problem with ``h``: each class exactly one leaf, no unknown class, no empty
    group, unique node names, no node named like a class, class count = outputs.

    ``locate(name)`` gives the span to blame for a node or class name (or None);
    a locator taking ``(name, nth)`` is told which occurrence (1-based) is meant,
    so a duplicate can point at its second occurrence.
    """
    import inspect

    try:
        two = len(inspect.signature(locate).parameters) >= 2
    except (TypeError, ValueError):
        two = False
    tree = (lambda name, nth: locate(name, nth)) if two else (lambda name, nth: locate(name))
    return _validate(h, tree, lambda name: tree(name, 1), num_outputs, None)


def _validate(
    h: Hierarchy,
    locate_tree: Callable[[str, int], Span | None],
    locate_class: Callable[[str], Span | None],
    num_outputs: int | None,
    path: str | None,
) -> list[Diagnostic]:
    diags: list[Diagnostic] = []

    def err(code, msg, span, hint=None):
        diags.append(Diagnostic(code, msg, span, hint, Severity.ERROR, path=None if span else path))

    seen_cls: dict[str, int] = {}
    for c in h.classes:
        seen_cls[c] = seen_cls.get(c, 0) + 1
        if seen_cls[c] == 2:
            err(H_DUPLICATE_CLASS, f"class '{c}' is listed twice in the classes of hierarchy '{h.name}'",
                locate_class(c), "class names must be unique: they name the network's outputs in order")
    classes = set(h.classes)

    leaf_count: dict[str, int] = {}
    node_count: dict[str, int] = {}
    for _, node in iter_nodes(h.root):
        if isinstance(node, str):
            leaf_count[node] = leaf_count.get(node, 0) + 1
            nth = leaf_count[node]
            if node not in classes:
                if nth == 1:
                    err(H_UNKNOWN_CLASS, f"'{node}' is not a class of hierarchy '{h.name}'",
                        locate_tree(node, 1), _suggest(node, h.classes))
            elif nth == 2:
                err(H_DUPLICATE_LEAF, f"class '{node}' appears more than once in hierarchy '{h.name}'",
                    locate_tree(node, 2),
                    "each class must be exactly one leaf (a tree, not a DAG); use a separate group for overlaps")
        else:
            node_count[node.name] = node_count.get(node.name, 0) + 1
            nth = node_count[node.name]
            if nth == 2:
                err(H_DUPLICATE_NODE, f"node name '{node.name}' is used twice in hierarchy '{h.name}'",
                    locate_tree(node.name, 2), "give every group a unique name")
            if node.name in classes and nth == 1:
                err(H_NAME_CLASH, f"group '{node.name}' has the same name as a class",
                    locate_tree(node.name, 1), "rename the group (e.g. add a suffix such as '_group')")
            if not node.children:
                err(H_EMPTY_GROUP, f"group '{node.name}' is empty", locate_tree(node.name, 1),
                    "a group needs at least one class or sub-group")
    for c in h.classes:
        if c not in leaf_count:
            err(H_MISSING_CLASS, f"class '{c}' does not appear in hierarchy '{h.name}'", locate_class(c),
                "every class must be exactly one leaf of the tree")
    if num_outputs is not None and num_outputs != len(h.classes):
        err(H_CLASS_COUNT,
            f"hierarchy '{h.name}' has {len(h.classes)} classes but the network has {num_outputs} outputs",
            locate_class(h.classes[0]) if h.classes else None,
            "the classes must name the network's outputs one to one, in order")
    return diags


def _suggest(name: str, options: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1)
    return f"did you mean '{close[0]}'?" if close else None


# --------------------------------------------------------------------------- loading


def detect_format(path: str, text: str) -> str:
    """``json`` / ``nbdt`` / ``newick`` from the extension, else from the content."""
    lower = path.lower()
    if lower.endswith((".nwk", ".newick", ".tree", ".tre")):
        return "newick"
    stripped = text.lstrip()
    if stripped.startswith("{"):
        if re.search(r'"(links|edges)"\s*:', text) and re.search(r'"nodes"\s*:', text):
            return "nbdt"
        return "json"
    if stripped.startswith("("):
        return "newick"
    return "json" if lower.endswith(".json") else "newick"


def load_hierarchy(path: str, fmt: str | None = None, classes: tuple[str, ...] | None = None,
                   name: str | None = None, num_outputs: int | None = None) -> Hierarchy:
    """Read and validate a hierarchy file; ``HdslError`` with located diagnostics on any problem.

    ``classes`` (the spec's class list, in output order) is required to match the
    file's own list for ``json``; for ``newick``/``nbdt`` it fixes the output order
    (default: leaf order in the file).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HdslError.single(H_UNREADABLE, f"cannot read hierarchy file '{path}': {exc}", path=path) from None
    return parse_hierarchy(text, path, fmt, classes, name, num_outputs)


def parse_hierarchy(text: str, path: str = "<hierarchy>", fmt: str | None = None,
                    classes: tuple[str, ...] | None = None, name: str | None = None,
                    num_outputs: int | None = None) -> Hierarchy:
    """Like ``load_hierarchy`` for text already in memory."""
    src = SourceFile(path, text)
    fmt = (fmt or detect_format(path, text)).lower()
    if fmt in ("hdsl", "hier", "hdsl-hierarchy/1"):
        fmt = "json"
    if fmt not in FORMATS:
        raise HdslError.single(H_BAD_FORMAT, f"unknown hierarchy format '{fmt}'", path=path,
                               hint="use one of: " + ", ".join(FORMATS))
    default = Path(path).name.split(".")[0] or "hierarchy"
    parser = {"json": _parse_json, "newick": _parse_newick, "nbdt": _parse_nbdt}[fmt]
    h, locate_tree, locate_class, diags = parser(src, classes, name or default)
    if name is None and fmt == "json":
        doc_name = _json_name(text)
        if doc_name:
            h = Hierarchy(doc_name, h.classes, h.root) if h is not None else h
    if h is not None:
        diags += _validate(h, locate_tree, locate_class, num_outputs, path)
    if diags:
        raise HdslError(diags)
    return h


def _json_name(text: str) -> str | None:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    nm = doc.get("name") if isinstance(doc, dict) else None
    return nm if isinstance(nm, str) and nm else None


# ---- locating names in the text


def _occurrences(text: str, needle: str, start: int = 0, end: int | None = None) -> list[int]:
    out, i = [], text.find(needle, start, end)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + 1, end)
    return out


def _quoted_locator(src: SourceFile, start: int, end: int | None = None):
    """Find the ``nth`` JSON string ``"name"`` in ``text[start:end]``."""

    def loc(name: str, nth: int = 1) -> Span | None:
        needle = json.dumps(name)
        hits = _occurrences(src.text, needle, start, end)
        if not hits:
            return None
        i = hits[min(nth, len(hits)) - 1]
        return src.span(i, i + len(needle))

    return loc


def _json_error_span(src: SourceFile, exc: json.JSONDecodeError) -> Span:
    return src.span(exc.pos, min(exc.pos + 1, len(src.text)))


# ---- json (hdsl-hierarchy/1)


def _parse_json(src: SourceFile, classes, name):
    try:
        doc = json.loads(src.text)
    except json.JSONDecodeError as exc:
        raise HdslError([Diagnostic(H_SYNTAX, f"invalid JSON: {exc.msg}", _json_error_span(src, exc))]) from None
    whole = src.span(0, min(1, len(src.text)))
    if not isinstance(doc, dict):
        raise HdslError([Diagnostic(H_BAD_FORMAT, "a hierarchy file must be a JSON object", whole)])
    root_key = src.text.find('"root"')
    locate_tree = _quoted_locator(src, max(root_key, 0))
    classes_key = src.text.find('"classes"')
    locate_cls_any = _quoted_locator(src, max(classes_key, 0), root_key if root_key > classes_key else None)
    diags: list[Diagnostic] = []
    tag = doc.get("format")
    if tag != FORMAT_TAG:
        span = _quoted_locator(src, 0)("format") or whole
        raise HdslError([Diagnostic(H_BAD_FORMAT,
                                    f"expected \"format\": \"{FORMAT_TAG}\", found {json.dumps(tag)}", span,
                                    "hdsl hierarchy files start with {\"format\": \"hdsl-hierarchy/1\", ...}; "
                                    "NBDT node-link files are read with format nbdt")])
    file_classes = doc.get("classes")
    if file_classes is None and classes is None:
        raise HdslError([Diagnostic(H_BAD_FORMAT, "missing \"classes\" (class names in output order)", whole)])
    if file_classes is not None and (not isinstance(file_classes, list)
                                     or not all(isinstance(c, str) and c for c in file_classes)):
        span = _quoted_locator(src, 0)("classes") or whole
        raise HdslError([Diagnostic(H_BAD_FORMAT, "\"classes\" must be a list of non-empty strings", span)])
    if "root" not in doc:
        raise HdslError([Diagnostic(H_BAD_FORMAT, "missing \"root\" (the tree)", whole)])

    def build(obj, trail: str) -> HierarchyNode | str | None:
        if isinstance(obj, str):
            return obj
        if isinstance(obj, dict):
            nm = obj.get("name")
            kids = obj.get("children")
            if not isinstance(nm, str) or not nm:
                diags.append(Diagnostic(H_BAD_FORMAT, f"group at {trail} has no \"name\"",
                                        locate_tree("children", 1) or whole))
                return None
            if not isinstance(kids, list):
                diags.append(Diagnostic(H_BAD_FORMAT, f"group '{nm}' needs a \"children\" list",
                                        locate_tree(nm, 1) or whole))
                return None
            built = [build(k, f"{trail}/{nm}") for k in kids]
            return HierarchyNode(nm, tuple(b for b in built if b is not None))
        diags.append(Diagnostic(H_BAD_FORMAT, f"a child at {trail} must be a class name or a "
                                "{\"name\", \"children\"} object, found " + json.dumps(obj)[:40], whole))
        return None

    root = build(doc["root"], "root")
    if isinstance(root, str):
        raise HdslError([Diagnostic(H_BAD_FORMAT, "\"root\" must be a group, not a single class",
                                    locate_tree(root, 1) or whole)])
    if root is None or diags:
        raise HdslError(diags)
    file_cls = tuple(file_classes) if file_classes is not None else tuple(classes)
    if classes is not None and tuple(classes) != file_cls:
        span = _quoted_locator(src, 0)("classes") or whole
        if set(classes) == set(file_cls):
            msg = "the hierarchy file lists the classes in a different order than the spec"
        else:
            missing = [c for c in classes if c not in file_cls]
            extra = [c for c in file_cls if c not in classes]
            msg = "the hierarchy file's classes differ from the spec's: " + "; ".join(
                p for p in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "") if p)
        diags.append(Diagnostic(H_CLASS_ORDER, msg, span,
                                "the classes must name the network's outputs in order"))
    h = Hierarchy(name, file_cls, root)
    return h, locate_tree, lambda c: locate_cls_any(c, 1), diags


# ---- newick


@dataclass
class _NewickLeaf:
    name: str
    start: int
    end: int


def _parse_newick(src: SourceFile, classes, name):
    text = src.text
    n = len(text)
    pos = 0
    spans: dict[str, list[tuple[int, int]]] = {}
    order: list[str] = []

    def fail(msg, at, hint=None):
        raise HdslError([Diagnostic(H_SYNTAX, msg, src.span(min(at, n), min(at + 1, n)), hint)])

    def skip():
        nonlocal pos
        while pos < n:
            ch = text[pos]
            if ch.isspace():
                pos += 1
            elif ch == "[":
                close = text.find("]", pos)
                if close < 0:
                    fail("unterminated [comment]", pos)
                pos = close + 1
            else:
                break

    def label() -> tuple[str, int, int] | None:
        nonlocal pos
        skip()
        if pos < n and text[pos] == "'":
            start = pos
            pos += 1
            buf = []
            while True:
                if pos >= n:
                    fail("unterminated quoted label", start)
                if text[pos] == "'":
                    if pos + 1 < n and text[pos + 1] == "'":
                        buf.append("'")
                        pos += 2
                        continue
                    pos += 1
                    break
                buf.append(text[pos])
                pos += 1
            return "".join(buf), start, pos
        start = pos
        while pos < n and text[pos] not in "()[],:;'" and not text[pos].isspace():
            pos += 1
        if pos == start:
            return None
        return text[start:pos], start, pos

    def length():
        nonlocal pos
        skip()
        if pos < n and text[pos] == ":":
            pos += 1
            skip()
            m = re.compile(r"[-+0-9.eE]+").match(text, pos)
            if not m:
                fail("expected a branch length after ':'", pos)
            pos = m.end()

    counter = [0]

    def record(nm, s, e):
        spans.setdefault(nm, []).append((s, e))

    def subtree():
        nonlocal pos
        skip()
        if pos < n and text[pos] == "(":
            open_at = pos
            pos += 1
            kids = [subtree()]
            skip()
            while pos < n and text[pos] == ",":
                pos += 1
                kids.append(subtree())
                skip()
            if pos >= n or text[pos] != ")":
                line, col = src.line_col(open_at)
                fail("expected ',' or ')'", pos, f"the '(' at line {line}, column {col} is not closed")
            pos += 1
            counter[0] += 1
            k = counter[0]
            lab = label()
            length()
            if lab is None:
                return ("node", None, k, kids, open_at)
            record(lab[0], lab[1], lab[2])
            return ("node", lab[0], k, kids, open_at)
        lab = label()
        if lab is None:
            fail("expected a class name or '('", pos)
        record(lab[0], lab[1], lab[2])
        order.append(lab[0])
        length()
        return ("leaf", lab[0], lab[1], lab[2])

    tree = subtree()
    skip()
    if pos >= n or text[pos] != ";":
        fail("expected ';' at the end of the tree", pos, "a Newick tree ends with ';'")
    pos += 1
    skip()
    if pos < n:
        fail("unexpected text after ';'", pos)
    if tree[0] == "leaf":
        fail("the root must be a group, not a single class", 0)

    used = set(spans)

    def build(t):
        if t[0] == "leaf":
            return t[1]
        _, lab, k, kids, _open = t
        if lab is None:
            lab = f"n{k}"
            while lab in used:
                lab += "_"
            used.add(lab)
            spans.setdefault(lab, []).append((_open, _open + 1))
        return HierarchyNode(lab, tuple(build(c) for c in kids))

    # Generated names follow pre-order numbering of '(' positions, so renumber by position.
    root = build(_renumber(tree))
    cls = tuple(classes) if classes is not None else tuple(dict.fromkeys(order))

    def locate_tree(nm, nth=1):
        hits = spans.get(nm)
        if not hits:
            return None
        s, e = hits[min(nth, len(hits)) - 1]
        return src.span(s, e)

    return Hierarchy(name, cls, root), locate_tree, lambda c: locate_tree(c, 1), []


def _renumber(tree):
    """Number internal nodes in pre-order (the parser numbers them post-order)."""
    counter = [0]

    def walk(t):
        if t[0] == "leaf":
            return t
        counter[0] += 1
        k = counter[0]
        return ("node", t[1], k, [walk(c) for c in t[3]], t[4])

    return walk(tree)


# ---- nbdt (networkx node-link JSON)


def _parse_nbdt(src: SourceFile, classes, name):
    try:
        doc = json.loads(src.text)
    except json.JSONDecodeError as exc:
        raise HdslError([Diagnostic(H_SYNTAX, f"invalid JSON: {exc.msg}", _json_error_span(src, exc))]) from None
    whole = src.span(0, min(1, len(src.text)))
    loc_any = _quoted_locator(src, 0)
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise HdslError([Diagnostic(H_BAD_FORMAT, "an NBDT/node-link file needs a \"nodes\" list", whole)])
    links = doc.get("links", doc.get("edges"))
    if not isinstance(links, list):
        raise HdslError([Diagnostic(H_BAD_FORMAT, "an NBDT/node-link file needs a \"links\" (or \"edges\") list",
                                    whole)])
    diags: list[Diagnostic] = []
    names: dict[str, str] = {}  # id -> display name
    ids: list[str] = []
    for node in doc["nodes"]:
        if not isinstance(node, dict) or "id" not in node:
            raise HdslError([Diagnostic(H_BAD_FORMAT, "every node needs an \"id\"", whole)])
        nid = str(node["id"])
        if nid in names:
            diags.append(Diagnostic(H_DUPLICATE_NODE, f"node id '{nid}' is listed twice", loc_any(nid, 2)))
            continue
        ids.append(nid)
        lab = node.get("label")
        names[nid] = str(lab) if isinstance(lab, str) and lab else nid

    def locate_id(nid: str, nth: int = 1) -> Span:
        """The quoted id; an id written as a number (networkx allows it) at the start of the file."""
        return loc_any(nid, nth) or whole

    children: dict[str, list[str]] = {i: [] for i in ids}
    parents: dict[str, list[str]] = {i: [] for i in ids}
    for k, link in enumerate(links, 1):
        if not isinstance(link, dict) or "source" not in link or "target" not in link:
            raise HdslError([Diagnostic(H_BAD_FORMAT, "every link needs \"source\" and \"target\"", whole)])
        s, t = str(link["source"]), str(link["target"])
        for key, end in (("source", s), ("target", t)):
            if end not in children:  # at the id if it is quoted somewhere, else at the k-th link's key
                at = loc_any(end, 1) or loc_any(key, k) or whole
                diags.append(Diagnostic(H_NOT_A_TREE, f"link refers to an unknown node '{end}'", at))
        if s in children and t in children:
            children[s].append(t)
            parents[t].append(s)
    if diags:
        raise HdslError(diags)
    for nid in ids:
        if len(parents[nid]) > 1:
            diags.append(Diagnostic(H_NOT_A_TREE,
                                    f"node '{names[nid]}' has {len(parents[nid])} parents "
                                    f"({', '.join(names[p] for p in parents[nid])}): the hierarchy is a DAG, not a tree",
                                    locate_id(nid, 1), "hdsl hierarchies must be trees: keep one parent per node"))
    roots = [i for i in ids if not parents[i]]
    if not diags and len(roots) != 1:
        if not roots:
            diags.append(Diagnostic(H_NOT_A_TREE, "the graph has no root (every node has a parent): it has a cycle",
                                    whole))
        else:
            diags.append(Diagnostic(H_NOT_A_TREE, f"the graph has {len(roots)} roots "
                                    f"({', '.join(names[r] for r in roots[:5])}); a tree has exactly one",
                                    locate_id(roots[1], 1)))
    if diags:
        raise HdslError(diags)
    # Cycle check (reachable part from the root; unreachable nodes are in a cycle).
    state: dict[str, int] = {}
    order: list[str] = []

    def visit(nid: str, stack: list[str]):
        state[nid] = 1
        for c in children[nid]:
            if state.get(c) == 1:
                cyc = stack[stack.index(c):] + [c] if c in stack else [nid, c]
                raise HdslError([Diagnostic(H_NOT_A_TREE, "cycle: " + " -> ".join(names[x] for x in cyc),
                                            locate_id(c, 1))])
            if c not in state:
                visit(c, stack + [c])
        state[nid] = 2

    visit(roots[0], [roots[0]])
    unreached = [i for i in ids if i not in state]
    if unreached:
        raise HdslError([Diagnostic(H_NOT_A_TREE,
                                    f"nodes not reachable from the root (a cycle): {', '.join(names[u] for u in unreached[:5])}",
                                    locate_id(unreached[0], 1))])

    leaf_ids = [i for i in ids if not children[i]]

    def build(nid: str):
        if not children[nid]:
            order.append(names[nid])
            return names[nid]
        return HierarchyNode(names[nid], tuple(build(c) for c in children[nid]))

    root = build(roots[0])
    if isinstance(root, str):
        raise HdslError([Diagnostic(H_BAD_FORMAT, "the tree has a single node", whole)])
    cls = tuple(classes) if classes is not None else tuple(names[i] for i in leaf_ids)
    id_of = {}
    for i in ids:
        id_of.setdefault(names[i], []).append(i)

    def locate_tree(nm: str, nth: int = 1) -> Span | None:
        hits = id_of.get(nm)
        if not hits:
            return None
        i = hits[min(nth, len(hits)) - 1]
        return loc_any(nm, 1) or locate_id(i, 1)

    return Hierarchy(name, cls, root), locate_tree, lambda c: locate_tree(c, 1), []
