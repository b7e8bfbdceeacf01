"""CI subset of ACAS Xu (VNN-COMP) through the auto portfolio: right answers, the deciding stage recorded.

Uses the instances shipped in tests/data/vnncomp/acasxu (ground truth from VNN-COMP, re-validated).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hdsl.bench import read_truth, solve_instance

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data" / "vnncomp" / "acasxu"
TRUTH = read_truth(DATA / "ground_truth.csv")


@pytest.mark.parametrize("net,prop,backend", [("1_1", "prop_1", "bab"), ("1_2", "prop_3", "bab"),
                                              ("1_2", "prop_2", "auto")])
def test_acasxu_subset(net, prop, backend):
    onnx = DATA / "onnx" / f"ACASXU_run2a_{net}_batch_2000.onnx"
    vnn = DATA / "vnnlib" / f"{prop}.vnnlib"
    out = solve_instance(onnx, vnn, 60.0, backend=backend)
    expected = TRUTH[f"ACASXU_run2a_{net}_batch_2000-{prop}"]
    assert out.verdict in ("sat", "unsat", "timeout", "unknown")
    if out.verdict in ("sat", "unsat"):
        assert out.verdict == expected  # a wrong answer is never acceptable
    if backend == "bab" or expected == "unsat":
        # these are decided by branch and bound within seconds on an idle core
        assert out.verdict == expected, out
        assert out.stage in ("bab", "z3")
    if out.verdict == "sat":
        assert out.x is not None  # re-validated with onnxruntime by hdsl.bench
