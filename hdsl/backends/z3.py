"""The exact backend: the whole network in Z3 (linear real arithmetic with ReLU case splits).

Complete for ReLU networks given enough time, and exact: the weights enter as
the rationals their float32 values are. Neurons that CROWN proves stable on
the box are fixed to their linear piece and CROWN's bounds are added as
constraints, so Z3 branches only on the unstable ones. Proofs demand the
float32 slack of ``hdsl.exact.fperr``; counterexamples are replayed with
onnxruntime (``hdsl.exact.decide``). Encodings are cached per (network, box),
so several specs on the same box (hierarchy levels, say) reuse one encoding
through ``push``/``pop``.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from hdsl import ir
from hdsl.backends import Budget
from hdsl.results import Result, Verdict

_ENCODINGS: "OrderedDict[tuple, object]" = OrderedDict()
_MAX_CACHED = 8


def _encoding(net, key: tuple, lo: np.ndarray, hi: np.ndarray, pre):
    from hdsl.exact.decide import make_encoding

    enc = _ENCODINGS.get(key)
    if enc is None:
        # A whole-network query can keep Z3 busy past any timeout (measured on ACAS Xu: 5 s queries ran
        # 10-20 s), so it always runs in the killable worker; only branch-and-bound leaves stay in-process.
        enc = make_encoding(net, lo, hi, pre, isolate=True)
        _ENCODINGS[key] = enc
        while len(_ENCODINGS) > _MAX_CACHED:
            _ENCODINGS.popitem(last=False)
    else:
        _ENCODINGS.move_to_end(key)
    return enc


def box_bounds(net, rows, lo: np.ndarray, hi: np.ndarray, arithmetic: str = "float32"):
    """CROWN pre-activation bounds on one box (numpy) and the rounding slack of each spec row."""
    import torch

    from hdsl.bab.common import batch_slack
    from hdsl.bab.crown import TorchNet, crown

    A = rows.A if rows.A.size else np.zeros((1, net.output_size))
    tn = TorchNet.of(net)  # one box: the CPU
    with torch.no_grad():
        out = crown(tn, tn.tensor(lo).reshape(1, -1), tn.tensor(hi).reshape(1, -1), tn.tensor(A),
                    tn.tensor(np.zeros(A.shape[0])))
    pre = [(l[0].numpy(), u[0].numpy()) for l, u in out.pre]
    slack = batch_slack(net, rows.A, [(l[None], u[None]) for l, u in pre], lo[None], hi[None], arithmetic)[0]
    return pre, slack


class Z3Backend:
    """Exact decision of piecewise-linear (ReLU) networks with Z3."""

    name = "z3"
    required_modules = ("z3", "torch", "onnx", "onnxruntime")

    def supports(self, query: ir.Query) -> bool:
        from hdsl.exact.net import UnsupportedNetwork
        from hdsl.exact.query import network_of

        if not (isinstance(query, ir.Query) and isinstance(query.spec, ir.OutputSpec)
                and str(query.network.path).lower().endswith(".onnx")
                and isinstance(query.region, (ir.Box, ir.LinfBall, ir.UnionRegion))):
            return False
        try:
            network_of(query.network)
        except (UnsupportedNetwork, ValueError, KeyError):
            return False
        return True

    def run(self, query: ir.Query, budget: Budget) -> Result:
        from hdsl.exact.decide import decide_box
        from hdsl.exact.query import file_stamp, prepare

        t0 = time.monotonic()
        prep = prepare(query)
        if prep.rows.n_disjuncts == 0:
            return self._result(query, Verdict.PROVED, t0, message="the spec has no unsafe outputs")
        undecided: list[str] = []
        timed_out = False
        stats = {"boxes": float(len(prep.boxes)), "unstable": 0.0, "z3_s": 0.0}
        for lo, hi in prep.boxes:
            if budget.expired():
                timed_out = True
                break
            pre, slack = box_bounds(prep.net, prep.rows, lo, hi, prep.arithmetic)
            key = (str(query.network.path), file_stamp(str(query.network.path)), query.network.mean,
                   query.network.std, lo.tobytes(), hi.tobytes())
            enc = _encoding(prep.net, key, lo, hi, pre)
            out = decide_box(enc, prep.rows, slack, lo, hi, prep.replay, budget.deadline)
            stats["unstable"] += enc.unstable  # known once the (possibly isolated) encoding has been built
            stats["z3_s"] += out.time_s
            if out.status == "falsified":
                return self._result(query, Verdict.FALSIFIED, t0, margin=out.counterexample.margin,
                                    counterexample=out.counterexample, stats=stats)
            if out.status == "timeout":
                timed_out = True
                break
            if out.status != "proved":
                undecided.append(out.message or out.status)
        if not undecided and not timed_out:
            return self._result(query, Verdict.PROVED, t0, stats=stats,
                                message=f"unsat {'in real arithmetic' if prep.arithmetic == 'real' else 'with float32 slack'}"
                                f" ({int(stats['unstable'])} unstable ReLUs)")
        if timed_out:
            return self._result(query, Verdict.TIMEOUT, t0, stats=stats, message="Z3 ran out of time")
        return self._result(query, Verdict.UNKNOWN, t0, stats=stats, message="; ".join(undecided))

    def _result(self, query, verdict, t0, margin=None, counterexample=None, message="", stats=None) -> Result:
        return Result(query.id, verdict, self.name, "z3", margin, counterexample, time.monotonic() - t0, message,
                      tuple(sorted((k, float(v)) for k, v in (stats or {}).items())))
