"""Replay a candidate counterexample on the real model with onnxruntime.

A candidate is confirmed only when the float32 point lies in the region (the
caller checks it, zero tolerance) and the outputs onnxruntime computes on it
satisfy an unsafe disjunct. Normalisation declared on the model is applied in
float32, as a deployed pipeline would.
"""

from __future__ import annotations

import numpy as np

from hdsl.ir import OutputSpec
from hdsl.results import Counterexample


class OrtReplayer:
    def __init__(self, path: str, spec: OutputSpec, mean=None, std=None, internal=None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        self.spec = spec
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        self.internal = internal  # optional callable x -> y, to report |replay - internal|

    def outputs(self, x32: np.ndarray) -> np.ndarray:
        x = np.asarray(x32, dtype=np.float32).reshape(-1)
        if self.mean is not None or self.std is not None:
            n_ch = (self.mean if self.mean is not None else self.std).size
            xc = x.reshape(n_ch, -1) if n_ch > 1 else x.reshape(1, -1)
            m = (self.mean if self.mean is not None else np.zeros(n_ch, np.float32)).reshape(-1, 1)
            s = (self.std if self.std is not None else np.ones(n_ch, np.float32)).reshape(-1, 1)
            x = ((xc - m) / s).astype(np.float32).reshape(-1)
        if int(np.prod(self.shape)) != x.size:
            raise ValueError(f"model input {self.shape} does not hold {x.size} values")
        y = self.session.run(None, {self.input_name: x.reshape(self.shape)})[0]
        return np.asarray(y, dtype=np.float64).reshape(-1)

    def __call__(self, x32: np.ndarray) -> Counterexample | None:
        y = self.outputs(x32)
        if not self.spec.violated_by(y):
            return None
        diff = 0.0
        if self.internal is not None:
            diff = float(np.max(np.abs(np.asarray(self.internal(x32), dtype=np.float64).reshape(-1) - y)))
        return Counterexample(
            x=tuple(float(v) for v in np.asarray(x32, dtype=np.float32).reshape(-1)),
            y=tuple(float(v) for v in y),
            margin=self.spec.margin(y),
            replayed_with="onnxruntime",
            max_abs_diff=diff,
        )
