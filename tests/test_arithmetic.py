"""``arithmetic real``: proofs about the real-valued network only (the VNN-COMP question).

The default (``float32``) proves the real network *and* every float32 execution;
``real`` drops the float32 rounding slack, so it proves at least as much, and a
margin below float32 rounding becomes provable. Counterexamples must then
violate in float64 on the exact parameters too, not only in onnxruntime.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hdsl import ir
from hdsl.cli import app
from hdsl.exact.net import Layer, PwlNet, to_onnx

F32 = np.float32
runner = CliRunner()
torch.set_num_threads(1)


def cancel_net() -> PwlNet:
    """y = (1000 x) - (1000 x) + 1e-4: a real margin of 1e-4, below the float32 rounding bound (~5e-4)."""
    return PwlNet((
        Layer(np.array([[1000.0], [1000.0]], F32), np.zeros(2, F32), True),
        Layer(np.array([[1.0, -1.0]], F32), np.array([1e-4], F32), False),
    ))


POSITIVE = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((0, -1.0),), 0.0)),)),))  # unsafe: y <= 0


def _query(tmp_path, net: PwlNet, spec, lo, hi, backend: str, arithmetic: str) -> ir.Query:
    path = str(tmp_path / "n.onnx")
    to_onnx(net, path)
    return ir.Query("q", ir.Network("n", path, (net.input_size,)), ir.Box(tuple(lo), tuple(hi)), spec, "p",
                    ir.CheckOptions(20.0, backend, arithmetic))


@pytest.mark.parametrize("backend", ["bounds", "bab", "z3"])
def test_margin_below_float32_rounding_is_proved_only_in_real_arithmetic(tmp_path, backend):
    from hdsl.planner import solve_query

    q32 = _query(tmp_path, cancel_net(), POSITIVE, (0.5,), (1.0,), backend, "float32")
    r32 = solve_query(q32, 20.0)
    real = solve_query(replace(q32, options=replace(q32.options, arithmetic="real")), 20.0)
    assert r32.verdict.value not in ("proved", "falsified"), r32
    assert real.verdict.value == "proved", real


def test_a_real_counterexample_is_reported_in_both_arithmetics(tmp_path):
    from hdsl.planner import solve_query

    net = PwlNet((Layer(np.array([[1.0]], F32), np.array([-0.5], F32), False),))  # y = x - 0.5 < 0 near 0
    for arithmetic in ("float32", "real"):
        r = solve_query(_query(tmp_path, net, POSITIVE, (0.0,), (1.0,), "auto", arithmetic), 20.0)
        assert r.verdict.value == "falsified" and r.counterexample.replayed_with == "onnxruntime"
        assert r.counterexample.x[0] <= 0.5


def test_real_replay_rejects_a_float32_only_violation(tmp_path, monkeypatch):
    """onnxruntime violates, the real network does not: not a counterexample under arithmetic real."""
    from hdsl import replay as rp

    net = PwlNet((Layer(np.array([[1.0]], F32), np.array([-0.5], F32), False),))
    q = _query(tmp_path, net, POSITIVE, (0.0,), (1.0,), "auto", "real")
    box = (np.array([0.0]), np.array([1.0]))
    x = np.array([0.25])
    assert rp.replay(q.network, q.spec, box, x) is not None  # float32 arithmetic: a counterexample
    assert rp.replay(q.network, q.spec, box, x, arithmetic="real") is not None  # and in real arithmetic
    monkeypatch.setattr(rp, "real_outputs", lambda network, xs: np.full((len(xs), 1), 1e-3))
    assert rp.replay(q.network, q.spec, box, x, arithmetic="real") is None
    assert rp.replay(q.network, q.spec, box, x) is not None


def test_violation_needs_more_than_float64_rounding():
    from hdsl.replay import violates_in_real_arithmetic

    assert violates_in_real_arithmetic(POSITIVE, np.array([-1e-3]))
    assert not violates_in_real_arithmetic(POSITIVE, np.array([0.0]))  # on the boundary: too close to call
    assert not violates_in_real_arithmetic(POSITIVE, np.array([-1e-12]))


def test_real_outputs_are_the_float64_network(tmp_path):
    from hdsl.replay import real_outputs, run_model

    rng = np.random.default_rng(0)
    net = PwlNet((Layer(rng.normal(size=(7, 3)).astype(F32), rng.normal(size=7).astype(F32), True),
                  Layer(rng.normal(size=(2, 7)).astype(F32), rng.normal(size=2).astype(F32), False)))
    q = _query(tmp_path, net, POSITIVE, (0, 0, 0), (1, 1, 1), "auto", "real")
    x = rng.uniform(size=(20, 3))
    y = real_outputs(q.network, x)
    assert np.allclose(y, net.forward(x, dtype=np.float64), rtol=0, atol=1e-12)
    assert np.allclose(y, run_model(q.network, x.astype(F32).astype(np.float64)), atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.sampled_from(["ibp", "crown", "alpha"]))
def test_real_bounds_contain_the_real_network_and_lie_inside_float32_bounds(seed, method):
    from hdsl.bounds import bound_state
    from hdsl.nn.onnx_import import load_onnx

    rng = np.random.default_rng(seed)
    n_in, h, n_out = int(rng.integers(1, 5)), int(rng.integers(2, 9)), int(rng.integers(1, 4))
    scale = float(rng.choice([0.1, 1.0, 30.0]))
    net = PwlNet((Layer((scale * rng.normal(size=(h, n_in))).astype(F32), rng.normal(size=h).astype(F32), True),
                  Layer((scale * rng.normal(size=(h, h))).astype(F32), rng.normal(size=h).astype(F32), True),
                  Layer(rng.normal(size=(n_out, h)).astype(F32), rng.normal(size=n_out).astype(F32), False)))
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "n.onnx")
        to_onnx(net, path)
        graph = load_onnx(path)
        c = rng.uniform(-1, 1, size=n_in)
        r = rng.uniform(0.01, 0.5, size=n_in)
        lo, hi = c - r, c + r
        out = {}
        for arithmetic in ("float32", "real"):
            state = bound_state(graph, lo, hi, method, torch.device("cpu"), arithmetic=arithmetic)
            out[arithmetic] = [t[0].reshape(-1).numpy() for t in state.bounds[graph.output]]
    x = rng.uniform(lo, hi, size=(2000, n_in))
    y = net.forward(x, dtype=np.float64)
    (l_real, u_real), (l32, u32) = out["real"], out["float32"]
    assert np.all(y >= l_real[None]) and np.all(y <= u_real[None])
    assert np.all(l_real >= l32 - 1e-9) and np.all(u_real <= u32 + 1e-9)


def test_store_keys_differ_by_arithmetic(tmp_path):
    from hdsl.store import item_key

    q = _query(tmp_path, cancel_net(), POSITIVE, (0.5,), (1.0,), "auto", "float32")
    assert item_key(q) != item_key(replace(q, options=replace(q.options, arithmetic="real")))


# --------------------------------------------------------------------------- the language and the CLI


def _spec(tmp_path, check_line: str) -> str:
    to_onnx(cancel_net(), str(tmp_path / "n.onnx"))
    spec = tmp_path / "s.hspec"
    spec.write_text('model n = onnx "n.onnx" {\n  input [1]\n}\n\n'
                    "property pos =\n  forall x in box([0.5], [1.0]):\n    n(x)[0] > 0\n\n" + check_line + "\n")
    return str(spec)


def test_spec_option_reaches_the_queries_and_the_json(tmp_path):
    res = runner.invoke(app, ["check", _spec(tmp_path, "check pos timeout 20s arithmetic real"), "--json"])
    assert res.exit_code == 0, res.output
    (item,) = json.loads(res.output)["properties"][0]["items"]
    assert item["verdict"] == "proved" and item["arithmetic"] == "real"


def test_default_arithmetic_cannot_prove_it_and_the_flag_overrides(tmp_path):
    spec = _spec(tmp_path, "check pos timeout 5s")
    res = runner.invoke(app, ["check", spec, "--json"])
    (item,) = json.loads(res.output)["properties"][0]["items"]
    assert item["arithmetic"] == "float32" and item["verdict"] not in ("proved", "falsified")
    res = runner.invoke(app, ["check", spec, "--arithmetic", "real"])
    assert res.exit_code == 0, res.output
    assert "arithmetic real" in res.output and "real-valued network only" in res.output


def test_bad_arithmetic_in_the_spec_is_a_located_diagnostic(tmp_path):
    res = runner.invoke(app, ["check", _spec(tmp_path, "check pos arithmetic float64"), "--json"])
    assert res.exit_code == 3
    (d,) = json.loads(res.output)["diagnostics"]
    assert (d["code"], d["line"], d["column"]) == ("E304", 9, 22)
    assert "float32" in d["hint"] and "real" in d["hint"]


@pytest.mark.parametrize("command", ["check", "bench", "vnnlib"])
def test_bad_arithmetic_flag_is_a_diagnostic_not_a_traceback(tmp_path, capsys, command):
    from hdsl.cli import main

    spec = _spec(tmp_path, "check pos")
    args = {"check": [spec], "bench": [str(tmp_path)], "vnnlib": [str(tmp_path / "n.onnx"), spec]}[command]
    with pytest.raises(SystemExit) as stop:
        main([command, *args, "--arithmetic", "float16"])
    out = capsys.readouterr()
    assert stop.value.code == 3 and "E304" in out.out + out.err and "Traceback" not in out.out + out.err
    assert "float32, real" in out.out + out.err


def test_fmt_keeps_the_option(tmp_path):
    from hdsl.fmt import format_text

    src = open(_spec(tmp_path, "check pos  timeout 20s   arithmetic real")).read()
    assert "check pos timeout 20s arithmetic real" in format_text(src)


def test_hierarchy_counterexamples_are_rechecked_in_real_arithmetic(tmp_path):
    from hdsl.hierarchy_check import _holds_in_arithmetic
    from hdsl.results import Counterexample

    net = PwlNet((Layer(np.array([[1.0], [0.0], [0.0]], F32), np.array([0.0, 0.0, 0.5], F32), False),))
    q = _query(tmp_path, net, POSITIVE, (0.0,), (1.0,), "auto", "real")  # y = (x, 0, 0.5)
    inside, outside = Counterexample((0.9,), (0.9, 0.0, 0.5), 0.0, "onnxruntime"), \
        Counterexample((0.2,), (0.2, 0.0, 0.5), 0.0, "onnxruntime")
    assert _holds_in_arithmetic(q, outside, (0, 1), 3)  # class 2 wins: outside {0, 1} in real arithmetic too
    assert not _holds_in_arithmetic(q, inside, (0, 1), 3)  # class 0 wins in the real network
    assert not _holds_in_arithmetic(q, None, (0, 1), 3)
    q32 = replace(q, options=replace(q.options, arithmetic="float32"))
    assert _holds_in_arithmetic(q32, inside, (0, 1), 3)  # float32: the onnxruntime replay already decided
