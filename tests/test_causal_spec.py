"""The causal constructs of the language: lowering, diagnostics, and `hdsl check` end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hdsl.causal.ir import IIA
from hdsl.check import check_file
from hdsl.lower import lower
from hdsl.planner import run_item
from hdsl.results import Status

ROOT = Path(__file__).resolve().parents[1]

HEADER = """
model net = onnx "causal_bool.onnx" { input [8] outputs 2 }
causal model circuit {
  input a, b, c, d in bool
  P = a and b
  Q = c and d
  O = P or Q
}
alignment right of circuit to net { P -> layer "h"[0:4]  Q -> layer "h"[4:8] }
alignment wrong of circuit to net { P -> layer "h"[4:8] }
"""


@pytest.fixture()
def workdir(tmp_path):
    shutil.copy(ROOT / "models" / "causal_bool.onnx", tmp_path / "causal_bool.onnx")
    return tmp_path


def _spec(workdir, body: str):
    p = workdir / "s.hspec"
    p.write_text(HEADER + body)
    return check_file(p)


def _items(spec):
    prog = lower(spec)
    return [i for c in prog.checks for i in c.items]


def test_shipped_circuit_spec_end_to_end():
    spec = check_file(ROOT / "specs" / "causal_circuit.hspec")
    assert spec.ok, [d.render() for d in spec.diagnostics]
    results = {i.id: run_item(i) for i in _items(spec)}
    assert {k: r.status for k, r in results.items()} == {
        "right_p/iia{P}": Status.PASS, "right_p/iia{Q}": Status.PASS, "right_p/iia{P,Q}": Status.PASS,
        "wrong_p/iia{P}": Status.FAIL, "wrong_p_changed/iia{P}": Status.FAIL, "right_p_formal/iia{P}": Status.PASS,
    }
    wrong = dict(results["wrong_p/iia{P}"].details)
    assert wrong["iia_exact"] == "65/128" and wrong["null_exact"] == "23/32" and wrong["iia_eff_exact"] == "1/8"
    assert results["wrong_p_changed/iia{P}"].estimate == pytest.approx(1 / 8)
    formal = results["right_p_formal/iia{P}"]
    assert formal.method == "bound-propagation" and dict(formal.details)["proved_pairs"] == 256


def test_lowering_experiments_and_options(workdir):
    spec = _spec(workdir, """
property p = iia(net, circuit, right, over all, intervene {P}, {P, Q}) >= 0.9
property m = iia(net, circuit, right, over all, intervene [{P}, {Q}]) >= 0.9 with confidence 0.99 samples 500 seed 3
check p, m
""")
    assert spec.ok, [d.render() for d in spec.diagnostics]
    items = _items(spec)
    assert all(isinstance(i, IIA) for i in items)
    assert [i.groups for i in items] == [(("P",),), (("P", "Q"),), (("P",), ("Q",))]
    m = items[2]
    assert (m.samples, m.seed, m.confidence, m.threshold) == (500, 3, 0.99, 0.9)
    assert items[0].model.var("P").type.kind == "bool" and items[0].model.output == "O"
    r = run_item(m)
    assert r.status is Status.PASS and r.method == "clopper-pearson" and r.samples == 500


def test_arithmetic_types_are_inferred(workdir):
    p = workdir / "a.hspec"
    p.write_text("""
