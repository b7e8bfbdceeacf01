"""Benchmark folders, ground truth, counterexample re-validation and verdict mapping (with stand-in solvers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hdsl.bench import (instance_id, onnx_info, read_instances, read_truth, result_file_text, run_benchmark,
                        select, solve_instance, validate_counterexample)
from hdsl.diagnostics import HdslError
from hdsl.results import Counterexample, Result, Verdict
from hdsl.vnnlib import load_vnnlib

ACAS = Path(__file__).parent / "data" / "vnncomp" / "acasxu"
CES = json.loads((ACAS / "counterexamples.json").read_text())["counterexamples"]
NET12 = ACAS / "onnx" / "ACASXU_run2a_1_2_batch_2000.onnx"
NET11 = ACAS / "onnx" / "ACASXU_run2a_1_1_batch_2000.onnx"


def const_solver(verdict: Verdict, stage: str = "test"):
    def solve(query, budget):
        return Result(query.id, verdict, backend="fake", stage=stage)
    return solve


def ce_solver(x_of):
    """Falsifies with the point ``x_of(query)`` (None -> unknown)."""
    def solve(query, budget):
        x = x_of(query)
        if x is None:
            return Result(query.id, Verdict.UNKNOWN, backend="fake")
        ce = Counterexample(tuple(x), (0.0,) * 5, -1.0, "fake")
        return Result(query.id, Verdict.FALSIFIED, backend="fake", stage="attack", counterexample=ce)
    return solve


def oracle(query, budget):
    """Answers from the published ground truth: sat with the known counterexample, else proved."""
    if query.id in CES:
        return ce_solver(lambda q: CES[q.id]["x"])(query, budget)
    return Result(query.id, Verdict.PROVED, backend="fake", stage="oracle")


def test_read_instances_and_truth():
    insts = read_instances(ACAS)
    assert len(insts) == 11
    assert insts[0].id == "ACASXU_run2a_1_1_batch_2000-prop_1" and insts[0].timeout == 116.0
    gz = [i for i in insts if i.vnnlib.name.endswith(".gz")]
    assert len(gz) == 2 and gz[0].id.endswith("-prop_4")
    truth = read_truth(ACAS / "ground_truth.csv")
    assert set(truth) == {i.id for i in insts}
    assert truth["ACASXU_run2a_1_2_batch_2000-prop_2"] == "sat"
    assert [i.id for i in select(insts, r"prop_[12]$", limit=3)] == [i.id for i in insts[:3]]


def test_instance_id_strips_suffixes():
    assert instance_id("onnx/net.onnx", "vnnlib/prop_1.vnnlib.gz") == "net-prop_1"
    assert instance_id("a/b/mnist-net_256x2.onnx", "prop_0_0.03.vnnlib") == "mnist-net_256x2-prop_0_0.03"


def test_bad_instance_lines_are_located(tmp_path):
    (tmp_path / "instances.csv").write_text("a.onnx,b.vnnlib\n")
    with pytest.raises(HdslError) as info:
        read_instances(tmp_path)
    d = info.value.diagnostics[0]
    assert d.code == "V502" and str(d.span).endswith("instances.csv:1:1")
    (tmp_path / "truth.csv").write_text("instance,expected\nx,maybe\n")
    with pytest.raises(HdslError):
        read_truth(tmp_path / "truth.csv")


def test_onnx_info_drops_the_batch_dimension():
    info = onnx_info(NET11)
    assert info.input_shape == (1, 1, 5) and info.num_outputs == 5 and info.dtype == "float32"


def test_validate_counterexample():
    prop = load_vnnlib(ACAS / "vnnlib" / "prop_2.vnnlib")
    x = CES["ACASXU_run2a_1_2_batch_2000-prop_2"]["x"]
    ok, why, xr, y = validate_counterexample(prop, NET12, x)
    assert ok, why
    assert max(abs(a - b) for a, b in zip(y, CES["ACASXU_run2a_1_2_batch_2000-prop_2"]["y"])) < 1e-6
    outside = list(x)
    outside[0] = prop.region.lower[0] - 1e-6
    assert validate_counterexample(prop, NET12, outside)[1] == "counterexample lies outside the input region"
    centre = [(lo + hi) / 2 for lo, hi in zip(prop.region.lower, prop.region.upper)]
    ok, why, _, _ = validate_counterexample(prop, NET11, centre)  # net 1_1 satisfies prop 2
    assert not ok and "do not satisfy" in why


def test_sat_only_with_a_valid_counterexample():
    prop2 = ACAS / "vnnlib" / "prop_2.vnnlib"
    good = solve_instance(NET12, prop2, 10, solver=oracle)
    assert good.verdict == "sat" and good.stage == "attack"
    text = result_file_text(good)
    assert text.splitlines()[0] == "sat" and text.count("(X_") == 5 and text.count("(Y_") == 5
    bogus = solve_instance(NET11, prop2, 10, solver=ce_solver(lambda q: [0.6, 0.0, 0.0, 0.45, -0.5]))
    assert bogus.verdict == "unknown" and "re-validation" in bogus.message and bogus.x is None
    assert result_file_text(bogus) == "unknown\n"
    no_ce = solve_instance(NET11, prop2, 10, solver=const_solver(Verdict.FALSIFIED))
    assert no_ce.verdict == "unknown"


@pytest.mark.parametrize("verdict, word", [(Verdict.PROVED, "unsat"), (Verdict.TIMEOUT, "timeout"),
                                           (Verdict.UNKNOWN, "unknown"), (Verdict.ERROR, "unknown")])
def test_verdict_mapping(verdict, word):
    out = solve_instance(NET11, ACAS / "vnnlib" / "prop_1.vnnlib", 10, solver=const_solver(verdict))
    assert out.verdict == word and result_file_text(out) == word + "\n"


def test_solver_crash_is_an_error_not_a_traceback():
    def boom(query, budget):
        raise RuntimeError("kaput")
    out = solve_instance(NET11, ACAS / "vnnlib" / "prop_1.vnnlib", 10, solver=boom)
    assert out.verdict == "error" and "kaput" in out.message and result_file_text(out) == "unknown\n"


def test_query_passed_to_the_solver():
    seen = {}

    def spy(query, budget):
        seen["q"], seen["left"] = query, budget.left()
        return Result(query.id, Verdict.UNKNOWN)
    solve_instance(NET11, ACAS / "vnnlib" / "prop_6.vnnlib", 7.5, backend="bounds", solver=spy)
    q = seen["q"]
    assert q.id == "ACASXU_run2a_1_1_batch_2000-prop_6" and q.options.backend == "bounds"
    assert q.network.input_shape == (1, 1, 5) and q.network.input_range is None and q.network.mean is None
    assert len(q.region.parts) == 2 and 0 < seen["left"] <= 7.5


def test_benchmark_with_oracle_has_no_wrong_answers():
    report = run_benchmark(ACAS, truth=read_truth(ACAS / "ground_truth.csv"), solver=oracle)
    s = report.summary()
    assert (s["instances"], s["solved"], s["sat"], s["unsat"], s["wrong"]) == (11, 11, 2, 9, 0)
    assert s["by_expected"]["sat"]["sat"]["count"] == 2


def test_wrong_answers_are_counted():
    report = run_benchmark(ACAS, truth=read_truth(ACAS / "ground_truth.csv"),
                           solver=const_solver(Verdict.PROVED), pattern="prop_2")
    assert [r.outcome.instance for r in report.wrong] == ["ACASXU_run2a_1_2_batch_2000-prop_2"]
    assert report.summary()["wrong"] == 1
    data = report.to_json()
    assert data["wrong"] == ["ACASXU_run2a_1_2_batch_2000-prop_2"]


def test_late_answers_count_as_timeouts():
    import time

    def slow(query, budget):
        time.sleep(1.2)  # past the 0.1 s timeout plus the 1 s start-up slack
        return Result(query.id, Verdict.PROVED)
    report = run_benchmark(ACAS, solver=slow, limit=1, timeout=0.1)
    out = report.rows[0].outcome
    assert out.verdict == "timeout" and out.raw_verdict == "proved"


def test_missing_files_become_error_rows(tmp_path):
    shutil.copytree(ACAS, tmp_path / "b")
    (tmp_path / "b" / "vnnlib" / "prop_1.vnnlib").write_text("(declare-const X_0 Real)(assert (<= X_0 1)")
    report = run_benchmark(tmp_path / "b", solver=oracle, limit=2)
    assert [r.outcome.verdict for r in report.rows] == ["error", "error"]
    assert "V101" in report.rows[0].outcome.message


def test_gzipped_onnx_is_decompressed_once(tmp_path):
    import gzip

    from hdsl.bench import plain_onnx

    gz = tmp_path / "net.onnx.gz"
    gz.write_bytes(gzip.compress(NET12.read_bytes()))
    plain = plain_onnx(gz)
    assert plain != gz and plain.read_bytes() == NET12.read_bytes() and plain_onnx(gz) == plain
    assert plain_onnx(NET12) == NET12
    out = solve_instance(gz, ACAS / "vnnlib" / "prop_2.vnnlib", 10, solver=oracle,
                         instance="ACASXU_run2a_1_2_batch_2000-prop_2")
    assert out.verdict == "sat"
