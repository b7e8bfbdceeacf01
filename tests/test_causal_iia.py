"""IIA on tasks with analytically known answers (causal-anchors note, section 3).

The networks are trained here (seeded, well under a second each), exported to
ONNX and imported through ``hdsl.nn.load_onnx``: the interventions run on the
real import path.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from hdsl.causal import tasks
from hdsl.causal.alignment import Alignment, Rotation, Site, encode_inputs
from hdsl.causal.iia import decide, measure_iia
from hdsl.causal.intervene import Interchanger
from hdsl.diagnostics import HdslError
from hdsl.results import Status


def _align(name, model, entries, node="h"):
    return Alignment(name, model.name, "net", tuple((v, Site(node, a, b)) for v, a, b in entries))


@pytest.fixture(scope="module")
def heq(tmp_path_factory):
    from hdsl.nn import load_onnx

    task = tasks.heq_task()
    net = tasks.train(task, seed=0)
    path = tasks.to_onnx(net, tmp_path_factory.mktemp("heq") / "heq.onnx")
    return task, load_onnx(path), path


@pytest.fixture(scope="module")
def circuit(tmp_path_factory):
    from hdsl.nn import load_onnx

    task = tasks.bool_task()
    net = tasks.train(task, seed=0)
    path = tasks.to_onnx(net, tmp_path_factory.mktemp("bool") / "bool.onnx")
    return task, load_onnx(path), path


def test_heq_onnx_matches_onnxruntime(heq):
    import onnxruntime as ort

    task, graph, path = heq
    m = task.model
    x = encode_inputs(m, _align("a", m, ()), m.enumerate_inputs())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": x})[0]
    ours = graph.forward(torch.from_numpy(x)).numpy()
    assert np.abs(ref - ours).max() < 1e-4
    assert (ref.argmax(1) == m.label(m.run(m.enumerate_inputs()))).all()


def test_heq_right_wrong_null_exact(heq):
    task, graph, _ = heq
    m = task.model
    right = measure_iia(graph, m, _align("right", m, task.right), [("WX",)])
    assert right.task_acc == 1
    assert right.iia == 1 and right.iia_eff == 1
    assert right.pairs == 1296 ** 2
    wrong = measure_iia(graph, m, _align("wrong", m, task.wrong), [("WX",)])
    assert wrong.iia == Fraction(97, 162) and wrong.hits == 1_005_696
    assert wrong.iia_eff == Fraction(5, 18) and wrong.effective_hits == 129_600 and wrong.effective == 466_560
    null = measure_iia(graph, m, _align("null", m, ()), [("WX",)])
    assert null.iia == Fraction(13, 18) and null.hits == 1_213_056
    assert null.effective_hits == 0
    assert right.null == wrong.null == null.null == Fraction(13, 18)
    res = decide("wrong", wrong, 0.95)
    assert res.status is Status.FAIL and dict(res.details)["iia_exact"] == "97/162"
    assert decide("right", right, 0.95).status is Status.PASS


def test_heq_multi_source_and_shared_source(heq):
    task, graph, _ = heq
    m = task.model
    right = _align("right", m, task.right)
    multi = measure_iia(graph, m, right, [("WX",), ("YZ",)], samples=4000, seed=1)
    assert multi.mode == "sampled" and multi.iia == 1
    shared = measure_iia(graph, m, right, [("WX", "YZ")], samples=4000, seed=2)
    assert shared.iia == 1
    # the wrong alignment puts both variables on YZ's block: overlapping units are refused
    both_wrong = _align("w", m, (("WX", 8, 16), ("YZ", 8, 16)))
    with pytest.raises(HdslError) as err:
        measure_iia(graph, m, both_wrong, [("WX", "YZ")], samples=10)
    assert err.value.diagnostics[0].code == "C211"


def test_bool_circuit_exact(circuit):
    task, graph, _ = circuit
    m = task.model
    wrong = measure_iia(graph, m, _align("wrong", m, task.wrong), [("P",)])
    assert wrong.task_acc == 1 and wrong.iia == Fraction(65, 128) and wrong.iia_eff == Fraction(1, 8)
    null = measure_iia(graph, m, _align("null", m, ()), [("P",)])
    assert null.iia == Fraction(23, 32)
    right = measure_iia(graph, m, _align("right", m, task.right), [("P",)])
    assert right.iia == 1


def test_sampled_verdicts(heq):
    task, graph, _ = heq
    m = task.model
    right = measure_iia(graph, m, _align("right", m, task.right), [("WX",)], samples=72, seed=0)
    res = decide("r", right, 0.95, ">=", confidence=0.95)
    assert right.hits == 72 and res.status is Status.PASS and res.interval[0] == pytest.approx(0.9501, abs=1e-4)
    wrong = measure_iia(graph, m, _align("wrong", m, task.wrong), [("WX",)], samples=2000, seed=0)
    assert decide("w", wrong, 0.95, ">=", confidence=0.95).status is Status.FAIL
    # on label-changing pairs only
    eff = decide("w", wrong, 0.5, ">=", confidence=0.95, metric="effective")
    assert eff.samples == wrong.effective and eff.status is Status.FAIL


def test_rotated_alignment_recovers_modular_split(heq):
    """A rotation that only permutes the blocks' neurons keeps IIA 1; a random one breaks it."""
    task, graph, _ = heq
    m = task.model
    perm = np.eye(16)[np.r_[8:16, 0:8]]  # rows: rotated coordinate i = neuron perm[i]
    rot = Rotation(tuple(map(tuple, perm)), "perm")
    al = Alignment("rot", m.name, "net", (("WX", Site("h", 8, 16, rot)),))
    c = measure_iia(graph, m, al, [("WX",)], samples=3000, seed=3)
    assert c.iia == 1
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 16)))
    al2 = Alignment("rnd", m.name, "net", (("WX", Site("h", 0, 8, Rotation(tuple(map(tuple, q)), "random"))),))
    c2 = measure_iia(graph, m, al2, [("WX",)], samples=3000, seed=3)
    assert c2.iia < 1


