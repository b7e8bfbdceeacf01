"""Faithfulness metrics, vectorised over images and steps in torch.

Conventions (see docs in benchmarks/README.md, XAI section):

* score ``s(x) = softmax(f(x))_y`` (``score="softmax"``) or ``f(x)_y`` (``"logit"``);
* a *feature* is a pixel (all channels together; attributions summed over
  channels), a ``patch`` of p×p pixels (attributions summed over the patch), or
  a ``channel`` element (the Quantus compatibility mode, C·H·W features);
* MoRF order: the stable argsort of ``(-A_f, f)``; LeRF is its reverse;
* step j of a T-step curve removes the first ``floor(j·F/T)`` features of the
  order, j = 0..T; every step is computed from the *original* image (a removal
  is never applied to an already in-painted image);
* AUC is the trapezoid rule on [0, 1]: ``(1/T)·Σ_j (c_{j-1}+c_j)/2``.

All functions return per-image values (numpy arrays); aggregation and
confidence intervals live in stats.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from hdsl.diagnostics import HdslError

Model = Callable[[torch.Tensor], torch.Tensor]
MaskBuilder = Callable[[slice], torch.Tensor]  # images[sl] -> masks [n, T, Cm, H, W]


# --------------------------------------------------------------------------- features


@dataclass(frozen=True)
class Granularity:
    """``pixel``, ``patch`` (with ``size``) or ``channel``."""

    kind: str = "pixel"
    size: int = 1

    def __post_init__(self):
        if self.kind not in ("pixel", "patch", "channel"):
            raise HdslError.single("X020", f"unknown feature granularity {self.kind!r}",
                                   hint="pixel, patch or channel")
        if self.kind == "patch" and self.size < 1:
            raise HdslError.single("X020", "patch size must be >= 1")

    def feature_map(self, c: int, h: int, w: int, device=None) -> tuple[torch.Tensor, int]:
        """Feature id of every mask element (``[1|C, H, W]``, on ``device``) and the feature count."""
        if self.kind == "channel":
            return torch.arange(c * h * w, device=device).view(c, h, w), c * h * w
        if self.kind == "pixel" or self.size == 1:
            return torch.arange(h * w, device=device).view(1, h, w), h * w
        p = self.size
        bw = math.ceil(w / p)
        rows = torch.arange(h, device=device).view(h, 1) // p
        cols = torch.arange(w, device=device).view(1, w) // p
        return (rows * bw + cols).view(1, h, w), math.ceil(h / p) * bw


def _tensor(a) -> torch.Tensor:
    """A tensor as it is (on its device); anything else as a CPU tensor."""
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a))


def _as_nchw(attr: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    attr = _tensor(attr)
    if attr.dim() == 3:
        attr = attr.unsqueeze(1)
    n, c, h, w = shape
    if attr.dim() != 4 or attr.shape[0] != n or attr.shape[2:] != (h, w) or attr.shape[1] not in (1, c):
        raise ValueError(f"attributions {tuple(attr.shape)} do not fit images {tuple(shape)}")
    return attr


def feature_scores(attr: torch.Tensor, shape: tuple[int, ...], gran: Granularity) -> torch.Tensor:
    """Attribution per feature, ``[N, F]`` (float64 so sums do not reorder ties by rounding)."""
    attr = _as_nchw(attr, shape).to(torch.float64)
    n, c, h, w = shape
    if gran.kind == "channel":
        return attr.expand(n, c, h, w).reshape(n, -1)
    pixel = attr.sum(dim=1)  # per-channel maps are summed; a one-channel map is used as is
    fmap, nf = gran.feature_map(c, h, w, attr.device)
    out = torch.zeros(n, nf, dtype=torch.float64, device=attr.device)
    out.scatter_add_(1, fmap.view(1, -1).expand(n, -1), pixel.reshape(n, -1))
    return out


def ranks(scores: torch.Tensor, order: str = "morf") -> torch.Tensor:
    """Position of each feature in the removal order, ``[N, F]`` (0 = removed first)."""
    n, f = scores.shape
    morf = torch.sort(-scores, dim=1, stable=True).indices
    if order == "morf":
        perm = morf
    elif order == "lerf":
        perm = morf.flip(1)
    else:
        raise HdslError.single("X021", f"unknown order {order!r}", hint="morf or lerf")
    rank = torch.empty_like(perm)
    rank.scatter_(1, perm, torch.arange(f, device=perm.device).expand(n, f).contiguous())
    return rank


def rank_map(attr, shape, gran: Granularity, order: str) -> tuple[torch.Tensor, int]:
    """Per mask element, the rank of its feature: ``[N, 1|C, H, W]``; and F."""
    n, c, h, w = shape
    fmap, nf = gran.feature_map(c, h, w, attr.device)
    r = ranks(feature_scores(attr, shape, gran), order)
    return r[:, fmap.reshape(-1)].view(n, *fmap.shape), nf


def _features_to_mask(chosen: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """``[k, T, F]`` feature selections as element masks ``[k, T, *fmap.shape]``."""
    k, t, nf = chosen.shape
    if nf == fmap.numel():  # pixels or channel elements: feature id == element position
        return chosen.view(k, t, *fmap.shape)
    return chosen[:, :, fmap.reshape(-1)].view(k, t, *fmap.shape)


def step_counts(n_features: int, steps: int, device=None) -> torch.Tensor:
    """``floor(j·F/T)`` for j = 0..T. More steps than features would only repeat points (and a
    huge T exhausts memory), so T is at most F."""
    if not 1 <= steps <= n_features:
        raise HdslError.single("X025", f"steps {steps} must be between 1 and the {n_features} features of an image",
                               hint="use at most one step per feature (pixel, channel element or patch)")
    return torch.tensor([(j * n_features) // steps for j in range(steps + 1)], device=device)


# --------------------------------------------------------------------------- engine

#: Removed copies per model call. Batches this size keep the activations in cache:
#: on the CIFAR-10 conv net (1 CPU thread) 512 copies a call ran pixel flipping 2.3x
#: faster than 4096, and they bound the memory by the chunk instead of N x T images.
CHUNK = 512


def model_scores(model: Model, x: torch.Tensor, y: torch.Tensor, score: str = "softmax",
                 batch: int = CHUNK) -> torch.Tensor:
    """``s(x)`` for a batch, computed in chunks without gradients."""
    outs = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            logits = model(x[i : i + batch])
            if score == "softmax":
                logits = torch.softmax(logits.double(), dim=1)
            elif score != "logit":
                raise HdslError.single("X022", f"unknown score {score!r}", hint="softmax or logit")
            outs.append(logits.gather(1, y[i : i + batch].view(-1, 1)).view(-1).double())
    return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.float64, device=x.device)


def evaluate_masks(model: Model, x: torch.Tensor, y: torch.Tensor, build: MaskBuilder, n_masks: int,
                   removal, score: str = "softmax", chunk: int = CHUNK) -> torch.Tensor:
    """``s(removal(x_i, M_{i,t}))`` for every image i and mask t: ``[N, T]``.

    ``build(slice)`` returns the masks ``[n, T, Cm, H, W]`` of images ``x[slice]``;
    images are processed in chunks of about ``chunk`` removed copies, so the
    removal (one sparse solve, one torch op) and the model see big batches.
    """
    n = x.shape[0]
    per = max(1, chunk // max(1, n_masks))
    out = torch.empty(n, n_masks, dtype=torch.float64, device=x.device)
    for i in range(0, n, per):
        sl = slice(i, min(n, i + per))
        xs = x[sl]
        m = build(sl)
        k = xs.shape[0]
        fill_of = getattr(removal, "pointwise_fill", None)
        fill = fill_of(xs) if fill_of is not None else None
        if fill is not None:  # a fill that does not depend on the mask: one fused where, no copies of x
            removed = torch.where(m, fill.unsqueeze(1), xs.unsqueeze(1)).reshape(k * n_masks, *xs.shape[1:])
        else:
            xr = xs.unsqueeze(1).expand(k, n_masks, *xs.shape[1:]).reshape(k * n_masks, *xs.shape[1:])
            removed = removal(xr, m.reshape(k * n_masks, *m.shape[2:]))
        yr = y[sl].repeat_interleave(n_masks)
        out[sl] = model_scores(model, removed, yr, score).view(k, n_masks)
    return out


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MetricResult:
    """Per-image values of one metric; ``curve`` is ``[N, T+1]`` when the metric has one."""

    name: str
    per_image: np.ndarray
    higher_is_better: bool
    fractions: np.ndarray | None = None
    curve: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.per_image))


def trapezoid_auc(curve: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(1/T)·Σ_{j=1..T} (c_{j-1}+c_j)/2`` per row (curve ``[N, T+1]``)."""
    c = np.asarray(curve, dtype=np.float64)
    t = c.shape[1] - 1
    return ((c[:, :-1] + c[:, 1:]) / 2).sum(axis=1) / t


