"""Large runs (issue 9): resumable, cached, and the same results with 1 or 2 workers or Ray."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hdsl import planner
from hdsl.check import check_file
from hdsl.lower import lower
from hdsl.runner import RunConfig, RunInterrupted, run_items
from hdsl.store import ResultStore

SPEC = """\
classes c = a b c
hierarchy h over c {
  ab { a b }
  c
}
model net = onnx "net.onnx" {
  input [2] in [0, 1]
  outputs c
}
data pts = npz "pts.npz"
property robust =
  forall (x, y) in pts:
    forall x2 in linf(x, 0.05):
      argmax net(x2) == y
property levels =
  forall (x, y) in pts:
    forall x2 in linf(x, 0.08):
      argmax net(x2) in ancestor(h, y, level all)
check robust timeout 20s
check levels timeout 20s
"""


def _mlp(path, seed=0):
    rng = np.random.default_rng(seed)
    w1, b1 = rng.normal(size=(2, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32) * 0.1
    w2, b2 = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32) * 0.1
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return w1, b1, w2, b2


@pytest.fixture()
def project(tmp_path):
    w1, b1, w2, b2 = _mlp(tmp_path / "net.onnx")
    x = np.random.default_rng(1).uniform(0, 1, size=(8, 2)).astype(np.float32)
    y = (np.maximum(x @ w1 + b1, 0) @ w2 + b2).argmax(1).astype(np.int64)
    np.savez(tmp_path / "pts.npz", x=x, y=y)
    (tmp_path / "spec.hspec").write_text(SPEC)
    return tmp_path


def _items(project):
    spec = check_file(str(project / "spec.hspec"))
    assert spec.ok, spec.diagnostics
    return [item for c in lower(spec).checks for item in c.items]


def _essence(results):
    """What must not depend on how the run was executed: the verdicts and whether a counterexample
    backs them (times may differ, and so may a margin: a level proved by propagation from a
    smaller set carries none)."""
    return [(r.query_id, r.verdict.value, r.counterexample is not None) for r in results]


def test_interrupted_run_resumes_without_solving_twice(project, monkeypatch):
    items = _items(project)
    reference = run_items(items, RunConfig(timeout=20))
    assert {r.verdict.value for r in reference} <= {"proved", "falsified"}

    calls = []
    real = planner.run_item
    monkeypatch.setattr(planner, "run_item", lambda item, budget=None: calls.append(item.id) or real(item, budget))
    store = ResultStore(project / "store.sqlite")

    def stop_after_three(i, result, cached):
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as stop:
        run_items(items, RunConfig(timeout=20), store, stop_after_three)
    assert sum(r is not None for r in stop.value.results) == 3
    assert len(store) == 3

    resumed = run_items(items, RunConfig(timeout=20), store)
    assert _essence(resumed) == _essence(reference)
    assert sorted(calls) == sorted(q.id for q in items)  # every query solved exactly once over both runs
    run_items(items, RunConfig(timeout=20), store)
    assert len(calls) == len(items)  # a third run solves nothing


def test_workers_and_ray_give_the_same_results(project):
    items = _items(project)
    one = run_items(items, RunConfig(timeout=20, workers=1))
    two = run_items(items, RunConfig(timeout=20, workers=2))
    assert _essence(two) == _essence(one)
    ray = pytest.importorskip("ray")
    try:
        via_ray = run_items(items, RunConfig(timeout=20, ray_address="local"))
    finally:
        ray.shutdown()
    assert _essence(via_ray) == _essence(one)


def test_ctrl_c_in_the_cli_keeps_finished_results_and_resumes(project):
    """A real SIGINT to `hdsl check`: partial table, exit 130, then the same final JSON as a clean run."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "hdsl", "check", "spec.hspec", "--quiet"]
    clean = subprocess.run(cmd + ["--json", "--store", "none"], cwd=project, env=env, capture_output=True,
                           text=True, timeout=300)
    assert clean.returncode in (0, 1), clean.stderr

    proc = subprocess.Popen(cmd + ["--store", "s.sqlite"], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(project / "s.sqlite") as db:
                if db.execute("SELECT COUNT(*) FROM results").fetchone()[0] >= 1:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if interrupted and proc.returncode == 130:
        assert "interrupted" in out
    resumed = subprocess.run(cmd + ["--json", "--store", "s.sqlite"], cwd=project, env=env, capture_output=True,
                             text=True, timeout=300)

    def verdicts(doc):
        data = json.loads(doc)
        return sorted((r["query"], r["verdict"]) for p in data["properties"] for r in p["items"])

    assert verdicts(resumed.stdout) == verdicts(clean.stdout)

