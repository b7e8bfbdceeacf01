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


def random_scaled_net(rng: np.random.Generator, outputs: tuple[int, int]) -> PwlNet:
    """Two hidden ReLU layers; weights scaled up to 30x so that float32 rounding is visible."""
    n_in, h, n_out = int(rng.integers(1, 5)), int(rng.integers(2, 9)), int(rng.integers(*outputs))
    scale = float(rng.choice([0.1, 1.0, 30.0]))
    return PwlNet((Layer((scale * rng.normal(size=(h, n_in))).astype(F32), rng.normal(size=h).astype(F32), True),
                   Layer((scale * rng.normal(size=(h, h))).astype(F32), rng.normal(size=h).astype(F32), True),
                   Layer(rng.normal(size=(n_out, h)).astype(F32), rng.normal(size=n_out).astype(F32), False)))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.sampled_from(["ibp", "crown", "alpha"]))
def test_real_bounds_contain_the_real_network_and_lie_inside_float32_bounds(seed, method):
    from hdsl.bounds import bound_state
    from hdsl.nn.onnx_import import load_onnx

    rng = np.random.default_rng(seed)
    net = random_scaled_net(rng, outputs=(1, 4))
    n_in = net.input_size
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


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 31 - 1))
def test_real_level_bounds_hold_for_the_real_network_and_are_tighter(seed):
    """The hierarchy driver's pair bounds (``hdsl.bounds.disjunction``) in real arithmetic: below every
    float64 sample of ``y_j - y_k``, never below the float32 ones."""
    import tempfile
    from pathlib import Path

    from hdsl.bounds.disjunction import Bounder, SeqNet, pair_matrix
    from hdsl.nn.onnx_import import load_onnx

    rng = np.random.default_rng(seed)
    net = random_scaled_net(rng, outputs=(2, 5))
    n_in, n_out = net.input_size, net.output_size
    c = rng.uniform(-1, 1, size=n_in)
    r = rng.uniform(0.01, 0.5, size=n_in)
    C, _ = pair_matrix(n_out)
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "n.onnx")
        to_onnx(net, path)
        seq = SeqNet.of(load_onnx(path))
        lb = {a: Bounder(seq, c - r, c + r, arithmetic=a).lower(torch.as_tensor(C)).numpy()
              for a in ("float32", "real")}
    x = np.concatenate([rng.uniform(c - r, c + r, size=(2000, n_in)), (c - r)[None], (c + r)[None]])
    diffs = net.forward(x, dtype=np.float64) @ C.T
    assert np.all(lb["real"][None] <= diffs.min(axis=0) + 1e-12)
    assert np.all(lb["real"] >= lb["float32"])


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


def _hierarchy_checker(tmp_path, net: PwlNet, arithmetic: str, lo: float, hi: float):
    from hdsl.hierarchy_check import HierarchyChecker

    path = str(tmp_path / f"h_{arithmetic}.onnx")
    to_onnx(net, path)
    network = ir.Network("h", path, (net.input_size,), (lo, hi), num_outputs=net.output_size)
    return HierarchyChecker(network, None, methods=("pairs", "lambda"), arithmetic=arithmetic)


def thin_level_net() -> PwlNet:
    """y = (relu(1000 x) - relu(1000 x) + 1e-4, -1, 0): argmax in {0, 1} holds by 1e-4 in reals."""
    return PwlNet((
        Layer(np.array([[1000.0], [1000.0]], F32), np.zeros(2, F32), True),
        Layer(np.array([[1.0, -1.0], [0.0, 0.0], [0.0, 0.0]], F32), np.array([1e-4, -1.0, 0.0], F32), False),
    ))


def test_hierarchy_level_below_float32_rounding_is_proved_only_in_real_arithmetic(tmp_path):
    from hdsl.bounds.disjunction import level_bounds
    from hdsl.nn import load_onnx
    from hdsl.results import Verdict

    sets = [(1, (0, 1), "level 1")]
    verdicts = {}
    for arithmetic in ("float32", "real"):
        checker = _hierarchy_checker(tmp_path, thin_level_net(), arithmetic, 0.5, 1.0)
        checker._box = checker.real_ball(np.array([0.75]), 0.25)
        pr = checker.check_point(np.array([0.75]), 0, 0.25, sets=sets)
        (lv,) = [v for v in pr.levels if v.classes == (0, 1)]
        verdicts[arithmetic] = lv.verdict
        res = level_bounds(load_onnx(checker.network.path), np.array([0.5]), np.array([1.0]), [((0, 1), (2,))],
                           arithmetic=arithmetic)[0]
        assert (not res.open_outside) == (arithmetic == "real")
        if arithmetic == "real":
            assert 0 < res.margin <= 1e-4  # sound: never above the true margin
    assert verdicts == {"float32": Verdict.UNKNOWN, "real": Verdict.PROVED}


def test_hierarchy_counterexamples_must_violate_in_real_arithmetic(tmp_path, monkeypatch):
    """The level driver's replay under arithmetic real rejects a float32-only violation."""
    from hdsl import replay as rp

    net = PwlNet((Layer(np.array([[1.0], [0.0], [0.0]], F32), np.array([0.0, 0.0, 0.5], F32), False),))  # (x, 0, .5)
    x = np.array([0.2])  # class 2 wins: outside {0, 1}
    for arithmetic in ("float32", "real"):
        checker = _hierarchy_checker(tmp_path, net, arithmetic, 0.0, 1.0)
        checker._box = checker.real_ball(x, 0.1)
        assert checker.replay(x, (0, 1)) is not None
        checker._box = checker.real_ball(np.array([0.9]), 0.05)
        assert checker.replay(np.array([0.9]), (0, 1)) is None  # class 0 wins: no violation at all
    monkeypatch.setattr(rp, "real_outputs", lambda network, xs: np.tile([[0.9, 0.0, 0.5]], (len(xs), 1)))
    real = _hierarchy_checker(tmp_path, net, "real", 0.0, 1.0)
    real._box = real.real_ball(x, 0.1)
    assert real.replay(x, (0, 1)) is None  # onnxruntime violates, the real network does not
    f32 = _hierarchy_checker(tmp_path, net, "float32", 0.0, 1.0)
    f32._box = f32.real_ball(x, 0.1)
    assert f32.replay(x, (0, 1)) is not None


def test_hierarchy_spec_in_real_arithmetic_is_proved_by_the_level_driver(tmp_path):
    to_onnx(thin_level_net(), str(tmp_path / "h.onnx"))
    np.savez(tmp_path / "d.npz", x=np.array([[0.75]], F32), y=np.array([0]))
    spec = tmp_path / "h.hspec"
    spec.write_text('classes c = a b z\nhierarchy h over c { g { a b } z }\n'
                    'model net = onnx "h.onnx" { input [1] in [0.5, 1] outputs c }\ndata d = npz "d.npz"\n'
                    "property p = forall (x, y) in d: forall x2 in linf(x, 0.25):\n"
                    "  argmax net(x2) in ancestor(h, y, level 1)\n")
    items = {}
    for arithmetic in ("real", "float32"):
        spec.write_text(spec.read_text().split("check")[0] + f"check p timeout 4s arithmetic {arithmetic}\n")
        res = runner.invoke(app, ["check", str(spec), "--json", "--fresh"])
        (items[arithmetic],) = json.loads(res.output)["properties"][0]["items"]
    assert items["real"]["verdict"] == "proved" and items["real"]["backend"] == "hierarchy", items["real"]
    assert items["float32"]["verdict"] not in ("proved", "falsified"), items["float32"]
