"""Every tensor of branch and bound and of the level bounds lives on the device asked for.

No GPU is needed to check the placement: inside ``with torch.device("meta")``
a tensor created without an explicit device lands on the meta device, and any
arithmetic mixing it with the CPU tensors of a ``device="cpu"`` run raises. So
a search that passes here with the same answer as outside the context places
everything explicitly, which is what a CUDA run needs. With a GPU, the last
test compares CUDA against the CPU directly.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from hdsl.bab.input_split import input_split
from hdsl.bab.relu_split import relu_split
from hdsl.bounds import DEVICE_ENV, default_device
from hdsl.bounds.disjunction import Bounder, SeqNet, level_bounds
from hdsl.exact.query import prepare
from hdsl.nn import load_onnx
from test_complete_agreement import random_query

torch.set_num_threads(1)
#: (seed, S, radius) of 16-16 random nets whose searches split: input 7 / 27 / 1 boxes, ReLU 75 / 1,063 / 31
#: domains (the last one falsified), so warm starts, β, patterns and candidates all run.
CASES = ((10, (0, 1), 1.0), (14, (1, 2, 3), 2.0), (9, (0, 1), 1.0))


def _searches(q, device):
    prep = prepare(q)
    out = {}
    for name, search, kw in (("input", input_split, {"alpha_after_s": 0.0}), ("relu", relu_split, {})):
        r = search(prep.net, prep.rows, prep.boxes, prep.replay, time.monotonic() + 30, device=device, **kw)
        out[name] = (r.status, r.stats.get("boxes", r.stats.get("domains")),
                     None if r.counterexample is None else tuple(r.counterexample.x))
    return out


@pytest.mark.parametrize("seed, S, radius", CASES)
def test_searches_place_every_tensor_on_their_device(tmp_path, seed, S, radius):
    *_, q = random_query(tmp_path, f"n{seed}", np.random.default_rng(seed), (16, 16), S, radius)
    plain = _searches(q, "cpu")
    with torch.device("meta"):  # an unplaced tensor would be a meta tensor, and mixing it fails
        placed = _searches(q, "cpu")
    assert placed == plain
    assert all(status in ("proved", "falsified") for status, *_ in plain.values())


@pytest.mark.parametrize("seed, S, radius", CASES)
def test_level_bounds_place_every_tensor_on_their_device(tmp_path, seed, S, radius):
    _, lo, hi, _, q = random_query(tmp_path, f"n{seed}", np.random.default_rng(seed), (16, 16), S, radius / 4)
    graph = load_onnx(q.network.path)
    sets = [((0, 1), (2, 3)), ((0,), (1, 2, 3))]

    def run():
        b = Bounder(SeqNet.of(graph, "cpu"), lo, hi)
        return [(r.open_outside, r.stage, r.margin) for r in level_bounds(graph, lo, hi, sets, bounder=b)]

    plain = run()
    with torch.device("meta"):
        placed = run()
    assert placed == plain


def test_level_bounds_on_the_shipped_conv_net_place_every_tensor(request):
    """The case study's network: convolutions, reshapes and the λ ascent over a real image."""
    repo = request.config.rootpath
    graph = load_onnx(str(repo / "models/cifar10_small.onnx"))
    x = np.load(repo / "data/cifar10_test.npz")["x"][0].astype(np.float64).reshape(-1)
    lo, hi = np.clip(x - 1 / 255, 0, 1), np.clip(x + 1 / 255, 0, 1)
    sets = [((0, 1, 8, 9), (2, 3, 4, 5, 6, 7)), ((3,), (0, 1, 2, 4, 5, 6, 7, 8, 9))]

    def run():
        b = Bounder(SeqNet.of(graph, "cpu"), lo, hi)
        return [(r.open_outside, r.stage, r.margin) for r in level_bounds(graph, lo, hi, sets, bounder=b,
                                                                          lambda_steps=3)]

    plain = run()
    with torch.device("meta"):
        placed = run()
    assert placed == plain


