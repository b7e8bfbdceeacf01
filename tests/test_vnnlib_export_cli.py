"""`hdsl ir --vnnlib DIR` exports exactly the queries `hdsl check` runs."""

from pathlib import Path

from typer.testing import CliRunner

from hdsl.check import check_file
from hdsl.cli import app
from hdsl.lower import lower
from hdsl.vnnlib import load_vnnlib, region_boxes

ACAS = Path(__file__).resolve().parent.parent / "specs" / "acasxu.hspec"


def test_ir_exports_every_query_with_an_instances_csv(tmp_path):
    res = CliRunner().invoke(app, ["ir", str(ACAS), "--vnnlib", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    queries = [q for c in lower(check_file(str(ACAS))).checks for q in c.items]
    rows = (tmp_path / "out" / "instances.csv").read_text().splitlines()
    assert len(rows) == len(queries) > 0
    for q, row in zip(queries, rows):
        onnx_path, vnn, _timeout = row.split(",")
        assert Path(onnx_path).samefile(q.network.path)
        prop = load_vnnlib(tmp_path / "out" / vnn)
        assert prop.spec == q.spec
        assert prop.boxes == region_boxes(q.region)