def _prep(x, y, attr):
    """Images as float ``[N, C, H, W]``; labels and attributions on the images' device (the model's)."""
    x = _tensor(x).float()
    y = _tensor(y).long().view(-1).to(x.device)
    if x.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got {tuple(x.shape)}")
    if y.shape[0] != x.shape[0]:
        raise ValueError("one label per image")
    return x, y, _as_nchw(_tensor(attr).to(x.device), tuple(x.shape))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def removal_curve(model: Model, x, y, attr, removal, *, steps: int = 16, order: str = "morf",
                  granularity: Granularity = Granularity(), score: str = "softmax",
                  mode: str = "deletion", counts: torch.Tensor | None = None, chunk: int = CHUNK) -> MetricResult:
    """Deletion (remove the first n_j features) or insertion (remove all but them) curve."""
    x, y, attr = _prep(x, y, attr)
    rmap, nf = rank_map(attr, tuple(x.shape), granularity, order)
    counts = step_counts(nf, steps, x.device) if counts is None else _tensor(counts).to(x.device)
    cv = counts.view(1, -1, 1, 1, 1)
    if mode == "deletion":
        build = lambda sl: rmap[sl].unsqueeze(1) < cv  # noqa: E731
    elif mode == "insertion":
        build = lambda sl: rmap[sl].unsqueeze(1) >= cv  # noqa: E731
    else:
        raise ValueError(mode)
    curve = _np(evaluate_masks(model, x, y, build, counts.numel(), removal, score, chunk))
    fractions = _np(counts.double()) / nf
    higher = mode == "insertion" or order == "lerf"
    name = f"{mode}_{order}"
    auc = trapezoid_auc(curve) if counts.numel() > 1 else curve[:, 0]
    return MetricResult(name, auc, higher, fractions, curve, {"n_features": nf})


