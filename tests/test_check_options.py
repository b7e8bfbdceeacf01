"""A check statement's options (timeout, backend, arithmetic) reach every item that can honour them.

Queries always had them; sufficiency searches and interchange experiments used
to drop them silently (a `check s timeout 120s` ran with the CLI default, and
`arithmetic real` proved nothing more). Options an item cannot honour are a
located warning, not a silent no-op.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hdsl import ir
from hdsl.check import check_file
from hdsl.cli import app
from hdsl.irtext import format_program
from hdsl.lower import lower
from hdsl.results import Verdict
from hdsl.runner import effective_timeout

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

THIN = """
model net = onnx "thin.onnx" {
  input [1, 2, 2] in [0, 1]
  outputs 2
}
data d = npz "thin.npz"
explainer sal = saliency(net)
property s = sufficient(net, d, top 0 of sal)
"""


@pytest.fixture(scope="module")
def thin(tmp_path_factory):
    """Class 0 wins by 1e-4 everywhere in reals: relu(1000 x0) - relu(1000 x0) + 1e-4 against 0.

    float32 rounding of the two 1000 x0 terms can reach ~5e-4, so no sound float32 proof exists
    (the arithmetic model is order-free), while the real-valued network is safe.
    """
    d = tmp_path_factory.mktemp("thin")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1000.0, 0, 0, 0], [1000.0, 0, 0, 0]]))
        net[1].bias.zero_()
        net[3].weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
        net[3].bias.copy_(torch.tensor([1e-4, 0.0]))
    torch.onnx.export(net.eval(), (torch.zeros(1, 1, 2, 2),), str(d / "thin.onnx"), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    np.savez(d / "thin.npz", x=np.full((1, 1, 2, 2), 0.7, np.float32), y=np.array([0]))
    return d


def _write(folder: Path, body: str) -> Path:
    path = folder / "s.hspec"
    path.write_text(body)
    return path


def _items(path: Path):
    spec = check_file(path)
    assert spec.ok, [d.render() for d in spec.diagnostics]
    return spec, lower(spec)


def test_sufficiency_items_carry_the_check_options(thin):
    path = _write(thin, THIN + "check s timeout 12.5s backend bounds arithmetic real\n")
    spec, program = _items(path)
    (item,) = program.checks[0].items
    assert item.options == ir.CheckOptions(12.5, "bounds", "real")
    assert effective_timeout(item, 60.0) == 12.5  # the item's budget is the check's timeout
    assert "check s timeout 12.5s backend bounds arithmetic real (1 items)" in format_program(program)
    assert not spec.diagnostics  # sufficiency honours all three: nothing to warn about


def test_sufficiency_proof_below_float32_rounding_needs_arithmetic_real(thin):
    path = _write(thin, THIN + "check s timeout 20s backend bounds arithmetic real\n")
    real = runner.invoke(app, ["check", str(path), "--json"])
    doc = json.loads(real.stdout)
    (res,) = [r for p in doc["properties"] for r in p["items"]]
    assert res["verdict"] == "proved" and res["arithmetic"] == "real", res
    f32 = runner.invoke(app, ["check", str(path), "--json", "--arithmetic", "float32"])
    doc = json.loads(f32.stdout)
    (res,) = [r for p in doc["properties"] for r in p["items"]]
    assert res["verdict"] not in ("proved", "falsified") and res["arithmetic"] == "float32", res


def test_the_sufficiency_decider_uses_the_checks_backend(thin):
    from hdsl.planner import run_item

    _, program = _items(_write(thin, THIN + "check s timeout 20s backend z3 arithmetic real\n"))
    (item,) = program.checks[0].items
    r = run_item(item)
    assert r.verdict is Verdict.PROVED and r.backend == "z3", r


def test_interchange_checks_carry_arithmetic(tmp_path):
    from hdsl.planner import run_item

    shutil.copy(ROOT / "models" / "causal_bool.onnx", tmp_path / "causal_bool.onnx")
    text = (ROOT / "specs" / "causal_circuit.hspec").read_text().replace("../models/", "")
    text = text.replace("check right_p, wrong_p, wrong_p_changed, right_p_formal",
                        "check right_p_formal timeout 30s arithmetic real")
    spec, program = _items(_write(tmp_path, text))
    (item,) = program.checks[0].items
    assert item.options == ir.CheckOptions(30.0, "auto", "real") and not spec.diagnostics
    details = dict(run_item(item).details)
    assert details["arithmetic"] == "real" and details["proved_pairs"] == 256


def test_real_arithmetic_interchange_bounds_are_at_least_as_tight():
    """The real-arithmetic bounds drop the float32 slack only: never looser, on the interchange graph."""
    from hdsl.bounds import compute_bounds
    from hdsl.causal import formal
    from hdsl.nn import load_onnx

    graph = load_onnx(str(ROOT / "models" / "causal_bool.onnx"))
    ig = formal.interchange_graph(graph, [[("h", np.diag([1.0] * 4 + [0.0] * 4))]])
    g = torch.Generator().manual_seed(0)
    centre = torch.rand(32, 16, generator=g, dtype=torch.float64)
    C = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    for method in ("ibp", "crown"):
        lb32, _ = compute_bounds(ig, centre - 0.05, centre + 0.05, C, method=method, need_upper=False, device="cpu")
        lbr, _ = compute_bounds(ig, centre - 0.05, centre + 0.05, C, method=method, need_upper=False, device="cpu",
                                arithmetic="real")
        assert bool((lbr >= lb32).all()) and bool((lbr > lb32).any())
        with torch.no_grad():  # and still below the true values at the centres
            y = ig.exact.forward(centre) if ig.exact is not None else ig.forward(centre)
        assert bool((lbr[:, 0] <= (y[:, 0] - y[:, 1])).all())


@pytest.mark.parametrize("line, key", [
    ("check right_p backend z3\n", "backend"),
    ("check right_p arithmetic real\n", "arithmetic"),  # a measurement: arithmetic is for linf(...) checks
])
def test_options_an_interchange_experiment_ignores_are_warned(tmp_path, line, key):
    shutil.copy(ROOT / "models" / "causal_bool.onnx", tmp_path / "causal_bool.onnx")
    text = (ROOT / "specs" / "causal_circuit.hspec").read_text().replace("../models/", "")
    text = text.replace("check right_p, wrong_p, wrong_p_changed, right_p_formal", line.strip())
    spec = check_file(_write(tmp_path, text))
    assert spec.ok
    (w,) = spec.diagnostics
    assert w.code == "W317" and w.severity.value == "warning" and f"`{key}` has no effect" in w.message
    text_line = text.splitlines().index(line.strip()) + 1
    rendered = w.render()
    assert f"s.hspec:{text_line}:" in rendered and "^" in rendered and "hint" in rendered


def test_measurement_options_are_warned_and_the_run_goes_on(tmp_path):
    shutil.copy(ROOT / "models" / "causal_bool.onnx", tmp_path / "causal_bool.onnx")
    xai = (tmp_path / "xai")
    xai.mkdir()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    torch.onnx.export(net, (torch.zeros(1, 1, 2, 2),), str(xai / "n.onnx"), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    np.savez(xai / "d.npz", x=np.random.default_rng(0).random((3, 1, 2, 2)).astype(np.float32), y=np.zeros(3, int))
    path = _write(xai, 'model net = onnx "n.onnx" { input [1, 2, 2] in [0, 1] outputs 2 }\n'
                       'data d = npz "d.npz"\nexplainer sal = saliency(net)\n'
                       "property f = faithfulness(net, sal, d, metric deletion_auc, steps 2) <= 1\n"
                       "check f timeout 5s\n")
    spec = check_file(path)
    assert spec.ok and [d.code for d in spec.diagnostics] == ["W317"]
    out = runner.invoke(app, ["check", str(path)])
    assert "W317" in out.stdout + (out.stderr if out.stderr_bytes is not None else "")
    assert "Traceback" not in out.stdout


def test_arithmetic_is_reported_only_where_it_applies(tmp_path):
    """--arithmetic real names the properties it changes, not an interchange measurement."""
    from hdsl.check_options import arithmetic_of

    shutil.copy(ROOT / "models" / "causal_bool.onnx", tmp_path / "causal_bool.onnx")
    text = (ROOT / "specs" / "causal_circuit.hspec").read_text().replace("../models/", "")
    text = text.replace("check right_p, wrong_p, wrong_p_changed, right_p_formal", "check wrong_p, right_p_formal")
    path = _write(tmp_path, text)
    _, program = _items(path)
    measurement, formal = (c.items[0] for c in program.checks)
    assert arithmetic_of(measurement) is None and arithmetic_of(formal) == "float32"
    out = runner.invoke(app, ["check", str(path), "--arithmetic", "real", "--json"])
    items = {i["item"]: i for p in json.loads(out.stdout)["properties"] for i in p["items"]}
    assert "arithmetic" not in items["wrong_p/iia{P}"] and items["right_p_formal/iia{P}"]["arithmetic"] == "real"
    out = runner.invoke(app, ["check", str(path), "--arithmetic", "real"])
    assert "arithmetic real (right_p_formal)" in " ".join(out.stdout.split())
