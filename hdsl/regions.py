"""Materialise IR input regions as boxes ``(lo, hi)`` in the network's raw input space.

Every region becomes a list of float64 boxes flattened in the network input's
memory order: a ``Box`` is one box, an ``LinfBall`` is ``[c - eps, c + eps]``
clipped to its domain (the centre read with ``hdsl.data.load_dataset``), and a
``UnionRegion`` is the concatenation of its parts (proved iff proved on every
box). Boxes are real boxes: float64 ends, no rounding to float32.
"""

from __future__ import annotations

import math

import numpy as np

from hdsl import ir
from hdsl.diagnostics import HdslError

BoxArrays = tuple[np.ndarray, np.ndarray]


def _check(lo: np.ndarray, hi: np.ndarray, network: ir.Network, what: str) -> BoxArrays:
    n = math.prod(network.input_shape) if network.input_shape else lo.size
    if lo.size != n or hi.size != n:
        raise HdslError.single("E510", f"{what} has {lo.size} values but network {network.name!r} takes {n} inputs",
                               span=network.span, path=None if network.span else network.path)
    if np.any(lo > hi):
        raise HdslError.single("E511", f"{what} is empty (a lower bound exceeds its upper bound)",
                               span=network.span, path=None if network.span else network.path)
    return lo.astype(np.float64).reshape(-1), hi.astype(np.float64).reshape(-1)


def center_point(point: ir.DataPoint) -> np.ndarray:
    """The raw input of a data point (float32 values, as stored)."""
    from hdsl.data import load_dataset

    data = load_dataset(point.data)
    if not 0 <= point.index < len(data):
        raise HdslError.single("E512", f"data point {point.index} is out of range: {point.data.name!r} has "
                               f"{len(data)} rows", span=point.data.span,
                               path=None if point.data.span else point.data.path)
    return np.asarray(data.x[point.index], dtype=np.float64).reshape(-1)


def boxes(region: ir.Region, network: ir.Network) -> list[BoxArrays]:
    """The boxes whose union is ``region``."""
    if isinstance(region, ir.Box):
        return [_check(np.asarray(region.lower, dtype=np.float64), np.asarray(region.upper, dtype=np.float64),
                       network, "the input box")]
    if isinstance(region, ir.LinfBall):
        c = center_point(region.center)
        lo, hi = c - region.eps, c + region.eps
        if region.domain is not None:
            lo = np.maximum(lo, region.domain[0])
            hi = np.minimum(hi, region.domain[1])
        return [_check(lo, hi, network, f"the L-inf ball around {region.center.data.name}[{region.center.index}]")]
    if isinstance(region, ir.UnionRegion):
        out: list[BoxArrays] = []
        for part in region.parts:
            out.extend(boxes(part, network))
        return out
    raise TypeError(f"unsupported region type {type(region).__name__}")


def contains(box_list: list[BoxArrays], x: np.ndarray) -> bool:
    """Whether ``x`` lies in one of the boxes (zero tolerance, float64 comparison)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return any(bool(np.all(x >= lo) and np.all(x <= hi)) for lo, hi in box_list)


def float32_inside(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Round ``x`` to float32 values that stay inside ``[lo, hi]`` (as float64 comparisons see it)."""
    x32 = np.clip(np.asarray(x, dtype=np.float64), lo, hi).astype(np.float32)
    low = x32.astype(np.float64) < lo
    x32[low] = np.nextafter(x32[low], np.float32(np.inf))
    high = x32.astype(np.float64) > hi
    x32[high] = np.nextafter(x32[high], np.float32(-np.inf))
    return x32
