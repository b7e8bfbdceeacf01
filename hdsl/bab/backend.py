"""The branch-and-bound backend ("bab"): input splitting or ReLU splitting, Z3 at the leaves.

Input splitting when the input has at most ``INPUT_SPLIT_MAX_DIM`` values
(α,β-CROWN's advice is "below about 20"), ReLU splitting otherwise. Bounds run
on ``device`` (CUDA when available, like ``hdsl.bounds``); the domains, the
float32 rounding bounds and the exact leaves stay on the CPU. The
result's stage is ``"bab"``, or ``"z3"`` when an exact leaf produced the
counterexample.
"""

from __future__ import annotations

import time

from hdsl import ir
from hdsl.backends import Budget
from hdsl.results import Result, Verdict

INPUT_SPLIT_MAX_DIM = 20


class BabBackend:
    name = "bab"
    required_modules = ("z3", "torch", "onnx", "onnxruntime")

    def __init__(self, mode: str = "auto", use_z3: bool = True, device=None):
        if mode not in ("auto", "input", "relu"):
            raise ValueError("mode must be auto, input or relu")
        self.mode = mode
        self.use_z3 = use_z3
        self.device = device  # None: hdsl.bounds.default_device() ($HDSL_DEVICE, else CUDA when available)

    def supports(self, query: ir.Query) -> bool:
        from hdsl.backends.z3 import Z3Backend

        return Z3Backend().supports(query)

    def run(self, query: ir.Query, budget: Budget) -> Result:
        from threadpoolctl import threadpool_limits

        from hdsl.bab.input_split import input_split
        from hdsl.bab.relu_split import relu_split
        from hdsl.bounds import default_device
        from hdsl.exact.query import prepare

        t0 = time.monotonic()
        prep = prepare(query)
        mode = self.mode
        if mode == "auto":
            mode = "input" if prep.net.input_size <= INPUT_SPLIT_MAX_DIM else "relu"
        search = input_split if mode == "input" else relu_split
        # The searches' numpy products are small (a batch of boxes by one layer): BLAS threads only
        # contend with torch's and with other processes (10x slower rounding bounds on a busy 2-core machine).
        with threadpool_limits(limits=1, user_api="blas"):
            out = search(prep.net, prep.rows, prep.boxes, prep.replay, budget.deadline, use_z3=self.use_z3,
                         device=self.device if self.device is not None else default_device(),
                         arithmetic=query.options.arithmetic)
        verdict = {
            "proved": Verdict.PROVED,
            "falsified": Verdict.FALSIFIED,
            "timeout": Verdict.TIMEOUT,
        }.get(out.status, Verdict.UNKNOWN)
        stats = {k: float(v) for k, v in out.stats.items() if isinstance(v, (int, float))}
        stats["relu_split"] = float(mode == "relu")
        ce = out.counterexample
        msg = out.message or (f"{mode} splitting: {out.stats.get('boxes', out.stats.get('domains', 0))} "
                              f"sub-problems, {out.stats.get('z3_leaves', 0)} exact leaves")
        return Result(query.id, verdict, self.name, out.decided_by if ce is not None else "bab",
                      ce.margin if ce is not None else None, ce, time.monotonic() - t0, msg,
                      tuple(sorted(stats.items())))
