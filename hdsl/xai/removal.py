"""Removal baselines: replace the masked features of a batch of images.

Every baseline has one interface, ``removal(images, mask) -> images``:

* ``images``: float tensor ``[N, C, H, W]`` in the network's raw input space;
* ``mask``: bool tensor ``[N, 1, H, W]`` (a pixel mask, all channels) or
  ``[N, C, H, W]`` (channel elements, the Quantus compatibility mode);
  ``True`` marks a *removed* feature.

Contract (tested for every baseline): pixels outside the mask are returned
bit-identical; this is enforced by compositing ``where(mask, filled, x)``.
The classical in-painters (OpenCV, scikit-image) and the sparse ROAD solve run
per image on the CPU; the constant, blur and learned baselines are batched in
torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch

from hdsl.diagnostics import HdslError


class Removal(Protocol):
    name: str

    def __call__(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


def _check(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got {tuple(images.shape)}")
    n, c, h, w = images.shape
    if mask.dim() != 4 or mask.shape[0] != n or mask.shape[2:] != (h, w) or mask.shape[1] not in (1, c):
        raise ValueError(f"mask {tuple(mask.shape)} does not fit images {tuple(images.shape)}")
    return mask.to(torch.bool)


def composite(images: torch.Tensor, mask: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """Keep ``images`` outside ``mask`` bit-identical, take ``filled`` inside."""
    return torch.where(mask.expand_as(images), filled.to(images.dtype), images)


# --------------------------------------------------------------------------- constant


@dataclass(frozen=True)
class Constant:
    """Fill with a constant: a number, ``"black"`` (the per-image minimum over all
    channels, as Quantus defines it), ``"zero"`` or ``"mean"`` (per-image, per-channel
    mean of the *visible* pixels; Quantus's ``"mean"`` also averages the removed ones)."""

    value: float | str = "black"

    @property
    def name(self) -> str:
        return f"constant({self.value})"

    def pointwise_fill(self, images: torch.Tensor) -> torch.Tensor | None:
        """The fill of each image when it does not depend on the mask (None for ``mean``)."""
        if isinstance(self.value, (int, float)):
            return torch.full_like(images, float(self.value))
        if self.value == "black":
            return images.amin(dim=(1, 2, 3), keepdim=True).expand_as(images)
        if self.value == "zero":
            return torch.zeros_like(images)
        return None

    def __call__(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = _check(images, mask)
        if isinstance(self.value, (int, float)):
            fill = torch.full_like(images, float(self.value))
        elif self.value == "black":
            fill = images.amin(dim=(1, 2, 3), keepdim=True).expand_as(images)
        elif self.value == "zero":
            fill = torch.zeros_like(images)
        elif self.value == "mean":  # of the visible pixels, so removed values cannot leak
            vis = (~mask).expand_as(images).to(images.dtype)
            cnt = vis.sum(dim=(2, 3), keepdim=True)
            mean = (images * vis).sum(dim=(2, 3), keepdim=True) / cnt.clamp(min=1)
            fill = torch.where(cnt > 0, mean, torch.full_like(mean, EMPTY_FILL)).expand_as(images)
        else:
            raise ValueError(f"unknown constant baseline {self.value!r}")
        return composite(images, mask, fill)


# --------------------------------------------------------------------------- blur


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding), batched over images and channels."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    n, c, h, w = images.shape
    x = images.reshape(n * c, 1, h, w)
    pad_h, pad_w = min(radius, h - 1), min(radius, w - 1)
    # reflect padding cannot exceed the size; fall back to replicate beyond it
    x = torch.nn.functional.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect" if min(h, w) > 1 else "replicate")
    x = torch.nn.functional.pad(x, (radius - pad_w, radius - pad_w, radius - pad_h, radius - pad_h), mode="replicate")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1))
    x = torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1))
    return x.reshape(n, c, h, w)


