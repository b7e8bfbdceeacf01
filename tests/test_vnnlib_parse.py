"""VNN-LIB 1.0 parsing: semantics of the benchmark forms, gzip, diagnostics, speed."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest

from hdsl.diagnostics import HdslError
from hdsl.ir import Box, Conjunction, Constraint, LinearExpr, UnionRegion
from hdsl.vnnlib import load_vnnlib, parse_vnnlib, read_vnnlib_text

DATA = Path(__file__).parent / "data" / "vnncomp"
ACAS = DATA / "acasxu" / "vnnlib"


def decl(n: int, m: int) -> str:
    return "".join(f"(declare-const X_{i} Real)\n" for i in range(n)) + "".join(
        f"(declare-const Y_{j} Real)\n" for j in range(m))


def c(terms, const=0.0, strict=False) -> Constraint:
    return Constraint(LinearExpr(tuple(terms), const), strict)


def test_acas_prop2_box_and_conjunction():
    p = load_vnnlib(ACAS / "prop_2.vnnlib")
    assert (p.num_inputs, p.num_outputs) == (5, 5)
    assert p.region == Box((0.6, -0.5, -0.5, 0.45, -0.5), (0.679857769, 0.5, 0.5, 0.5, -0.45))
    # (<= Y_j Y_0) means Y_0 - Y_j >= 0: "COC is maximal" is unsafe
    assert p.spec.unsafe == (Conjunction(tuple(c(((0, 1.0), (j, -1.0))) for j in range(1, 5))),)
    assert p.spec.violated_by([1.0, 0.0, 0.0, 0.0, 1.0])  # tie with Y_4 is unsafe (non-strict)
    assert not p.spec.violated_by([1.0, 0.0, 0.0, 0.0, 1.5])


def test_acas_prop1_constant_threshold():
    p = load_vnnlib(ACAS / "prop_1.vnnlib")
    assert p.spec.unsafe == (Conjunction((c(((0, 1.0),), -3.991125645861615),)),)
    assert p.spec.violated_by([3.991125645861615, 0, 0, 0, 0])
    assert not p.spec.violated_by([3.99112564586161, 0, 0, 0, 0])


def test_acas_prop6_input_disjunction_is_a_union_of_boxes():
    p = load_vnnlib(ACAS / "prop_6.vnnlib")
    assert isinstance(p.region, UnionRegion) and len(p.boxes) == 2
    a, b = p.boxes
    assert a.lower[1] == 0.11140846 and a.upper[1] == 0.499999896
    assert b.lower[1] == -0.499999896 and b.upper[1] == -0.11140846
    assert a.lower[0] == b.lower[0] == -0.129289109
    assert len(p.spec.unsafe) == 4 and all(len(d.constraints) == 1 for d in p.spec.unsafe)
    assert p.contains([0.0, 0.2, -0.4996, 0.0, 0.0]) and p.contains([0.0, -0.2, -0.4996, 0.0, 0.0])
    assert not p.contains([0.0, 0.0, -0.4996, 0.0, 0.0])  # the gap between the two boxes


def test_acas_prop7_output_disjunction():
    p = load_vnnlib(ACAS / "prop_7.vnnlib")
    assert len(p.spec.unsafe) == 2
    assert p.spec.unsafe[0].constraints == tuple(c(((i, 1.0), (3, -1.0))) for i in (0, 1, 2))


def test_gzip_by_magic_bytes(tmp_path):
    gz = ACAS / "prop_4.vnnlib.gz"
    text = gzip.decompress(gz.read_bytes()).decode()
    assert read_vnnlib_text(gz) == text
    renamed = tmp_path / "prop_4.vnnlib"  # gzipped content without the .gz suffix
    renamed.write_bytes(gz.read_bytes())
    assert load_vnnlib(renamed) == parse_vnnlib(text, str(renamed))


def test_mnist_784_inputs_gzipped():
    p = load_vnnlib(DATA / "mnist_fc" / "prop_1_0.03.vnnlib.gz")
    assert (p.num_inputs, p.num_outputs) == (784, 10)
    box = p.region
    assert isinstance(box, Box)
    assert all(0.0 <= lo <= hi <= 1.0 for lo, hi in zip(box.lower, box.upper))
    assert len(p.spec.unsafe) == 9  # "some other class >= the label"


def test_strict_equal_and_arithmetic_constants():
    text = decl(1, 3) + """
    (assert (>= X_0 -0.5)) (assert (<= X_0 1e-3))
    (assert (or (and (< Y_0 Y_1)) (and (> Y_2 (- 0.5))) (and (= Y_0 (+ Y_1 (* 2 Y_2) 1.5)))))
    """
    p = parse_vnnlib(text)
    assert p.region == Box((-0.5,), (0.001,))
    strict_lt, strict_gt, eq = p.spec.unsafe
    assert strict_lt.constraints == (c(((0, -1.0), (1, 1.0)), 0.0, True),)
    assert strict_gt.constraints == (c(((2, 1.0),), 0.5, True),)
    assert eq.constraints == (c(((0, 1.0), (1, -1.0), (2, -2.0)), -1.5), c(((0, -1.0), (1, 1.0), (2, 2.0)), 1.5))
    assert not p.spec.violated_by([1.0, 1.0, -0.5])  # Y_0 == Y_1 is not < ; Y_2 == -0.5 is not > ; = fails
    assert strict_lt.holds([0.0, 0.5, -1.0]) and not strict_gt.holds([0.0, 0.5, -1.0])
    assert strict_gt.holds([0.0, 0.0, -0.4])
    assert eq.holds([4.5, 1.0, 1.0]) and not eq.holds([4.5, 1.0, 1.25])  # 4.5 == 1 + 2*1 + 1.5


def test_mixed_conjunction_is_split_between_inputs_and_outputs():
    text = decl(2, 2) + "(assert (and (<= X_0 1) (>= X_0 0) (<= X_1 2) (>= X_1 1) (>= Y_0 Y_1)))"
    p = parse_vnnlib(text)
    assert p.region == Box((0.0, 1.0), (1.0, 2.0))
    assert p.spec.unsafe == (Conjunction((c(((0, 1.0), (1, -1.0))),)),)


def test_no_output_assertion_means_every_output_is_unsafe():
    p = parse_vnnlib(decl(1, 1) + "(assert (<= X_0 1)) (assert (>= X_0 0))")
    assert p.spec.unsafe == (Conjunction(()),) and p.spec.violated_by([123.0])


def test_conjunction_of_two_disjunctions_is_expanded():
    text = decl(1, 2) + "(assert (<= X_0 1)) (assert (>= X_0 0))" \
        "(assert (or (>= Y_0 0) (>= Y_1 0))) (assert (or (<= Y_0 5) (<= Y_1 5)))"
    p = parse_vnnlib(text)
    assert len(p.spec.unsafe) == 4
    assert p.spec.violated_by([-1.0, 4.0])  # Y_1 >= 0 and Y_1 <= 5
    assert p.spec.violated_by([-1.0, 6.0])  # Y_1 >= 0 and Y_0 <= 5
    assert not p.spec.violated_by([-1.0, -1.0])  # neither Y_0 >= 0 nor Y_1 >= 0
    assert not p.spec.violated_by([6.0, 6.0])  # neither Y_0 <= 5 nor Y_1 <= 5


def _diag(text: str, path: str = "p.vnnlib"):
    with pytest.raises(HdslError) as info:
        parse_vnnlib(text, path)
    return info.value.diagnostics[0]


@pytest.mark.parametrize("body, code, snippet", [
    ("(assert (or (<= X_0 1) (>= Y_0 0)))", "V110", "(or (<= X_0 1) (>= Y_0 0))"),
    ("(assert (<= X_7 1))", "V112", "X_7"),
    ("(assert (<= X_0 1)) (assert (>= X_0 0)) (assert (< Y_0 (* Y_0 Y_0)))", "V113", "(* Y_0 Y_0)"),
    ("(assert (<= X_0 1)) (assert (> X_0 0))", "V116", "(> X_0 0)"),
    ("(assert (<= (* 2 X_0) 1)) (assert (>= X_0 0))", "V116", "(<= (* 2 X_0) 1)"),
    ("(assert (not (<= Y_0 1)))", "V108", "not"),
    ("(assert (<= X_0 Y_0))", "V109", "(<= X_0 Y_0)"),
    ("(assert (<= X_0 1 2))", "V107", "(<= X_0 1 2)"),
    ("(declare-fun f () Real)", "V104", "declare-fun"),
    ("(assert (<= X_0 1)", "V101", "("),
    ("(assert (<= X_0 1)))", "V101", ")"),
])
def test_unsupported_forms_give_located_diagnostics(body, code, snippet):
    text = decl(1, 1) + "; a comment\n" + body + "\n"
    d = _diag(text)
    assert d.code == code
    assert d.span is not None and d.span.path == "p.vnnlib"
    assert d.span.text == snippet
    line = text[: d.span.start].count("\n") + 1
    rendered = d.render()
    assert rendered.startswith(f"p.vnnlib:{line}:") and "^" in rendered


def test_missing_bound_and_undeclared_gap():
    assert _diag(decl(2, 1) + "(assert (<= X_0 1)) (assert (>= X_0 0)) (assert (>= X_1 0))").code == "V117"
    text = "(declare-const X_0 Real)(declare-const X_2 Real)(declare-const Y_0 Real)"
    d = _diag(text)
    assert d.code == "V115" and "X_1" in d.message


def test_missing_file_is_a_diagnostic(tmp_path):
    with pytest.raises(HdslError) as info:
        load_vnnlib(tmp_path / "nope.vnnlib")
    assert info.value.diagnostics[0].code == "V001"


def test_3072_inputs_parse_fast():
    n = 3072
    lines = [decl(n, 10)]
    for i in range(n):
        lines.append(f"(assert (<= X_{i} {0.5 + i * 1e-5!r}))\n(assert (>= X_{i} {0.4 + i * 1e-5!r}))\n")
    lines.append("".join(f"(assert (>= Y_1 Y_{j}))\n" for j in range(10) if j != 1))
    text = "".join(lines)
    start = time.perf_counter()
    p = parse_vnnlib(text)
    elapsed = time.perf_counter() - start
    assert p.num_inputs == n and p.region.lower[3071] == 0.4 + 3071e-5
    assert elapsed < 3.0, elapsed  # about 0.15 s on one core; generous for loaded CI machines
