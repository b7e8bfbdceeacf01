"""Replay candidate counterexamples on the real model (onnxruntime on the original ONNX file).

A candidate found by any backend becomes a ``Counterexample`` only if, after
rounding it to float32 *inside* the region, the spec's declared normalisation
(computed in float64, rounded to float32) and onnxruntime's float32 output on
the original file satisfy an unsafe disjunct (``OutputSpec.violated_by``, zero
tolerance). Anything else is not reported as falsified.

Under ``arithmetic real`` (``hdsl.ir.CheckOptions``) the claim is about the
real-valued network, so the same float32 point must also violate the spec when
the network is evaluated in float64 on its exact parameters, by more than a
float64 allowance (``REAL_TOLERANCE`` relative): a float32 execution that
crosses the boundary only through its own rounding is not a counterexample to
the real network.
"""

from __future__ import annotations

import numpy as np

from hdsl import ir
from hdsl.regions import BoxArrays, float32_inside
from hdsl.results import Counterexample

#: Relative margin (of ``1 + max |y|``) by which the float64 evaluation must violate under ``arithmetic real``;
#: float64 rounding of a network's outputs is ~1e-13 of that scale for the fan-ins we import.
REAL_TOLERANCE = 1e-9


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


def real_outputs(network: ir.Network, x: np.ndarray) -> np.ndarray:
    """The network's outputs [N, n_out] in float64 on its exact parameters (the real network, to float64
    rounding), at raw inputs ``x`` [N, n]."""
    import torch

    from hdsl.bounds import prepare
    from hdsl.nn.onnx_import import load_onnx

    graph = prepare(load_onnx(network.path), "cpu")  # the cached float64 twin, not a fresh copy per replay
    xn = normalise(network, np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    with torch.no_grad():
        return graph.forward(torch.as_tensor(xn).reshape(len(x), *graph.input_shape)).numpy()


def violates_in_real_arithmetic(spec: ir.OutputSpec, y_real: np.ndarray) -> bool:
    """Whether float64 outputs ``y_real`` violate ``spec`` by more than float64 rounding could fake."""
    y_real = np.asarray(y_real, dtype=np.float64)
    return bool(spec.margin(y_real) < -REAL_TOLERANCE * (1.0 + float(np.max(np.abs(y_real), initial=0.0))))


def replay(network: ir.Network, spec: ir.OutputSpec, box: BoxArrays, x: np.ndarray,
           internal_y: np.ndarray | None = None, arithmetic: str = "float32") -> Counterexample | None:
    """Confirm one candidate ``x`` (flattened, raw space) in ``box``; ``None`` when not confirmed."""
    return replay_many(network, spec, [box], np.asarray(x).reshape(1, -1), [0],
                       None if internal_y is None else np.asarray(internal_y).reshape(1, -1), arithmetic)[0]


def replay_many(network: ir.Network, spec: ir.OutputSpec, boxes: list[BoxArrays], xs: np.ndarray,
                box_of: list[int], internal_y: np.ndarray | None = None,
                arithmetic: str = "float32") -> list[Counterexample | None]:
    """Replay candidates ``xs`` [N, n], candidate i lying in ``boxes[box_of[i]]``, in one onnxruntime call.

    ``arithmetic="real"`` also requires the float64 evaluation to violate (module docstring)."""
    xs = np.asarray(xs, dtype=np.float64).reshape(len(xs), -1)
    x32 = np.stack([float32_inside(x, *boxes[b]) for x, b in zip(xs, box_of)]) if len(xs) else xs.astype(np.float32)
    ys = run_model(network, x32.astype(np.float64)) if len(xs) else np.zeros((0, 0))
    y_real = real_outputs(network, x32.astype(np.float64)) if arithmetic == "real" and len(xs) else None
    out: list[Counterexample | None] = []
    for i, (x, y) in enumerate(zip(x32, ys)):
        lo, hi = boxes[box_of[i]]
        xd = x.astype(np.float64)
        if not (np.all(xd >= lo) and np.all(xd <= hi)) or not spec.violated_by(y):
            out.append(None)
            continue
        if y_real is not None and not violates_in_real_arithmetic(spec, y_real[i]):
            out.append(None)
            continue
        diff = 0.0 if internal_y is None else float(np.max(np.abs(np.asarray(internal_y[i], dtype=np.float64) - y)))
        out.append(Counterexample(tuple(float(v) for v in xd), tuple(float(v) for v in y), float(spec.margin(y)),
                                  "onnxruntime", diff))
    return out