model net = onnx "causal_bool.onnx" { input [8] outputs 2 }
causal model add {
  input x in range(3)
  input y in [0, 2]
  input c in {red, green}
  s = x + y
  big = s >= 3
  warm = c == red and big
}
""")
    spec = check_file(p)
    from hdsl.causal.spec import lower_causal_model

    m = lower_causal_model(spec, spec.symbols["add"].node)
    assert str(m.var("s").type) == "int[0..4]" and m.var("big").type.kind == "bool"
    assert str(m.var("y").type) == "int[0..2]" and m.var("c").type.labels == ("red", "green")
    vals = m.run(m.enumerate_inputs())
    assert list(vals["big"]) == [int(a + b >= 3) for a in range(3) for b in range(3) for _ in range(2)]
    assert list(vals["warm"]) == [int(a + b >= 3 and c == 0) for a in range(3) for b in range(3) for c in range(2)]
    assert m.output == "warm"


@pytest.mark.parametrize("body, code, words", [
    ("property p = iia(net, circuit, right, over all, intervene {R}) >= 0.9\ncheck p", "E703", "not a variable"),
    ("property p = iia(net, circuit, nope, over all, intervene {P}) >= 0.9\ncheck p", "E703", "not an alignment"),
    ("property p = iia(net, circuit, right, intervene {P}) >= 0.9\ncheck p", "E703", "over all"),
    ("property p = iia(net, circuit, right, over all, intervene {P}) >= 2\ncheck p", "E703", "threshold"),
    ("alignment both of circuit to net { P -> layer \"h\"[0:4]  Q -> layer \"h\"[2:6] }\n"
     "property p = iia(net, circuit, both, over all, intervene {P, Q}) >= 0.9\ncheck p", "C211", "overlapping"),
    ("property p = iia(net, circuit, right, over all, intervene {P}, seed -1) >= 0.9\ncheck p", "E304", "seed"),
    ("property p = iia(net, circuit, right, over all, intervene {P}) >= 0.9 with samples 1e12\ncheck p", "E701",
     "at most 10,000,000"),
    ("property p = iia(net, circuit, right, over all, intervene {P}) >= 0.9 with confidence 0.9 seed 0.5\ncheck p",
     "E304", "seed"),
    ("alignment bad of circuit to net { Z -> layer \"h\"[0:4] }\n"
     "property p = iia(net, circuit, bad, over all, intervene {P}) >= 0.9\ncheck p", "E702", "not a variable"),
])
def test_bad_input_is_a_located_diagnostic(workdir, body, code, words):
    spec = _spec(workdir, body)
    errs = [d for d in spec.diagnostics if d.severity.value == "error"]
    assert errs and errs[0].code == code and words in errs[0].message, [d.render() for d in errs]
    assert errs[0].span is not None


@pytest.mark.parametrize("site, code, words", [
    ('layer "h"[4:1e308]', "E702", "past any layer's width"),
    ('layer "h"[4:9]', "C204", "exceeds node 'h''s 8 neurons"),
    ('layer "hh"[4:8]', "C203", "has no node 'hh'"),
])
def test_sites_are_checked_against_the_network_with_the_spec(workdir, site, code, words):
    """Node names and range ends are located diagnostics of `hdsl check`, once each, not error
    results of every item that uses the alignment."""
    spec = _spec(workdir, f"alignment bad of circuit to net {{ P -> layer \"h\"[0:4]  Q -> {site} }}\n"
                          "property p = iia(net, circuit, bad, over all, intervene {P, Q}) >= 0.9\n"
                          "property p2 = iia(net, circuit, bad, over all, intervene {Q}) >= 0.9\ncheck p, p2")
    errs = [d for d in spec.diagnostics if d.severity.value == "error"]
    assert [d.code for d in errs] == [code] and words in errs[0].message, [d.render() for d in errs]
    assert errs[0].span.text.startswith("Q ->") or errs[0].span.text in ("1e308",)


@pytest.mark.parametrize("p, q, overlap", [((0, 4), (2, 6), True), ((0, 4), (4, 8), False),
                                           ((3, 4), (0, 3), False), ((2, 3), (0, 8), True),
                                           ((0, 4), (4, 10**300), False), ((0, 4), (3, 10**300), True)])
def test_plain_ranges_overlap_as_intervals(p, q, overlap):
    """Without a dense projector: a range end of 1e308 once raised MemoryError here."""
    from hdsl.causal.alignment import Alignment, Site, check_disjoint
    from hdsl.diagnostics import HdslError

    alignment = Alignment("a", "m", "net", (("P", Site("h", *p)), ("Q", Site("h", *q))))
    if overlap:
        with pytest.raises(HdslError, match="overlapping"):
            check_disjoint(alignment, ("P", "Q"))
    else:
        check_disjoint(alignment, ("P", "Q"))
    check_disjoint(Alignment("a", "m", "net", (("P", Site("h", *p)), ("Q", Site("g", *q)))), ("P", "Q"))


def test_causal_model_errors(workdir):
    p = workdir / "e.hspec"
    p.write_text("""
model net = onnx "causal_bool.onnx" { input [8] outputs 2 }
causal model m {
  input a, b in bool
  P = a and Q
  Q = b
}
alignment al of m to net { P -> layer "h"[0:4] }
property p = iia(net, m, al, over all, intervene {P}) >= 0.9
check p
""")
    spec = check_file(p)
    errs = [d for d in spec.diagnostics if d.severity.value == "error"]
    assert errs and errs[0].code == "E701" and "before its equation" in errs[0].message


def test_exhaustive_budget_and_unknown_node(workdir):
    shutil.copy(ROOT / "models" / "causal_heq.onnx", workdir / "causal_heq.onnx")
    heq = """