def deletion(model, x, y, attr, removal, **kw) -> MetricResult:
    return removal_curve(model, x, y, attr, removal, mode="deletion", **kw)


def insertion(model, x, y, attr, removal, **kw) -> MetricResult:
    return removal_curve(model, x, y, attr, removal, mode="insertion", **kw)


def srg(model, x, y, attr, removal, **kw) -> MetricResult:
    """Symmetric relevance gain: AUC(LeRF deletion) − AUC(MoRF deletion), per image (higher is better)."""
    kw.pop("order", None)
    morf = deletion(model, x, y, attr, removal, order="morf", **kw)
    lerf = deletion(model, x, y, attr, removal, order="lerf", **kw)
    return MetricResult("srg", lerf.per_image - morf.per_image, True, morf.fractions, None,
                        {"morf": morf, "lerf": lerf})


def pixel_flipping(model, x, y, attr, removal, *, features_in_step: int = 1,
                   granularity: Granularity = Granularity(), score: str = "softmax",
                   chunk: int = CHUNK) -> MetricResult:
    """Bach et al.'s pixel flipping: MoRF removal ``features_in_step`` at a time.

    ``curve`` holds c_1..c_T (no c_0, as in Quantus); ``per_image`` is the AUC
    over c_0..c_T on [0, 1] (lower is better)."""
    x_, _, _ = _prep(x, y, attr)
    nf = granularity.feature_map(*x_.shape[1:])[1]
    t = math.ceil(nf / features_in_step)
    counts = torch.tensor([min(j * features_in_step, nf) for j in range(t + 1)], device=x_.device)
    full = removal_curve(model, x, y, attr, removal, order="morf", granularity=granularity, score=score,
                         counts=counts, chunk=chunk)
    return MetricResult("pixel_flipping", trapezoid_auc(full.curve), False, full.fractions[1:], full.curve[:, 1:],
                        {"n_features": nf, "c0": full.curve[:, 0]})


