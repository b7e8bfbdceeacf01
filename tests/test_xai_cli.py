"""`hdsl xai train-inpainter` and the image reader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hdsl.cli import app
from hdsl.commands.xai import read_images
from hdsl.diagnostics import HdslError


def test_train_inpainter_command_saves_a_usable_file(tmp_path):
    imgs = (np.random.default_rng(0).random((8, 8, 8, 3)) * 255).astype(np.uint8)  # NHWC uint8
    np.savez(tmp_path / "imgs.npz", x=imgs)
    out = tmp_path / "inp.pt"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = CliRunner().invoke(app, ["xai", "train-inpainter", "--images", str(tmp_path / "imgs.npz"), "--out",
                                     str(out), "--epochs", "1", "--batch-size", "4", "--width", "2"])
    finally:
        torch.set_num_threads(before)
    assert r.exit_code == 0, r.output
    assert "training on 8 images [3, 8, 8]" in r.output and out.exists()
    from hdsl.xai.removal import make_removal

    x = torch.rand(2, 3, 8, 8)
    mask = torch.rand(2, 1, 8, 8) < 0.5
    y = make_removal("learned", str(out))(x, mask)
    assert torch.equal(y[~mask.expand_as(x)], x[~mask.expand_as(x)])


def test_read_images_layouts_and_errors(tmp_path):
    a = np.random.default_rng(1).random((3, 2, 5, 5)).astype(np.float32)  # NCHW float
    np.save(tmp_path / "a.npy", a)
    assert torch.equal(read_images(str(tmp_path / "a.npy")), torch.from_numpy(a))
    import matplotlib.image as mpimg

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(2):
        mpimg.imsave(folder / f"{i}.png", np.random.default_rng(i).random((6, 6, 3)))
    x = read_images(str(folder))
    assert x.shape == (2, 3, 6, 6) and 0 <= float(x.min()) and float(x.max()) <= 1
    with pytest.raises(HdslError, match="not found"):
        read_images(str(tmp_path / "missing.npz"))
    (tmp_path / "bad.txt").write_text("hello")
    with pytest.raises(HdslError, match="unsupported"):
        read_images(str(tmp_path / "bad.txt"))
