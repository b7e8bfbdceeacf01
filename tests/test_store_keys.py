"""Content hashes and the result store (issue 9)."""

import shutil

from hdsl import ir
from hdsl.results import Counterexample, MeasurementResult, Result, Status, Verdict
from hdsl.source import SourceFile
from hdsl.store import ResultStore, item_key


def _query(path, eps=0.1, span=None):
    net = ir.Network("net", str(path), (2,), (0.0, 1.0), num_outputs=2)
    spec = ir.OutputSpec((ir.Conjunction((ir.Constraint(ir.LinearExpr(((1, 1.0), (0, -1.0)))),)),))
    box = ir.Box((0.0, 0.0), (eps, eps))
    return ir.Query("p[0]", net, box, spec, "p", span=span)


def test_key_ignores_location_and_span_but_not_content(tmp_path):
    a = tmp_path / "a" / "net.onnx"
    a.parent.mkdir()
    a.write_bytes(b"network-bytes")
    b = tmp_path / "b" / "renamed.onnx"
    b.parent.mkdir()
    shutil.copy(a, b)
    src = SourceFile("x.hspec", "check p\n")
    assert item_key(_query(a)) == item_key(_query(b, span=src.span(0, 5)))
    assert item_key(_query(a)) != item_key(_query(a, eps=0.1000000001))
    b.write_bytes(b"other-bytes")
    assert item_key(_query(a)) != item_key(_query(b))


def test_store_round_trip_and_budget_rule(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    ce = Counterexample((0.5, 0.25), (1.0, 2.0), -1.0, "onnxruntime", 1e-7)
    done = Result("p[0]", Verdict.FALSIFIED, "bounds", "attack", -1.0, ce, 0.2, "", (("nodes", 3.0),))
    store.put("k1", done, 10.0)
    assert store.get("k1", 1000.0) == done  # decided results are reused whatever the budget

    undecided = Result("p[1]", Verdict.TIMEOUT, "bounds", "alpha", None, None, 10.0)
    store.put("k2", undecided, 10.0)
    assert store.get("k2", 5.0) == undecided
    assert store.get("k2", 60.0) is None  # more budget now: solve again

    store.put("k3", Result("p[2]", Verdict.ERROR, message="boom"), 10.0)
    assert store.get("k3", 10.0) is None  # errors are never cached

    m = MeasurementResult("f", Status.PASS, 0.2, (0.1, 0.3), 0.95, 40, 0.3, "<=", "bootstrap", 1.0, "", (("k", 1),))
    store.put("k4", m, None)
    assert store.get("k4", None) == m
    assert len(store) == 3
    store.close()
    assert ResultStore(tmp_path / "r.sqlite").get("k1") == done  # persisted
