"""DAS (learned rotations, held-out IIA) and formal interchange checks with the bound propagator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdsl.causal import das, formal, stats, tasks
from hdsl.causal.alignment import Alignment, Rotation, Site, check_alignment, encode_inputs
from hdsl.causal.iia import measure_iia
from hdsl.causal.intervene import Interchanger
from hdsl.diagnostics import HdslError


@pytest.fixture(scope="module")
def rotated_heq(tmp_path_factory):
    from hdsl.nn import load_onnx

    task = tasks.heq_task()
    net, q = tasks.rotate_after(tasks.train(task, seed=0), "h", seed=1)
    return task, load_onnx(tasks.to_onnx(net, tmp_path_factory.mktemp("rh") / "heq_rot.onnx")), q


@pytest.fixture(scope="module")
def circuit(tmp_path_factory):
    from hdsl.nn import load_onnx

    task = tasks.bool_task()
    return task, load_onnx(tasks.to_onnx(tasks.train(task, seed=0), tmp_path_factory.mktemp("b") / "bool.onnx"))


def test_given_rotation_aligns_where_neurons_do_not(rotated_heq):
    task, graph, q = rotated_heq
    m = task.model
    neurons = measure_iia(graph, m, Alignment("n", m.name, "", (("WX", Site("hr", 0, 8)),)), [("WX",)],
                          samples=4000)
    rot = Rotation(tuple(map(tuple, q.T.tolist())), "QT")
    rotated = measure_iia(graph, m, Alignment("r", m.name, "", (("WX", Site("hr", 0, 8, rot)),)), [("WX",)],
                          samples=4000)
    assert rotated.iia == 1 and neurons.iia < 0.9


def test_das_learns_the_rotation_and_reports_held_out(rotated_heq):
    task, graph, _ = rotated_heq
    res = das.learn_rotation(graph, task.model, "WX", "hr", 8, train_pairs=5000, test_pairs=5000, steps=150,
                             batch=256, lr=2e-2, seed=0)
    r = np.asarray(res.rotation.matrix)
    assert np.abs(r.T @ r - np.eye(16)).max() < 1e-10
    assert res.test_pairs == 5000 and res.train_pairs == 5000
    assert res.iia >= 0.95, res.summary()
    assert "held-out" in res.summary() and "learned" in res.summary()


def test_non_orthogonal_rotation_rejected():
    m = tasks.heq_model()
    bad = Rotation(tuple(map(tuple, (2 * np.eye(16)).tolist())))
    with pytest.raises(HdslError) as err:
        check_alignment(Alignment("a", m.name, "n", (("WX", Site("h", 0, 8, bad)),)), m, {"h": 16})
    assert err.value.diagnostics[0].code == "C206"


def test_interchange_graph_equals_spliced_forward(circuit):
    task, graph = circuit
    m = task.model
    al = Alignment("r", m.name, "", tuple((v, Site("h", a, b)) for v, a, b in task.right))
    x = encode_inputs(m, al, m.enumerate_inputs())
    ic = Interchanger(graph, al, x)
    ig = formal.interchange_graph(graph, [[("h", np.diag([1.0] * 4 + [0.0] * 4))]])
    b, s = torch.arange(16).repeat_interleave(16), torch.arange(16).repeat(16)
    xx = torch.cat([torch.from_numpy(x)[b], torch.from_numpy(x)[s]], 1)
    with torch.no_grad():
        assert torch.allclose(ig.forward(xx), ic.run(b, {"P": s}), atol=1e-6)


def test_certify_right_and_wrong(circuit):
    task, graph = circuit
    m = task.model
    right = Alignment("r", m.name, "", tuple((v, Site("h", a, b)) for v, a, b in task.right))
    wrong = Alignment("w", m.name, "", tuple((v, Site("h", a, b)) for v, a, b in task.wrong))
    r = formal.certify(graph, m, right, [("P",)], eps=0.01, method="crown")
    assert r.pairs == 256 and r.proved == 256
    w = formal.certify(graph, m, wrong, [("P",)], eps=0.01, method="ibp")
    iia = measure_iia(graph, m, wrong, [("P",)])
    assert w.proved / w.pairs <= float(iia.iia)  # the proved share is a lower bound on IIA
    with pytest.raises(HdslError) as err:
        formal.certify(graph, m, right, [("P",)], eps=0.6)
    assert err.value.diagnostics[0].code == "C501"


def test_clopper_pearson_anchors_and_fallback():
    lo, hi = stats.clopper_pearson(72, 72, 0.95)
    assert lo == pytest.approx(0.9501, abs=1e-4) and hi == 1.0
    assert stats.verdict((lo, hi), 0.95, ">=") == "pass"
    assert stats.verdict(stats.clopper_pearson(71, 72, 0.95), 0.95, ">=") == "inconclusive"
    lo, hi = stats.clopper_pearson(1900, 2000, 0.95)
    assert (round(lo, 4), round(hi, 4)) == (0.9395, 0.9591)
    assert stats.verdict((lo, hi), 0.95, ">=") == "inconclusive"
    for k, n, q in ((3, 10, 0.025), (1900, 2000, 0.975), (1, 1000, 0.5), (50, 60, 0.005)):
        bisect = stats.beta_ppf_bisect(q, k, n - k + 1)
        scipy_stats = pytest.importorskip("scipy.stats")
        assert bisect == pytest.approx(float(scipy_stats.beta.ppf(q, k, n - k + 1)), abs=1e-10)


def test_formal_multi_source_and_replayed_centre_failures(tmp_path):
    import shutil
    from pathlib import Path

    from hdsl.check import check_file
    from hdsl.lower import lower
    from hdsl.planner import run_item
    from hdsl.results import Status

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "models" / "causal_bool.onnx", tmp_path / "causal_bool.onnx")
    (tmp_path / "f.hspec").write_text("""
model net = onnx "causal_bool.onnx" { input [8] outputs 2 }
causal model circuit {
  input a, b, c, d in bool
  P = a and b
  Q = c and d
  O = P or Q
}
alignment right of circuit to net { P -> layer "h"[0:4]  Q -> layer "h"[4:8] }
alignment wrong of circuit to net { P -> layer "h"[4:8] }
property multi = iia(net, circuit, right, over all, intervene [{P}, {Q}], linf(0.02)) >= 1 with samples 300
property bad = iia(net, circuit, wrong, over all, intervene {P}, linf(0.02)) >= 0.9
check multi, bad
""")
    spec = check_file(tmp_path / "f.hspec")
    assert spec.ok, [d.render() for d in spec.diagnostics]
    multi, bad = [i for c in lower(spec).checks for i in c.items]
    r = run_item(multi)
    assert dict(r.details)["proved_pairs"] == 300 and r.status is Status.INCONCLUSIVE  # 300 samples cannot show >= 1
    rb = run_item(bad)
    assert rb.status is Status.FAIL and rb.interval[1] == pytest.approx(65 / 128)
    assert "onnxruntime agrees on 64/64" in dict(rb.details)["replay"]
