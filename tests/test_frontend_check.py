"""The checker and lowering: bad inputs give located diagnostics; good specs lower to the right queries.

Every bad input is a small spec in a workspace with a 4-input, 4-class ONNX
model and data files; each case asserts the diagnostic's code, line and column.
"""

from __future__ import annotations

import numpy as np
import pytest

from hdsl import ir
from hdsl.check import check_file
from hdsl.lower import lower
from hdsl.validate import program_problems

PRELUDE = """\
classes c4 = cat dog car truck
model net = onnx "net.onnx" { input [4] in [0, 1] outputs c4 }
data test = npz "d.npz"
hierarchy h over c4 { animal { cat dog } vehicle { car truck } }
"""
LINE = PRELUDE.count("\n") + 1  # the line the case text starts on


def _onnx_model(path, op="Relu", n_in=4, n_out=4):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(8, n_in)).astype(np.float32), "W1")
    b1 = numpy_helper.from_array(np.zeros(8, np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(size=(n_out, 8)).astype(np.float32), "W2")
    b2 = numpy_helper.from_array(np.zeros(n_out, np.float32), "b2")
    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node(op, ["h"], ["a"]),
             helper.make_node("Gemm", ["a", "W2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])], [w1, b1, w2, b2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    d = tmp_path_factory.mktemp("ws")
    _onnx_model(d / "net.onnx")
    _onnx_model(d / "sin.onnx", op="Sin")
    (d / "garbage.onnx").write_bytes(b"this is not a protobuf at all \x00\xff")
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(6, 4)).astype(np.float32)
    np.savez(d / "d.npz", x=x, y=np.array([0, 1, 2, 3, 0, 1]))
    np.savez(d / "d9.npz", x=x, y=np.array([0, 1, 2, 9, 0, 1]))
    np.save(d / "nolabel.npy", x)
    (d / "d.csv").write_text("\n".join(",".join(["1"] + [str(int(v * 255)) for v in row]) for row in x) + "\n")
    return d


def run(workspace, text, name="main.hspec"):
    path = workspace / name
    path.write_text(text)
    return check_file(path, deep=False)


def errors(spec):
    return [d for d in spec.diagnostics if d.severity.value == "error"]


# (case text on the line after the prelude, code, the text the diagnostic must point at)
BAD = [
    # syntax
    ("property p = forall x in test: argmax net(x) = cat", "E102", "= cat"),
    ("const x = 'a'", "E101", "'a'"),
    ("const data = 1", "E102", "data"),
    ("model m2 = onnx \"net.onnx\" { input [4] foo }", "E102", "foo"),
    ("classes = a b", "E102", "= a"),
    ("const x = 1 $", "E101", "$"),
    # names
    ("property p = forall x in tset: argmax net(x) == cat", "E202", "tset"),
    ("classes c4 = a b", "E201", "c4"),
    ("property p = forall (x, y) in test: argmax net(x) == kat", "E202", "kat"),
    ("property p = forall x in c4: argmax net(x) == cat", "E203", "c4"),
    ("check nope", "E202", "nope"),
    ("classes c5 = a b a", "E204", "a\n"),
    ("hierarchy h2 over nope { a { cat } }", "E202", "nope"),
    ("property p = forall (x, y) in test: forall x2 in linf(x, 0.1): argmax net(x2) in ancestor(hh, y, level 1)",
     "E202", "hh,"),
    ("property p = forall (x, y) in test: forall x2 in linff(x, 0.1): argmax net(x2) == y", "E202", "linff"),
    ("property p = forall x in test: argmx(net(x)) == cat", "E202", "argmx"),
    ("property p = forall x in test: argmax net(x) in group(h, animals)", "E202", "animals"),
    # hierarchies (codes from hdsl.hierarchy)
    ("hierarchy h2 over c4 { a { cat dog } b { car truck cat } }", "H011", "cat }"),
    ("hierarchy h2 over c4 { a { cat dog car truck } b { } }", "H013", "b {"),
    ("hierarchy h2 over c4 { a { cat dog car truck bus } }", "H012", "bus"),
    # values, types and shapes
    ("const e = 1/0", "E302", "1/0"),
    ("const e = 2/1e-320", "E304", "2/1e-320"),
    ("const e = 1e400", "E304", "1e400"),
    ("const e = [1, 1e308 * 10]", "E304", "1e308 * 10"),
    ("property p = forall x in box([0, 0], [1, 1]): net(x)[0] <= 1", "E303", "[0, 0]"),
    ("property p = forall (x, y) in test: forall x2 in linf(x, -1): argmax net(x2) == y", "E304", "-1"),
    ("property p = forall (x, y) in test: forall x2 in linf(x, 0.1): argmax net(x) == y", "E309", "x) == y"),
    ("property p = forall (x, y) in test: net(x)[0] * net(x)[1] >= 0", "E308", "net(x)[0] *"),
    ("property p = forall (x, y) in test: argmax net(x) >= y", "E308", "argmax"),
    ("model m2 = onnx \"net.onnx\" { input [5] in [0, 1] outputs c4 }", "E303", "input"),
    ("classes c3 = a b c  model m2 = onnx \"net.onnx\" { outputs c3 }", "E305", "c3 }"),
    ("model m2 = onnx \"net.onnx\" { input [4] in [1, 0] }", "E304", "[1, 0]"),
    ("model m2 = onnx \"net.onnx\" { input [4] normalize mean [0.1, 0.2] std [0.3] }", "E303", "normalize"),
    ("model m2 = onnx \"net.onnx\" { input [4] normalize mean [0.1, 0.2] std [0.3, 0.2, 0.1] }", "E303",
     "normalize"),
    ("property p = forall (x, y) in test: argmax net(x) == 7", "E304", "7"),
    ("property p = forall x in test: 1 >= 0", "E307", "forall"),
    ("property p = forall x in test: argmax net(x) == cat  check p timeout 0", "E304", "0\n"),
    ("property p = forall x in test: argmax net(x) == cat  check p backend magic", "E202", "magic"),
    ("property p = forall x in test: forall x2 in linf(x, 0.1): forall x3 in linf(x2, 0.1): argmax net(x3) == cat",
     "E310", "forall x3"),
    ("property p = forall (x, y) in test: forall x2 in linf(x, 0.1): argmax net(x2) in ancestor(h, y, level 5)",
     "E304", "5)"),
    ("property p = forall x in box(0, 1): net(x)[0] <= 1 with confidence 0.9", "E311", "confidence"),
    # files
    ("model m2 = onnx \"missing.onnx\"", "E411", "\"missing.onnx\""),
    ("data d2 = csv \"missing.csv\"", "E401", "\"missing.csv\""),
    ("import \"nothere.hspec\"", "E410", "\"nothere.hspec\""),
    ("model m2 = onnx \"garbage.onnx\"", "E412", "\"garbage.onnx\""),
    ("data d2 = npz \"d.npz\" { input key \"images\" }", "E407", "\"d.npz\""),
    ("hierarchy h9 over c4 = json \"nope.json\"", "H001", "\"nope.json\""),
    ("data d2 = npy \"nolabel.npy\"  property p = forall (x, y) in d2: argmax net(x) == y", "E312", "y) in"),
    ("data d3 = csv \"d.csv\"  property p = forall x in d3: argmax net(x) == cat", "E409", "d3:"),
    ("data d9 = npz \"d9.npz\"  property p = forall (x, y) in d9: argmax net(x) == y", "E313", "d9:"),
    ("model m2 = tflite \"net.onnx\"", "E306", "tflite"),
    ("import \"main.hspec\"", "E205", "\"main.hspec\""),
    ("property p = forall x in test: argmax net(x) == cat  check p  check p", "E206", "p\n"),
]


@pytest.mark.parametrize("case,code,needle", BAD, ids=[f"{c}-{i}" for i, (_, c, _) in enumerate(BAD)])
def test_bad_input_is_located(workspace, case, code, needle):
    text = PRELUDE + case + "\n"
    spec = run(workspace, text)
    errs = errors(spec)
    assert errs, f"no error for {case!r}"
    at = text.index(needle, len(PRELUDE) if needle not in PRELUDE.split("\n")[-1] else 0)
    if code == "E201":
        at = text.index(needle, len(PRELUDE))
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    found = [(d.code, d.span.line if d.span else None, d.span.column if d.span else None) for d in errs]
    assert (code, line, col) in found, found
    for d in errs:  # every diagnostic renders with a location and an excerpt
        assert d.render().startswith(f"{d.location}: error[{d.code}]")


def test_missing_class_points_at_the_class_list(workspace):
    spec = run(workspace, PRELUDE + "hierarchy h2 over c4 { a { cat dog } b { car } }\n")
    (d,) = [d for d in errors(spec) if d.code == "H010"]
    assert (d.span.line, d.span.column) == (1, PRELUDE.index("truck") + 1)


def test_end_of_input_errors_point_at_the_real_end(workspace):
    spec = run(workspace, PRELUDE + "property p = ")
    (d,) = errors(spec)
    assert (d.code, d.span.line, d.span.column) == ("E103", LINE, 14)
    spec = run(workspace, PRELUDE + "check\n\n")
    (d,) = errors(spec)
    assert (d.code, d.span.line, d.span.column) == ("E103", LINE + 2, 1)


def test_all_diagnostics_are_collected(workspace):
    text = PRELUDE + "classes c4 = a\nconst e = 1/0\ncheck nope\nmodel m = onnx \"missing.onnx\"\n"
    codes = sorted(d.code for d in errors(run(workspace, text)))
    assert codes == ["E201", "E202", "E302", "E411"]


def test_unsupported_operator_is_reported_at_the_model(workspace):
    (workspace / "deep.hspec").write_text('model m = onnx "sin.onnx" { outputs 4 }\n')
    spec = check_file(workspace / "deep.hspec", deep=True)
    errs = errors(spec)
    assert errs and errs[0].code.startswith("E50") and "Sin" in errs[0].message
    assert (errs[0].span.line, errs[0].span.column) == (1, 16)


def test_measurement_without_feature_module_is_unsupported(workspace, monkeypatch):
    import hdsl.lower as lower_mod

    monkeypatch.setitem(lower_mod.MEASURE_HOOKS, "faithfulness", ("hdsl_no_such_module.spec", "faithfulness"))
    spec = run(workspace, PRELUDE + "property f = faithfulness(net, test) <= 0.3 with confidence 0.95\n")
    (d,) = errors(spec)
    assert d.code == "E601" and "not supported" in d.message and (d.span.line, d.span.column) == (LINE, 14)


GOOD = PRELUDE + """\
const eps = 2/255
property robust = forall (x, y) in test: forall x2 in linf(x, eps): argmax net(x2) == y
property coarse = forall (x, y) in test: forall x2 in linf(x, eps): argmax net(x2) in ancestor(h, y, level all)
property lin = forall x in box([0, 0, 0, 0], [1, 1, 0.5, 0.5]): net(x)[0] <= 3.99 and net(x)[cat] >= net(x)[1] + 0.1
property notin = forall x in test: not (argmax net(x) in {car, truck})
property impl = forall x in linf([0.5, 0.5, 0.5, 0.5], 0.6): net(x)[0] >= 1 implies argmax net(x) != dog
check robust, coarse timeout 10s backend bounds
check lin, notin, impl
"""


def test_good_spec_lowers_to_valid_queries(workspace):
    spec = run(workspace, GOOD)
    assert spec.ok, [d.render() for d in spec.diagnostics]
    program = lower(spec)
    assert program_problems(program) == []
    by = {c.property: c for c in program.checks}
    assert [q.id for q in by["robust"].items][:2] == ["robust[0]", "robust[1]"]
    assert len(by["robust"].items) == 6 and by["robust"].options == ir.CheckOptions(10.0, "bounds")
    q = by["robust"].items[3]
    assert (q.index, q.label, q.eps) == (3, 3, 2 / 255)
    assert q.region == ir.LinfBall(ir.DataPoint(spec.datasets["test"].__class__(
        "test", str(workspace / "d.npz"), "npz", tuple(range(6)), (("shape", "4"),)), 3), 2 / 255, (0.0, 1.0))
    # argmax == 3 over 4 classes: 3 disjuncts of 1 constraint, ties unsafe
    assert len(q.spec.unsafe) == 3 and all(len(c.constraints) == 1 for c in q.spec.unsafe)
    assert q.spec.violated_by([0, 0, 0, 0]) and not q.spec.violated_by([0, 0, 0, 1])
    coarse = [q.id for q in by["coarse"].items]
    assert coarse[:2] == ["coarse[0]@level1", "coarse[0]@level2"] and len(coarse) == 12
    level1 = by["coarse"].items[0]  # label cat: animal = {cat, dog}
    assert len(level1.spec.unsafe) == 2 and all(len(c.constraints) == 2 for c in level1.spec.unsafe)
    assert level1.spec.violated_by([0, 0, 1, 0]) and not level1.spec.violated_by([0, 2, 1, 0])
    (lin,) = by["lin"].items
    assert isinstance(lin.region, ir.Box) and lin.region.upper == (1.0, 1.0, 0.5, 0.5)
    assert lin.spec.violated_by([4.0, 0, 0, 0]) and lin.spec.violated_by([1.0, 0.95, 0, 0])
    assert not lin.spec.violated_by([1.0, 0.5, 0, 0])
    notin = by["notin"].items[0]
    assert notin.eps == 0.0 and notin.spec.violated_by([0, 0, 1, 0]) and not notin.spec.violated_by([0, 1, 1, 0])
    (impl,) = by["impl"].items  # linf around a constant centre: a box clipped to the input range
    assert impl.region == ir.Box((0.0,) * 4, (1.0,) * 4)
    assert impl.spec.violated_by([1, 2, 0, 0]) and not impl.spec.violated_by([0.5, 2, 0, 0])


def test_argmax_in_set_is_linear_in_size(workspace):
    """|K| disjuncts of |S| constraints, never an exponential DNF."""
    names = " ".join(f"k{i}" for i in range(40))
    from hdsl.passes import ArgmaxIn, Not, unsafe_spec

    spec = unsafe_spec(ArgmaxIn(frozenset(range(15))), 40)
    assert len(spec.unsafe) == 25 and all(len(c.constraints) == 15 for c in spec.unsafe)
    negated = unsafe_spec(Not(ArgmaxIn(frozenset(range(15)))), 40)
    assert len(negated.unsafe) == 15 and all(len(c.constraints) == 25 for c in negated.unsafe)
    assert names  # the class names are only there to show the scale


def test_no_check_statement_checks_every_property(workspace):
    spec = run(workspace, PRELUDE + "property a = forall x in test: argmax net(x) == cat\n")
    program = lower(spec)
    assert [c.property for c in program.checks] == ["a"] and len(program.checks[0].items) == 6


def test_imports_share_declarations(workspace):
    (workspace / "common.hspec").write_text(PRELUDE + "const eps = 0.1\n")
    spec = run(workspace, 'import "common.hspec"\nproperty p = forall (x, y) in test: forall x2 in linf(x, eps): '
                          "argmax net(x2) == y\n", name="uses.hspec")
    assert spec.ok, [d.render() for d in spec.diagnostics]
    assert lower(spec).checks[0].items[0].eps == 0.1


def test_declarations_may_come_after_their_use(workspace):
    text = ("property p = forall (x, y) in later: forall x2 in linf(x, e): argmax m(x2) == y\n"
            "const e = 1/255\n" + PRELUDE.replace("model net", "model m").replace("data test", "data later"))
    spec = run(workspace, text)
    assert spec.ok, [d.render() for d in spec.diagnostics]
    assert len(lower(spec).checks[0].items) == 6


def _formulas():
    from hypothesis import strategies as st

    from hdsl import passes as P

    atoms = st.one_of(
        st.frozensets(st.integers(0, 3), max_size=4).map(P.ArgmaxIn),
        st.tuples(st.sampled_from([">=", ">", "==", "!="]), st.integers(0, 3)).map(
            lambda t: P.Linear(ir.LinearExpr(((t[1], 1.0),), -0.5), t[0])),
        st.booleans().map(P.Const),
    )
    return st.recursive(atoms, lambda f: st.one_of(
        f.map(P.Not), st.tuples(f, f).map(P.And), st.tuples(f, f).map(P.Or)), max_leaves=6)


def test_unsafe_set_matches_the_formula():
    """On random outputs, 'violated_by' is exactly 'the condition is false', and dnf_size counts the disjuncts."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from hdsl import passes as P

    def holds(f, y):
        if isinstance(f, P.Const):
            return f.value
        if isinstance(f, P.Not):
            return not holds(f.part, y)
        if isinstance(f, P.And):
            return all(holds(p, y) for p in f.parts)
        if isinstance(f, P.Or):
            return any(holds(p, y) for p in f.parts)
        if isinstance(f, P.ArgmaxIn):
            inside = [y[i] for i in f.classes]
            outside = [y[i] for i in range(4) if i not in f.classes]
            return bool(inside) and (not outside or max(inside) > max(outside))
        v = f.expr.evaluate(y)
        return {">=": v >= 0, ">": v > 0, "==": v == 0, "!=": v != 0}[f.op]

    @settings(max_examples=300, deadline=None)
    @given(_formulas(), st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]), min_size=4, max_size=4))
    def check(f, y):
        spec = P.unsafe_spec(f, 4)
        assert spec.violated_by(y) == (not holds(f, y))
        assert len(P._dnf(f, False, 4)) == P.dnf_size(f, 4)

    check()


def test_deep_nesting_is_a_diagnostic(workspace):
    spec = run(workspace, "const x = " + "1 + " * 5000 + "1\n")
    assert [d.code for d in errors(spec)] == ["E316"]


def test_union_of_boxes(workspace):
    spec = run(workspace, PRELUDE + "property u = forall x in union(box(0, 0.5), linf([1, 1, 1, 1], 0.25)): "
                                    "argmax net(x) == cat\n")
    (q,) = lower(spec).checks[0].items
    assert q.region == ir.UnionRegion((ir.Box((0.0,) * 4, (0.5,) * 4), ir.Box((0.75,) * 4, (1.0,) * 4)))
    assert program_problems(lower(spec)) == []
    spec = run(workspace, PRELUDE + "property u = forall (x, y) in test: forall x2 in union(box(0, 1), linf(x, 0.1)): "
                                    "argmax net(x2) == y\n")
    assert [d.code for d in errors(spec)] == ["E310"]


def test_group_of_a_hierarchy_node(workspace):
    spec = run(workspace, PRELUDE + "property g = forall x in box(0, 1): argmax net(x) in group(h, vehicle)\n")
    (q,) = lower(spec).checks[0].items
    assert q.spec.violated_by([1, 0, 0, 0]) and not q.spec.violated_by([0, 0, 0, 1])
    assert len(q.spec.unsafe) == 2 and all(len(c.constraints) == 2 for c in q.spec.unsafe)
