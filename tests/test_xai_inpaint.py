"""The learned in-painter: trains in seconds, beats a mean fill on smooth images, round-trips."""

from __future__ import annotations

import pytest
import torch

from hdsl.diagnostics import HdslError
from hdsl.xai import inpaint_unet as U
from hdsl.xai import removal as R


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread than on an oversubscribed pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def checkerboards(n=64, h=8, seed=0):
    """Checkerboards with random per-image, per-channel contrast: a smooth fill
    (the untrained network) predicts the grey average; a trained one learns the parity."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(h), indexing="ij")
    cb = ((yy + xx) % 2).float()
    lo = 0.3 * torch.rand(n, 3, 1, 1, generator=g)
    hi = 0.7 + 0.3 * torch.rand(n, 3, 1, 1, generator=g)
    return lo + (hi - lo) * cb


@pytest.fixture(scope="module")
def trained(one_thread):
    imgs = checkerboards()
    model, report = U.train_inpainter(imgs, epochs=10, batch_size=16, width=4, seed=0)
    return model, report, imgs


def test_training_improves_on_its_starting_point(trained):
    # the untrained network is exactly the normalised-convolution fill (zero-initialised head)
    model, report, imgs = trained
    fresh = U.InpaintUNet(U.UNetConfig(3, 4))
    start, base = U.evaluate_inpainter(fresh, imgs, seed=1)
    assert abs(start - base) < 1e-6
    assert report.steps == 40
    assert report.final_loss < 0.9 * report.baseline_loss


def test_training_is_deterministic():
    imgs = checkerboards(n=32)
    a, ra = U.train_inpainter(imgs, epochs=1, batch_size=16, width=2, seed=3)
    b, rb = U.train_inpainter(imgs, epochs=1, batch_size=16, width=2, seed=3)
    assert ra.final_loss == rb.final_loss
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_save_load_and_removal_interface(trained, tmp_path):
    model, _, imgs = trained
    path = tmp_path / "inp.pt"
    U.save_inpainter(model, path, {"images": "smooth"})
    removal = R.make_removal("learned", str(path))
    x = imgs[:4]
    mask = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.5
    out = removal(x, mask)
    assert torch.equal(out[~mask.expand_as(x)], x[~mask.expand_as(x)])
    assert torch.allclose(out, model.inpaint(x, mask))
    per_channel = torch.rand(4, 3, 8, 8) < 0.5
    out2 = removal(x, per_channel)
    assert torch.equal(out2[~per_channel], x[~per_channel])


def test_odd_sizes_work(trained):
    model, _, _ = trained
    x = torch.rand(2, 3, 7, 9)  # padded to multiples of 4 inside
    mask = torch.rand(2, 1, 7, 9) < 0.3
    assert model.inpaint(x, mask).shape == x.shape


def test_bad_files_are_diagnostics(tmp_path):
    with pytest.raises(HdslError, match="not found"):
        U.load_inpainter(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, str(bad))
    with pytest.raises(HdslError, match="not an hdsl in-painter"):
        U.load_inpainter(bad)
