"""T5: hierarchy files (hdsl JSON, Newick, NBDT node-link) give the same tree; malformed ones are rejected."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsl.diagnostics import HdslError
from hdsl.hierarchy import (canonical, lca_depth, leaf_depth, level_set, level_sets, load_hierarchy,
                            parse_hierarchy, to_json, to_newick, validate_hierarchy)
from hdsl.ir import Hierarchy, HierarchyNode
from hdsl.source import SourceFile

REPO = Path(__file__).resolve().parents[1]
C10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# NBDT's induced CIFAR-10 tree (shape from the research notes): ragged, cat at depth 4, deer at depth 3.
NBDT_LINKS = [("f10", "n3"), ("f10", "n5"), ("f11", "n1"), ("f11", "n9"), ("f12", "n0"), ("f12", "n8"),
              ("f13", "n4"), ("f13", "n7"), ("f14", "n2"), ("f14", "n6"), ("f15", "f10"), ("f15", "f14"),
              ("f16", "f13"), ("f16", "f15"), ("f17", "f11"), ("f17", "f12"), ("f18", "f16"), ("f18", "f17")]
NBDT_NEWICK = ("(((deer,horse)f13,((cat,dog)f10,(bird,frog)f14)f15)f16,"
               "((automobile,truck)f11,(airplane,ship)f12)f17)f18;")


def nbdt_doc(links=NBDT_LINKS, edges_key="links"):
    nodes = [{"label": c, "id": f"n{i}"} for i, c in enumerate(C10)] + [{"id": f"f{i}"} for i in range(10, 19)]
    return {"directed": True, "multigraph": False, "graph": {}, "nodes": nodes,
            edges_key: [{"source": a, "target": b} for a, b in links]}


def errors(text, path, **kw):
    with pytest.raises(HdslError) as info:
        parse_hierarchy(text, path, **kw)
    return info.value.diagnostics


# --------------------------------------------------------------------------- same tree from three formats


def test_shipped_hierarchies_load():
    two = load_hierarchy(str(REPO / "hierarchies/cifar10_2level.hier.json"))
    three = load_hierarchy(str(REPO / "hierarchies/cifar10_3level.hier.json"))
    c100 = load_hierarchy(str(REPO / "hierarchies/cifar100_superclasses.hier.json"))
    assert two.classes == three.classes == C10 and two.depth() == 2 and three.depth() == 3
    assert level_set(two, 3, 1) == (2, 3, 4, 5, 6, 7) and level_set(three, 3, 2) == (3, 4, 5, 7)
    assert len(c100.classes) == 100 and len(c100.root.children) == 20
    assert all(len(g.children) == 5 for g in c100.root.children)


def test_three_formats_same_tree(tmp_path):
    nb = tmp_path / "induced.json"
    nb.write_text(json.dumps(nbdt_doc()))
    a = load_hierarchy(str(nb), None, C10, "h")
    nw = tmp_path / "induced.nwk"
    nw.write_text(NBDT_NEWICK)
    b = load_hierarchy(str(nw), None, C10, "h")
    js = tmp_path / "induced.hier.json"
    js.write_text(json.dumps(to_json(a)))
    c = load_hierarchy(str(js), None, C10, "h")
    assert a == b == c
    assert leaf_depth(a, "cat") == 4 and leaf_depth(a, "deer") == 3  # ragged depths
    assert level_set(a, "deer", 4) == (4,)  # deeper than its leaf: the class itself
    assert [lvl for lvl, _ in level_sets(a, "cat")] == [0, 1, 2, 3, 4]
    assert lca_depth(a, "cat", "dog") == 3 and lca_depth(a, "cat", "truck") == 0
    # NBDT files from newer networkx use "edges"
    nb.write_text(json.dumps(nbdt_doc(edges_key="edges")))
    assert load_hierarchy(str(nb), None, C10, "h") == a


def test_newick_features_and_generated_names():
    h = parse_hierarchy("[a comment] ((a:1.5, 'b c')g1:0.2, (d,e));", "t.nwk")
    assert h.classes == ("a", "b c", "d", "e")
    assert h.root.children[0].name == "g1" and h.root.name == "n1" and h.root.children[1].name == "n3"
    assert canonical(h.root) == canonical(parse_hierarchy(to_newick(h), "u.nwk").root)


tree_names = st.lists(st.sampled_from("abcdefgh"), min_size=2, max_size=8, unique=True)


@st.composite
def trees(draw):
    classes = draw(tree_names)
    counter = iter(range(1000))

    def build(items):
        if len(items) <= 2 or draw(st.booleans()):
            return HierarchyNode(f"g{next(counter)}", tuple(items))
        cut = draw(st.integers(1, len(items) - 1))
        left, right = items[:cut], items[cut:]
        kids = tuple(build(p) if len(p) > 1 and draw(st.booleans()) else (p[0] if len(p) == 1 else
                                                                        HierarchyNode(f"g{next(counter)}", tuple(p)))
                     for p in (left, right))
        return HierarchyNode(f"g{next(counter)}", kids)

    return Hierarchy("h", tuple(classes), build(list(classes)))


@given(trees())
@settings(max_examples=40, deadline=None)
def test_round_trip_newick_and_json(h):
    again = parse_hierarchy(to_newick(h), "x.nwk", classes=h.classes, name="h")
    assert again == h
    again = parse_hierarchy(json.dumps(to_json(h)), "x.hier.json", name="h")
    assert again == h
    for i, c in enumerate(h.classes):  # levels are nested and end at the class
        sets = [set(s) for _, s in level_sets(h, i)]
        assert sets[0] == set(range(len(h.classes))) and sets[-1] == {i}
        assert all(b <= a for a, b in zip(sets, sets[1:]))


# --------------------------------------------------------------------------- malformed files


def doc(root, classes=("a", "b", "c")):
    return json.dumps({"format": "hdsl-hierarchy/1", "classes": list(classes), "root": root})


def codes(diags):
    return sorted(d.code for d in diags)


def test_missing_duplicate_unknown_empty_clash():
    root = {"name": "r", "children": [{"name": "g", "children": ["a", "a", "zz"]}, {"name": "e", "children": []},
                                      {"name": "b", "children": ["b"]}]}
    ds = errors(doc(root), "bad.hier.json")
    assert codes(ds) == ["H010", "H011", "H012", "H013", "H015"]
    dup = next(d for d in ds if d.code == "H011")
    assert dup.span is not None and dup.span.text == '"a"' and dup.span.start > doc(root).index('"a", "a"')
    assert "did you mean" not in (next(d for d in ds if d.code == "H012").hint or "")
    miss = next(d for d in ds if d.code == "H010")
    assert "'c'" in miss.message and miss.span is not None and miss.span.line == 1


def test_duplicate_group_names_and_class_count():
    root = {"name": "r", "children": [{"name": "g", "children": ["a"]}, {"name": "g", "children": ["b", "c"]}]}
    assert codes(errors(doc(root), "d.hier.json")) == ["H014"]
    ok = {"name": "r", "children": ["a", "b", "c"]}
    assert codes(errors(doc(ok), "d.hier.json", num_outputs=4)) == ["H017"]
    assert codes(errors(doc(ok), "d.hier.json", classes=("a", "c", "b"))) == ["H019"]


def test_syntax_and_format_errors_are_located():
    d = errors('{"format": "hdsl-hierarchy/1",\n "classes": ["a"],\n "root": {"name": "r", "children": ["a",]}}',
               "s.hier.json")[0]
    assert d.code == "H002" and d.span.line == 3
    d = errors('{"format": "other", "classes": [], "root": {}}', "f.hier.json")[0]
    assert d.code == "H003" and "hdsl-hierarchy/1" in d.message
    d = errors("((a,b)x,(c,d)y;", "u.nwk")[0]
    assert d.code == "H002" and d.span.column == 15
    d = errors("(a,b)", "v.nwk")[0]
    assert d.code == "H002" and "';'" in d.message
    d = errors("a;", "w.nwk")[0]
    assert "root" in d.message


def test_nbdt_numeric_ids_are_located():
    """networkx writes integer ids unquoted: a dangling link to one points at its link."""
    doc = nbdt_doc()
    doc["links"][3]["target"] = 42
    text = json.dumps(doc)
    (d,) = errors(text, "t.json")
    assert d.code == "H018" and "'42'" in d.message and d.span is not None
    assert d.span.start == [m.start() for m in re.finditer('"target"', text)][3]


def test_nbdt_dag_cycle_and_dangling_link():
    ds = errors(json.dumps(nbdt_doc(NBDT_LINKS + [("f17", "n3")])), "dag.json")
    assert ds[0].code == "H018" and "2 parents" in ds[0].message and ds[0].span is not None
    ds = errors(json.dumps(nbdt_doc(NBDT_LINKS + [("n3", "f18")])), "cycle.json")
    assert ds[0].code == "H018" and "cycle" in ds[0].message
    ds = errors(json.dumps(nbdt_doc(NBDT_LINKS + [("f18", "nope")])), "dangling.json")
    assert ds[0].code == "H018" and "nope" in ds[0].message


def test_unreadable_file_and_unknown_format(tmp_path):
    with pytest.raises(HdslError) as info:
        load_hierarchy(str(tmp_path / "missing.json"))
    assert info.value.diagnostics[0].code == "H001"
    p = tmp_path / "x.json"
    p.write_text(doc({"name": "r", "children": ["a", "b", "c"]}))
    with pytest.raises(HdslError) as info:
        load_hierarchy(str(p), "yaml")
    assert info.value.diagnostics[0].code == "H003"


def test_validate_with_front_end_locator():
    src = SourceFile("spec.hspec", "classes c = a b\nhierarchy h over c { g { a a } }")

    def locate(name, nth=1):
        i = src.text.index("{")
        for _ in range(nth):
            i = src.text.find(" " + name + " ", i + 1)
            if i < 0:
                return None
        return src.span(i + 1, i + 1 + len(name))

    h = Hierarchy("h", ("a", "b"), HierarchyNode("root", (HierarchyNode("g", ("a", "a")),)))
    ds = validate_hierarchy(h, locate, num_outputs=2)
    assert codes(ds) == ["H010", "H011"]
    dup = next(d for d in ds if d.code == "H011")
    assert (dup.span.line, dup.span.column) == (2, 28)  # the second 'a'
    assert codes(validate_hierarchy(h, lambda name: locate(name), num_outputs=2)) == ["H010", "H011"]
