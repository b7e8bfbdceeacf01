"""End to end with the real planner: no wrong answer on the shipped ACAS Xu instances, ever.

Incomplete methods may answer unknown; what they must never do is contradict
the published ground truth (unsat where a counterexample exists, or sat where
the property was proved), and every sat must carry a re-validated point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hdsl.bench import read_truth, result_file_text, run_benchmark
from hdsl.vnnlib import load_vnnlib

pytest.importorskip("hdsl.planner")

ACAS = Path(__file__).parent / "data" / "vnncomp" / "acasxu"


def test_no_wrong_answers_on_shipped_instances():
    report = run_benchmark(ACAS, truth=read_truth(ACAS / "ground_truth.csv"), timeout=2,
                           pattern=r"prop_2$|1_1_batch_2000-prop_6|prop_7")
    assert len(report.rows) == 4
    assert report.wrong == [], [r.outcome.to_json() for r in report.wrong]
    for row in report.rows:
        o = row.outcome
        assert o.verdict in ("sat", "unsat", "unknown", "timeout"), o.message
        if o.verdict == "sat":
            prop = load_vnnlib(next(ACAS.glob(f"vnnlib/{o.instance.split('-')[1]}.vnnlib*")))
            assert prop.contains(o.x) and prop.spec.violated_by(o.y)
            assert result_file_text(o).startswith("sat\n((X_0 ")