def test_suffix_execution_equals_full_forward(heq):
    task, graph, _ = heq
    m = task.model
    al = _align("right", m, task.right)
    ic = Interchanger(graph, al, encode_inputs(m, al, m.enumerate_inputs()))
    g = torch.Generator().manual_seed(0)
    b = torch.randint(0, 1296, (3000,), generator=g)
    s1 = torch.randint(0, 1296, (3000,), generator=g)
    s2 = torch.randint(0, 1296, (3000,), generator=g)
    with torch.no_grad():
        fast = ic.run(b, {"WX": s1, "YZ": s2})
        full = ic.run(b, {"WX": s1, "YZ": s2}, full=True)
    assert torch.equal(fast, full)
    # splicing WX's block from s1 and YZ's from s2 equals running the recombined input
    inp = m.enumerate_inputs()
    rec = {"W": inp["W"][s1.numpy()], "X": inp["X"][s1.numpy()], "Y": inp["Y"][s2.numpy()], "Z": inp["Z"][s2.numpy()]}
    with torch.no_grad():
        direct = graph.forward(torch.from_numpy(encode_inputs(m, al, rec)))
    assert torch.allclose(direct, fast, atol=1e-5)


def test_exhaustive_budget_is_a_diagnostic(heq):
    task, graph, _ = heq
    m = task.model
    with pytest.raises(HdslError) as err:
        measure_iia(graph, m, _align("right", m, task.right), [("WX",), ("YZ",)], max_pairs=10_000_000)
    d = err.value.diagnostics[0]
    assert d.code == "C304" and "sample" in d.hint


def test_class_dedup_is_exact(heq):
    """Tuples with bit-identical downstream activations are evaluated once; counts must not change."""
    task, graph, _ = heq
    m = task.model
    for entries in (task.wrong, (("WX", 0, 4),)):
        al = _align("a", m, entries)
        fast = measure_iia(graph, m, al, [("WX",)], samples=20000, seed=5, dedup=True)
        slow = measure_iia(graph, m, al, [("WX",)], samples=20000, seed=5, dedup=False)
        assert (fast.hits, fast.effective, fast.effective_hits) == (slow.hits, slow.effective, slow.effective_hits)
    al = _align("r", m, task.right)
    ic = Interchanger(graph, al, encode_inputs(m, al, m.enumerate_inputs()))
    base_cls, (src_cls,), table = ic.outcome_table((("WX",),), limit=10 ** 6)
    assert table.shape == (36, 36)  # (Y, Z) classes of the base x (W, X) classes of the source
