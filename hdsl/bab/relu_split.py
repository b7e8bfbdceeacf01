"""Branch and bound by splitting unstable ReLUs (for high-dimensional inputs, e.g. MNIST).

A domain is the input box plus a set of split decisions ``z_j >= 0`` /
``z_j <= 0``. Each round bounds a batch of domains with CROWN under their
splits (``hdsl.bab.crown``; layers before the newest split keep their parent's
bounds), drops domains whose every unsafe disjunct is excluded (or whose
splits are contradictory: a clamped interval became empty), tries the CROWN
minimising vertex as a counterexample, and splits the unstable neuron with the
best BaBSR-like score (Bunel et al., 2020): the looseness its relaxation adds
to the bound of the open row, ``max(-lam, 0) * (-l u / (u - l))`` for the
upper-relaxation intercept plus a share for the lower one.

The roots' intermediate bounds are tightened once by α-CROWN, and every
domain below keeps them as a floor. Domains CROWN leaves open get optimised
bounds: α slopes and β multipliers for the split constraints
(``hdsl.bab.beta``, β-CROWN). Domains with few
unstable ReLUs left go to Z3, which decides them exactly, split constraints
included; this makes the search complete.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from hdsl.bab.beta import exclude_open, optimised_intermediate_bounds
from hdsl.bab.common import BabOutcome, batch_slack
from hdsl.bab.crown import TorchNet, crown, to_numpy
from hdsl.bab.input_split import _best_rows, _fin, sub_rows, try_candidates
from hdsl.exact.decide import Replayer, decide_exact
from hdsl.exact.net import PwlNet
from hdsl.exact.spec import SpecRows


def relu_split(
    net: PwlNet,
    rows: SpecRows,
    parts: list[tuple[np.ndarray, np.ndarray]],
    replay: Replayer,
    deadline: float,
    *,
    batch: int = 32,
    z3_unstable: int = 12,
    z3_leaf_s: float = 10.0,
    use_z3: bool = True,
    max_domains: int = 200_000,
    optimise: bool = True,
    opt_iters: int = 20,
    root_iters: int = 20,
    root_share: float = 0.25,
    device=None,
    arithmetic: str = "float32",
) -> BabOutcome:
    t0 = time.monotonic()
    if rows.n_disjuncts == 0:
        return BabOutcome("proved", message="the unsafe set is empty")
    tn = TorchNet.of(net, device)
    C, d = tn.tensor(rows.A), tn.tensor(rows.d)
    L = len(net.layers)
    relu_layers = [k for k in range(L) if net.layers[k].relu]
    widths = [int(l.weight.shape[0]) for l in net.layers]
    stats = {"domains": 0, "rounds": 0, "z3_leaves": 0, "max_depth": 0, "infeasible": 0, "optimised": 0}
    # A domain: (box index, fixed masks {layer: int8 array}, parent pre bounds or None, start layer, excl, depth,
    # the parent's best (α, β) per relu layer (R, n) or None)
    queue: list[tuple] = [(b, {}, None, 0, np.zeros(rows.n_disjuncts, bool), 0, None) for b in range(len(parts))]
    if optimise and root_iters > 0:
        # The roots' intermediate bounds tightened once by α-CROWN; every domain below intersects with them.
        lo0 = tn.tensor(np.stack([p[0] for p in parts]))
        hi0 = tn.tensor(np.stack([p[1] for p in parts]))
        with torch.no_grad():
            pre0 = crown(tn, lo0, hi0, C, d).pre
        pre0 = optimised_intermediate_bounds(tn, lo0, hi0, pre0, iters=root_iters,
                                             deadline=t0 + root_share * max(0.0, deadline - t0))
        queue = [(b, {}, [(to_numpy(l[b]), to_numpy(u[b])) for l, u in pre0], L, excl, depth, None)
                 for b, _, _, _, excl, depth, _ in queue]
    while queue:
        if time.monotonic() >= deadline:
            return BabOutcome("timeout", stats=_fin(stats, t0), message=f"{len(queue)} domains open")
        if len(queue) > max_domains:
            return BabOutcome("unknown", stats=_fin(stats, t0), message="too many open domains")
        doms = queue[-batch:]
        del queue[-batch:]
        n = len(doms)
        stats["domains"] += n
        stats["rounds"] += 1
        stats["max_depth"] = max(stats["max_depth"], max(dm[5] for dm in doms))
        lo = np.stack([parts[dm[0]][0] for dm in doms]).astype(np.float64)
        hi = np.stack([parts[dm[0]][1] for dm in doms]).astype(np.float64)
        fixed = [
            tn.tensor(np.stack([dm[1].get(k, np.zeros(widths[k], np.int8)) for dm in doms]), torch.int8)
            if net.layers[k].relu else None
            for k in range(L)
        ]
        start = min(dm[3] for dm in doms)
        reuse = None
        if all(dm[2] is not None for dm in doms) and start > 0:
            reuse = [
                (tn.tensor(np.stack([dm[2][k][0] for dm in doms])),
                 tn.tensor(np.stack([dm[2][k][1] for dm in doms])))
                for k in range(L)
            ]
        else:
            start = 0
        with torch.no_grad():
            out = crown(tn, tn.tensor(lo), tn.tensor(hi), C, d, fixed=fixed, reuse=reuse, start=start)
        lb = to_numpy(out.row_lb)
        pre_np = [(to_numpy(l), to_numpy(u)) for l, u in out.pre]
        empty = np.zeros(n, dtype=bool)
        for l_, u_ in pre_np:
            empty |= (l_ > u_ + 1e-9 * (1 + np.abs(u_))).any(axis=1)
        stats["infeasible"] += int(empty.sum())
        slack = batch_slack(net, rows.A, pre_np, lo, hi, arithmetic)
        excl = rows.excluded(lb - 1e-9 * np.abs(lb), slack) | np.stack([dm[4] for dm in doms])
        open_ = ~excl.all(axis=1) & ~empty
        warm = [None] * n
        if optimise and open_.any():
            # α slopes and β multipliers of the splits on the rows of the domains CROWN left open,
            # starting from the values that gave their parents' best bounds (α,β-CROWN's warm start).
            o = np.nonzero(open_)[0]
            kept = exclude_open(rows, tn, lo, hi, C, d, out.pre, fixed, open_, lb, excl, slack, opt_iters,
                                 init=_warm_start([doms[i][6] for i in o]))
            for pos, i in enumerate(o):
                warm[i] = ({j: a[pos].float() for j, a in kept[0].items()},
                           {j: b[pos].float() for j, b in kept[1].items()})
            stats["optimised"] += int(open_.sum())
            open_ = ~excl.all(axis=1) & ~empty
        if not open_.any():
            continue
        idx = np.nonzero(open_)[0]
        coef = to_numpy(out.coef)
        best = _best_rows(rows, lb, excl)
        cands, clo, chi = [], [], []
        for b in best:
            has = (b >= 0) & open_
            if has.any():
                r = np.nonzero(has)[0]
                cands.append(np.where(coef[r, b[r]] > 0, lo[r], hi[r]))
                clo.append(lo[r])
                chi.append(hi[r])
        if cands:
            ce = try_candidates(net, rows, np.concatenate(cands), np.concatenate(clo), np.concatenate(chi), replay)
            if ce is not None:
                return BabOutcome("falsified", ce, stats=_fin(stats, t0), decided_by="bab")
        # Score unstable, unfixed neurons on the worst open disjunct's best row.
        worst_row = np.full(n, -1)
        worst_val = np.full(n, np.inf)
        for b in best:
            has = b >= 0
            val = np.where(has, lb[np.arange(n), np.maximum(b, 0)], np.inf)
            better = has & (val < worst_val)
            worst_row = np.where(better, b, worst_row)
            worst_val = np.where(better, val, worst_val)
        for i in idx:
            dm = doms[i]
            r = int(worst_row[i])
            best_score, best_k, best_j, n_unstable = 0.0, -1, -1, 0
            for k in relu_layers:
                l_, u_ = pre_np[k][0][i], pre_np[k][1][i]
                unst = (l_ < 0) & (u_ > 0)
                n_unstable += int(unst.sum())
                if not unst.any() or r < 0 or out.lam[k] is None:
                    continue
                lam = to_numpy(out.lam[k][i, r])
                t_up = np.where(unst, -l_ * u_ / np.where(unst, u_ - l_, 1.0), 0.0)
                score = np.maximum(-lam, 0) * t_up + 0.1 * np.maximum(lam, 0) * np.minimum(u_, -l_) * unst
                score = np.where(unst, score + 1e-12 * (u_ - l_), -1.0)
                j = int(np.argmax(score))
                if score[j] > best_score:
                    best_score, best_k, best_j = float(score[j]), k, j
            pre_i = [(l_[i].copy(), u_[i].copy()) for l_, u_ in pre_np]
            if use_z3 and (n_unstable <= z3_unstable or best_k < 0):
                stats["z3_leaves"] += 1
                fx = [dm[1].get(k, np.zeros(widths[k], np.int8)) if net.layers[k].relu else None for k in range(L)]
                leaf_deadline = deadline if best_k < 0 else min(deadline, time.monotonic() + z3_leaf_s)
                res = decide_exact(net, sub_rows(rows, ~excl[i]), parts[dm[0]][0], parts[dm[0]][1], replay,
                                   leaf_deadline, fixed=fx, pre=pre_i, arithmetic=arithmetic)
                if res.status == "falsified":
                    return BabOutcome("falsified", res.counterexample, stats=_fin(stats, t0), decided_by="z3")
                if res.status == "proved":
                    continue
                if best_k < 0:
                    return BabOutcome("unknown" if res.status == "unknown" else "timeout", stats=_fin(stats, t0),
                                      message=f"exact leaf: {res.status} {res.message}")
            if best_k < 0:
                return BabOutcome("unknown", stats=_fin(stats, t0), message="no neuron left to split")
            for sign in (-1, 1):
                fx = {k: v.copy() for k, v in dm[1].items()}
                fx.setdefault(best_k, np.zeros(widths[best_k], np.int8))[best_j] = sign
                # warm starts cost R x (relu neurons) floats a parent: none once the queue is long
                queue.append((dm[0], fx, pre_i, best_k + 1, excl[i].copy(), dm[5] + 1,
                              warm[i] if len(queue) < WARM_MAX_DOMAINS else None))
        if time.monotonic() >= deadline:
            return BabOutcome("timeout", stats=_fin(stats, t0), message=f"{len(queue)} domains open")
    return BabOutcome("proved", stats=_fin(stats, t0))


WARM_MAX_DOMAINS = 20_000


def _warm_start(parents: list) -> tuple[dict, dict] | None:
    """Stacked starting (α, β) for a batch: each domain its parent's, NaN (CROWN's slopes, β 0) where none."""
    if all(p is None for p in parents):
        return None
    out: tuple[dict, dict] = ({}, {})
    for which, stacked in enumerate(out):
        for j in {j for p in parents if p is not None for j in p[which]}:
            ref = next(p[which][j] for p in parents if p is not None and j in p[which])
            stacked[j] = torch.stack([p[which][j].double() if p is not None and j in p[which] else
                                      torch.full(ref.shape, float("nan"), dtype=torch.float64, device=ref.device)
                                      for p in parents])
    return out
