"""Formal sufficiency of top-k features: exact answers on a linear network, soundness on a CNN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdsl import ir
from hdsl.diagnostics import HdslError
from hdsl.results import Verdict
from hdsl.xai import sufficiency as SF
from hdsl.xai.metrics import Granularity


def _export(net: torch.nn.Module, shape, path) -> str:
    torch.onnx.export(net.eval(), (torch.zeros(1, *shape),), str(path), input_names=["x"], output_names=["y"],
                      dynamo=False)
    return str(path)


@pytest.fixture(scope="module")
def linear_net(tmp_path_factory):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        net[1].weight.mul_(3.0)
    path = _export(net, (1, 4, 4), tmp_path_factory.mktemp("lin") / "lin.onnx")
    return net, ir.Network("lin", path, (1, 4, 4), (0.0, 1.0), num_outputs=3)


def _exact_sufficient(net, x, fixed, y) -> bool:
    """Exact for a linear model: the worst case of each margin sets every free pixel to a bound."""
    w, b = net[1].weight.detach().double(), net[1].bias.detach().double()
    xv = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    f = torch.as_tensor(fixed).reshape(-1)
    for j in range(3):
        if j == y:
            continue
        d = w[y] - w[j]
        worst = (d * torch.where(f, xv, torch.where(d > 0, 0.0, 1.0))).sum() + b[y] - b[j]
        if worst <= 0:
            return False
    return True


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_linear_network_search_matches_brute_force(linear_net):
    net, network = linear_net
    g = torch.Generator().manual_seed(1)
    for trial in range(3):
        x = torch.rand(1, 4, 4, generator=g)
        y = int(net(x.unsqueeze(0)).argmax())
        attr = torch.randn(1, 4, 4, generator=g)
        truth = [_exact_sufficient(net, x.numpy(), SF.fixed_mask(attr, (1, 4, 4), k, Granularity()).numpy(), y)
                 for k in range(17)]
        assert truth[16] and all(truth[k] <= truth[k + 1] for k in range(16))  # monotone
        smallest = truth.index(True)
        dec = SF.Decider(network, x.numpy(), attr, y, timeout=20)
        out = SF.smallest_sufficient_k(dec)
        for r in out.tried:  # every verdict agrees with the exact answer
            if r.verdict is Verdict.PROVED:
                assert truth[r.k]
            if r.verdict is Verdict.FALSIFIED:
                assert not truth[r.k]
        assert out.smallest_proved == smallest
        if smallest > 0:
            assert out.exact and out.largest_not_proved == smallest - 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_counterexamples_respect_fixed_features(tmp_path):
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(48, 3))
    network = ir.Network("cnn", _export(net, (1, 4, 4), tmp_path / "cnn.onnx"), (1, 4, 4), (0.0, 1.0),
                         num_outputs=3)
    x = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(4))
    y = int(net(x.unsqueeze(0)).argmax())
    attr = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(5))
    dec = SF.Decider(network, x.numpy(), attr, y, timeout=20)
    out = SF.smallest_sufficient_k(dec)
    assert dec.cache[16].verdict is Verdict.PROVED
    proved = [r.k for r in out.tried if r.verdict is Verdict.PROVED]
    falsified = [r.k for r in out.tried if r.verdict is Verdict.FALSIFIED]
    assert not proved or not falsified or max(falsified) < min(proved)
    for r in out.tried:
        if r.verdict is Verdict.FALSIFIED:
            ce = r.result.counterexample
            assert ce is not None and ce.margin <= 0
            fixed = SF.fixed_mask(attr, (1, 4, 4), r.k, Granularity()).numpy().reshape(-1)
            xc = np.asarray(ce.x)
            assert np.array_equal(xc[fixed], x.numpy().reshape(-1)[fixed].astype(np.float64))
            assert np.all((xc >= 0) & (xc <= 1))
            with torch.no_grad():
                assert int(net(torch.tensor(xc, dtype=torch.float32).view(1, 1, 4, 4)).argmax()) != y \
                    or ce.margin == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_proof_implies_inpainting_sufficiency(linear_net):
    """Every in-painted completion stays in the [0, 1] box, so a proved k keeps the class under any removal."""
    from hdsl.xai import removal as R

    net, network = linear_net
    x = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(9))
    y = int(net(x.unsqueeze(0)).argmax())
    attr = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(10))
    out = SF.smallest_sufficient_k(SF.Decider(network, x.numpy(), attr, y, timeout=20))
    k = out.smallest_proved
    free = ~SF.fixed_mask(attr, (1, 4, 4), k, Granularity()).unsqueeze(0)
    for removal in (R.Constant("black"), R.Constant(1.0), R.NoisyLinear(0.0), R.OpenCVInpaint("telea"),
                    R.Biharmonic()):
        filled = removal(x.unsqueeze(0), free).clamp(0, 1)
        assert int(net(filled).argmax()) == y


def test_eps_box_and_layout():
    network = ir.Network("n", "unused.onnx", (2, 2, 3), (0.0, 1.0), num_outputs=2)  # channels-last
    x = np.arange(12, dtype=np.float64).reshape(3, 2, 2) / 12  # CHW
    fixed = np.zeros((1, 2, 2), dtype=bool)
    fixed[0, 0, 0] = True
    box = SF.sufficiency_box(network, x, fixed, eps=0.1)
    lo, hi = np.array(box.lower).reshape(2, 2, 3), np.array(box.upper).reshape(2, 2, 3)
    hwc = x.transpose(1, 2, 0)
    assert np.array_equal(lo[0, 0], hwc[0, 0]) and np.array_equal(hi[0, 0], hwc[0, 0])
    assert np.allclose(lo[1, 1], np.maximum(hwc[1, 1] - 0.1, 0)) and np.allclose(hi[1, 1], np.minimum(hwc[1, 1] + 0.1, 1))
    with pytest.raises(HdslError, match="no input range"):
        SF.sufficiency_box(ir.Network("m", "u.onnx", (3, 2, 2)), x, fixed, eps=None)
