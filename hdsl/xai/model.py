"""Adapting a network to the XAI library's image layout (``[N, C, H, W]`` in raw input space).

Networks may take channels-last input (e.g. ``[32, 32, 3]`` from TensorFlow
exports); the XAI code always works channel-first, so the adapter permutes
inside ``forward``. Normalisation is folded into the network beforehand
(``Graph.with_normalization``), so removal and in-painting act on raw pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from hdsl.diagnostics import HdslError


def image_layout(input_shape: tuple[int, ...]) -> str:
    """``"chw"`` or ``"hwc"`` for a 3-D per-sample input shape."""
    if len(input_shape) != 3:
        raise HdslError.single("X040", f"XAI properties need image inputs [C,H,W] or [H,W,C]; "
                                       f"the network takes {list(input_shape)}")
    c0, c2 = input_shape[0], input_shape[2]
    if c0 in (1, 3, 4) and c2 not in (1, 3, 4):
        return "chw"
    if c2 in (1, 3, 4) and c0 not in (1, 3, 4):
        return "hwc"
    return "chw" if c0 <= c2 else "hwc"


class ChannelFirst(torch.nn.Module):
    """``forward(x [N,C,H,W]) -> logits [N, K]`` for a network of either layout."""

    def __init__(self, net, input_shape: tuple[int, ...]):
        super().__init__()
        self.layout = image_layout(tuple(input_shape))
        self.net = net if isinstance(net, torch.nn.Module) else _Callable(net)
        self.graph = getattr(net, "graph", None) if not hasattr(net, "nodes") else net
        self.input_shape = tuple(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "hwc":
            x = x.permute(0, 2, 3, 1)
        out = self.net(x)
        return out.reshape(out.shape[0], -1)

    def to_network(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW images in the network's own layout."""
        return x.permute(0, 2, 3, 1) if self.layout == "hwc" else x


class _Callable(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def images_to_nchw(x: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Rows of a data set (shaped like the network input) as an NCHW float tensor."""
    t = torch.as_tensor(np.array(x, dtype=np.float32))  # a writable copy
    if tuple(t.shape[1:]) != tuple(input_shape):
        t = t.reshape(t.shape[0], *input_shape)
    return t.permute(0, 3, 1, 2).contiguous() if image_layout(tuple(input_shape)) == "hwc" else t


def graph_grad_cam(model: ChannelFirst, x: torch.Tensor, y: torch.Tensor, layer: str = "",
                   relu: bool = True) -> torch.Tensor:
    """Grad-CAM on an imported ``Graph``: the last ``conv`` node (or ``layer``), channel-first."""
    graph = model.graph
    convs = [n.name for n in graph.nodes if n.op == "conv"]
    if layer:
        if graph.resolve(layer) not in graph.by_name:
            raise HdslError.single("X032", f"grad_cam: no node named {layer!r}", hint="conv nodes: " + ", ".join(convs))
        name = graph.resolve(layer)
    elif convs:
        name = convs[-1]
    else:
        raise HdslError.single("X033", "grad_cam needs a convolutional layer; the model has none")
    saved: dict[str, torch.Tensor] = {}

    def keep(v: torch.Tensor) -> torch.Tensor:
        v.retain_grad()
        saved["a"] = v
        return v

    xin = model.to_network(x.detach()).to(graph.dtype).requires_grad_(True)
    with torch.enable_grad():
        out, _ = graph.forward(xin, patch={name: keep})
        out.gather(1, y.view(-1, 1)).sum().backward()
    a, g = saved["a"], saved["a"].grad
    w = g.mean(dim=(2, 3), keepdim=True)
    cam = (w * a).sum(dim=1, keepdim=True).detach()
    if relu:
        cam = cam.clamp_min(0)
    return torch.nn.functional.interpolate(cam.float(), size=tuple(x.shape[2:]), mode="bilinear",
                                           align_corners=False)
