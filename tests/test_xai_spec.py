"""The XAI language: explainer declarations, faithfulness and sufficient(...) from text to results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdsl.check import check_file
from hdsl.lower import lower
from hdsl.results import MeasurementResult, Result, Status, Verdict
from hdsl.xai.ir import ExplainerComparison, Faithfulness, RemovalSpec, Sufficiency

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HEADER = """
model net = onnx "net.onnx" {{
  input [3, 8, 8] in [0, 1]
  outputs 3
}}
data test = npz "test.npz" take 4
explainer ig = integrated_gradients(net, steps 8)
explainer sal = saliency(net)
explainer rnd = random(net, seed 2)
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("xaispec")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(256, 3)).eval()
    torch.onnx.export(net, (torch.zeros(1, 3, 8, 8),), str(d / "net.onnx"), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 8, 8, generator=g).numpy()
    np.savez(d / "test.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]))
    return d


def _spec(workdir, body: str):
    path = workdir / "s.hspec"
    path.write_text(HEADER.format() + body)
    return check_file(path)


def _items(workdir, body: str):
    spec = _spec(workdir, body)
    assert spec.ok, [d.render() for d in spec.diagnostics]
    return [i for c in lower(spec).checks for i in c.items]


def _errors(workdir, body: str) -> str:
    spec = _spec(workdir, body)
    assert not spec.ok
    return "\n".join(d.render() for d in spec.diagnostics)


def test_lowering_threshold_form(workdir):
    items = _items(workdir, "property f = faithfulness(net, ig, test, metric deletion_auc, removal {black, "
                            "telea(2)}, steps 4, patch(2)) <= 0.4 with confidence 0.9 samples 200 seed 3\ncheck f\n")
    assert [type(i) for i in items] == [Faithfulness, Faithfulness]
    a, b = items
    assert a.id == "f/ig/black" and b.removal == RemovalSpec("telea", (2.0,))
    assert a.threshold == 0.4 and a.comparison == "<=" and a.confidence == 0.9
    assert a.resamples == 200 and a.seed == 3
    assert a.options.steps == 4 and a.options.granularity == "patch" and a.options.patch == 2
    assert a.explainer.method == "integrated_gradients" and dict(a.explainer.params) == {"steps": 8}


def test_threshold_on_the_left_flips(workdir):
    (item,) = _items(workdir, "property f = 0.1 <= faithfulness(net, sal, test, metric srg)\ncheck f\n")
    assert item.comparison == ">=" and item.threshold == 0.1 and item.removal == RemovalSpec("black")


def test_lowering_comparison_and_sufficiency(workdir):
    items = _items(workdir, "property c = faithfulness(net, {ig, sal, rnd}, test, metric srg, removal {black, nli})\n"
                            "property s = sufficient(net, test, top min of ig, linf(0.05), patch(4))\ncheck c, s\n")
    comp, *suff = items
    assert isinstance(comp, ExplainerComparison) and len(comp.explainers) == 3 and len(comp.removals) == 2
    assert len(suff) == 4 and all(isinstance(s, Sufficiency) for s in suff)
    assert suff[0].k is None and suff[0].eps == 0.05 and suff[0].granularity == "patch" and suff[2].index == 2


def test_no_images_lower_to_no_items(workdir):
    """A per-image property over an empty selection is an empty check (it used to be lowered as a
    robustness query and crash)."""
    spec = _spec(workdir, "data none = npz \"test.npz\" take 0\n"
                          "property s = sufficient(net, none, top 2 of ig)\ncheck s\n")
    assert spec.ok and any("selects no rows" in d.message for d in spec.diagnostics)
    (check,) = lower(spec).checks
    assert check.property == "s" and check.items == ()


@pytest.mark.parametrize("body, message", [
    ("explainer bad = lime_juice(net)\nproperty f = faithfulness(net, bad, test, metric srg) <= 1\n",
     "unknown attribution method"),
    ("explainer o = occlusion(net, steps 3)\nproperty f = faithfulness(net, o, test, metric srg) <= 1\n",
     "does not take `steps`"),
    ("property f = faithfulness(net, ig, test, metric deletion) <= 1\n", "did you mean 'deletion_auc'"),
    ("property f = faithfulness(net, ig, test, metric srg, removal sparkles) <= 1\n", "unknown removal baseline"),
    ("property f = faithfulness(net, ig, test) <= 1\n", "needs `metric M`"),
    ("property f = faithfulness(net, ig, test, metric srg)\n", "compares explainers"),
    ("property f = faithfulness(net, test, test, metric srg) <= 1\n", "'test' is not an explainer"),
    ("property f = sufficient(net, test, top 3 of ig) <= 2\n", "not compared with a threshold"),
    ("property f = sufficient(net, test, of ig)\n", "top k of EXPLAINER"),
    ("property f = faithfulness(net, ig, test, metric srg, removal learned(3)) <= 1\n", "in-painter file"),
    ("property f = faithfulness(net, ig, test, metric srg) <= 1 with confidence 0.9 seed -1\n", "a seed is an integer"),
    ("property f = faithfulness(net, ig, test, metric srg, steps 999999999999999999999) <= 1\n",
     "steps must be an integer from 1 to 1,000,000"),  # found by the spec fuzzer: it exhausted memory
    ("explainer big = integrated_gradients(net, steps 1e9)\nproperty f = faithfulness(net, big, test, metric srg) <= 1\n",
     "steps must be an integer from 1 to 1,000,000"),
    ("explainer r2 = random(net, seed 4294967296)\nproperty f = faithfulness(net, r2, test, metric srg) <= 1\n",
     "a seed is an integer from 0 to 4294967295"),
])
def test_errors_are_located_diagnostics(workdir, body, message):
    text = _errors(workdir, body + "check f\n")
    assert message in text
    assert "s.hspec:" in text


def test_faithfulness_measured_and_decided(workdir):
    from hdsl.planner import run_item
    from hdsl.xai.stats import Interval, decide

    (item,) = _items(workdir, "property f = faithfulness(net, ig, test, metric deletion_auc, removal nli(0), "
                              "steps 4) <= 0.9\ncheck f\n")
    r = run_item(item, 60)
    assert isinstance(r, MeasurementResult) and r.samples == 4
    lo, hi = r.interval
    assert lo <= r.estimate <= hi
    assert r.status is decide(Interval(r.estimate, lo, hi, 0.95, 4, 0, 1000, 0), "<=", 0.9)
    assert len(dict(r.details)["per_image"]) == 4


def test_comparison_reports_rankings(workdir):
    from hdsl.planner import run_item

    (item,) = _items(workdir, "property c = faithfulness(net, {ig, rnd}, test, metric srg, removal {black, blur(1)}, "
                              "steps 4)\ncheck c\n")
    r = run_item(item, 60)
    d = dict(r.details)
    assert r.status in (Status.PASS, Status.FAIL, Status.INCONCLUSIVE)
    assert set(d["ranking[black]"]) == {"ig", "rnd"} and set(d["ranking[blur(1)]"]) == {"ig", "rnd"}
    assert (r.status is Status.PASS) == (d["ranking[black]"] == d["ranking[blur(1)]"])


def test_sufficiency_end_to_end(workdir):
    from hdsl.planner import run_item

    items = _items(workdir, "property s = sufficient(net, test, top 64 of sal)\n"
                            "property m = sufficient(net, test, top min of sal, patch(4))\ncheck s, m\n")
    full = run_item(items[0], 30)
    assert isinstance(full, Result) and full.verdict is Verdict.PROVED  # every pixel fixed: the point itself
    search = run_item(items[4], 60)
    stats = dict(search.stats)
    assert search.verdict is Verdict.PROVED and 0 <= stats["k_min_proved"] <= 4