@dataclass(frozen=True)
class Blur:
    """Replace removed pixels by a Gaussian-blurred copy of the image (it leaks low
    frequencies of what it removes; kept as a baseline because papers use it)."""

    sigma: float = 2.0

    @property
    def name(self) -> str:
        return f"blur({self.sigma:g})"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = _check(images, mask)
        return composite(images, mask, gaussian_blur(images, self.sigma))


# --------------------------------------------------------------------------- ROAD noisy linear imputation

# In-painters fill a plane whose every pixel is removed with this value (the middle of
# [0, 1]): with nothing visible there is nothing to in-paint from, and OpenCV would
# otherwise hand back the original pixels.
EMPTY_FILL = 0.5

_NLI_OFFSETS = (
    ((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
    ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
)


def linear_imputation(planes: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """ROAD's linear imputation (Rong et al. 2022) for a stack of 2-D planes.

    Each removed value equals the weighted mean of its in-frame 8 neighbours
    (edge 1/6, diagonal 1/12). All planes are solved as one block-diagonal
    sparse system. ``planes``: ``[P, H, W]`` float64, ``masks``: ``[P, H, W]`` bool.
    """
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    p, h, w = planes.shape
    planes = planes.astype(np.float64).copy()
    masks = masks.copy()
    empty = masks.reshape(p, -1).all(axis=1)  # nothing visible: no information to impute from
    planes[empty] = EMPTY_FILL
    masks[empty] = False
    flat = planes.reshape(-1)
    removed = masks.reshape(-1)
    unknown = np.flatnonzero(removed)
    n_var = unknown.size
    out = flat.copy()
    if n_var == 0:
        return out.reshape(p, h, w)
    var_id = np.full(flat.size, -1, dtype=np.int64)
    var_id[unknown] = np.arange(n_var)
    plane = unknown // (h * w)
    rr = (unknown % (h * w)) // w
    cc = unknown % w
    rows, cols, vals = [], [], []
    rhs = np.zeros(n_var)
    diag = np.ones(n_var)
    for (dr, dc), wt in _NLI_OFFSETS:
        r2, c2 = rr + dr, cc + dc
        valid = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
        diag[~valid] -= wt
        ids = np.flatnonzero(valid)
        nb = plane[ids] * h * w + r2[ids] * w + c2[ids]
        nb_removed = removed[nb]
        known_ids = ids[~nb_removed]
        rhs[known_ids] -= wt * flat[nb[~nb_removed]]
        var_ids = ids[nb_removed]
        rows.append(var_ids)
        cols.append(var_id[nb[nb_removed]])
        vals.append(np.full(var_ids.size, wt))
    rows.append(np.arange(n_var))
    cols.append(np.arange(n_var))
    vals.append(-diag)
    a = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_var, n_var))
    out[unknown] = spsolve(a, rhs)
    return out.reshape(p, h, w)


@dataclass(frozen=True)
class NoisyLinear:
    """ROAD noisy linear imputation: linear imputation plus N(0, noise²) on removed values.

    The noise is drawn from a ``torch.Generator`` seeded with ``seed`` per call,
    so a call is deterministic.
    """

    noise: float = 0.01
    seed: int = 0

    @property
    def name(self) -> str:
        return f"nli({self.noise:g})"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = _check(images, mask)
        n, c, h, w = images.shape
        m = mask.expand(n, c, h, w).reshape(n * c, h, w).cpu().numpy()
        planes = images.detach().reshape(n * c, h, w).cpu().numpy().astype(np.float64)
        filled = torch.from_numpy(linear_imputation(planes, m)).reshape(n, c, h, w)
        if self.noise:
            g = torch.Generator().manual_seed(self.seed)
            filled = filled + self.noise * torch.randn(filled.shape, generator=g, dtype=filled.dtype, device="cpu")
        return composite(images, mask, filled.to(images.device))


# --------------------------------------------------------------------------- classical in-painting


@dataclass(frozen=True)
class OpenCVInpaint:
    """OpenCV Telea (``method="telea"``) or Navier–Stokes (``"ns"``) in-painting.

    cv2.inpaint on float32 images returns out-of-range values for Telea (seen
    with OpenCV 5.0), so each channel is encoded as 16-bit over its own range
    (quantisation step range/65535), in-painted and composited back.
    """

    method: str = "telea"
    radius: float = 3.0

    @property
    def name(self) -> str:
        return f"{self.method}({self.radius:g})"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        import cv2

        mask = _check(images, mask)
        flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}[self.method]
        n, c, h, w = images.shape
        x = images.detach().cpu().numpy().astype(np.float64)
        m = mask.expand(n, c, h, w).cpu().numpy()
        filled = x.copy()
        for i in range(n):
            for ch in range(c):
                mm = m[i, ch]
                if not mm.any():
                    continue
                if mm.all():
                    filled[i, ch] = EMPTY_FILL
                    continue
                plane = x[i, ch]
                visible = plane[~mm]  # the 16-bit scale must not depend on removed values
                lo, hi = float(visible.min()), float(visible.max())
                scale = (hi - lo) or 1.0
                enc = np.round(np.clip((plane - lo) / scale, 0, 1) * 65535).astype(np.uint16)
                enc[mm] = 0
                res = cv2.inpaint(enc, mm.astype(np.uint8), self.radius, flag)
                filled[i, ch] = res.astype(np.float64) / 65535 * scale + lo
        return composite(images, mask, torch.from_numpy(filled).to(images.device))


