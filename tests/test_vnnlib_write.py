"""VNN-LIB export: parse(write(q)) has the same region and unsafe set as q."""

from __future__ import annotations

import gzip
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdsl.diagnostics import HdslError
from hdsl.ir import (Box, Conjunction, Constraint, DataPoint, Dataset, LinearExpr, LinfBall, Network,
                     OutputSpec, Query, UnionRegion)
from hdsl.vnnlib import format_counterexample, parse_vnnlib, to_query, write_vnnlib


def query(region, spec, shape=(3,), outputs=4, **net) -> Query:
    return Query("q0", Network("n", "n.onnx", shape, num_outputs=outputs, **net), region, spec, "p")


def c(terms, const=0.0, strict=False) -> Constraint:
    return Constraint(LinearExpr(tuple(terms), const), strict)


def roundtrip(q: Query, **kw):
    return parse_vnnlib(write_vnnlib(q, None, **kw), "out.vnnlib")


def test_simple_forms_use_plain_comparisons():
    spec = OutputSpec((Conjunction((c(((0, 1.0), (2, -1.0))), c(((1, 1.0),), -3.5), c(((3, -1.0),), 0.25))),))
    q = query(Box((-1.0, 0.0, 1e-7), (1.0, 0.5, 2.0)), spec)
    text = write_vnnlib(q)
    assert "(assert (>= Y_0 Y_2))" in text
    assert "(assert (>= Y_1 3.5))" in text
    assert "(assert (<= Y_3 0.25))" in text
    assert "(assert (>= X_2 0.0000001))" in text  # no exponent: SMT-LIB decimals
    p = parse_vnnlib(text)
    assert p.region == q.region and p.spec == spec and p.num_outputs == 4


def test_union_and_disjunctions_roundtrip():
    region = UnionRegion((Box((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), Box((-2.0, 0.5, 0.0), (-1.0, 0.75, 0.1))))
    spec = OutputSpec((Conjunction((c(((0, 2.0), (1, -0.5)), 0.125, True),)),
                       Conjunction((c(((1, -1.0), (3, 1.0))), c(((2, 1.0),), 1.0, True)))))
    p = roundtrip(query(region, spec))
    assert p.region == region and p.spec == spec


def test_nothing_unsafe_is_written_unsatisfiable():
    p = roundtrip(query(Box((0.0,) * 3, (1.0,) * 3), OutputSpec(())))
    for y in ([0.0] * 4, [1.0] * 4, [0.5, 3, -2, 1], [-5.0] * 4):
        assert not p.spec.violated_by(y)


def test_linf_ball_is_written_as_a_clipped_box(tmp_path):
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.array([[0.05, 0.5, 0.95], [0.2, 0.2, 0.2]], dtype=np.float32), y=np.array([1, 0]))
    ball = LinfBall(DataPoint(Dataset("d", str(tmp_path / "d.npz"), "npz"), 0), 0.1, (0.0, 1.0))
    q = query(ball, OutputSpec((Conjunction((c(((1, 1.0), (0, -1.0))),)),)))
    centre = [float(np.float32(v)) for v in (0.05, 0.5, 0.95)]
    expected = Box((0.0, centre[1] - 0.1, centre[2] - 0.1), (centre[0] + 0.1, centre[1] + 0.1, 1.0))
    assert roundtrip(q).region == expected  # centre read from the dataset
    assert roundtrip(q, center=[0.05, 0.5, 0.95]).region == Box((0.0, 0.4, 0.95 - 0.1), (0.05 + 0.1, 0.6, 1.0))


def test_normalisation_is_folded_outward():
    q = query(Box((0.0, 0.2, 0.4, 0.6), (0.1, 0.3, 0.5, 0.7)), OutputSpec(()), shape=(2, 2),
              mean=(0.5, 0.25), std=(0.2, 0.5))
    p = roundtrip(q)
    raw = q.region
    for i in range(4):
        ch = i // 2
        mu, sd = (0.5, 0.25)[ch], (0.2, 0.5)[ch]
        assert p.region.lower[i] <= (raw.lower[i] - mu) / sd <= p.region.upper[i]
        assert p.region.lower[i] < (raw.lower[i] - mu) / sd  # strictly outward (one ulp)
        assert math.isclose(p.region.upper[i], (raw.upper[i] - mu) / sd, rel_tol=1e-12, abs_tol=1e-15)


def test_write_to_file_plain_and_gzip(tmp_path):
    q = query(Box((0.0,) * 3, (1.0,) * 3), OutputSpec((Conjunction((c(((0, 1.0),)),)),)))
    text = write_vnnlib(q, tmp_path / "a.vnnlib")
    assert (tmp_path / "a.vnnlib").read_text() == text
    write_vnnlib(q, tmp_path / "a.vnnlib.gz")
    assert gzip.decompress((tmp_path / "a.vnnlib.gz").read_bytes()).decode() == text


def test_to_query_checks_the_input_size():
    p = parse_vnnlib("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 1))(assert (>= X_0 0))")
    q = to_query(p, Network("n", "n.onnx", (1,), num_outputs=2), "id")
    assert q.region == p.region and q.spec == p.spec
    with pytest.raises(HdslError) as info:
        to_query(p, Network("n", "n.onnx", (2, 3)), "id")
    assert "takes 6" in info.value.diagnostics[0].message


def test_counterexample_block_parses_like_the_vnncomp_scorer():
    text = format_counterexample([0.5, -1e-8], [3.0])
    assert text == "((X_0 0.5)\n (X_1 -1e-08)\n (Y_0 3.0))"
    body = text.replace("\n", " ").strip()[1:-1]
    pairs = [p.strip()[1:].split(" ") for p in body.split(")") if p.strip()]
    assert [(n, float(v)) for n, v in pairs] == [("X_0", 0.5), ("X_1", -1e-8), ("Y_0", 3.0)]


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=64)
coef = st.one_of(st.sampled_from([1.0, -1.0, 2.0, -0.5]), finite.filter(lambda v: v != 0.0))


@st.composite
def boxes(draw, n):
    lo = [draw(finite) for _ in range(n)]
    hi = [a + abs(draw(finite)) for a in lo]
    return Box(tuple(lo), tuple(hi))


@st.composite
def constraints(draw, m):
    idx = sorted(draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=3)))
    return c(tuple((i, draw(coef)) for i in idx), draw(finite) + 0.0, draw(st.booleans()))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_roundtrip_property(data):
    n, m = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    parts = data.draw(st.lists(boxes(n), min_size=1, max_size=3))
    region = parts[0] if len(parts) == 1 else UnionRegion(tuple(parts))
    spec = OutputSpec(tuple(
        Conjunction(tuple(data.draw(st.lists(constraints(m), min_size=1, max_size=3))))
        for _ in range(data.draw(st.integers(1, 3)))))
    q = query(region, spec, shape=(n,), outputs=m)
    p = roundtrip(q)
    assert p.region == region
    assert p.spec == spec
    assert p.num_inputs == n and p.num_outputs == m
