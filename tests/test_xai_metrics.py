"""Metric, removal and statistics oracles that need no reference tool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdsl.diagnostics import HdslError
from hdsl.results import Status
from hdsl.xai import metrics as M
from hdsl.xai import removal as R
from hdsl.xai import stats as S


class Linear(torch.nn.Module):
    """Logits ``W · vec(x) + b``: every metric has a closed form on it."""

    def __init__(self, c=3, h=6, k=4, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(k, c * h * h, generator=g, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn(k, generator=g, dtype=torch.float64))

    def forward(self, x):
        return x.double().flatten(1) @ self.w.T + self.b


def _images(n=5, c=3, h=6, seed=1):
    return torch.rand(n, c, h, h, generator=torch.Generator().manual_seed(seed))


def test_linear_model_deletion_lowers_logit_by_exact_amount():
    net = Linear()
    x = _images()
    y = torch.tensor([0, 1, 2, 3, 0])
    b = 0.25
    a = torch.randn(5, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    res = M.deletion(net, x, y, a, R.Constant(b), steps=6, score="logit")
    wy = net.w[y].view(5, 3, 6, 6).detach()
    rank = M.rank_map(a, tuple(x.shape), M.Granularity(), "morf")[0]  # [N,1,H,W]
    f0 = net(x).gather(1, y.view(-1, 1)).view(-1).detach()
    for j, cnt in enumerate(M.step_counts(36, 6)):
        removed = (rank < cnt).expand_as(x)
        drop = (wy * (x.double() - b) * removed).sum(dim=(1, 2, 3))
        assert np.allclose(res.curve[:, j], (f0 - drop).numpy(), atol=1e-5)


def test_input_x_gradient_on_linear_model_has_correlation_one():
    net = Linear(seed=3)
    x = _images(seed=4)
    y = torch.tensor([1, 1, 0, 2, 3])
    a = (net.w[y].view(5, 3, 6, 6) * x).detach()  # exact contributions against a zero baseline
    res = M.faithfulness_correlation(net, x, y, a, R.Constant("zero"), runs=20, subset_size=7, score="logit")
    assert np.allclose(res.per_image, 1.0, atol=1e-5)


def test_insertion_equals_reversed_lerf_deletion():
    net = Linear(seed=5)
    x = _images(seed=6)
    y = torch.zeros(5, dtype=torch.long)
    a = torch.randn(5, 1, 6, 6)
    ins = M.insertion(net, x, y, a, R.Constant("mean"), steps=4)
    lerf = M.deletion(net, x, y, a, R.Constant("mean"), steps=4, order="lerf")
    assert np.allclose(ins.curve, lerf.curve[:, ::-1])
    assert np.allclose(ins.per_image, lerf.per_image)


def test_curve_endpoints_and_auc():
    net = Linear(seed=7)
    x = _images(seed=8)
    y = torch.zeros(5, dtype=torch.long)
    a = torch.randn(5, 3, 6, 6)
    res = M.deletion(net, x, y, a, R.Constant(0.5), steps=3)
    full = torch.softmax(net(x), 1)[:, 0].detach().numpy()
    grey = torch.softmax(net(torch.full_like(x, 0.5)), 1)[:, 0].detach().numpy()
    assert np.allclose(res.curve[:, 0], full) and np.allclose(res.curve[:, -1], grey)
    c = res.curve
    assert np.allclose(res.per_image, ((c[:, :-1] + c[:, 1:]) / 2).mean(axis=1))
    assert list(res.fractions) == [0, 1 / 3, 2 / 3, 1]


def test_srg_is_lerf_minus_morf_and_random_attribution_is_worse():
    net = Linear(c=1, h=8, k=3, seed=9)
    x = _images(n=20, c=1, h=8, seed=10)
    y = net(x).argmax(1)
    a_good = (net.w[y].view(20, 1, 8, 8) * (x - 0.0)).detach()
    a_rand = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    good = M.srg(net, x, y, a_good, R.Constant("zero"), steps=8, score="logit")
    rand = M.srg(net, x, y, a_rand, R.Constant("zero"), steps=8, score="logit")
    assert np.allclose(good.per_image, good.extra["lerf"].per_image - good.extra["morf"].per_image)
    assert good.mean > rand.mean and good.mean > 0


def test_ranks_are_stable_on_ties():
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0]])
    assert M.ranks(scores, "morf").tolist() == [[3, 0, 1, 4, 2]]
    assert M.ranks(scores, "lerf").tolist() == [[1, 4, 3, 0, 2]]


def test_patch_granularity_groups_pixels():
    fmap, nf = M.Granularity("patch", 2).feature_map(3, 4, 5)
    assert nf == 6 and fmap.shape == (1, 4, 5)
    assert fmap[0, :2, :2].unique().tolist() == [0] and fmap[0, 3, 4].item() == 5
    a = torch.zeros(1, 1, 4, 5)
    a[0, 0, 3, 4] = 1.0
    assert M.feature_scores(a, (1, 3, 4, 5), M.Granularity("patch", 2)).argmax().item() == 5


def test_road_at_zero_percent_is_plain_accuracy():
    net = Linear(c=1, h=6, k=3, seed=11)
    x = _images(n=8, c=1, h=6, seed=12)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    res = M.road(net, x, y, torch.randn(8, 1, 6, 6), R.NoisyLinear(0.0), percentages=[0, 50])
    acc = (net(x).argmax(1) == y).double().mean().item()
    assert res.extra["accuracy"][0] == pytest.approx(acc)


def test_unknown_metric_and_option_are_diagnostics():
    net = Linear()
    x = _images()
    with pytest.raises(HdslError, match="unknown faithfulness metric"):
        M.compute("nope", net, x, torch.zeros(5, dtype=torch.long), torch.rand(5, 1, 6, 6), R.Constant())
    with pytest.raises(HdslError, match="does not take"):
        M.compute("srg", net, x, torch.zeros(5, dtype=torch.long), torch.rand(5, 1, 6, 6), R.Constant(), runs=3)


# --------------------------------------------------------------------------- removal

BASELINES = [R.Constant("black"), R.Constant("mean"), R.Constant(0.3), R.Blur(1.0), R.NoisyLinear(0.01),
             R.OpenCVInpaint("telea"), R.OpenCVInpaint("ns"), R.Biharmonic()]


@pytest.mark.parametrize("removal", BASELINES, ids=lambda r: r.name)
@pytest.mark.parametrize("per_channel", [False, True])
def test_removal_keeps_unmasked_pixels_bit_identical(removal, per_channel):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 8, 8, generator=g)
    mask = torch.rand(3, 3 if per_channel else 1, 8, 8, generator=g) < 0.4
    out = removal(x, mask)
    keep = ~mask.expand_as(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[keep], x[keep])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("removal", [R.Blur(1.5), R.NoisyLinear(0.0), R.OpenCVInpaint("telea"),
                                     R.OpenCVInpaint("ns"), R.Biharmonic()], ids=lambda r: r.name)
def test_inpainters_reproduce_a_constant_image(removal):
    x = torch.full((2, 3, 8, 8), 0.37)
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, 2:6, 3:7] = True
    assert torch.allclose(removal(x, mask), x, atol=2e-4)  # 16-bit encoding for OpenCV


@pytest.mark.parametrize("removal", [R.Constant("mean"), R.NoisyLinear(0.0), R.OpenCVInpaint("telea"),
                                     R.OpenCVInpaint("ns"), R.Biharmonic()], ids=lambda r: r.name)
def test_inpainters_do_not_read_removed_values(removal):
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 3, 8, 8, generator=g)
    mask = torch.rand(2, 1, 8, 8, generator=g) < 0.5
    other = torch.where(mask.expand_as(x), torch.rand(2, 3, 8, 8, generator=g), x)
    assert torch.allclose(removal(x, mask), removal(other, mask), atol=1e-12)
    full = torch.ones(2, 1, 8, 8, dtype=torch.bool)
    assert torch.allclose(removal(x, full), torch.full_like(x, R.EMPTY_FILL))  # nothing visible: no leak


def test_linear_imputation_is_exact_on_a_ramp_interior():
    h = w = 9
    rr, cc = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    x = (0.1 * rr + 0.05 * cc).view(1, 1, h, w)
    mask = torch.zeros(1, 1, h, w, dtype=torch.bool)
    mask[..., 3:6, 2:7] = True
    assert torch.allclose(R.NoisyLinear(0.0)(x, mask), x, atol=1e-12)


def test_noisy_linear_is_seeded():
    x = torch.rand(2, 3, 8, 8)
    mask = torch.rand(2, 1, 8, 8) < 0.5
    assert torch.equal(R.NoisyLinear(0.01, seed=4)(x, mask), R.NoisyLinear(0.01, seed=4)(x, mask))
    assert not torch.equal(R.NoisyLinear(0.01, seed=4)(x, mask), R.NoisyLinear(0.01, seed=5)(x, mask))


def test_make_removal_unknown_is_diagnostic():
    with pytest.raises(HdslError, match="unknown removal baseline"):
        R.make_removal("sparkles")
    assert R.make_removal("telea").name == "telea(3)"


# --------------------------------------------------------------------------- statistics


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    v = np.random.default_rng(0).normal(0.3, 0.1, size=200)
    a = S.bootstrap_mean(v, 0.95, 500, seed=7)
    b = S.bootstrap_mean(v, 0.95, 500, seed=7)
    assert a == b
    assert a.lower < a.estimate < a.upper
    assert a.lower < 0.3 < a.upper
    assert a.upper - a.lower < 0.05


def test_bootstrap_drops_nans_and_counts_them():
    iv = S.bootstrap_mean([0.1, np.nan, 0.3, 0.2], seed=0)
    assert iv.samples == 3 and iv.dropped == 1


def test_decide():
    iv = S.Interval(0.2, 0.15, 0.25, 0.95, 10, 0, 100, 0)
    assert S.decide(iv, "<=", 0.3) is Status.PASS
    assert S.decide(iv, "<=", 0.1) is Status.FAIL
    assert S.decide(iv, "<=", 0.2) is Status.INCONCLUSIVE
    assert S.decide(iv, ">=", 0.1) is Status.PASS
    assert S.decide(iv, ">=", 0.3) is Status.FAIL


def test_more_steps_than_features_is_a_diagnostic():
    """A step count above the number of features only repeats points; a huge one exhausted memory."""
    from hdsl.diagnostics import HdslError
    from hdsl.xai.metrics import step_counts

    assert step_counts(8, 4).tolist() == [0, 2, 4, 6, 8]
    with pytest.raises(HdslError) as e:
        step_counts(8, 9)
    assert e.value.diagnostics[0].code == "X025"