def test_default_device_follows_the_environment(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.delenv(DEVICE_ENV)
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        with pytest.raises(RuntimeError, match="no CUDA device"):
            default_device()


@pytest.mark.parametrize("value, message", [("gpu", "use cpu, cuda or cuda:N"), ("cuda:x", "use cpu, cuda or cuda:N")])
def test_cli_rejects_a_bad_device(value, message):
    from typer.testing import CliRunner

    from hdsl.cli import app

    res = CliRunner().invoke(app, ["--device", value, "version"])
    assert res.exit_code == 3
    assert message in res.output and "Traceback" not in res.output


def test_cli_checks_the_device_environment_variable(monkeypatch):
    from typer.testing import CliRunner

    from hdsl.cli import app

    monkeypatch.setenv(DEVICE_ENV, "tpu")
    res = CliRunner().invoke(app, ["version"])
    assert res.exit_code == 3 and "HDSL_DEVICE" in res.output and "Traceback" not in res.output
    if not torch.cuda.is_available():
        monkeypatch.delenv(DEVICE_ENV)
        res = CliRunner().invoke(app, ["--device", "cuda", "version"])
        assert res.exit_code == 3 and "no CUDA device" in res.output
        assert DEVICE_ENV not in os.environ  # a refused device is not left behind for the process


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("seed, S, radius", CASES)
def test_cuda_agrees_with_the_cpu(tmp_path, seed, S, radius):
    *_, q = random_query(tmp_path, f"n{seed}", np.random.default_rng(seed), (16, 16), S, radius)
    cpu, cuda = _searches(q, "cpu"), _searches(q, "cuda")
    for name in cpu:
        # float64 sums in another order may move a bound by an ulp, and so the search; never the verdict
        assert cuda[name][0] == cpu[name][0], (name, cpu[name], cuda[name])


def _xai_cases():
    from hdsl.xai import metrics as M

    ch, patch = M.Granularity("channel"), M.Granularity("patch", 4)
    return {
        "pixel_flipping": lambda net, x, y, a, rem: M.pixel_flipping(net, x, y, a, rem, features_in_step=256,
                                                                     granularity=ch).curve,
        "region_perturbation": lambda net, x, y, a, rem: M.region_perturbation(net, x, y, a, rem, patch=8,
                                                                               regions=4).curve,
        "faithfulness_estimate": lambda net, x, y, a, rem: M.faithfulness_estimate(
            net, x, y, a, rem, features_in_step=16, granularity=patch).per_image,
        "faithfulness_corr": lambda net, x, y, a, rem: M.faithfulness_correlation(
            net, x, y, a, rem, granularity=patch, runs=4, subset_size=8).per_image,
        "insertion": lambda net, x, y, a, rem: M.insertion(net, x, y, a, rem, steps=4, granularity=patch).curve,
        "road": lambda net, x, y, a, rem: M.road(net, x, y, a, rem, percentages=(10, 50)).curve,
    }


def _xai_inputs(repo):
    """The shipped CIFAR-10 net (channel first), three test images, their predictions, random attributions."""
    from hdsl.xai.model import ChannelFirst, images_to_nchw

    g = load_onnx(str(repo / "models/cifar10_small.onnx"))
    net = ChannelFirst(g, g.input_shape).eval()
    x = images_to_nchw(np.load(repo / "data/cifar10_test.npz")["x"][:3], g.input_shape)
    with torch.no_grad():
        y = net(x).argmax(1)
    return g, net, x, y, torch.randn(x.shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("baseline", ["black", "mean", "blur", "nli", "telea", "biharmonic", "learned"])
def test_xai_metrics_follow_the_images_device(request, baseline):
    """The metrics put every tensor on the images' device (the model's), whatever the removal."""
    from hdsl.xai import removal as R

    repo = request.config.rootpath
    removal = {"black": R.Constant("black"), "mean": R.Constant("mean"), "blur": R.Blur(), "nli": R.NoisyLinear(),
               "telea": R.OpenCVInpaint("telea", 3.0), "biharmonic": R.Biharmonic(),
               "learned": R.Learned(str(repo / "benchmarks/xai_inpainter_cifar10.pt"))}[baseline]
    _, net, x, y, a = _xai_inputs(repo)
    for name, metric in _xai_cases().items():
        plain = np.asarray(metric(net, x, y, a, removal))
        with torch.device("meta"):
            placed = np.asarray(metric(net, x, y, a, removal))
        np.testing.assert_array_equal(placed, plain, err_msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_xai_metrics_on_cuda_agree_with_the_cpu(request):
    from hdsl.xai import removal as R
    from hdsl.xai.model import ChannelFirst

    g, net, x, y, a = _xai_inputs(request.config.rootpath)
    gpu = ChannelFirst(g.to("cuda"), g.input_shape).eval()
    for name, metric in _xai_cases().items():
        if name == "road":
            continue  # a 0/1 prediction can flip on a near tie between float32 sums in another order
        cpu_v = np.asarray(metric(net, x, y, a, R.Constant("black")))
        gpu_v = np.asarray(metric(gpu, x.cuda(), y.cuda(), a.cuda(), R.Constant("black")))
        np.testing.assert_allclose(gpu_v, cpu_v, rtol=1e-4, atol=1e-5, err_msg=name)