def region_perturbation(model, x, y, attr, removal, *, patch: int = 8, regions: int = 100,
                        order: str = "morf", score: str = "softmax", chunk: int = CHUNK) -> MetricResult:
    """Samek et al.: the score *drop* s(x) − s(x_j) after removing the first j patches (j = 1..regions)."""
    gran = Granularity("patch", patch)
    x_, _, _ = _prep(x, y, attr)
    nf = gran.feature_map(*x_.shape[1:])[1]
    r = min(regions, nf)
    counts = torch.arange(r + 1, device=x_.device)
    full = removal_curve(model, x, y, attr, removal, order=order, granularity=gran, score=score,
                         counts=counts, chunk=chunk)
    drops = full.curve[:, :1] - full.curve[:, 1:]
    return MetricResult("region_perturbation", drops.mean(axis=1), order == "morf", _np(counts[1:]) / nf,
                        drops, {"n_features": nf})


def road(model, x, y, attr, removal, *, percentages=tuple(range(1, 100, 2)), order: str = "morf",
         granularity: Granularity = Granularity(), chunk: int = CHUNK) -> MetricResult:
    """ROAD accuracy: is the prediction still y after the top (MoRF) / bottom (LeRF) p% are imputed?

    ``curve`` is the 0/1 matrix ``[N, P]``; ``per_image`` its row mean; the
    accuracy at p is the column mean. MoRF: lower is better; LeRF: higher."""
    x, y, attr = _prep(x, y, attr)
    rmap, nf = rank_map(attr, tuple(x.shape), granularity, order)
    counts = torch.tensor([int(nf * p / 100) for p in percentages], device=x.device)
    cv = counts.view(1, -1, 1, 1, 1)
    n, p = x.shape[0], counts.numel()
    correct = torch.empty(n, p, dtype=torch.bool, device=x.device)
    per = max(1, chunk // p)
    with torch.inference_mode():
        for i in range(0, n, per):
            sl = slice(i, min(n, i + per))
            xs = x[sl]
            k = xs.shape[0]
            m = (rmap[sl].unsqueeze(1) < cv).reshape(k * p, *rmap.shape[1:])
            xr = xs.unsqueeze(1).expand(k, p, *xs.shape[1:]).reshape(k * p, *xs.shape[1:])
            pred = model(removal(xr, m)).argmax(dim=1).view(k, p)
            correct[sl] = pred == y[sl].view(-1, 1)
    c = _np(correct).astype(np.float64)
    return MetricResult(f"road_{order}", c.mean(axis=1), order == "lerf", np.asarray(percentages, float) / 100, c,
                        {"accuracy": c.mean(axis=0)})


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    den = (a.norm(dim=1) * b.norm(dim=1))
    r = (a * b).sum(dim=1) / den
    r[den == 0] = float("nan")
    return _np(r)


def faithfulness_correlation(model, x, y, attr, removal, *, runs: int = 100, subset_size: int = 224,
                             granularity: Granularity = Granularity(), score: str = "softmax", seed: int = 0,
                             subsets: torch.Tensor | None = None, chunk: int = CHUNK) -> MetricResult:
    """Bhatt et al.: per image, Pearson over ``runs`` random feature subsets between the
    attribution sum of the subset and the score drop when it is removed (higher is better).

    ``subsets`` (``[N, R, m]`` feature ids) replaces the seeded draw (used to replay
    another tool's random choices)."""
    x, y, attr = _prep(x, y, attr)
    shape = tuple(x.shape)
    fmap, nf = granularity.feature_map(*shape[1:], device=x.device)
    scores = feature_scores(attr, shape, granularity)
    n = shape[0]
    if subsets is None:
        m = min(subset_size, nf)
        keys = np.random.default_rng(seed).random((n * runs, nf), dtype=np.float32)
        part = np.argpartition(keys, m - 1, axis=1)[:, :m] if m < nf else np.tile(np.arange(nf), (n * runs, 1))
        subsets = torch.from_numpy(part.astype(np.int64)).view(n, runs, m)  # uniform m-subsets without replacement
    subsets = _tensor(subsets).long().to(x.device)
    r, m = subsets.shape[1], subsets.shape[2]
    att_sums = scores.gather(1, subsets.reshape(n, -1)).view(n, r, m).sum(dim=2)

    def build(sl: slice) -> torch.Tensor:
        sub = subsets[sl]
        chosen = torch.zeros(sub.shape[0], r, nf, dtype=torch.bool, device=x.device)
        chosen.scatter_(2, sub, True)
        return _features_to_mask(chosen, fmap)
    s0 = model_scores(model, x, y, score)
    drops = s0.view(-1, 1) - evaluate_masks(model, x, y, build, r, removal, score, chunk)
    return MetricResult("faithfulness_corr", _pearson_rows(att_sums, drops), True,
                        extra={"att_sums": _np(att_sums), "drops": _np(drops)})


def faithfulness_estimate(model, x, y, attr, removal, *, features_in_step: int = 1,
                          granularity: Granularity = Granularity(), score: str = "softmax",
                          chunk: int = CHUNK) -> MetricResult:
    """Alvarez-Melis & Jaakkola: Pearson, over MoRF groups of ``features_in_step``
    features removed one group at a time (not cumulatively), between the group's
    attribution sum and its score drop (higher is better)."""
    x, y, attr = _prep(x, y, attr)
    shape = tuple(x.shape)
    rmap, nf = rank_map(attr, shape, granularity, "morf")
    scores = feature_scores(attr, shape, granularity)
    t = math.ceil(nf / features_in_step)
    group_of_rank = torch.arange(nf, device=x.device) // features_in_step
    rank = ranks(scores, "morf")
    att_sums = torch.zeros(shape[0], t, dtype=torch.float64, device=x.device)
    att_sums.scatter_add_(1, group_of_rank[rank], scores)
    gmap = rmap // features_in_step
    groups = torch.arange(t, device=x.device).view(1, -1, 1, 1, 1)
    build = lambda sl: gmap[sl].unsqueeze(1) == groups  # noqa: E731
    s0 = model_scores(model, x, y, score)
    drops = s0.view(-1, 1) - evaluate_masks(model, x, y, build, t, removal, score, chunk)
    return MetricResult("faithfulness_estimate", _pearson_rows(att_sums, drops), True,
                        extra={"att_sums": _np(att_sums), "drops": _np(drops)})


# --------------------------------------------------------------------------- by name

METRICS: dict[str, tuple[Callable[..., MetricResult], dict]] = {
    "deletion_auc": (deletion, {"order": "morf"}),
    "morf_auc": (deletion, {"order": "morf"}),
    "lerf_auc": (deletion, {"order": "lerf"}),
    "insertion_auc": (insertion, {"order": "morf"}),
    "srg": (srg, {}),
    "road_morf": (road, {"order": "morf"}),
    "road_lerf": (road, {"order": "lerf"}),
    "pixel_flipping": (pixel_flipping, {}),
    "faithfulness_corr": (faithfulness_correlation, {}),
    "faithfulness_estimate": (faithfulness_estimate, {}),
}


def compute(metric: str, model, x, y, attr, removal, **options) -> MetricResult:
    """Run the metric named ``metric`` with ``options`` (unknown options are an error)."""
    try:
        fn, fixed = METRICS[metric]
    except KeyError:
        raise HdslError.single("X023", f"unknown faithfulness metric {metric!r}",
                               hint="one of: " + ", ".join(sorted(METRICS))) from None
    import inspect

    params = inspect.signature(fn).parameters
    accepts_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    allowed = set(params) | ({"steps", "order", "granularity", "score", "chunk", "counts"} if accepts_kw else set())
    bad = sorted(set(options) - allowed)
    if bad:
        raise HdslError.single("X024", f"metric {metric} does not take option(s) {', '.join(bad)}")
    res = fn(model, x, y, attr, removal, **{**options, **fixed})
    if res.name != metric:
        res = MetricResult(metric, res.per_image, res.higher_is_better, res.fractions, res.curve, res.extra)
    return res
