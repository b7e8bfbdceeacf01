"""Replay candidate counterexamples on the real model (onnxruntime on the original ONNX file).

A candidate found by any backend becomes a ``Counterexample`` only if, after
rounding it to float32 *inside* the region, the spec's declared normalisation
(computed in float64, rounded to float32) and onnxruntime's float32 output on
the original file satisfy an unsafe disjunct (``OutputSpec.violated_by``, zero
tolerance). Anything else is not reported as falsified.
"""

from __future__ import annotations

import numpy as np

from hdsl import ir
from hdsl.regions import BoxArrays, float32_inside
from hdsl.results import Counterexample


def normalise(network: ir.Network, x: np.ndarray) -> np.ndarray:
    """Apply the model's declared ``(x - mean) / std`` to raw inputs ``x`` [N, n] (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if network.mean is None and network.std is None:
        return x
    from hdsl.nn.graph import channel_shape

    shape = tuple(network.input_shape)
    mean = np.asarray(network.mean if network.mean is not None else [0.0], dtype=np.float64)
    std = np.asarray(network.std if network.std is not None else [1.0], dtype=np.float64)
    k = max(len(mean), len(std))
    mean = np.broadcast_to(mean, (k,)).reshape(channel_shape(shape, k))
    std = np.broadcast_to(std, (k,)).reshape(channel_shape(shape, k))
    xs = x.reshape(len(x), *shape)
    return ((xs - mean) / std).reshape(len(x), -1)


def run_model(network: ir.Network, x: np.ndarray) -> np.ndarray:
    """onnxruntime outputs [N, n_out] (float64 copies of float32 values) on raw inputs ``x`` [N, n]."""
    from hdsl.nn.ort import run_onnx

    xn = normalise(network, np.asarray(x, dtype=np.float64).reshape(len(x), -1)).astype(np.float32)
    return run_onnx(network.path, xn).astype(np.float64)


def replay(network: ir.Network, spec: ir.OutputSpec, box: BoxArrays, x: np.ndarray,
           internal_y: np.ndarray | None = None) -> Counterexample | None:
    """Confirm one candidate ``x`` (flattened, raw space) in ``box``; ``None`` when not confirmed."""
    return replay_many(network, spec, [box], np.asarray(x).reshape(1, -1), [0],
                       None if internal_y is None else np.asarray(internal_y).reshape(1, -1))[0]


def replay_many(network: ir.Network, spec: ir.OutputSpec, boxes: list[BoxArrays], xs: np.ndarray,
                box_of: list[int], internal_y: np.ndarray | None = None) -> list[Counterexample | None]:
    """Replay candidates ``xs`` [N, n], candidate i lying in ``boxes[box_of[i]]``, in one onnxruntime call."""
    xs = np.asarray(xs, dtype=np.float64).reshape(len(xs), -1)
    x32 = np.stack([float32_inside(x, *boxes[b]) for x, b in zip(xs, box_of)]) if len(xs) else xs.astype(np.float32)
    ys = run_model(network, x32.astype(np.float64)) if len(xs) else np.zeros((0, 0))
    out: list[Counterexample | None] = []
    for i, (x, y) in enumerate(zip(x32, ys)):
        lo, hi = boxes[box_of[i]]
        xd = x.astype(np.float64)
        if not (np.all(xd >= lo) and np.all(xd <= hi)) or not spec.violated_by(y):
            out.append(None)
            continue
        diff = 0.0 if internal_y is None else float(np.max(np.abs(np.asarray(internal_y[i], dtype=np.float64) - y)))
        out.append(Counterexample(tuple(float(v) for v in xd), tuple(float(v) for v in y), float(spec.margin(y)),
                                  "onnxruntime", diff))
    return out
