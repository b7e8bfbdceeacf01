"""A small learned in-painter: a two-level U-Net trained by hdsl on the user's images.

Input: the image with removed pixels zeroed, concatenated with the mask
(``C + 1`` channels); output: the completed image. Training draws random masks
of three kinds (scattered pixels at a random rate, rectangles, and blobs made
by thresholding blurred noise, which look like saliency top-k masks) and
minimises L1 on the removed pixels. Small enough to train in seconds on a CPU
for tests, and in about a minute on CIFAR-sized data.

Saved as a torch file holding ``state_dict`` and ``config`` (loaded with
``weights_only=True``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from hdsl.diagnostics import HdslError


@dataclass(frozen=True)
class UNetConfig:
    channels: int = 3
    width: int = 16


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GELU(),
    )


class InpaintUNet(nn.Module):
    """Two down/up levels; works for any H, W (sizes are padded to a multiple of 4)."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        self.enc1 = _block(c + 1, w)
        self.enc2 = _block(w, 2 * w)
        self.mid = _block(2 * w, 4 * w)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _block(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = _block(2 * w, w)
        self.out = nn.Conv2d(w, c, 1)
        nn.init.zeros_(self.out.weight)  # start as the visible-pixel mean fill, then learn the residual
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` [N,C,H,W] (removed values ignored), ``mask`` [N,1,H,W] (1 = removed)."""
        n, c, h, w = x.shape
        m = mask.to(x.dtype)
        inp = torch.cat([normalized_convolution(x, m), m], dim=1)
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:
            inp = nn.functional.pad(inp, (0, pw, 0, ph), mode="replicate")
        e1 = self.enc1(inp)
        e2 = self.enc2(nn.functional.avg_pool2d(e1, 2))
        mid = self.mid(nn.functional.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(mid), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        out = self.out(d1)[:, :, :h, :w]
        return normalized_convolution(x, m) + out  # only removed pixels are used (the caller composites)

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, mask: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        """Removal interface: in-paint and composite (pixels outside ``mask`` unchanged).

        A channel-element mask ``[N,C,H,W]`` is reduced to a pixel mask for the
        network's input (any removed channel marks the pixel), then composited
        per channel element.
        """
        from hdsl.xai.removal import composite

        self.eval()
        pixel = mask.any(dim=1, keepdim=True)
        param = next(self.parameters())
        outs = []
        for i in range(0, images.shape[0], batch):
            xi = images[i : i + batch].to(param.device, param.dtype)
            outs.append(self(xi, pixel[i : i + batch].to(param.device)).to(images.device, images.dtype))
        filled = torch.cat(outs) if outs else images.clone()
        return composite(images, mask, filled)


def normalized_convolution(x: torch.Tensor, m: torch.Tensor, sigmas=(1.0, 2.0, 4.0, 8.0)) -> torch.Tensor:
    """A smooth fill of the removed pixels from the visible ones: Gaussian-weighted
    means of visible pixels, finest scale with enough support first (the network
    starts from this and learns the residual)."""
    from hdsl.xai.removal import gaussian_blur

    vis = 1 - m
    xv = x * vis
    out = (xv.sum(dim=(2, 3), keepdim=True) / vis.sum(dim=(2, 3), keepdim=True).clamp(min=1)).expand_as(x)
    for s in reversed(sigmas):  # coarse to fine: finer scales overwrite where they have support
        num = gaussian_blur(xv, s)
        den = gaussian_blur(vis, s)
        ok = den > 1e-3
        out = torch.where(ok, num / den.clamp(min=1e-3), out)
    return torch.where(m.bool(), out, x)


# --------------------------------------------------------------------------- masks for training


def random_masks(n: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """A mix of scattered-pixel, rectangle and blob masks, removal rates 5%–95%."""
    kind = torch.randint(0, 3, (n,), generator=generator)
    rate = 0.05 + 0.9 * torch.rand(n, 1, 1, 1, generator=generator)
    scattered = torch.rand(n, 1, h, w, generator=generator) < rate
    # rectangles
    ys, xs = torch.arange(h).view(1, 1, h, 1), torch.arange(w).view(1, 1, 1, w)
    rh = (rate.sqrt() * h).clamp(min=1).round()
    rw = (rate.sqrt() * w).clamp(min=1).round()
    y0 = (torch.rand(n, 1, 1, 1, generator=generator) * (h - rh + 1)).floor()
    x0 = (torch.rand(n, 1, 1, 1, generator=generator) * (w - rw + 1)).floor()
    rect = (ys >= y0) & (ys < y0 + rh) & (xs >= x0) & (xs < x0 + rw)
    # blobs: the top ``rate`` share of low-frequency noise
    noise = nn.functional.interpolate(torch.rand(n, 1, max(1, h // 4), max(1, w // 4), generator=generator),
                                      size=(h, w), mode="bilinear", align_corners=False)
    thresh = _rowwise_quantile(noise.view(n, -1), 1 - rate.view(n)).view(n, 1, 1, 1)
    blob = noise >= thresh
    k = kind.view(n, 1, 1, 1)
    return torch.where(k == 0, scattered, torch.where(k == 1, rect, blob))


def _rowwise_quantile(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    sorted_vals, _ = values.sort(dim=1)
    idx = (q * (values.shape[1] - 1)).round().long().clamp(0, values.shape[1] - 1)
    return sorted_vals.gather(1, idx.view(-1, 1)).view(-1)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainReport:
    epochs: int
    steps: int
    final_loss: float
    baseline_loss: float  # L1 of the normalised-convolution fill (the untrained model) on the same masks
    seconds: float


def train_inpainter(images: torch.Tensor, *, epochs: int = 5, batch_size: int = 64, width: int = 16,
                    lr: float = 5e-3, seed: int = 0, max_seconds: float | None = None,
                    log=None) -> tuple[InpaintUNet, TrainReport]:
    """Train a U-Net in-painter on ``images`` ``[N, C, H, W]`` (values as the network sees them)."""
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError("need at least two images [N, C, H, W]")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    images = images.float()
    n, c, h, w = images.shape
    model = InpaintUNet(UNetConfig(channels=c, width=width))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, n // batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    start = time.monotonic()
    step = 0
    loss_v = float("nan")
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g)
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            x = images[idx]
            if torch.rand(1, generator=g).item() < 0.5:
                x = x.flip(3)
            m = random_masks(x.shape[0], h, w, g)
            out = model(x, m)
            mf = m.float()
            loss = ((out - x).abs() * mf).sum() / (mf.sum() * c).clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_v = float(loss.detach())
            if max_seconds is not None and time.monotonic() - start > max_seconds:
                break
        if log:
            log(f"epoch {epoch + 1}/{epochs}: L1 on removed pixels {loss_v:.4f}")
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            break
    final, base = evaluate_inpainter(model, images[: min(n, 512)], seed=seed + 1)
    return model, TrainReport(epoch + 1, step, final, base, time.monotonic() - start)


@torch.no_grad()
def evaluate_inpainter(model: InpaintUNet, images: torch.Tensor, seed: int = 1) -> tuple[float, float]:
    """Mean L1 on removed pixels for the model and for its untrained starting point
    (normalised convolution), on the same random masks."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = images.shape
    m = random_masks(n, h, w, g)
    out = model.inpaint(images, m)
    mf = m.float()
    mean_fill = normalized_convolution(images, mf)
    denom = (mf.sum() * c).clamp(min=1)
    return float(((out - images).abs() * mf).sum() / denom), float(((mean_fill - images).abs() * mf).sum() / denom)


# --------------------------------------------------------------------------- save / load


def save_inpainter(model: InpaintUNet, path: str | Path, meta: dict | None = None) -> None:
    torch.save({"format": "hdsl-inpaint-unet/1", "config": asdict(model.config),
                "state_dict": model.state_dict(), "meta": dict(meta or {})}, str(path))


def load_inpainter(path: str | Path) -> InpaintUNet:
    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise HdslError.single("X010", f"in-painter file not found: {path}", path=str(path),
                               hint="train one with `hdsl xai train-inpainter --images DATA --out FILE`") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise HdslError.single("X011", f"cannot read in-painter {path}: {exc}", path=str(path)) from None
    if not isinstance(blob, dict) or blob.get("format") != "hdsl-inpaint-unet/1":
        raise HdslError.single("X011", f"{path} is not an hdsl in-painter file", path=str(path))
    model = InpaintUNet(UNetConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model


_CACHE: dict[str, tuple[float, InpaintUNet]] = {}


def load_cached(path: str | Path) -> InpaintUNet:
    """Load once per file version (keyed by path and modification time)."""
    p = Path(path)
    key = str(p.resolve())
    mtime = p.stat().st_mtime if p.exists() else -1.0
    hit = _CACHE.get(key)
    if hit is None or hit[0] != mtime:
        hit = (mtime, load_inpainter(p))
        _CACHE[key] = hit
    return hit[1]
