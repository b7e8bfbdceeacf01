"""Branch and bound by splitting the input box (for low-dimensional inputs, e.g. ACAS Xu).

Each round takes a batch of boxes from a stack (depth first, so memory stays
small and counterexamples surface early), bounds the spec rows with batched
CROWN, and:

* drops a box when every unsafe disjunct is excluded on it by a margin larger
  than the float32 slack of that box; the pre-activation bounds are symbolic
  forward bounds, with CROWN for the neurons they leave unstable
  (``intermediate="hybrid"``; ``"adaptive"`` first tries forward bounds alone,
  which cost 7% more over the 186 ACAS Xu instances than they saved);
* tries the box centre and, per open disjunct, the vertex that minimises the
  CROWN bound of its best row as counterexamples (float32 forward, then replay);
* optimises the lower ReLU slopes of the spec rows (α-CROWN, ``hdsl.bab.beta``)
  on the boxes CROWN leaves open, once a search has run 2 s, each box starting
  from its parent's best slopes, 5 Adam steps a box: ACAS Xu 4_2 property 2
  closes in 23 s (open after 116 s without α), 3_3 property 2 in 91 s (open
  after 116 s with 10 steps a box); on easy instances the steps cost 2-3x and
  gain nothing;
* drops a box with few unstable ReLUs when each of their activation patterns is
  shown infeasible with the unsafe set by an LP dual (``hdsl.bab.patterns``);
* sends nearly linear boxes (few unstable ReLUs) or boxes that cannot be split
  further to Z3, which decides them exactly;
* runs a few gradient steps inside every open box (interior counterexamples);
* splits the rest in half along the dimension with the largest *smear*
  ``max |d row / d x_i| * width_i``, the gradient bounded over the box's ReLU
  states (Wang et al., ReluVal, 2018).
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from hdsl.bab.beta import exclude_open
from hdsl.bab.common import BabOutcome, batch_slack
from hdsl.bab.conjunction import exclude_by_combination
from hdsl.bab.crown import TorchNet, crown, to_numpy
from hdsl.bab.patterns import prove_by_patterns
from hdsl.exact.decide import Replayer, decide_exact
from hdsl.exact.fperr import interval_gradients
from hdsl.exact.net import PwlNet
from hdsl.exact.smt import to_float32_in_box
from hdsl.exact.spec import SpecRows

_VERBOSE = bool(os.environ.get("HDSL_BAB_VERBOSE"))


def sub_rows(rows: SpecRows, keep: np.ndarray) -> SpecRows:
    """The rows of the disjuncts flagged in ``keep`` (K,), renumbered."""
    ks = np.nonzero(keep)[0]
    remap = {int(k): i for i, k in enumerate(ks)}
    sel = np.isin(rows.disjunct, ks)
    return SpecRows(
        rows.A[sel],
        rows.d[sel],
        rows.strict[sel],
        np.array([remap[int(k)] for k in rows.disjunct[sel]], dtype=int),
        len(ks),
    )


def _best_rows(rows: SpecRows, lb: np.ndarray, excl: np.ndarray) -> list[np.ndarray]:
    """Per open disjunct k: (B,) index of its row with the highest lower bound (-1 if excluded)."""
    out = []
    for k in range(rows.n_disjuncts):
        idx = np.nonzero(rows.disjunct == k)[0]
        if len(idx) == 0:
            out.append(np.full(lb.shape[0], -1))
            continue
        best = idx[np.argmax(lb[:, idx], axis=1)]
        out.append(np.where(excl[:, k], -1, best))
    return out


def split_dimension(net: PwlNet, rows: SpecRows, best: list[np.ndarray], lo: np.ndarray, hi: np.ndarray,
                    pre_np) -> np.ndarray:
    """Per box, the input dimension to halve: the largest *smear* ``max|dy/dx_i| * width_i``.

    The gradient bounds come from the box's pre-activation bounds, so an input
    whose influence passes through unstable ReLUs scores high even when the
    final linear bound happens to have a small coefficient on it (splitting by
    that coefficient alone kept halving a thin side forever on ACAS Xu 2_2
    property 1 while another side stayed 2^20 times wider).
    """
    width = hi - lo
    B = len(lo)
    sel = np.zeros((B, len(best), rows.A.shape[1]))
    for k, b in enumerate(best):
        has = b >= 0
        sel[has, k] = rows.A[b[has]]
    *_, (_, g_lo, g_hi) = interval_gradients(net.layers, sel, pre_np)
    score = (np.maximum(np.abs(g_lo), np.abs(g_hi)) * width[:, None, :]).sum(axis=1)
    flat = score.max(axis=1) <= 0
    score[flat] = width[flat]  # no gradient information: split the widest side
    return np.argmax(score, axis=1)


def local_attack(tn: TorchNet, rows: SpecRows, starts: np.ndarray, disjunct: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, steps: int = 12) -> np.ndarray:
    """Projected sign-gradient descent of ``max_r safety_r`` over each start's disjunct, inside its box.

    Counterexamples with tiny margins (ACAS Xu 1_3 property 2: 7e-6) sit in the
    interior of a box, where neither the centre nor the vertex that minimises
    the linear bound is; a few gradient steps per open box find them once the
    boxes are small. Returns the end points; the caller replays them.
    """
    if len(starts) == 0:
        return starts
    A = tn.tensor(rows.A)
    d = tn.tensor(rows.d)
    member = tn.tensor(rows.disjunct[None, :] == disjunct[:, None], torch.bool)  # (N, R)
    lo_t, hi_t = tn.tensor(lo), tn.tensor(hi)
    x = tn.tensor(starts).clone()
    step = (hi_t - lo_t) / 4
    for _ in range(steps):
        x.requires_grad_(True)
        safety = tn.forward(x) @ A.T + d
        obj = torch.where(member, safety, torch.full_like(safety, -torch.inf)).max(dim=1).values
        (g,) = torch.autograd.grad(obj.sum(), x)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x - step * g.sign(), lo_t), hi_t)
        step = step * 0.7
    return to_numpy(x)


def try_candidates(net: PwlNet, rows: SpecRows, points: np.ndarray, los, his, replay: Replayer):
    """Float32 forward on candidate points (each with its box); replay the violating ones."""
    if len(points) == 0:
        return None
    y = net.forward(points.astype(np.float32), dtype=np.float32)
    bad = np.nonzero(rows.violated(y.astype(np.float64)))[0]
    for i in bad[:8]:
        x32 = to_float32_in_box(points[i], los[i], his[i])
        if x32 is None:
            continue
        ce = replay(x32)
        if ce is not None:
            return ce
    return None


def input_split(
    net: PwlNet,
    rows: SpecRows,
    parts: list[tuple[np.ndarray, np.ndarray]],
    replay: Replayer,
    deadline: float,
    *,
    batch: int = 256,
    z3_unstable: int = 4,
    z3_leaf_s: float = 5.0,
    use_z3: bool = True,
    max_queue: int = 2_000_000,
    intermediate: str = "hybrid",
    hybrid_min_unstable: int = 0,
    combine: bool = True,
    pattern_unstable: int = 6,
    alpha_iters: int = 5,
    alpha_after_s: float = 2.0,
    device=None,
    arithmetic: str = "float32",
) -> BabOutcome:
    t0 = time.monotonic()
    tn = TorchNet.of(net, device)
    if rows.n_disjuncts == 0:
        return BabOutcome("proved", message="the unsafe set is empty")
    C = tn.tensor(rows.A)
    d = tn.tensor(rows.d)
    K = rows.n_disjuncts
    conj = combine and bool((np.bincount(rows.disjunct, minlength=K) > 1).any())
    lo_q = np.concatenate([np.atleast_2d(p[0]) for p in parts]).astype(np.float64)
    hi_q = np.concatenate([np.atleast_2d(p[1]) for p in parts]).astype(np.float64)
    mask_q = np.zeros((len(lo_q), K), dtype=bool)
    depth_q = np.zeros(len(lo_q), dtype=int)
    widths = [int(l.weight.shape[0]) for l in net.layers]
    # Parent pre-activation bounds (valid on the children), stored in float32 rounded outward.
    plo_q = [np.full((len(lo_q), w), -np.inf, dtype=np.float32) for w in widths]
    phi_q = [np.full((len(lo_q), w), np.inf, dtype=np.float32) for w in widths]
    # Per box, the α slopes that gave its parent's best bounds, all relu layers flattened (NaN: none);
    # created when α first runs, dropped if the queue outgrows WARM_MAX_QUEUE.
    slots = [(j, widths[j]) for j in range(len(widths) - 1) if net.layers[j].relu]
    warm_q: np.ndarray | None = None
    stats = {"boxes": 0, "rounds": 0, "z3_leaves": 0, "pattern_proved": 0, "float32_blocked": 0, "max_depth": 0, "min_lb": float("inf")}

    while len(lo_q):
        if time.monotonic() >= deadline:
            return BabOutcome("timeout", stats=_fin(stats, t0), message=_open(f"{len(lo_q)} boxes open", stats))
        if len(lo_q) > max_queue:
            return BabOutcome("unknown", stats=_fin(stats, t0), message=_open("too many open boxes", stats))
        n = min(batch, len(lo_q))
        lo, hi, mask, depth = lo_q[-n:], hi_q[-n:], mask_q[-n:], depth_q[-n:]
        prior = [(tn.tensor(a[-n:]), tn.tensor(b[-n:]))
                 for a, b in zip(plo_q, phi_q)]
        lo_q, hi_q, mask_q, depth_q = lo_q[:-n], hi_q[:-n], mask_q[:-n], depth_q[:-n]
        plo_q, phi_q = [a[:-n] for a in plo_q], [b[:-n] for b in phi_q]
        warm = None
        if warm_q is not None:
            warm, warm_q = warm_q[-n:], warm_q[:-n]
        stats["boxes"] += n
        stats["rounds"] += 1
        stats["max_depth"] = max(stats["max_depth"], int(depth.max()))
        if _VERBOSE:
            print(f"[bab] round {stats['rounds']} open {len(lo_q) + n} depth {int(depth.max())} "
                  f"t {time.monotonic() - t0:.1f}s min_lb {stats['min_lb']:.4g} z3 {stats['z3_leaves']} "
                  f"patterns {stats['pattern_proved']}", flush=True)
        passes = ["forward", "hybrid"] if intermediate == "adaptive" else [intermediate]
        for mode in passes:
            # Cheap forward bounds (intersected with the parent's) first; the boxes they leave
            # open get CROWN intermediate bounds.
            with torch.no_grad():
                out = crown(tn, tn.tensor(lo), tn.tensor(hi), C, d, intermediate=mode, prior=prior)
            lb, coef = to_numpy(out.row_lb), to_numpy(out.coef)
            pre_np = [(to_numpy(l), to_numpy(u)) for l, u in out.pre]
            slack = batch_slack(net, rows.A, pre_np, lo, hi, arithmetic)
            excl = rows.excluded(lb - 1e-9 * np.abs(lb), slack) | mask
            if conj:
                excl = exclude_by_combination(rows, lb, coef, slack, lo, hi, excl)
            open_ = ~excl.all(axis=1)
            if (alpha_iters > 0 and slots and mode == passes[-1] and open_.any()
                    and time.monotonic() - t0 >= alpha_after_s):  # slots: no ReLU, no slopes to optimise
                # Optimised lower slopes (α-CROWN) on the rows of the boxes CROWN left open, each
                # starting from the slopes of its parent's best bounds.
                o = np.nonzero(open_)[0]
                if warm is None:
                    warm = np.full((len(lo), C.shape[0] * sum(w for _, w in slots)), np.nan, dtype=np.float32)
                    if warm_q is None and len(lo_q) <= WARM_MAX_QUEUE:
                        warm_q = np.full((len(lo_q), warm.shape[1]), np.nan, dtype=np.float32)
                slopes, _ = exclude_open(rows, tn, lo, hi, C, d, out.pre, None, open_, lb, excl, slack, alpha_iters,
                                         init=_alpha_init(warm[o], slots, tn))
                warm[o] = np.concatenate([to_numpy(slopes[j].reshape(len(o), -1).float()) for j, _ in slots], axis=1)
                open_ = ~excl.all(axis=1)
            if not open_.any():
                break
            idx = np.nonzero(open_)[0]
            lo, hi, excl, depth, lb, mask = lo[idx], hi[idx], excl[idx], depth[idx], lb[idx], excl[idx]
            warm = None if warm is None else warm[idx]
            slack = slack[idx]
            coef = coef[idx]
            pre_np = [(l[idx], u[idx]) for l, u in pre_np]
            prior = [(tn.tensor(l), tn.tensor(u)) for l, u in pre_np]
            unstable = sum((((l < 0) & (u > 0)).sum(axis=1) for (l, u), layer in zip(pre_np, net.layers)
                            if layer.relu), np.zeros(len(lo), dtype=int))
            if mode == "forward" and unstable.max() <= hybrid_min_unstable:
                break
        if not open_.any():
            continue
        stats["min_lb"] = min(stats["min_lb"], float(lb.max(axis=1).min()))
        best = _best_rows(rows, lb, excl)

        # Candidate counterexamples: centres and the minimising vertices of open rows.
        cands, clo, chi, cdis = [(lo + hi) / 2], [lo], [hi], [np.full(len(lo), -1)]
        for k, b in enumerate(best):
            has = np.nonzero(b >= 0)[0]
            if len(has):
                c = coef[has, b[has]]
                cands.append(np.where(c > 0, lo[has], hi[has]))
                clo.append(lo[has])
                chi.append(hi[has])
                cdis.append(np.full(len(has), k))
        cands, clo, chi, cdis = (np.concatenate(a) for a in (cands, clo, chi, cdis))
        ce = try_candidates(net, rows, cands, clo, chi, replay)
        vert = cdis >= 0
        if ce is None and vert.any():
            # Gradient steps from each open disjunct's minimising vertex, inside its box.
            with torch.enable_grad():
                pts = local_attack(tn, rows, cands[vert], cdis[vert], clo[vert], chi[vert])
            ce = try_candidates(net, rows, pts, clo[vert], chi[vert], replay)
        if ce is not None:
            return BabOutcome("falsified", ce, stats=_fin(stats, t0), decided_by="bab")

        # Boxes with few unstable ReLUs: every activation pattern's polyhedron shown empty (an LP dual each).
        done = np.zeros(len(lo), dtype=bool)
        if pattern_unstable > 0 and (unstable <= pattern_unstable).any():
            cand = np.nonzero(unstable <= pattern_unstable)[0]
            done = prove_by_patterns(net, rows, lo, hi, pre_np, excl, slack, cand)
            failed = cand[~done[cand]]
            if len(failed) and arithmetic == "float32":
                # A second try on the failures alone (the optimiser's step depends on the batch), then:
                # are the rest safe in real arithmetic, but not by more than the float32 rounding bound?
                done |= prove_by_patterns(net, rows, lo, hi, pre_np, excl, slack, failed)
                failed = cand[~done[cand]]
                real = prove_by_patterns(net, rows, lo, hi, pre_np, excl, np.zeros_like(slack), failed)
                stats["float32_blocked"] += int(real.sum())
            stats["pattern_proved"] += int(done.sum())
        dim = split_dimension(net, rows, best, lo, hi, pre_np)
        rr = np.arange(len(lo))
        mid = (lo[rr, dim] + hi[rr, dim]) / 2
        splittable = (mid > lo[rr, dim]) & (mid < hi[rr, dim])
        to_z3 = use_z3 & ((unstable <= z3_unstable) | ~splittable) & ~done
        if not use_z3 and (~splittable).any():
            return BabOutcome("unknown", stats=_fin(stats, t0), message=_open("a box cannot be split further", stats))
        for i in np.nonzero(to_z3)[0]:
            if time.monotonic() >= deadline:
                return BabOutcome("timeout", stats=_fin(stats, t0), message=_open("during exact leaves", stats))
            stats["z3_leaves"] += 1
            keep = ~excl[i]
            sub = sub_rows(rows, keep)
            leaf_deadline = min(deadline, time.monotonic() + z3_leaf_s) if splittable[i] else deadline
            res = decide_exact(
                net, sub, lo[i], hi[i], replay, leaf_deadline, pre=[(l[i], u[i]) for l, u in pre_np],
                arithmetic=arithmetic,
            )
            if res.status == "falsified":
                return BabOutcome("falsified", res.counterexample, stats=_fin(stats, t0), decided_by="z3")
            if res.status == "proved":
                continue
            if not splittable[i]:
                return BabOutcome("unknown", stats=_fin(stats, t0), message=_open(f"exact leaf: {res.status} {res.message}", stats))
            to_z3[i] = False  # undecided in its time slice: keep splitting it
        split = np.nonzero(~to_z3 & ~done)[0]
        if len(split):
            lo_s, hi_s, dim_s, mid_s = lo[split], hi[split], dim[split], mid[split]
            r = np.arange(len(split))
            left_hi = hi_s.copy()
            left_hi[r, dim_s] = mid_s
            right_lo = lo_s.copy()
            right_lo[r, dim_s] = mid_s
            lo_q = np.concatenate([lo_q, lo_s, right_lo])
            hi_q = np.concatenate([hi_q, left_hi, hi_s])
            mask_q = np.concatenate([mask_q, excl[split], excl[split]])
            depth_q = np.concatenate([depth_q, depth[split] + 1, depth[split] + 1])
            for k, (l, u) in enumerate(pre_np):
                l32, u32 = _down32(l[split]), _up32(u[split])
                plo_q[k] = np.concatenate([plo_q[k], l32, l32])
                phi_q[k] = np.concatenate([phi_q[k], u32, u32])
            if warm_q is not None and len(lo_q) > WARM_MAX_QUEUE:
                warm_q = None  # memory: a box's slopes are R x (relu neurons) floats
            if warm_q is not None:
                w = np.full((len(split), warm_q.shape[1]), np.nan, dtype=np.float32) if warm is None else warm[split]
                warm_q = np.concatenate([warm_q, w, w])
    return BabOutcome("proved", stats=_fin(stats, t0))


WARM_MAX_QUEUE = 100_000


def _alpha_init(warm: np.ndarray, slots, tn: TorchNet) -> tuple[dict, dict]:
    """Unflatten stored slopes ``(B, R * sum n_j)`` per relu layer (NaN: CROWN's, see ``beta``)."""
    alpha, at = {}, 0
    B = warm.shape[0]
    R = warm.shape[1] // sum(w for _, w in slots)
    for j, w in slots:
        alpha[j] = tn.tensor(warm[:, at : at + R * w].reshape(B, R, w))
        at += R * w
    return alpha, {}


def _open(message: str, stats: dict) -> str:
    """Why a search ended open, with the boxes whose only obstacle is float32 rounding named."""
    n = stats.get("float32_blocked", 0)
    if n:
        message += (f"; {n} boxes are safe in real arithmetic, but by less than the float32 rounding bound "
                    "that a proof of the float32 network must exceed")
    return message


def _down32(a: np.ndarray) -> np.ndarray:
    a32 = a.astype(np.float32)
    return np.where(a32.astype(np.float64) > a, np.nextafter(a32, np.float32(-np.inf)), a32)


def _up32(a: np.ndarray) -> np.ndarray:
    a32 = a.astype(np.float32)
    return np.where(a32.astype(np.float64) < a, np.nextafter(a32, np.float32(np.inf)), a32)


def _fin(stats: dict, t0: float) -> dict:
    stats = dict(stats)
    stats["time_s"] = round(time.monotonic() - t0, 4)
    return stats
