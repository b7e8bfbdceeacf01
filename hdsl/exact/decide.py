"""Decide one box exactly with Z3: prove, or find a counterexample that replays.

The verdict logic, shared by the Z3 backend and the branch-and-bound leaves:

1. Ask for a violation of the *relaxed* unsafe set (each row loosened by its
   float32 slack). ``unsat`` means even the float32 network is safe: proved.
2. On ``sat``, round the model's input to a float32 point inside the box and
   replay it on the real model. Confirmed: falsified.
3. Otherwise ask again for violations by a wider margin (``-2 slack``, then a
   few absolute margins); a confirmed replay is falsified; if none exists the
   only violations are within float32 rounding of the boundary: unknown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from hdsl.exact.net import PwlNet
from hdsl.exact.smt import Z3Network, to_float32_in_box

if TYPE_CHECKING:
    from hdsl.exact.isolated import IsolatedZ3Network
from hdsl.exact.spec import SpecRows
from hdsl.results import Counterexample

Replayer = Callable[[np.ndarray], "Counterexample | None"]


@dataclass(frozen=True)
class ExactOutcome:
    status: str  # "proved" | "falsified" | "unknown" | "timeout"
    counterexample: Counterexample | None = None
    time_s: float = 0.0
    message: str = ""
    unstable: int = 0


def decide_box(
    enc: "Z3Network | IsolatedZ3Network",
    rows: SpecRows,
    slack: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    replay: Replayer,
    deadline: float,
) -> ExactOutcome:
    t0 = time.monotonic()
    ans = enc.check(rows, slack, deadline - time.monotonic())
    if ans.status == "unsat":
        return ExactOutcome("proved", time_s=time.monotonic() - t0, unstable=enc.unstable)
    if ans.status != "sat":
        return ExactOutcome(ans.status, time_s=time.monotonic() - t0, message=ans.reason, unstable=enc.unstable)
    tried = []
    x = ans.x
    scale = float(np.max(np.abs(rows.A))) if rows.A.size else 1.0
    margins = [None, 2 * slack] + [np.full_like(slack, m * max(scale, 1.0)) for m in (1e-5, 1e-3)]
    for bound in margins:
        if bound is not None:
            ans = enc.check(rows, -bound, deadline - time.monotonic())
            if ans.status == "unsat":
                return ExactOutcome(
                    "unknown",
                    time_s=time.monotonic() - t0,
                    message="violations exist only within rounding of the spec boundary; none replayed",
                    unstable=enc.unstable,
                )
            if ans.status != "sat":
                return ExactOutcome(ans.status, time_s=time.monotonic() - t0, message=ans.reason, unstable=enc.unstable)
            x = ans.x
        x32 = to_float32_in_box(x, lo, hi)
        if x32 is None:
            tried.append("no float32 point in the box")
            continue
        ce = replay(x32)
        if ce is not None:
            return ExactOutcome("falsified", ce, time_s=time.monotonic() - t0, unstable=enc.unstable)
        tried.append("replay did not confirm")
    return ExactOutcome(
        "unknown",
        time_s=time.monotonic() - t0,
        message="Z3 found violations but none replayed on the real model (" + "; ".join(tried) + ")",
        unstable=enc.unstable,
    )


COMPACT_MAX_INPUTS = 32


def isolate_z3(net: PwlNet, requested: bool | None = None) -> bool:
    """Whether Z3 runs in the killable worker (``hdsl.exact.isolated``) for this network.

    ``HDSL_Z3_ISOLATE=1`` / ``0`` forces either; else the caller's ``requested``;
    else only networks with many inputs: their layered encoding is where Z3
    overran its timeout inside ``push``, while the small compact encodings
    (ACAS Xu leaves, by the thousand) stay in-process, with no pipe round trip.
    """
    import os

    from hdsl.exact.isolated import isolation_available

    forced = os.environ.get("HDSL_Z3_ISOLATE", "").strip()
    if forced in ("0", "1"):
        wanted = forced == "1"
    elif requested is not None:
        wanted = requested
    else:
        wanted = net.input_size > COMPACT_MAX_INPUTS
    return wanted and isolation_available()


def make_encoding(net: PwlNet, lo, hi, pre, fixed=None, isolate: bool | None = None) -> "Z3Network | IsolatedZ3Network":
    """The compact encoding (stable neurons composed away) for few inputs, else the layered one.

    ``isolate``: ask for the killable worker (see ``isolate_z3``).
    """
    from hdsl.exact.isolated import IsolatedZ3Network
    from hdsl.exact.smt import CompactZ3Network

    compact = pre is not None and net.input_size <= COMPACT_MAX_INPUTS
    if isolate_z3(net, isolate):
        return IsolatedZ3Network(net, lo, hi, pre, fixed, compact=compact)
    if compact:
        return CompactZ3Network(net, lo, hi, pre, fixed)
    return Z3Network(net, lo, hi, pre, fixed)


def box_slack(net: PwlNet, rows: SpecRows, pre_np, lo: np.ndarray, hi: np.ndarray,
              arithmetic: str = "float32") -> np.ndarray:
    """The rounding slack per spec row over one box (see ``hdsl.exact.fperr``, ``batch_slack``)."""
    from hdsl.bab.common import batch_slack

    pre_b = [(np.atleast_2d(l), np.atleast_2d(u)) for l, u in pre_np]
    return batch_slack(net, rows.A, pre_b, np.atleast_2d(lo), np.atleast_2d(hi), arithmetic)[0]


def decide_exact(
    net: PwlNet,
    rows: SpecRows,
    lo: np.ndarray,
    hi: np.ndarray,
    replay: Replayer,
    deadline: float,
    use_bounds: bool = True,
    fixed: list[np.ndarray] | None = None,
    pre=None,
    arithmetic: str = "float32",
) -> ExactOutcome:
    """Encode ``net`` over the box (with CROWN bounds unless told not to) and decide it.

    ``arithmetic="real"``: the real-valued network only (no float32 slack)."""
    import torch

    from hdsl.bab.crown import TorchNet, crown

    if pre is None:
        tn = TorchNet.of(net)  # one box: the CPU
        C = tn.tensor(rows.A if rows.A.size else np.zeros((1, net.output_size)))
        out = crown(
            tn,
            tn.tensor(lo).unsqueeze(0),
            tn.tensor(hi).unsqueeze(0),
            C,
            tn.tensor(np.zeros(C.shape[0])),
            fixed=[tn.tensor(f, torch.int8).unsqueeze(0) if f is not None else None for f in fixed] if fixed else None,
        )
        pre = [(l[0].numpy(), u[0].numpy()) for l, u in out.pre]
    slack = box_slack(net, rows, pre, lo, hi, arithmetic)
    enc = make_encoding(net, lo, hi, pre if use_bounds else None, fixed)
    return decide_box(enc, rows, slack, lo, hi, replay, deadline)
