"""The spec commands end to end: exit codes, table, JSON, JUnit XML, parse/ir/fmt output."""

from __future__ import annotations

import json
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdsl.cli import app
from hdsl.results import Counterexample, Result, Verdict

ROOT = Path(__file__).resolve().parent.parent
ACAS = str(ROOT / "specs" / "acasxu.hspec")
runner = CliRunner()


def _fake_planner(monkeypatch, verdicts):
    """Install an ``hdsl.planner`` whose ``run_item`` returns the given verdicts in turn."""
    seen = []

    def run_item(item, budget):
        seen.append((item, budget))
        v = verdicts[len(seen) - 1]
        ce = Counterexample((0.0,), (1.0,), -0.5, "onnxruntime") if v is Verdict.FALSIFIED else None
        margin = {Verdict.PROVED: 0.25, Verdict.FALSIFIED: -0.5}.get(v)
        return Result(item.id, v, backend="fake", margin=margin, counterexample=ce, time_s=0.01,
                      message="" if v is not Verdict.UNKNOWN else "bounds too loose")

    module = types.ModuleType("hdsl.planner")
    module.run_item = run_item
    monkeypatch.setitem(sys.modules, "hdsl.planner", module)
    return seen


@pytest.mark.parametrize("verdicts,code", [
    ([Verdict.PROVED, Verdict.PROVED], 0),
    ([Verdict.PROVED, Verdict.FALSIFIED], 1),
    ([Verdict.UNKNOWN, Verdict.PROVED], 2),
    ([Verdict.TIMEOUT, Verdict.FALSIFIED], 1),
])
def test_check_exit_codes_and_reports(monkeypatch, tmp_path, verdicts, code):
    seen = _fake_planner(monkeypatch, verdicts)
    junit = tmp_path / "out.xml"
    res = runner.invoke(app, ["check", ACAS, "--quiet", "--junit", str(junit), "--timeout", "7"])
    assert res.exit_code == code, res.output
    assert "p1" in res.output and "p3" in res.output
    assert [q.id for q, _ in seen] == ["p1", "p3"]
    assert all(q.options.timeout == 7 for q, _ in seen)
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "2"
    assert root.get("failures") == str(verdicts.count(Verdict.FALSIFIED))


def test_check_json_document(monkeypatch):
    _fake_planner(monkeypatch, [Verdict.PROVED, Verdict.FALSIFIED])
    res = runner.invoke(app, ["check", ACAS, "--json", "--backend", "bounds"])
    assert res.exit_code == 1
    doc = json.loads(res.output)
    assert doc["exit_code"] == 1 and doc["summary"] == {"proved": 1, "falsified": 1}
    p3 = doc["properties"][1]
    assert p3["name"] == "p3" and p3["status"] == "falsified" and p3["worst_margin"] == -0.5
    assert p3["items"][0]["counterexample"]["replayed_with"] == "onnxruntime"
    assert p3["items"][0]["property"] == "p3"
    assert p3["items"][0]["explanation"] == "the model predicts coc"  # argmax of the replayed outputs (1.0,)