@dataclass(frozen=True)
class Biharmonic:
    """scikit-image biharmonic in-painting (smooth; slow on large holes)."""

    @property
    def name(self) -> str:
        return "biharmonic"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import inpaint_biharmonic

        mask = _check(images, mask)
        n, c, h, w = images.shape
        x = images.detach().cpu().numpy().astype(np.float64)
        m = mask.cpu().numpy()
        filled = x.copy()
        for i in range(n):
            if m.shape[1] == 1:
                if m[i, 0].all():
                    filled[i] = EMPTY_FILL
                elif m[i, 0].any():
                    filled[i] = inpaint_biharmonic(x[i], m[i, 0], channel_axis=0)
            else:
                for ch in range(c):
                    if m[i, ch].all():
                        filled[i, ch] = EMPTY_FILL
                    elif m[i, ch].any():
                        filled[i, ch] = inpaint_biharmonic(x[i, ch], m[i, ch])
        return composite(images, mask, torch.from_numpy(filled).to(images.device))


# --------------------------------------------------------------------------- learned


@dataclass(frozen=True)
class Learned:
    """A U-Net in-painter trained by ``hdsl xai train-inpainter`` (see inpaint_unet.py)."""

    path: str

    @property
    def name(self) -> str:
        return f"learned({self.path})"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from hdsl.xai.inpaint_unet import load_cached

        mask = _check(images, mask)
        return load_cached(self.path).inpaint(images, mask)


# --------------------------------------------------------------------------- registry

BASELINES: dict[str, Callable[..., Removal]] = {
    "constant": Constant,
    "black": lambda: Constant("black"),
    "zero": lambda: Constant("zero"),
    "mean": lambda: Constant("mean"),
    "blur": Blur,
    "nli": NoisyLinear,
    "road": NoisyLinear,
    "telea": lambda radius=3.0: OpenCVInpaint("telea", radius),
    "ns": lambda radius=3.0: OpenCVInpaint("ns", radius),
    "biharmonic": Biharmonic,
    "learned": Learned,
}


def make_removal(kind: str, *args, **kwargs) -> Removal:
    """Build a baseline by name (``black``, ``mean``, ``blur``, ``nli``, ``telea``, ``ns``,
    ``biharmonic``, ``learned``, ``constant``)."""
    try:
        factory = BASELINES[kind]
    except KeyError:
        raise HdslError.single(
            "X001", f"unknown removal baseline {kind!r}",
            hint="one of: " + ", ".join(sorted(BASELINES)),
        ) from None
    return factory(*args, **kwargs)
