"""Planner: handler registry, backend choice, errors and timeouts become results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from hdsl import backends, ir, planner
from hdsl.backends import Budget
from hdsl.nn.build import random_mlp, save
from hdsl.results import MeasurementResult, Result, Status, Verdict

torch.set_num_threads(1)


def _spec(y, n):
    return ir.OutputSpec(tuple(ir.Conjunction((ir.Constraint(ir.LinearExpr(((k, 1.0), (y, -1.0)))),))
                               for k in range(n) if k != y))


@pytest.fixture
def net(tmp_path):
    return ir.Network("n", save(random_mlp(np.random.default_rng(1), [3, 8, 3]), tmp_path / "m.onnx"), (3,))


def _q(net, eps, backend="auto", timeout=20.0, qid="q"):
    from hdsl.nn import load_onnx

    c = np.array([0.1, -0.2, 0.3])
    y = int(load_onnx(net.path)(torch.tensor(c, dtype=torch.float32)[None]).argmax())
    return ir.Query(qid, net, ir.Box(tuple(c - eps), tuple(c + eps)), _spec(y, 3), "p",
                    ir.CheckOptions(timeout, backend))


class _Boom:
    name = "boom"
    required_modules = ()

    def supports(self, q):
        return True

    def run(self, q, budget):
        raise RuntimeError("kaboom")


class _Slow:
    name = "slow"
    required_modules = ()

    def supports(self, q):
        return True

    def run(self, q, budget):
        while not budget.expired():
            pass
        return Result(q.id, Verdict.UNKNOWN, "slow")


@pytest.fixture
def fake_backends(monkeypatch):
    import sys
    import types

    import importlib.machinery

    mod = types.ModuleType("hdsl_test_fake_backends")
    mod.__spec__ = importlib.machinery.ModuleSpec("hdsl_test_fake_backends", None)
    mod.Boom, mod.Slow = _Boom, _Slow
    monkeypatch.setitem(sys.modules, "hdsl_test_fake_backends", mod)
    monkeypatch.setitem(backends.REGISTRY, "boom", "hdsl_test_fake_backends:Boom")
    monkeypatch.setitem(backends.REGISTRY, "slow", "hdsl_test_fake_backends:Slow")


def test_registered_and_auto(net):
    assert "bounds" in backends.REGISTRY and "attack" in backends.REGISTRY
    r = planner.solve_query(_q(net, 1e-3))
    assert r.verdict is Verdict.PROVED and r.backend == "bounds"
    r = planner.run_item(_q(net, 1e-3, backend="attack"))
    assert r.verdict is Verdict.UNKNOWN and r.backend == "attack"


def test_unknown_backend_and_exceptions_are_errors(net, fake_backends):
    r = planner.solve_query(_q(net, 1e-3, backend="nope"))
    assert r.verdict is Verdict.ERROR and "unknown backend" in r.message
    r = planner.solve_query(_q(net, 1e-3, backend="boom"))
    assert r.verdict is Verdict.ERROR and "kaboom" in r.message


def test_timeout(net, fake_backends):
    r = planner.solve_query(_q(net, 1e-3, backend="slow", timeout=0.2))
    assert r.verdict is Verdict.TIMEOUT


def test_bad_onnx_is_an_error_result(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not onnx")
    q = ir.Query("b", ir.Network("b", str(bad), (1,)), ir.Box((0.0,), (1.0,)), _spec(0, 2), "p",
                 ir.CheckOptions(5.0, "bounds"))
    r = planner.solve_query(q)
    assert r.verdict is Verdict.ERROR and "E501" in r.message


def test_portfolio_continues_after_unknown(net, fake_backends, monkeypatch):
    monkeypatch.setattr(planner, "PORTFOLIO", ["attack", "bounds"])
    r = planner.solve_query(_q(net, 1e-3))
    assert r.verdict is Verdict.PROVED and r.backend == "bounds"
    planner.add_to_portfolio("slow", after="attack")
    assert planner.PORTFOLIO == ["attack", "slow", "bounds"]


def test_solve_queries_batches_and_agrees(net):
    qs = [_q(net, eps, qid=f"q{eps}") for eps in (1e-3, 0.05, 2.0)]
    batch = planner.solve_queries(qs)
    single = [planner.solve_query(q) for q in qs]
    assert [r.verdict for r in batch] == [r.verdict for r in single]


@dataclass(frozen=True)
class _Measure:
    id: str


def test_register_handler():
    planner.register_handler(_Measure, lambda item, budget: MeasurementResult(item.id, Status.PASS, 1.0))
    r = planner.run_item(_Measure("m"), 1.0)
    assert r.status is Status.PASS
    with pytest.raises(TypeError):
        planner.run_item(object(), 1.0)


def test_an_open_result_keeps_what_the_later_stages_found():
    first = Result("q", Verdict.UNKNOWN, "bounds", "alpha", -0.5, message="the bounds do not prove it")
    later = Result("q", Verdict.TIMEOUT, "bab", message="12 boxes open; 3 boxes are safe in real arithmetic")
    msg = planner._also(first, [first, later])
    assert msg.startswith("the bounds do not prove it") and "bab: 12 boxes open" in msg
    assert planner._also(first, [first]) == "the bounds do not prove it"