model net = onnx "causal_heq.onnx" { input [24] outputs 2 }
causal model heq {
  input W, X, Y, Z in range(6)
  WX = W == X
  YZ = Y == Z
  O = WX == YZ
}
alignment r of heq to net { WX -> layer "h"[0:8]  YZ -> layer "nowhere"[8:16] }
property p = iia(net, heq, r, over all, intervene [{WX}, {YZ}]) >= 0.9
check p
"""
    p = workdir / "h.hspec"
    p.write_text(heq)
    spec = check_file(p)
    # a node the network does not have: a located diagnostic of the check ...
    (err,) = [d for d in spec.diagnostics if d.severity.value == "error"]
    assert err.code == "C203" and "'nowhere'" in err.message and err.span.line == 9
    p.write_text(heq.replace('"nowhere"', '"h"'))
    spec = check_file(p)
    (budget,) = [d for d in spec.diagnostics if d.severity.value == "error"]
    assert "samples" in (budget.hint or "") and "2,176,782,336" in budget.message
    # ... and, when the spec was checked without the network (`hdsl ir`), the item's error at run time
    p.write_text(heq.replace("intervene [{WX}, {YZ}]) >= 0.9", "intervene {YZ}) >= 0.9 with samples 100"))
    spec = check_file(p, deep=False)
    assert spec.ok, [d.render() for d in spec.diagnostics]
    r = run_item(_items(spec)[0])
    assert r.status is Status.ERROR and "nowhere" in r.message


def test_over_a_data_set_of_input_settings(workdir):
    import numpy as np

    rows = np.array([[a, b, c, d] for a in (0, 1) for b in (0, 1) for c in (0, 1) for d in (0, 1)])[::2]
    np.savez(workdir / "rows.npz", x=rows.astype(np.float32))
    spec = _spec(workdir, """
data settings = npz "rows.npz"
property p = iia(net, circuit, right, over settings, intervene {P}) >= 0.99
property q = iia(net, circuit, wrong, over settings, intervene {P}) >= 0.99
check p, q
""")
    assert spec.ok, [d.render() for d in spec.diagnostics]
    p, q = _items(spec)
    assert p.rows is not None and len(p.rows) == 8 and p.data == "settings"
    rp, rq = run_item(p), run_item(q)
    assert rp.status is Status.PASS and rp.samples == 64
    assert rq.status is Status.FAIL and dict(rq.details)["pairs"] == 64


def test_deadlines():
    import time

    import torch

    from hdsl.causal import tasks
    from hdsl.causal.alignment import Alignment, Site
    from hdsl.causal.iia import measure_iia
    from hdsl.diagnostics import HdslError
    from hdsl.nn import load_onnx

    graph = load_onnx(ROOT / "models" / "causal_bool.onnx")
    m = tasks.bool_model()
    al = Alignment("r", m.name, "net", (("P", Site("h", 0, 4)),))
    past = time.monotonic() - 1
    c = measure_iia(graph, m, al, [("P",)], samples=100, deadline=past)
    assert c.truncated and c.pairs == 0
    with pytest.raises(HdslError) as err:
        measure_iia(graph, m, al, [("P",)], deadline=past)
    assert err.value.diagnostics[0].code == "C305"
    assert torch.get_num_threads() >= 1


def test_encoding_and_output_mismatch_are_diagnostics(workdir):
    p = workdir / "w.hspec"
    p.write_text("""
model net = onnx "causal_bool.onnx" { input [8] outputs 2 }
causal model three {
  input a, b, c in bool
  O = a and b and c
}
causal model sum {
  input a, b, c, d in bool
  O = a + b + c + d
}
alignment al of three to net { }
alignment al2 of sum to net { }
property p = iia(net, three, al, over all, intervene {O}) >= 0.9
property q = iia(net, sum, al2, over all, intervene {O}) >= 0.9
check p, q
""")
    spec = check_file(p)
    msgs = [d.message for d in spec.diagnostics if d.severity.value == "error"]
    assert any("encode to 6 features" in m for m in msgs) and any("5 values" in m for m in msgs), msgs


def test_multi_source_exhaustive_on_the_circuit():
    from hdsl.causal import tasks
    from hdsl.causal.alignment import Alignment, Site
    from hdsl.causal.iia import measure_iia
    from hdsl.nn import load_onnx

    graph = load_onnx(ROOT / "models" / "causal_bool.onnx")
    m = tasks.bool_model()
    right = Alignment("r", m.name, "net", (("P", Site("h", 0, 4)), ("Q", Site("h", 4, 8))))
    c = measure_iia(graph, m, right, [("P",), ("Q",)])
    assert c.mode == "exhaustive" and c.pairs == 16 ** 3 and c.iia == 1
    # aligning an input to its own one-hot features of the input node works too
    inp = Alignment("i", m.name, "net", (("a", Site("x", 0, 2)),))
    assert measure_iia(graph, m, inp, [("a",)]).iia == 1


def test_scored_tuples_are_replayed_on_onnxruntime(monkeypatch):
    spec = check_file(ROOT / "specs" / "causal_rotation.hspec")
    assert spec.ok, [d.render() for d in spec.diagnostics]
    neurons, rotated = _items(spec)
    r = run_item(neurons)
    assert r.status is Status.FAIL and "onnxruntime agrees on 128/128" in dict(r.details)["replay"]
    assert run_item(rotated).status is Status.PASS
    # if the real model disagreed with hdsl's executor, the estimate would not be trusted
    import hdsl.causal.replay as replay

    real = replay.replay_tuples
    monkeypatch.setattr(replay, "replay_tuples", lambda *a: 1 - real(*a))
    r2 = run_item(neurons)
    assert r2.status is Status.INCONCLUSIVE and "disagree" in r2.message
