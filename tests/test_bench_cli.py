"""``hdsl vnnlib`` and ``hdsl bench`` on the command line (stand-in solvers; the planner is tested elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hdsl.bench as bench
from hdsl.cli import app
from hdsl.results import Counterexample, Result, Verdict

ACAS = Path(__file__).parent / "data" / "vnncomp" / "acasxu"
CES = json.loads((ACAS / "counterexamples.json").read_text())["counterexamples"]
NET12 = str(ACAS / "onnx" / "ACASXU_run2a_1_2_batch_2000.onnx")
runner = CliRunner()


def oracle(query, budget):
    if query.id in CES:
        ce = Counterexample(tuple(CES[query.id]["x"]), (0.0,) * 5, -1.0, "fake")
        return Result(query.id, Verdict.FALSIFIED, backend="fake", stage="attack", counterexample=ce)
    return Result(query.id, Verdict.PROVED, backend="fake", stage="crown")


def always_proved(query, budget):
    return Result(query.id, Verdict.PROVED, backend="fake", stage="crown")


@pytest.fixture
def solver(monkeypatch):
    def use(fn):
        monkeypatch.setattr(bench, "default_solver", lambda: fn)
    return use


def test_vnnlib_sat_prints_verdict_then_counterexample(solver, tmp_path):
    solver(oracle)
    out = tmp_path / "result.txt"
    res = runner.invoke(app, ["vnnlib", NET12, str(ACAS / "vnnlib" / "prop_2.vnnlib"), "--timeout", "5",
                              "--out", str(out)])
    assert res.exit_code == 1, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "sat"
    assert lines[1].startswith("((X_0 ") and lines[-1].startswith(" (Y_4 ") and lines[-1].endswith("))")
    assert out.read_text() == res.stdout
    x = [float(line.split()[1].rstrip(")")) for line in lines[1:6]]
    assert x == [float(v) for v in CES["ACASXU_run2a_1_2_batch_2000-prop_2"]["x"]]


def test_vnnlib_unsat_and_gzip(solver):
    solver(oracle)
    res = runner.invoke(app, ["vnnlib", NET12, str(ACAS / "vnnlib" / "prop_4.vnnlib.gz")])
    assert res.exit_code == 0 and res.stdout == "unsat\n"


def test_vnnlib_bad_file_is_a_diagnostic(tmp_path, solver):
    solver(oracle)
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(declare-const X_0 Real)\n(assert (<= X_0 1)\n")
    from hdsl.cli import main

    with pytest.raises(SystemExit) as info:
        main(["vnnlib", NET12, str(bad)])
    assert info.value.code == 3


def test_bench_table_json_and_exit_codes(solver, tmp_path):
    solver(oracle)
    res = runner.invoke(app, ["bench", str(ACAS), "--json", "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["summary"]["solved"] == 11 and data["summary"]["wrong"] == 0
    assert json.loads((tmp_path / "r.json").read_text())["summary"] == data["summary"]
    res = runner.invoke(app, ["bench", str(ACAS), "--filter", "prop_[12]$", "--limit", "3"])
    assert res.exit_code == 0 and "solved 3/3" in res.stdout and "0 wrong" in res.stdout


def test_bench_wrong_answer_is_loud_and_fails(solver):
    solver(always_proved)
    res = runner.invoke(app, ["bench", str(ACAS), "--filter", "prop_2$", "--quiet"])
    assert res.exit_code == 1
    assert "WRONG ANSWER" in res.stderr and "ACASXU_run2a_1_2_batch_2000-prop_2" in res.stderr
    assert "1 wrong" in res.stdout
