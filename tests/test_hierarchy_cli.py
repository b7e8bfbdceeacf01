"""`hdsl hierarchy show/convert/report` and a whole `hdsl check` run of a hierarchy spec (T1 staircase)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from hdsl.cli import app
from hdsl.hierarchy_check import HierarchyChecker, argmax_set, level_spec
from hdsl.report.hierarchy import build_document, check_document, markdown_tables, summary_from_json
from test_hierarchy_nets import t1

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_show_and_convert():
    r = runner.invoke(app, ["hierarchy", "show", str(REPO / "hierarchies/cifar10_3level.hier.json")])
    assert r.exit_code == 0, r.output
    assert "mammal" in r.output and "#3" in r.output and "depth 3" in r.output
    r = runner.invoke(app, ["hierarchy", "convert", str(REPO / "hierarchies/cifar10_2level.hier.json"), "--to",
                            "newick"])
    assert r.exit_code == 0 and r.output.strip().startswith("((airplane,automobile,ship,truck)vehicle")


def test_show_rejects_bad_file(tmp_path):
    from hdsl.cli import main

    bad = tmp_path / "bad.nwk"
    bad.write_text("((a,b)x,(c,a)y);")
    try:
        main(["hierarchy", "show", str(bad)])
    except SystemExit as exc:
        assert exc.code == 3
    else:  # pragma: no cover
        raise AssertionError("expected exit 3")


def test_report_json_table_plot(tmp_path):
    net, h = t1(tmp_path)
    c = HierarchyChecker(net, h, attack_steps=10)
    x0 = np.array([0.25], np.float32)
    points = [c.check_point(x0, 1, e) for e in (0.1, 0.5, 0.9)]
    radii = [c.certified_radius(x0, 1, lv, eps_max=2.0, tol=0.01) for lv in (1, 2)]
    doc = build_document(points, radii, network=net.path, hierarchy=h)
    path = tmp_path / "res.json"
    path.write_text(json.dumps(doc))
    s = summary_from_json(json.loads(path.read_text()))
    cells = s.table()
    assert cells[(1, 0.5)]["proved"] == 1 and cells[(2, 0.5)]["falsified"] == 1
    assert cells[(1, 0.9)]["falsified"] == 1 and cells[(2, 0.9)]["propagated"] == 1
    assert s.granularity()[0.1][2] == 1 and s.granularity()[0.9][0] == 1
    assert s.severity()[0.5][1] == 1 and s.severity()[0.9][0] == 1  # c2 -> c1 stays in A; -> c3 leaves it
    assert "| 2 | 0.5 | 0/1 | 1/1 | 0/1 |" in markdown_tables(s)
    png, html = tmp_path / "p.png", tmp_path / "p.html"
    for out in (png, html):
        r = runner.invoke(app, ["hierarchy", "report", str(path), "--plot", str(out)])
        assert r.exit_code == 0, r.output
        assert "levels × eps" in r.output and "certified radius" in r.output
    assert png.read_bytes()[:4] == b"\x89PNG" and "data:image/png;base64" in html.read_text()


def test_argmax_set_recognises_only_level_specs():
    spec = level_spec((1, 2), 4)
    assert argmax_set(spec, 4) == (1, 2)
    assert argmax_set(level_spec((1, 2), 4, outside=(0,)), 4) is None  # not every outside class
    from hdsl.ir import Conjunction, Constraint, LinearExpr, OutputSpec

    assert argmax_set(OutputSpec((Conjunction((Constraint(LinearExpr(((0, 1.0),), -3.0)),)),)), 4) is None


SPEC = """\
classes c4 = c1 c2 c3 c4
hierarchy h over c4 { A { c1 c2 } B { c3 c4 } }
model net = onnx "t1.onnx" { input [1] in [-10, 10] outputs c4 }
data pts = npz "pts.npz"
property near = forall (x, y) in pts: forall x2 in linf(x, 0.2): argmax net(x2) in ancestor(h, y, level all)
property far = forall (x, y) in pts: forall x2 in linf(x, 0.5): argmax net(x2) in ancestor(h, y, level all)
check near, far timeout 20s
"""


def test_check_spec_end_to_end(tmp_path, monkeypatch):
    t1(tmp_path)
    np.savez(tmp_path / "pts.npz", x=np.array([[0.25]], np.float32), y=np.array([1], np.int64))
    (tmp_path / "t.hspec").write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["check", "t.hspec", "--quiet"])
    assert r.exit_code == 1, r.output  # far@level2 is falsified (x = -0.25 gives c1)
    assert "levels × eps" in r.output and "granularity" in r.output
    from hdsl.check import check_file
    from hdsl.lower import lower

    program = lower(check_file(str(tmp_path / "t.hspec")))
    from hdsl.planner import run_item

    items = [i for c in program.checks for i in c.items]
    results = [run_item(i) for i in items]
    by_id = {i.id: res.verdict.value for i, res in zip(items, results)}
    assert by_id == {"near[0]@level1": "proved", "near[0]@level2": "proved",
                     "far[0]@level1": "proved", "far[0]@level2": "falsified"}
    far2 = results[3]
    assert far2.counterexample.replayed_with == "onnxruntime" and "c1" in far2.message
    doc = check_document(program, [(i.property, r) for i, r in zip(items, results)])
    assert [p["deepest_verified"] for p in doc["points"]] == [2, 1]
