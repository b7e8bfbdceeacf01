"""Formatter: idempotent, meaning-preserving (same AST, same IR), comment-preserving; parser fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdsl.check import check_file, check_source
from hdsl.diagnostics import HdslError
from hdsl.fmt import format_text
from hdsl.irtext import format_program
from hdsl.lower import lower
from hdsl.parser import parse_text
from hdsl.source import SourceFile

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.hspec")) + sorted((ROOT / "tests" / "golden").glob("*.hspec"))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_fmt_keeps_every_spec_and_its_ir(path, tmp_path):
    text = path.read_text()
    out = format_text(text)
    assert format_text(out) == out
    assert parse_text(out) == parse_text(text)
    assert sorted(c for _, c in parse_text(out).comments) == sorted(c for _, c in parse_text(text).comments)
    before = check_file(path, deep=False)
    if not before.ok:
        return
    twin = path.with_name(f".fmt-{path.name}")  # same directory: same relative paths
    try:
        twin.write_text(out)
        after = check_file(twin, deep=False)
        assert after.ok
        assert format_program(lower(after), str(path.parent)) == format_program(lower(before), str(path.parent))
    finally:
        twin.unlink()


@pytest.mark.parametrize("path", sorted((ROOT / "specs").glob("*.hspec")), ids=lambda p: p.name)
def test_shipped_specs_check_clean(path):
    spec = check_file(path, deep=False)
    assert spec.ok, [d.render() for d in spec.diagnostics]
    from hdsl.validate import program_problems

    assert program_problems(lower(spec)) == []


# --------------------------------------------------------------------------- random specs

NAMES = st.sampled_from(["a", "b", "net", "x", "y", "eps", "cat", "h", "linf", "box", "ancestor", "f"])
NUMBERS = st.sampled_from(["0", "1", "2.5", "255", "1e-3", ".5", "7."])


def _expr():
    atoms = st.one_of(
        NAMES, NUMBERS, st.just("all"), st.just("true"), st.just("false"), st.just('"s\\"q"'),
        st.lists(NUMBERS, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(NAMES, max_size=3).map(lambda xs: "{" + ", ".join(xs) + "}"),
    )

    def grow(inner):
        ops = ["+", "-", "*", "/", "and", "or", "implies", "<=", ">=", "<", ">", "==", "!=", "in"]
        return st.one_of(
            st.tuples(inner, st.sampled_from(ops), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
            inner.map(lambda e: f"-({e})"),
            inner.map(lambda e: f"not ({e})"),
            inner.map(lambda e: f"argmax ({e})"),
            st.tuples(NAMES, st.lists(inner, max_size=2), st.booleans(), inner).map(
                lambda t: f"{t[0]}({', '.join(t[1] + ([f'level {t[3]}'] if t[2] else []))})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
            st.tuples(inner, NUMBERS).map(lambda t: f"({t[0]})[{t[1]}:]"),
            st.tuples(NAMES, inner, inner).map(lambda t: f"(forall {t[0]} in ({t[1]}): {t[2]})"),
        )

    return st.recursive(atoms, grow, max_leaves=8)


EXPR = _expr()
COMMENT = st.sampled_from(["", "  # note", "# x = 1"])
STATEMENT = st.one_of(
    st.tuples(NAMES, EXPR).map(lambda t: f"const {t[0]}_c = {t[1]}"),
    st.tuples(NAMES, EXPR).map(lambda t: f"property {t[0]}_p = {t[1]}"),
    st.tuples(NAMES, EXPR, EXPR).map(lambda t: f"property {t[0]}_q = forall (x, y) in d: forall x2 in ({t[1]}): {t[2]}"),
    st.lists(NAMES, min_size=1, max_size=4).map(lambda xs: "classes k = " + " ".join(xs)),
    st.just("hierarchy h over k {\n g { a b } # c\n other { c } }"),
    st.just('model m = onnx "m.onnx" { input [1, 2] in [0, 1] normalize mean [0.5] std [0.25] outputs k }'),
    st.just('data d = csv "d.csv" { label column 0 scale 1/255 layout hwc -> chw shape [3, 2, 2] } [1:] take 3'),
    st.just('check a_p, b_p timeout 60s backend auto'),
    st.tuples(EXPR, EXPR, EXPR).map(lambda t: f'model m = onnx "m.onnx" {{ input ({t[0]}) in ({t[1]}) outputs ({t[2]}) }}'),
    st.tuples(EXPR, EXPR, EXPR).map(lambda t: f'data d = npz "d.npz" {{ scale ({t[0]}) }} [({t[1]}):] take ({t[2]})'),
    st.tuples(EXPR, EXPR).map(lambda t: f"check a_p timeout ({t[0]})  property s_p = a with confidence ({t[1]})"),
    st.just('causal model cm { input u, v in [0, 1] w = u + v }'),
    st.just('alignment al of cm to m { w -> layer "fc"[0:2] }'),
)
SPEC = st.lists(st.tuples(STATEMENT, COMMENT, st.sampled_from(["\n", "\n\n", "   \n"])), max_size=6).map(
    lambda items: "".join(s + c + sep for s, c, sep in items))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPEC)
def test_fmt_is_idempotent_and_keeps_the_ast(text):
    try:
        before = parse_text(text)
    except HdslError:
        return  # e.g. a keyword used as a name by the generator
    out = format_text(text)
    assert parse_text(out) == before
    assert format_text(out) == out
    assert len(parse_text(out).comments) == len(before.comments)


FRAGMENTS = st.sampled_from(
    ["property", "p", "=", "forall", "(", ")", "x", ",", "y", "in", "d", ":", "argmax", "net", "==", "[", "]",
     "{", "}", "0", "1.5", "/", "-", "->", "#c\n", "\n", " ", '"s"', '"', "'", "$", "é", "level", "all",
     "model", "onnx", "data", "check", "timeout", "60s", "hierarchy", "over", "classes", "const", "import"])


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAGMENTS, max_size=30).map(" ".join) | st.text(max_size=60))
def test_parser_and_checker_never_crash(tmp_path_factory, text):
    source = SourceFile(str(tmp_path_factory.getbasetemp() / "fuzz.hspec"), text)
    try:
        parse_text(text)
    except HdslError as err:
        for d in err.diagnostics:
            assert d.code in ("E101", "E102", "E103")
            assert 0 <= d.span.start <= d.span.end <= len(text)
            assert d.render()
    spec = check_source(source, deep=False)  # collects diagnostics, never raises
    for d in spec.diagnostics:
        assert d.code and d.message and d.render()
