"""The bound-propagation backend: concrete check -> PGD -> IBP -> CROWN -> alpha-CROWN.

alpha-CROWN runs twice when needed: first the spec's slopes over CROWN's
intermediate bounds (cheap), then, for boxes still open, with the
intermediate layers' slopes optimised too (about ``alpha_intermediate_iters``
times the cost of CROWN).

Queries on the same network (and normalisation) are decided together: their
boxes form one batch for the falsifier and for every bound stage, each box
with its own specification rows. Per query:

* **falsified** only with a counterexample replayed with onnxruntime on the
  original ONNX file (``hdsl.replay``); an unconfirmed candidate changes nothing;
* **proved** only when, on every box of its region, every unsafe disjunct is
  refuted by a sound bound (``hdsl.bounds.spec``); the result's margin is the
  certified lower bound of the spec margin;
* otherwise **unknown** (all stages ran; margin = best certified lower bound,
  ``<= 0``) or **timeout** (the budget ran out first).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from hdsl import ir
from hdsl.backends import Budget
from hdsl.results import Result, Verdict

STAGES = ("concrete", "attack", "ibp", "crown", "alpha")


@dataclass
class _Item:
    query: ir.Query
    boxes: list  # [(lo, hi)] float64 flattened
    rows: object  # SpecRows
    first: int = 0  # index of its first box in the batch
    result: Result | None = None
    stats: dict = field(default_factory=dict)
    margin_box: dict = field(default_factory=dict)  # box -> best certified margin
    proved_box: set = field(default_factory=set)


class BoundsBackend:
    """Bound propagation on ``hdsl.nn`` graphs, with a PGD falsifier in front."""

    name = "bounds"
    required_modules = ("torch", "onnx", "onnxruntime")

    def __init__(self, stages: tuple[str, ...] = STAGES, device=None, attack_restarts: int = 8,
                 attack_steps: int = 40, alpha_iters: int = 20, alpha_lr: float = 0.25,
                 alpha_intermediate_iters: int = 8):
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}; use {STAGES}")
        self.stages = tuple(s for s in STAGES if s in stages)
        self.device = device
        self.attack_restarts = attack_restarts
        self.attack_steps = attack_steps
        self.alpha_iters = alpha_iters
        self.alpha_lr = alpha_lr
        self.alpha_intermediate_iters = alpha_intermediate_iters

    def supports(self, query: ir.Query) -> bool:
        return (isinstance(query, ir.Query) and str(query.network.path).lower().endswith(".onnx")
                and isinstance(query.region, (ir.Box, ir.LinfBall, ir.UnionRegion))
                and isinstance(query.spec, ir.OutputSpec))

    def run(self, query: ir.Query, budget: Budget) -> Result:
        return self.run_batch([query], budget)[0]

    # ------------------------------------------------------------------ batch
    def run_batch(self, queries: list[ir.Query], budget: Budget) -> list[Result]:
        """Decide several queries; those sharing a network are batched together."""
        groups: dict[tuple, list[int]] = {}
        for i, q in enumerate(queries):
            n = q.network
            groups.setdefault((n.path, n.mean, n.std, tuple(n.input_shape), q.options.arithmetic), []).append(i)
        out: list[Result | None] = [None] * len(queries)
        for idxs in groups.values():
            for i, r in zip(idxs, self._run_group([queries[i] for i in idxs], budget)):
                out[i] = r
        return out  # type: ignore[return-value]

    def _run_group(self, queries: list[ir.Query], budget: Budget) -> list[Result]:
        import torch

        from hdsl.bounds import BoundsTimeout, bound_state, default_device, spec_bounds
        from hdsl.bounds.spec import BatchSpec, certified_margin, proved, spec_rows
        from hdsl.nn import network_graph
        from hdsl.regions import boxes as region_boxes

        t0 = time.monotonic()
        net = queries[0].network
        arithmetic = queries[0].options.arithmetic  # one per group (run_batch groups by it)
        graph = network_graph(net)
        n_in = math.prod(graph.input_shape)
        import_diff = graph.ort_max_abs_diff
        items: list[_Item] = []
        results: list[Result | None] = [None] * len(queries)
        for i, q in enumerate(queries):
            if net.input_shape and math.prod(net.input_shape) != n_in:
                results[i] = self._result(q, Verdict.ERROR, "", t0, message=(
                    f"network {net.name!r} declares input {list(net.input_shape)} but {net.path} takes "
                    f"{list(graph.input_shape)}"))
                continue
            try:
                rows = spec_rows(q.spec, graph.output_size)
            except ValueError as err:
                results[i] = self._result(q, Verdict.ERROR, "", t0, message=str(err))
                continue
            if not q.spec.unsafe:
                results[i] = self._result(q, Verdict.PROVED, "spec", t0, margin=math.inf,
                                          message="the spec has no unsafe outputs")
                continue
            items.append(_Item(q, region_boxes(q.region, q.network), rows))
            if import_diff is not None:
                items[-1].stats["import_max_abs_diff_vs_onnxruntime"] = import_diff
        if not items:
            return results  # type: ignore[return-value]

        device = torch.device(self.device) if self.device is not None else default_device()
        owner, los, his, specs = [], [], [], []
        for j, it in enumerate(items):
            it.first = len(owner)
            for lo, hi in it.boxes:
                owner.append(j)
                los.append(lo)
                his.append(hi)
                specs.append(it.rows)
        owner_t = torch.as_tensor(owner, device=device)
        lo64 = torch.as_tensor(np.stack(los), dtype=torch.float64, device=device)
        hi64 = torch.as_tensor(np.stack(his), dtype=torch.float64, device=device)
        bspec = BatchSpec.stack(specs, device)
        g32 = graph.to(device)

        def open_boxes() -> torch.Tensor:
            return torch.as_tensor([items[o].result is None for o in owner], device=device).nonzero().flatten()

        # -------------------------------------------------------- falsifier
        for stage in ("concrete", "attack"):
            if stage not in self.stages or budget.expired():
                continue
            sel = open_boxes()
            if sel.numel() == 0:
                break
            ts = time.monotonic()
            found = self._falsify(stage, g32, lo64[sel], hi64[sel], bspec.select(sel), budget)
            self._confirm(items, owner, sel.tolist(), found, stage, t0)
            for it in items:
                it.stats[f"time_{stage}_s"] = time.monotonic() - ts

        # -------------------------------------------------------- bounds
        state = None
        steps = [("ibp", False), ("crown", False), ("alpha", False)]
        if self.alpha_intermediate_iters > 0:
            steps.append(("alpha", True))  # then optimise the intermediate layers' slopes too
        for stage, deep in steps:
            if stage not in self.stages or budget.expired():
                continue
            sel = open_boxes()
            if sel.numel() == 0:
                break
            ts = time.monotonic()
            sub = bspec.select(sel)
            if state is not None and stage == "alpha":
                keep = torch.isin(state_sel, sel)
                state, state_sel = state.select(keep.nonzero().flatten()), state_sel[keep]
            if stage in ("ibp", "crown") or state is None or deep:
                method = "alpha" if deep else "ibp" if stage == "ibp" else "crown"
                try:
                    state = bound_state(graph, lo64[sel], hi64[sel], method, device, deadline=budget.deadline,
                                        prior=state if deep else None, alpha_iters=self.alpha_intermediate_iters,
                                        alpha_lr=self.alpha_lr, arithmetic=arithmetic)
                except BoundsTimeout:
                    break
                state_sel = sel
            kw = {}
            if stage == "alpha":
                kw = dict(alpha_iters=self.alpha_iters, alpha_lr=self.alpha_lr, deadline=budget.deadline,
                          done=lambda lb, s=sub: bool(proved(lb, s).all()))
            lb = spec_bounds(state, sub.R, sub.d, stage, **kw)
            ok = proved(lb, sub)
            margin = certified_margin(lb, sub)
            for k, b in enumerate(sel.tolist()):
                it = items[owner[b]]
                it.margin_box[b] = max(it.margin_box.get(b, -math.inf), float(margin[k]))
                if bool(ok[k]):
                    it.proved_box.add(b)
            dt = time.monotonic() - ts
            for j, it in enumerate(items):
                key = f"time_{stage}{'_intermediate' if deep else ''}_s"
                it.stats[key] = it.stats.get(key, 0.0) + dt
                if it.result is not None:
                    continue
                n_boxes = len(it.boxes)
                if len(it.proved_box) == n_boxes:
                    m = min(it.margin_box[b] for b in range(it.first, it.first + n_boxes))
                    it.result = self._result(it.query, Verdict.PROVED, stage, t0, margin=m, stats=it.stats)

        for j, it in enumerate(items):
            if it.result is None:
                m = min(it.margin_box.values()) if len(it.margin_box) == len(it.boxes) else None
                ran_all = not budget.expired()
                verdict = Verdict.UNKNOWN if ran_all else Verdict.TIMEOUT
                bounded = any(st in self.stages for st in ("ibp", "crown", "alpha"))
                msg = ("the time budget ran out" if not ran_all else
                       "no counterexample found and the bounds do not prove it" if bounded else
                       "no counterexample found")
                if m is not None:
                    msg += f" (certified margin >= {m:.4g})"
                it.result = self._result(it.query, verdict, self.stages[-1] if ran_all else "", t0, margin=m,
                                         message=msg, stats=it.stats)
        k = 0
        for i in range(len(results)):
            if results[i] is None:
                results[i] = items[k].result
                k += 1
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ helpers
    def _falsify(self, stage, g32, lo64, hi64, spec, budget):
        import torch

        from hdsl.attack import concrete_check, pgd

        lo32, hi32 = lo64.to(torch.float32), hi64.to(torch.float32)
        lo32 = torch.where(lo32.double() < lo64, torch.nextafter(lo32, hi32), lo32)
        hi32 = torch.where(hi32.double() > hi64, torch.nextafter(hi32, lo32), hi32)
        if stage == "concrete":
            return concrete_check(g32, lo32, hi32, spec)
        return pgd(g32, lo32, hi32, spec, restarts=self.attack_restarts, steps=self.attack_steps,
                   deadline=budget.deadline)

    def _confirm(self, items, owner, sel, found, stage, t0) -> None:
        from hdsl.replay import replay_many

        cand = [k for k in range(len(sel)) if found.margin[k] <= 0 and items[owner[sel[k]]].result is None]
        by_item: dict[int, list[int]] = {}
        for k in cand:
            by_item.setdefault(owner[sel[k]], []).append(k)
        for j, ks in by_item.items():
            it = items[j]
            boxes = [it.boxes[sel[k] - it.first] for k in ks]
            ces = replay_many(it.query.network, it.query.spec, boxes, found.x[ks], list(range(len(ks))),
                              found.y[ks], it.query.options.arithmetic)
            it.stats[f"{stage}_candidates"] = len(ks)
            for ce in ces:
                if ce is not None:
                    it.result = self._result(it.query, Verdict.FALSIFIED, stage, t0, margin=ce.margin,
                                             counterexample=ce, stats=it.stats)
                    break
            else:
                it.stats[f"{stage}_unconfirmed"] = len(ks)

    def _result(self, query, verdict, stage, t0, margin=None, counterexample=None, message="", stats=None):
        return Result(query.id, verdict, self.name, stage, margin, counterexample, time.monotonic() - t0, message,
                      tuple(sorted((k, float(v)) for k, v in (stats or {}).items())))


class AttackBackend(BoundsBackend):
    """Only the falsifier (concrete check + PGD + replay): falsified or unknown."""

    name = "attack"

    def __init__(self, **kw):
        super().__init__(stages=("concrete", "attack"), **kw)