def test_a_check_of_no_items_shows_as_empty(tmp_path):
    """A data selection of no rows: the property still has its row (status 'empty'), in the table,
    the JSON and JUnit, next to the warning; it used to vanish from the report."""
    spec = tmp_path / "specs" / "empty.hspec"
    spec.parent.mkdir()
    for folder in ("models", "data"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    spec.write_text((ROOT / "specs" / "mnist_robustness.hspec").read_text().replace("take 5", "take 0"))
    junit = tmp_path / "out.xml"
    res = runner.invoke(app, ["check", str(spec), "--store", "none", "--junit", str(junit)])
    assert res.exit_code == 0 and "selects no rows" in res.output
    assert "robust" in res.output and "empty" in res.output
    doc = json.loads(runner.invoke(app, ["check", str(spec), "--store", "none", "--json"]).output)
    assert [(p["name"], p["status"], p["items"]) for p in doc["properties"]] == [("robust", "empty", [])]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("name") == "robust" and suite.get("tests") == "0"


def test_check_without_planner_reports_unknown(monkeypatch):
    monkeypatch.setitem(sys.modules, "hdsl.planner", None)  # import fails
    res = runner.invoke(app, ["check", ACAS, "--json"])
    doc = json.loads(res.output)
    assert res.exit_code == 2
    assert {i["verdict"] for p in doc["properties"] for i in p["items"]} == {"unknown"}
    assert doc["properties"][0]["items"][0]["message"] == "no backend available"


def test_internal_error_in_a_query_is_reported_not_raised(monkeypatch):
    module = types.ModuleType("hdsl.planner")

    def boom(item, budget):
        raise RuntimeError("kaput")

    module.run_item = boom
    monkeypatch.setitem(sys.modules, "hdsl.planner", module)
    res = runner.invoke(app, ["check", ACAS, "--quiet"])
    assert res.exit_code == 4 and "Traceback" not in res.output


def test_bad_spec_exits_3_with_located_diagnostics(tmp_path):
    bad = tmp_path / "bad.hspec"
    bad.write_text("const x = 1\nproperty p = forall x in d: argmax n(x) = 3\n")
    res = runner.invoke(app, ["check", str(bad), "--json"])
    assert res.exit_code == 3
    (d,) = json.loads(res.output)["diagnostics"]
    assert (d["code"], d["line"], d["column"]) == ("E102", 2, 41)
    res = runner.invoke(app, ["ir", str(bad)])
    assert res.exit_code == 3 and "bad.hspec:2:41" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("args, words", [
    (["--timeout", "-1"], "greater than 0"),
    (["--timeout", "nan"], "greater than 0"),
    (["--timeout", "0"], "greater than 0"),
    (["--junit", "/nonexistent-folder/x.xml"], "does not exist"),
    (["--junit", "."], "is a folder"),
    (["--workers", "0"], "workers"),
])
def test_bad_options_are_usage_errors_before_any_work(monkeypatch, args, words):
    """Exit 3 (bad input), not click's 2 (which reads as "undecided"), and nothing is solved: an
    unwritable --junit used to be an internal error after the whole run."""
    seen = _fake_planner(monkeypatch, [Verdict.PROVED] * 2)
    res = runner.invoke(app, ["check", ACAS, "--store", "none", *args])
    assert res.exit_code == 3 and words in res.output and not seen, res.output


def test_an_output_that_cannot_be_written_is_a_diagnostic(tmp_path):
    from hdsl.commands import write_output
    from hdsl.diagnostics import HdslError

    (tmp_path / "file").write_text("")
    with pytest.raises(HdslError) as err:
        write_output(tmp_path / "file" / "x.xml", "<x/>", "JUnit XML")
    assert err.value.diagnostics[0].code == "E413" and "cannot write JUnit XML" in err.value.diagnostics[0].message


def test_missing_spec_file_is_a_diagnostic(tmp_path):
    res = runner.invoke(app, ["check", str(tmp_path / "nope.hspec")])
    assert res.exit_code == 3 and "E400" in res.output


def test_unknown_backend_option(monkeypatch):
    _fake_planner(monkeypatch, [])
    from hdsl.cli import main

    with pytest.raises(SystemExit) as e:
        main(["check", ACAS, "--backend", "nope"])
    assert e.value.code == 3


def test_ir_and_parse_commands():
    res = runner.invoke(app, ["ir", ACAS])
    assert res.exit_code == 0
    assert "query p1 on acas" in res.output and "unsafe: y0 - 3.991125645861615 >= 0" in res.output
    res = runner.invoke(app, ["ir", ACAS, "--json"])
    doc = json.loads(res.output)
    query = doc["checks"][0]["items"][0]
    assert doc["kind"] == "Program" and query["id"] == "p1" and query["network"]["path"] == "../models/acasxu_1_1.onnx"
    assert query["spec"]["unsafe"][0]["constraints"][0]["expr"]["terms"] == [[0, 1.0]]
    res = runner.invoke(app, ["parse", ACAS, "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.output)
    assert doc["node"] == "Module" and doc["statements"][0]["node"] == "Classes"


def test_fmt_command(tmp_path):
    f = tmp_path / "a.hspec"
    f.write_text("const   eps=2/255\nclasses c = a   b\n")
    res = runner.invoke(app, ["fmt", str(f), "--check"])
    assert res.exit_code == 1
    res = runner.invoke(app, ["fmt", str(f)])
    assert res.exit_code == 0 and f.read_text() == "const eps = 2/255\nclasses c = a b\n"
    assert runner.invoke(app, ["fmt", str(f), "--check"]).exit_code == 0
    f.write_text("const = 1\n")
    from hdsl.cli import main

    with pytest.raises(SystemExit) as e:
        main(["fmt", str(f)])
    assert e.value.code == 3 and f.read_text() == "const = 1\n"


def test_real_check_on_a_tiny_model(tmp_path):
    """No fake planner: the shipped backends decide a trivially true and a trivially false property."""
    pytest.importorskip("hdsl.planner")
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array([[1.0, 0.0], [0.0, 0.0]], np.float32), "W")
    b = numpy_helper.from_array(np.array([0.0, -1.0], np.float32), "b")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "lin.onnx"))
    spec = tmp_path / "lin.hspec"
    spec.write_text('model m = onnx "lin.onnx" { input [2] in [0, 1] outputs 2 }\n'
                    "property holds = forall x in box([0, 0], [1, 1]): m(x)[0] >= m(x)[1]\n"
                    "property fails = forall x in box([0, 0], [1, 1]): m(x)[0] <= 0.5\n")
    res = runner.invoke(app, ["check", str(spec), "--json", "--timeout", "20"])
    doc = json.loads(res.output)
    verdicts = {p["name"]: p["items"][0]["verdict"] for p in doc["properties"]}
    assert verdicts["fails"] == "falsified"
    assert verdicts["holds"] in ("proved", "unknown")  # never falsified
    assert res.exit_code == 1
