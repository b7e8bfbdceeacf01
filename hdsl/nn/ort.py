"""onnxruntime execution of the original ONNX file: the reference for replay and import checks."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from hdsl.files import content_digest

_SESSIONS: dict[tuple[str, str], object] = {}


def session(path: str | os.PathLike):
    """A cached CPU ``InferenceSession`` for ``path`` (keyed by path and content digest)."""
    import onnxruntime as ort

    p = Path(path)
    key = (str(p.resolve()), content_digest(p))
    if key not in _SESSIONS:
        opts = ort.SessionOptions()
        opts.log_severity_level = 4  # errors come back as exceptions, reported by hdsl
        _SESSIONS[key] = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


def run_onnx(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Outputs ``[N, n_out]`` of the ONNX model on float32 inputs ``x`` of shape ``[N, ...]``.

    Runs one sample at a time when the file fixes its batch size (e.g. ACAS Xu's
    batch of 1), so any model accepts any ``N``.
    """
    sess = session(path)
    inp = sess.get_inputs()[0]
    dims = inp.shape
    per_sample = [int(d) for d in dims[1:]]
    x = np.asarray(x, dtype=np.float32).reshape(len(x), *per_sample)
    fixed = isinstance(dims[0], int) and dims[0] > 0
    if fixed and dims[0] != len(x):
        outs = [sess.run(None, {inp.name: x[i:i + 1]})[0].reshape(1, -1) for i in range(len(x))]
        return np.concatenate(outs, 0) if outs else np.zeros((0, 0), np.float32)
    return sess.run(None, {inp.name: x})[0].reshape(len(x), -1)


def compare_with_onnxruntime(graph, n: int = 16, low: float = -1.0, high: float = 1.0, seed: int = 0) -> float:
    """Max |graph(x) - onnxruntime(x)| over ``n`` uniform random inputs in ``[low, high]``."""
    import torch

    if graph.source_path is None:
        raise ValueError("the graph has no ONNX source file")
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(n, math.prod(graph.input_shape))).astype(np.float32)
    ref = run_onnx(graph.source_path, x)
    with torch.no_grad():
        ours = graph.to("cpu").forward(torch.from_numpy(x).reshape(n, *graph.input_shape)).numpy()
    return float(np.max(np.abs(ours - ref)))
