"""Attribution methods (captum wrappers, batched) and the two controls.

Every method returns a float32 tensor ``[N, C, H, W]`` (or ``[N, 1, H, W]``
for Grad-CAM and the random control) for the logit of each image's label,
computed on the model's raw input (normalisation, if any, is part of the model).

Sign conventions (stated because they change rankings):

* ``saliency``: ``|∂f_y/∂x|`` per channel element (captum's ``abs=True``); with
  ``signed`` it is the raw gradient ``∂f_y/∂x``.
* ``input_x_gradient``, ``integrated_gradients``, ``gradient_shap``,
  ``occlusion``: signed, positive = evidence for class y.
* ``grad_cam``: ReLU of the class-weighted activation map of the last conv
  layer (or the named one), bilinearly upsampled to the input size.
* ``random``: i.i.d. uniform scores (a control every method should beat).
* ``randomized_model(m)``: method ``m`` computed on a copy of the model with all
  weights re-drawn (Adebayo et al.'s sanity check; as an explainer it should
  be no better than ``random``).

Metrics sum a per-channel map over channels to rank pixels.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from hdsl.diagnostics import HdslError

METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "gradient_shap", "occlusion",
           "grad_cam", "random", "randomized_model")

PARAMS: dict[str, dict[str, object]] = {
    "saliency": {"signed": False},
    "input_x_gradient": {},
    "integrated_gradients": {"steps": 32, "baseline": 0.0},
    "gradient_shap": {"samples": 16, "stdev": 0.0, "baselines": 8, "seed": 0},
    "occlusion": {"window": 4, "stride": 0, "baseline": 0.0},
    "grad_cam": {"layer": "", "relu": True},
    "random": {"seed": 0},
    "randomized_model": {"method": "saliency", "seed": 0},
}


def validate(method: str, params: dict) -> dict:
    """Defaults merged with ``params``; unknown methods or options raise a diagnostic."""
    if method not in PARAMS:
        raise HdslError.single("X030", f"unknown attribution method {method!r}", hint="one of: " + ", ".join(METHODS))
    bad = sorted(set(params) - set(PARAMS[method]))
    if bad:
        raise HdslError.single("X031", f"{method} does not take option(s) {', '.join(bad)}",
                               hint="options: " + (", ".join(PARAMS[method]) or "none"))
    return {**PARAMS[method], **params}


def _last_conv(model: torch.nn.Module, name: str = "") -> torch.nn.Module:
    modules = dict(model.named_modules())
    if name:
        if name not in modules:
            raise HdslError.single("X032", f"grad_cam: no layer named {name!r}",
                                   hint="layers: " + ", ".join(k for k in modules if k))
        return modules[name]
    convs = [m for m in modules.values() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise HdslError.single("X033", "grad_cam needs a convolutional layer; the model has none",
                               hint="use another attribution method for fully connected networks")
    return convs[-1]


def randomize_model(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A deep copy with every floating parameter and buffer re-drawn from N(mean, std) of the original."""
    clone = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tensors = list(clone.parameters()) + [b for b in clone.buffers() if b.is_floating_point()]
        graph = getattr(clone, "graph", None)
        if graph is not None:  # an imported hdsl Graph keeps its weights in node params
            graph.exact = None
            tensors += [v for node in graph.nodes for k, v in node.params.items()
                        if isinstance(v, torch.Tensor) and v.is_floating_point() and node.op != "affine"]
        for t in tensors:
            if t.numel() < 2:
                continue
            mean, std = t.float().mean(), t.float().std()
            t.copy_((torch.randn(t.shape, generator=g) * (std if std > 0 else 1.0) + mean).to(t.dtype))
    return clone


def _one_batch(method: str, model, x: torch.Tensor, y: torch.Tensor, opts: dict,
               input_range: tuple[float, float]) -> torch.Tensor:
    import captum.attr as ca

    x = x.detach().clone().requires_grad_(True)
    target = y.tolist()
    if method == "saliency":
        return ca.Saliency(model).attribute(x, target=target, abs=not opts["signed"])
    if method == "input_x_gradient":
        return ca.InputXGradient(model).attribute(x, target=target)
    if method == "integrated_gradients":
        return ca.IntegratedGradients(model).attribute(
            x, baselines=float(opts["baseline"]), target=target, n_steps=int(opts["steps"]))
    if method == "gradient_shap":
        lo, hi = input_range
        np_state = np.random.get_state()  # captum draws baselines and alphas with np.random
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(opts["seed"]))
                np.random.seed(int(opts["seed"]))
                base = lo + (hi - lo) * torch.rand(int(opts["baselines"]), *x.shape[1:])
                return ca.GradientShap(model).attribute(x, baselines=base, n_samples=int(opts["samples"]),
                                                        stdevs=float(opts["stdev"]), target=target)
        finally:
            np.random.set_state(np_state)
    if method == "occlusion":
        c = x.shape[1]
        w = int(opts["window"])
        s = int(opts["stride"]) or w
        return ca.Occlusion(model).attribute(x, sliding_window_shapes=(c, w, w), strides=(c, s, s),
                                             baselines=float(opts["baseline"]), target=target,
                                             perturbations_per_eval=64)
    if method == "grad_cam":
        if getattr(model, "graph", None) is not None:
            from hdsl.xai.model import graph_grad_cam

            return graph_grad_cam(model, x, y, str(opts["layer"]), bool(opts["relu"]))
        layer = _last_conv(model, str(opts["layer"]))
        cam = ca.LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=bool(opts["relu"]))
        return ca.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
    raise AssertionError(method)


def attribute(method: str, model, x, y, *, batch: int = 64, input_range: tuple[float, float] = (0.0, 1.0),
              **params) -> torch.Tensor:
    """Attributions of ``model`` for labels ``y`` on images ``x`` ``[N, C, H, W]``."""
    opts = validate(method, params)
    x = torch.as_tensor(x).float()
    y = torch.as_tensor(y).long().view(-1)
    n, c, h, w = x.shape
    if method == "random":
        g = torch.Generator().manual_seed(int(opts["seed"]))
        return torch.rand(n, 1, h, w, generator=g)
    if method == "randomized_model":
        inner = str(opts["method"])
        if inner in ("random", "randomized_model"):
            raise HdslError.single("X034", f"randomized_model needs a gradient method, not {inner}")
        return attribute(inner, randomize_model(model, int(opts["seed"])), x, y, batch=batch,
                         input_range=input_range)
    if isinstance(model, torch.nn.Module):
        model.eval()
    outs = []
    for i in range(0, n, batch):
        outs.append(_one_batch(method, model, x[i : i + batch], y[i : i + batch], opts, input_range).detach())
    return torch.cat(outs).float()


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman rank correlation per row of two ``[N, F]`` tensors (average ranks for ties)."""
    from scipy.stats import rankdata

    ra = rankdata(a.double().numpy(), axis=1)
    rb = rankdata(b.double().numpy(), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis=1) / den, np.nan)


def model_randomisation_check(method: str, model, x, y, seed: int = 0, **params) -> np.ndarray:
    """Adebayo et al.'s sanity check: per image, Spearman correlation between the
    pixel attributions (|A| summed over channels) of the model and of a fully
    randomised copy. Values near 1 mean the method ignores the weights."""
    a = attribute(method, model, x, y, **params)
    b = attribute(method, randomize_model(model, seed), x, y, **params)
    fa = a.abs().sum(dim=1).flatten(1)
    fb = b.abs().sum(dim=1).flatten(1)
    return spearman_rows(fa, fb)

