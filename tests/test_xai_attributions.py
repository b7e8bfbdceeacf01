"""Attribution wrappers against direct captum calls, analytic cases and the controls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdsl.diagnostics import HdslError
from hdsl.xai import attributions as A


def _convnet(seed=0, c=3, h=8, k=4):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(4 * h * h, k),
    ).eval()


def _batch(n=5, c=3, h=8, seed=1):
    return torch.rand(n, c, h, h, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients", "occlusion"])
def test_matches_direct_captum(method):
    import captum.attr as ca

    net = _convnet()
    x = _batch()
    y = torch.tensor([0, 1, 2, 3, 0])
    ours = A.attribute(method, net, x, y, batch=2)  # batching must not change results
    xr = x.clone().requires_grad_(True)
    if method == "saliency":
        ref = ca.Saliency(net).attribute(xr, target=y.tolist(), abs=True)
    elif method == "input_x_gradient":
        ref = ca.InputXGradient(net).attribute(xr, target=y.tolist())
    elif method == "integrated_gradients":
        ref = ca.IntegratedGradients(net).attribute(xr, baselines=0.0, target=y.tolist(), n_steps=32)
    else:
        ref = ca.Occlusion(net).attribute(xr, sliding_window_shapes=(3, 4, 4), strides=(3, 4, 4), baselines=0.0,
                                          target=y.tolist())
    assert torch.allclose(ours, ref.detach(), atol=1e-6)


def test_saliency_sign_convention():
    net = _convnet(seed=2)
    x = _batch(seed=3)
    y = torch.zeros(5, dtype=torch.long)
    signed = A.attribute("saliency", net, x, y, signed=True)
    plain = A.attribute("saliency", net, x, y)
    assert (plain >= 0).all() and (signed < 0).any()
    assert torch.allclose(plain, signed.abs())


def test_integrated_gradients_completeness():
    net = _convnet(seed=4)
    x = _batch(seed=5)
    y = torch.tensor([1, 2, 3, 0, 1])
    a = A.attribute("integrated_gradients", net, x, y, steps=64)
    with torch.no_grad():
        gap = net(x).gather(1, y.view(-1, 1)).view(-1) - net(torch.zeros_like(x)).gather(1, y.view(-1, 1)).view(-1)
    assert torch.allclose(a.sum(dim=(1, 2, 3)), gap, atol=1e-3)


def test_gradient_shap_is_seeded():
    net = _convnet(seed=6)
    x = _batch(seed=7)
    y = torch.zeros(5, dtype=torch.long)
    a = A.attribute("gradient_shap", net, x, y, seed=3)
    b = A.attribute("gradient_shap", net, x, y, seed=3)
    c = A.attribute("gradient_shap", net, x, y, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_grad_cam_shape_and_relu():
    net = _convnet(seed=8)
    x = _batch(seed=9)
    a = A.attribute("grad_cam", net, x, torch.zeros(5, dtype=torch.long))
    assert a.shape == (5, 1, 8, 8) and (a >= 0).all()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_grad_cam_on_imported_graph_matches_captum_on_module(tmp_path):
    import captum.attr as ca

    from hdsl.nn import load_onnx
    from hdsl.xai.model import ChannelFirst

    net = _convnet(seed=10)
    x = _batch(seed=11)
    y = torch.tensor([3, 2, 1, 0, 3])
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x[:1],), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)
    g = load_onnx(path)
    wrapped = ChannelFirst(g, g.input_shape)
    ours = A.attribute("grad_cam", wrapped, x, y)
    cam = ca.LayerGradCam(net, net[2]).attribute(x, target=y.tolist(), relu_attributions=True)
    ref = ca.LayerAttribution.interpolate(cam, (8, 8), interpolate_mode="bilinear")
    assert torch.allclose(ours, ref.detach(), atol=1e-5)


def test_random_control_and_model_randomisation():
    net = _convnet(seed=12)
    x = _batch(n=6, seed=13)
    y = torch.zeros(6, dtype=torch.long)
    r = A.attribute("random", net, x, y, seed=1)
    assert r.shape == (6, 1, 8, 8) and torch.equal(r, A.attribute("random", net, x, y, seed=1))
    rand = A.randomize_model(net, seed=0)
    assert not torch.allclose(rand(x), net(x))
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), _convnet(seed=12).parameters()))  # untouched
    same = A.model_randomisation_check("saliency", net, x, y)
    assert same.shape == (6,) and np.all(np.abs(same) < 0.9)
    # a method that ignores the weights is perfectly correlated with itself
    ident = A.spearman_rows(r.flatten(1), r.flatten(1))
    assert np.allclose(ident, 1.0)


def test_unknown_method_or_option_is_diagnostic():
    net = _convnet()
    with pytest.raises(HdslError, match="unknown attribution method"):
        A.attribute("lime_juice", net, _batch(), torch.zeros(5, dtype=torch.long))
    with pytest.raises(HdslError, match="does not take"):
        A.attribute("integrated_gradients", net, _batch(), torch.zeros(5, dtype=torch.long), window=3)
    with pytest.raises(HdslError, match="convolutional"):
        mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 2))
        A.attribute("grad_cam", mlp, _batch(), torch.zeros(5, dtype=torch.long))
