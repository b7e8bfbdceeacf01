"""Hierarchical robustness ("abstract safety"): one verdict per (input, level), shared work across levels.

For an input ``x0`` with label ``y``, an L∞ radius ``eps`` and a hierarchy, level
``l`` holds iff for every ``x`` in the ball (clipped to the model's input range)
``max_{j in S_l} f(x)_j > max_{k not in S_l} f(x)_k`` with ``S_l`` the leaves under
``ancestor(y, l)`` (strict: a tie is unsafe). ``S_0`` is every class, so level 0
always holds.

Why one driver rather than independent queries: the levels are nested
(``S_d ⊆ ... ⊆ S_1``), so a proof at a level proves every ancestor and a
counterexample at a level falsifies every descendant, and one bound pass over
all class-pair differences ``y_j - y_k`` serves every level. The stages, each
only on what is still open:

1. ``concrete``  -- the input itself (a misclassification is a counterexample);
2. ``attack``    -- PGD on ``max_K y - max_S y``, coarse to fine (a counterexample
   at a coarse level settles every finer one);
3. ``pairs``     -- CROWN lower bounds of all ``y_j - y_k`` (one pass): level ``l``
   is proved when every outside class ``k`` has one witness ``j in S`` with
   ``LB(y_j - y_k) > 0`` (the naive per-pair method);
4. ``lambda``    -- for each open outside class ``k``, the best convex combination
   ``Σ λ_j (y_j - y_k)`` (``hdsl.bounds.disjunction``), started at the best witness;
5. ``split`` / ``exact`` -- the planner's branch and bound and Z3 on the level's
   query, leaf first (a proof there settles all), then coarse to fine, stopping
   at the first level that stays open.

Every counterexample is replayed with onnxruntime on the real model before it
is reported; an unconfirmed one leaves the level open.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from hdsl import ir
from hdsl.hierarchy import level_sets, node_name
from hdsl.results import Counterexample, Verdict

INPUT_SPLIT_MAX_DIM = 20  # input splitting below this many input values, ReLU splitting (hdsl.bab) above
STAGES = ("concrete", "attack", "pairs", "lambda", "split", "exact")
METHODS = ("pairs", "lambda", "split", "exact")  # the proving methods, weakest first


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class LevelVerdict:
    """The verdict for one level of one input at one radius.

    ``propagated_from`` names the level whose computed verdict implied this one
    (None when this level was decided itself).
    """

    level: int
    node: str
    classes: tuple[int, ...]
    verdict: Verdict
    stage: str = ""
    propagated_from: int | None = None
    margin: float | None = None
    counterexample: Counterexample | None = None
    adversarial_class: int | None = None
    severity: int | None = None  # depth of the LCA of the true and the adversarial class
    time_s: float = 0.0

    def to_json(self) -> dict:
        d = {
            "level": self.level,
            "node": self.node,
            "classes": list(self.classes),
            "verdict": self.verdict.value,
            "stage": self.stage,
            "propagated_from": self.propagated_from,
            "margin": self.margin,
            "adversarial_class": self.adversarial_class,
            "severity": self.severity,
            "time_s": round(self.time_s, 6),
        }
        if self.counterexample is not None:
            ce = self.counterexample
            d["counterexample"] = {"margin": ce.margin, "replayed_with": ce.replayed_with,
                                   "max_abs_diff": ce.max_abs_diff, "y": list(ce.y)}
        return d


@dataclass(frozen=True, slots=True)
class PointResult:
    """All levels of one input at one radius (levels ordered root first)."""

    index: int
    label: int
    eps: float
    levels: tuple[LevelVerdict, ...]
    time_s: float = 0.0

    @property
    def deepest_verified(self) -> int:
        """The deepest level proved (0 = only the root, which always holds)."""
        best = 0
        for lv in self.levels:
            if lv.verdict is Verdict.PROVED:
                best = max(best, lv.level)
        return best

    def to_json(self) -> dict:
        return {"index": self.index, "label": self.label, "eps": self.eps,
                "deepest_verified": self.deepest_verified, "time_s": round(self.time_s, 6),
                "levels": [lv.to_json() for lv in self.levels]}


@dataclass(frozen=True, slots=True)
class RadiusResult:
    """Certified radius of one level by bisection: proved at ``certified``; ``falsified_at`` is
    the smallest radius with a confirmed counterexample (None if none was found)."""

    index: int
    label: int
    level: int
    certified: float  # math.inf when the level holds on the whole input domain
    falsified_at: float | None
    steps: int
    time_s: float

    def to_json(self) -> dict:
        return {"index": self.index, "label": self.label, "level": self.level,
                "certified": "inf" if math.isinf(self.certified) else self.certified,
                "falsified_at": self.falsified_at, "steps": self.steps, "time_s": round(self.time_s, 6)}


def verdict_monotone(levels: Sequence[LevelVerdict]) -> bool:
    """Proved levels form a prefix (root side), falsified ones a suffix (leaf side)."""
    vs = [lv.verdict for lv in sorted(levels, key=lambda lv: lv.level)]
    last_proved = max((i for i, v in enumerate(vs) if v is Verdict.PROVED), default=-1)
    first_false = min((i for i, v in enumerate(vs) if v is Verdict.FALSIFIED), default=len(vs))
    return (all(v is Verdict.PROVED for v in vs[: last_proved + 1])
            and all(v is Verdict.FALSIFIED for v in vs[first_false:])
            and last_proved < first_false)


# --------------------------------------------------------------------------- the checker


@dataclass
class _Open:
    """Mutable per-level state while the stages run."""

    level: int
    node: str
    classes: tuple[int, ...]
    outside: tuple[int, ...]
    verdict: Verdict = Verdict.UNKNOWN
    stage: str = ""
    propagated_from: int | None = None
    margin: float | None = None
    ce: Counterexample | None = None
    adv: int | None = None
    open_k: set[int] = field(default_factory=set)  # outside classes not yet excluded
    time_s: float = 0.0

    @property
    def decided(self) -> bool:
        return self.verdict in (Verdict.PROVED, Verdict.FALSIFIED)


class HierarchyChecker:
    """Checks the levels of one hierarchy on one network, point by point.

    ``methods`` restricts the proving stages (subset of ``METHODS``); the
    concrete check, the attack and replay always run unless ``attack=False``.
    """

    def __init__(self, network: ir.Network, hierarchy: ir.Hierarchy | None, *,
                 methods: Sequence[str] = METHODS, attack: bool = True,
                 attack_steps: int = 25, attack_restarts: int = 2,
                 lambda_steps: int = 25, split_timeout: float = 10.0,
                 seed: int = 0, max_boxes: int = 20000, graph=None, device=None, arithmetic: str = "float32"):
        unknown = set(methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
        self.network = network
        self.hierarchy = hierarchy
        self.methods = tuple(m for m in METHODS if m in methods)
        self.attack = attack
        self.attack_steps = attack_steps
        self.attack_restarts = attack_restarts
        self.lambda_steps = lambda_steps
        self.split_timeout = split_timeout
        self.seed = seed
        self._graph = graph
        self.device = device  # of the level bounds and splitting; None: hdsl.bounds.default_device()
        # what proofs and counterexamples are about (hdsl.ir.CheckOptions): "real" bounds the real-valued
        # network only, and a counterexample must also violate in float64 on the exact parameters
        self.arithmetic = arithmetic
        self._seq = None
        self._box: tuple[np.ndarray, np.ndarray] | None = None
        self._bounder = None
        self.n_classes = len(hierarchy.classes) if hierarchy is not None else int(network.num_outputs or 0)
        self.notes: set[str] = set()
        self.max_boxes = max_boxes

    # ---- model plumbing

    @property
    def graph(self):
        """The network on raw inputs (normalisation folded in), float32, CPU."""
        if self._graph is None:
            from hdsl.nn import network_graph

            self._graph = network_graph(self.network)
        return self._graph

    def seq_net(self):
        """The float64 chain the level bounds run on (raises ``Unsupported`` for other graphs)."""
        if self._seq is None:
            from hdsl.bounds.disjunction import SeqNet

            self._seq = SeqNet.of(self.graph, self.device)
        return self._seq

    def domain(self) -> tuple[float, float]:
        return self.network.input_range or (-math.inf, math.inf)

    def forward(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            t = torch.as_tensor(np.asarray(x, np.float32)).reshape(-1, *self.graph.input_shape)
            return self.graph.forward(t).double().numpy()

    def replay(self, x: np.ndarray, classes: tuple[int, ...]) -> Counterexample | None:
        """Re-run ``x`` on the real model (onnxruntime), rounded to float32 inside the current ball;
        the counterexample if it violates the level, else None."""
        from hdsl.replay import replay

        internal = self.forward(np.asarray(x, np.float32))[0]
        return replay(self.network, level_spec(classes, self.n_classes), self._box,
                      np.asarray(x, np.float64).ravel(), internal, arithmetic=self.arithmetic)

    def real_ball(self, x0: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """The L∞ ball clipped to the domain, in float64 (the region counterexamples must lie in)."""
        lo_d, hi_d = self.domain()
        x0 = np.asarray(x0, np.float64).ravel()
        return np.maximum(x0 - eps, lo_d), np.minimum(x0 + eps, hi_d)

    def ball(self, x0: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """The L∞ ball clipped to the domain, as float32 bounds that contain every float32 point."""
        lo_d, hi_d = self.domain()
        x0 = np.asarray(x0, np.float64).ravel()
        lo = np.maximum(x0 - eps, lo_d)
        hi = np.minimum(x0 + eps, hi_d)
        lo32 = lo.astype(np.float32)
        hi32 = hi.astype(np.float32)
        # round outward so the float32 box contains the real one
        lo32 = np.where(lo32 > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
        hi32 = np.where(hi32 < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
        # but never outside the domain / a point's own coordinates
        lo32 = np.maximum(lo32, np.float32(lo_d)) if np.isfinite(lo_d) else lo32
        hi32 = np.minimum(hi32, np.float32(hi_d)) if np.isfinite(hi_d) else hi32
        return lo32, hi32

    # ---- public entry points

    def check_point(self, x0: np.ndarray, label: int, eps: float, index: int = 0,
                    deadline: float | None = None,
                    sets: Sequence[tuple[int, tuple[int, ...], str]] | None = None) -> PointResult:
        """Every level of ``(x0, label)`` at radius ``eps``.

        ``sets`` (``(level, class indices, node name)``, nested, root side first)
        replaces the hierarchy's path of ``label`` (e.g. the levels a spec asked for).
        """
        t0 = time.perf_counter()
        n = self.n_classes
        if sets is None:
            h = self.hierarchy
            path = h.path_to(h.classes[label])
            sets = [(level, cls, node_name(path[level])) for level, cls in level_sets(h, label)]
        states: list[_Open] = []
        for level, cls, name in sorted(sets, key=lambda t: t[0]):
            outside = tuple(k for k in range(n) if k not in cls)
            states.append(_Open(level, name, tuple(cls), outside, open_k=set(outside)))
        if states[0].outside:  # no root given: add it (it always holds)
            states.insert(0, _Open(0, "root", tuple(range(n)), (), open_k=set()))
        for st in states:
            if not st.outside:  # a level that is every class
                st.verdict, st.stage = Verdict.PROVED, "trivial"
        lo, hi = self.ball(x0, eps)
        self._box = self.real_ball(x0, eps)
        x0f = np.asarray(x0, np.float32).ravel()

        self._stage_concrete(states, x0f, label)
        if self.attack:
            self._stage_attack(states, x0f, lo, hi, label)
        if any(not s.decided for s in states) and ({"pairs", "lambda"} & set(self.methods)):
            self._stage_bounds(states, lo, hi, label)
        if any(not s.decided for s in states) and ({"split", "exact"} & set(self.methods)):
            self._stage_complete(states, x0f, eps, label, index, deadline)
        levels = tuple(self._finish(s, states) for s in states)
        return PointResult(index, label, float(eps), levels, time.perf_counter() - t0)

    def certified_radius(self, x0: np.ndarray, label: int, level: int, *, eps_max: float | None = None,
                         tol: float = 1e-3, max_steps: int = 30, index: int = 0,
                         classes: tuple[int, ...] | None = None) -> RadiusResult:
        """Largest radius proved for ``level`` by bisection (sound: the returned radius is proved).

        ``classes`` gives the level's set directly (else it comes from the hierarchy).
        """
        t0 = time.perf_counter()
        if classes is None:
            sets = level_sets(self.hierarchy, label)
            cls = sets[min(level, len(sets) - 1)][1]
        else:
            cls = tuple(classes)
        only = [(level, cls, f"level {level}")]
        if len(cls) == self.n_classes:
            return RadiusResult(index, label, level, math.inf, None, 0, time.perf_counter() - t0)
        lo_d, hi_d = self.domain()
        if eps_max is None:
            eps_max = (hi_d - lo_d) if math.isfinite(hi_d - lo_d) else 1.0
        steps = 0

        def status(eps: float) -> Verdict:
            nonlocal steps
            steps += 1
            r = self.check_point(x0, label, eps, index, sets=only)
            lv = next((lv for lv in r.levels if lv.level == level), r.levels[-1])
            return lv.verdict

        good, bad = 0.0, None
        v0 = status(0.0)
        if v0 is not Verdict.PROVED:
            return RadiusResult(index, label, level, 0.0, 0.0 if v0 is Verdict.FALSIFIED else None, steps,
                                time.perf_counter() - t0)
        top = status(eps_max)
        if top is Verdict.PROVED:
            full = math.isfinite(hi_d - lo_d) and eps_max >= hi_d - lo_d
            return RadiusResult(index, label, level, math.inf if full else eps_max, None, steps,
                                time.perf_counter() - t0)
        upper = eps_max
        if top is Verdict.FALSIFIED:
            bad = eps_max
        while upper - good > tol and steps < max_steps:
            mid = 0.5 * (good + upper)
            v = status(mid)
            if v is Verdict.PROVED:
                good = mid
            else:
                upper = mid
                if v is Verdict.FALSIFIED:
                    bad = mid
        return RadiusResult(index, label, level, good, bad, steps, time.perf_counter() - t0)

    # ---- stages

    def _decide(self, states: list[_Open], i: int, verdict: Verdict, stage: str, *, margin=None, ce=None,
                adv=None) -> None:
        """Record a computed verdict at ``states[i]`` and propagate it (up for proofs, down for falsifications)."""
        s = states[i]
        s.verdict, s.stage, s.margin, s.ce, s.adv = verdict, stage, margin, ce, adv
        if verdict is Verdict.PROVED:
            for t in states[:i]:
                if not t.decided:
                    t.verdict, t.stage, t.propagated_from, t.margin = Verdict.PROVED, stage, s.level, None
        elif verdict is Verdict.FALSIFIED:
            for t in states[i + 1:]:
                if not t.decided:
                    t.verdict, t.stage, t.propagated_from = Verdict.FALSIFIED, stage, s.level
                    t.ce, t.adv = ce, adv
                    t.margin = set_margin(np.asarray(ce.y), t.classes) if ce is not None else None

    def _stage_concrete(self, states, x0f, label) -> None:
        t = time.perf_counter()
        y = self.forward(x0f)[0]
        for i, s in enumerate(states):
            if s.decided:
                continue
            if set_margin(y, s.classes) <= 0:
                ce = self.replay(x0f, s.classes)
                if ce is not None:
                    self._decide(states, i, Verdict.FALSIFIED, "concrete", margin=ce.margin, ce=ce,
                                 adv=_top_outside(ce.y, s.classes))
                    break
        _charge(states, time.perf_counter() - t)

    def _stage_attack(self, states, x0f, lo, hi, label) -> None:
        """PGD on every open level at once; the coarsest confirmed counterexample settles that
        level and all finer ones."""
        t = time.perf_counter()
        open_ = [i for i, s in enumerate(states) if not s.decided]
        if open_:
            found = pgd_attack(self.graph, x0f, lo, hi, [states[i].classes for i in open_],
                               steps=self.attack_steps, restarts=self.attack_restarts, seed=self.seed)
            for i, x in zip(open_, found):
                if x is None or states[i].decided:
                    continue
                ce = self.replay(x, states[i].classes)
                if ce is not None:
                    self._decide(states, i, Verdict.FALSIFIED, "attack", margin=ce.margin, ce=ce,
                                 adv=_top_outside(ce.y, states[i].classes))
                    break
        _charge(states, time.perf_counter() - t)

    def _stage_bounds(self, states, lo, hi, label) -> None:
        """One CROWN pass over all pair differences, then λ for what stays open."""
        from hdsl.bounds.disjunction import Bounder, Unsupported, level_bounds

        t = time.perf_counter()
        open_states = [s for s in states if not s.decided]
        try:
            key = (lo.tobytes(), hi.tobytes())
            if self._bounder is None or self._bounder[0] != key:  # levels of one input share the CROWN pass
                self._bounder = (key, Bounder(self.seq_net(), lo, hi, arithmetic=self.arithmetic))
            b = self._bounder[1]
            outcome = level_bounds(self.graph, lo, hi, [(s.classes, s.outside) for s in open_states],
                                   use_pairs="pairs" in self.methods, use_lambda=False, bounder=b)
        except Unsupported as exc:
            self.notes.add(f"bounds skipped: {exc}")
            return
        # leaf first: a proof at the deepest proved level settles every ancestor
        for s, res in sorted(zip(open_states, outcome), key=lambda p: -p[0].level):
            s.open_k = set(res.open_outside)
            if not s.decided and not s.open_k:
                self._decide(states, states.index(s), Verdict.PROVED, res.stage, margin=res.margin)
        if "lambda" in self.methods:
            # coarse to fine: λ for a set S is at least as good as for any S' ⊂ S (more λ, fewer
            # outside classes), so once a level stays open no finer level can close
            for s in states:
                if s.decided:
                    continue
                res = level_bounds(self.graph, lo, hi, [(s.classes, s.outside)], use_pairs="pairs" in self.methods,
                                   use_lambda=True, lambda_steps=self.lambda_steps, bounder=b)[0]
                s.open_k = set(res.open_outside)
                if s.open_k:
                    break
                self._decide(states, states.index(s), Verdict.PROVED, res.stage, margin=res.margin)
        _charge(states, time.perf_counter() - t)

    def _stage_complete(self, states, x0f, eps, label, index, deadline) -> None:
        """Splitting, then Z3, per open level: leaf first, then coarse to fine, stopping at the
        first level that stays open (no finer level can be proved then)."""
        order = [len(states) - 1] + list(range(1, len(states) - 1))
        for i in order:
            s = states[i]
            if s.decided:
                continue
            if not s.open_k:
                s.open_k = set(s.outside)
            t = time.perf_counter()
            for method in ("split", "exact"):
                if method not in self.methods or s.decided:
                    continue
                budget_s = self.split_timeout
                if deadline is not None:
                    budget_s = min(budget_s, deadline - time.monotonic())
                if budget_s <= 0:
                    break
                verdict, ce, msg = self._complete(method, x0f, eps, s.classes, sorted(s.open_k),
                                                  time.monotonic() + budget_s)
                if msg:
                    self.notes.add(msg)
                if verdict is Verdict.PROVED:
                    self._decide(states, i, Verdict.PROVED, method)
                elif verdict is Verdict.FALSIFIED and ce is not None:
                    ce2 = self.replay(np.asarray(ce.x), s.classes)
                    if ce2 is not None:
                        self._decide(states, i, Verdict.FALSIFIED, method, margin=ce2.margin, ce=ce2,
                                     adv=_top_outside(ce2.y, s.classes))
            s.time_s += time.perf_counter() - t
            if i != len(states) - 1 and not s.decided:
                break

    def _complete(self, method, x0f, eps, classes, outside, deadline):
        """Branch and bound (``hdsl.bab``: input splitting for small inputs, else ReLU splitting,
        no Z3 at the leaves) or Z3 on one level: (verdict, counterexample, note)."""
        from hdsl.backends import Budget

        q = self.level_query(x0f, eps, 0, classes, outside, 0, 0)
        if method == "split" and x0f.size <= INPUT_SPLIT_MAX_DIM:
            return self._input_split(np.asarray(q.region.lower), np.asarray(q.region.upper), classes, outside,
                                     deadline)
        if method == "split":
            from hdsl.bab.backend import BabBackend

            be = BabBackend(use_z3=False, device=self.device)
        else:
            from hdsl.backends.z3 import Z3Backend

            be = Z3Backend()
        try:
            if not be.supports(q):
                return Verdict.UNKNOWN, None, f"{method}: the network is not supported by the {be.name} backend"
            res = be.run(q, Budget(deadline))
        except Exception as exc:  # noqa: BLE001 - a failing backend leaves the level open
            return Verdict.UNKNOWN, None, f"{method}: {type(exc).__name__}: {exc}"
        return res.verdict, res.counterexample, ""

    def _input_split(self, lo, hi, classes, outside, deadline):
        """Bisect the input box (widest side first) until every sub-box is settled by the
        per-pair CROWN test; a sub-box centre that violates the level is replayed as a counterexample."""
        from hdsl.bounds.disjunction import Bounder, Unsupported, level_bounds

        try:
            seq = self.seq_net()
        except Unsupported as exc:
            return Verdict.UNKNOWN, None, f"split: {exc}"
        stack = [(np.asarray(lo, np.float64), np.asarray(hi, np.float64))]
        boxes = 0
        while stack:
            if time.monotonic() >= deadline:
                return Verdict.TIMEOUT, None, f"split: {len(stack)} boxes open after {boxes}"
            blo, bhi = stack.pop()
            boxes += 1
            res = level_bounds(self.graph, blo, bhi, [(classes, outside)], use_lambda=False,
                               bounder=Bounder(seq, blo, bhi, arithmetic=self.arithmetic))[0]
            if not res.open_outside:
                continue
            centre = ((blo + bhi) / 2).astype(np.float32)
            if set_margin(self.forward(centre)[0], classes) <= 0:
                ce = self.replay(centre, classes)
                if ce is not None:
                    return Verdict.FALSIFIED, ce, ""
            d = int(np.argmax(bhi - blo))
            if bhi[d] - blo[d] <= 1e-9 * max(1.0, abs(bhi[d])) or boxes > self.max_boxes:
                return Verdict.UNKNOWN, None, "split: box budget exhausted"
            mid = 0.5 * (blo[d] + bhi[d])
            left_hi, right_lo = bhi.copy(), blo.copy()
            left_hi[d], right_lo[d] = mid, mid
            stack += [(right_lo, bhi), (blo, left_hi)]
        return Verdict.PROVED, None, ""

    def level_query(self, x0f, eps, label, classes, outside, index, level) -> ir.Query:
        """The IR query of one level restricted to the outside classes still open."""
        from hdsl.ir import Box, CheckOptions, Query

        lo, hi = self.ball(x0f, eps)
        return Query(id=f"{index}:eps={eps:g}:level={level}", network=self.network,
                     region=Box(tuple(float(v) for v in lo), tuple(float(v) for v in hi)),
                     spec=level_spec(classes, None, outside), property="hierarchy",
                     options=CheckOptions(arithmetic=self.arithmetic), index=index, label=label, level=level,
                     eps=float(eps))

    def _finish(self, s: _Open, states: list[_Open]) -> LevelVerdict:
        """Freeze a level; severity = the deepest level whose set holds the adversarial class
        (the depth of the common ancestor of the true and the adversarial class on a full path)."""
        sev = None
        if s.verdict is Verdict.FALSIFIED and s.adv is not None:
            sev = max(t.level for t in states if s.adv in t.classes)
        return LevelVerdict(s.level, s.node, s.classes, s.verdict, s.stage, s.propagated_from, s.margin,
                            s.ce, s.adv, sev, s.time_s)


# --------------------------------------------------------------------------- helpers


def level_spec(classes: Sequence[int], n: int | None, outside: Sequence[int] | None = None) -> ir.OutputSpec:
    """The unsafe set of ``argmax in classes``: OR over outside k of AND over j in S of y_k - y_j >= 0."""
    if outside is None:
        outside = [k for k in range(n) if k not in set(classes)]
    return ir.OutputSpec(tuple(
        ir.Conjunction(tuple(ir.Constraint(ir.LinearExpr(((k, 1.0), (j, -1.0)))) for j in classes))
        for k in outside))


def set_margin(y, classes: Sequence[int]) -> float:
    """``max_S y - max_K y`` (> 0 safe; a tie is unsafe); +inf when K is empty."""
    y = np.asarray(y, np.float64).ravel()
    inside = np.zeros(len(y), bool)
    inside[list(classes)] = True
    if inside.all():
        return math.inf
    return float(y[inside].max() - y[~inside].max())


def _top_outside(y, classes) -> int:
    y = np.asarray(y, np.float64)
    out = [k for k in range(len(y)) if k not in set(classes)]
    return int(max(out, key=lambda k: y[k]))


def _charge(states, dt: float) -> None:
    open_ = [s for s in states if s.stage != "trivial"] or states
    for s in open_:
        s.time_s += dt / len(open_)


def pgd_attack(graph, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, sets: Sequence[Sequence[int]], *,
               steps: int = 40, restarts: int = 2, seed: int = 0) -> list[np.ndarray | None]:
    """Projected gradient descent on ``max_S y - max_K y`` inside ``[lo, hi]``, for several sets at once.

    One batch holds ``1 + restarts`` starts per set (the centre, then uniform
    points). Returns, per set, the best point when its (torch) margin is <= 0,
    else None; the caller replays it on the real model.
    """
    import torch

    n_out = graph.output_size
    m = len(sets)
    starts = 1 + restarts
    inside = torch.zeros((m * starts, n_out), dtype=torch.bool)
    for si, S in enumerate(sets):
        inside[si * starts:(si + 1) * starts, list(S)] = True
    lo_t = torch.as_tensor(lo, dtype=torch.float32)
    hi_t = torch.as_tensor(hi, dtype=torch.float32)
    width = hi_t - lo_t
    gen = torch.Generator().manual_seed(seed)
    centre = torch.as_tensor(x0, dtype=torch.float32).clamp(lo_t, hi_t)
    x = torch.stack([centre if r == 0 else lo_t + torch.rand(lo_t.shape, generator=gen) * width
                     for _ in range(m) for r in range(starts)])
    shape = graph.input_shape
    step = 2.5 * width / max(steps, 1)
    best_m = torch.full((m,), math.inf)
    best_x: list[torch.Tensor | None] = [None] * m
    neg = torch.finfo(torch.float32).min
    full = inside.all(1)
    for it in range(steps + 1):
        x = x.detach().requires_grad_(True)
        y = graph.forward(x.reshape(-1, *shape))
        margin = y.masked_fill(~inside, neg).max(1).values - y.masked_fill(inside | full[:, None], neg).max(1).values
        margin = torch.where(full, torch.full_like(margin, math.inf), margin)
        mv = margin.detach().reshape(m, starts)
        vals, idx = mv.min(1)
        for si in range(m):
            if float(vals[si]) < float(best_m[si]):
                best_m[si] = vals[si]
                best_x[si] = x[si * starts + int(idx[si])].detach().clone()
        if bool((best_m <= 0).all()) or it == steps:
            break
        (g,) = torch.autograd.grad(margin[torch.isfinite(margin)].sum(), x)
        x = torch.minimum(torch.maximum(x - step * g.sign(), lo_t), hi_t)
    return [bx.numpy().astype(np.float32) if bx is not None and float(bm) <= 0 else None
            for bx, bm in zip(best_x, best_m)]


def check_points(checker: HierarchyChecker, xs: np.ndarray, ys: np.ndarray, eps_values: Sequence[float],
                 progress: Callable[[int, int], None] | None = None) -> list[PointResult]:
    """Every point at every radius (the table of levels × eps)."""
    out = []
    total = len(xs) * len(eps_values)
    done = 0
    for eps in eps_values:
        for i, (x, y) in enumerate(zip(xs, ys)):
            out.append(checker.check_point(x, int(y), float(eps), index=i))
            done += 1
            if progress:
                progress(done, total)
    return out


__all__ = ["HierarchyChecker", "LevelVerdict", "PointResult", "RadiusResult", "check_points", "pgd_attack",
           "set_margin", "verdict_monotone", "STAGES", "METHODS"]


# --------------------------------------------------------------------------- queries from the front end


def argmax_set(spec: ir.OutputSpec, n: int) -> tuple[int, ...] | None:
    """``S`` when ``spec`` is exactly the unsafe set of ``argmax in S`` over ``n`` classes, else None."""
    inside: set[int] | None = None
    outside: list[int] = []
    for conj in spec.unsafe:
        ks, js = set(), set()
        for c in conj.constraints:
            terms = dict(c.expr.terms)
            if c.strict or c.expr.const != 0 or len(terms) != 2 or sorted(terms.values()) != [-1.0, 1.0]:
                return None
            ks.add(next(i for i, v in terms.items() if v == 1.0))
            js.add(next(i for i, v in terms.items() if v == -1.0))
        if len(ks) != 1 or (inside is not None and js != inside):
            return None
        inside = js
        outside.append(ks.pop())
    if inside is None or sorted(outside) != [k for k in range(n) if k not in inside]:
        return None
    return tuple(sorted(inside))


def _with_range(network: ir.Network, domain) -> ir.Network:
    from dataclasses import replace

    return replace(network, input_range=domain)


def _label_of(center: ir.DataPoint) -> int:
    from hdsl.data import load_dataset

    data = load_dataset(center.data)
    if data.y is None:
        raise ValueError(f"data set {center.data.name!r} has no labels")
    return int(data.y[center.index])


# --------------------------------------------------------------------------- planner hook


# Keyed on the network file's contents too: a model rewritten in place must not be answered
# by verdicts or bounds about the old one (see hdsl.files).
_CHECKERS: dict[tuple[ir.Network, str, str], HierarchyChecker] = {}
_DONE: dict[tuple, list[tuple[tuple[int, ...], LevelVerdict]]] = {}
_OPEN: dict[tuple, tuple[float, object]] = {}  # (point key, set) -> (budget it had, the open Result)


def solve_hierarchy_query(query: ir.Query, budget=None):
    """The planner's handler for queries: level queries go through the level driver, the rest
    (and level queries it leaves open) through ``hdsl.planner.solve_query``.

    Verdicts are remembered per (network, centre, radius), so the levels of one
    input share work across queries: a proved set proves every superset, a
    counterexample for a set (replayed again) falsifies every subset.

    The level driver runs in the query's arithmetic (one checker and one memo per
    arithmetic): under ``arithmetic real`` its bounds cover the real-valued
    network only and its counterexamples must also violate in float64 on the
    exact parameters (``HierarchyChecker.replay``).
    """
    from hdsl.backends import Budget
    from hdsl.planner import as_budget, solve_query
    from hdsl.regions import center_point
    from hdsl.results import Result

    budget = as_budget(query.options.timeout if budget is None else budget)
    n = query.network.num_outputs or (len(query.network.classes) if query.network.classes else None)
    S = None
    if isinstance(query.region, ir.LinfBall) and n and (query.options.backend or "auto") in ("auto", "hierarchy"):
        S = argmax_set(query.spec, n)
    # plain robustness (|S| = 1) without a level is the bounds backend's job
    if S is None or (query.level is None and len(S) < 2):
        return solve_query(query, budget)
    level = query.level if query.level is not None else 1
    t0 = time.monotonic()
    region = query.region
    from hdsl.files import content_digest

    digest = content_digest(query.network.path)
    arithmetic = query.options.arithmetic  # one checker and one verdict memo per arithmetic
    key = (query.network, digest, region.center, content_digest(region.center.data.path), region.eps,
           region.domain, arithmetic)
    net = query.network if query.network.input_range == region.domain else _with_range(query.network, region.domain)
    checker = _CHECKERS.get((net, digest, arithmetic))
    if checker is None:
        # splitting and Z3 come from the planner's portfolio below (bounds with α-CROWN, bab, z3)
        checker = _CHECKERS[(net, digest, arithmetic)] = HierarchyChecker(net, None, methods=("pairs", "lambda"),
                                                                           arithmetic=arithmetic)
    x0 = center_point(region.center)
    label = query.label if query.label is not None else _label_of(region.center)
    checker._box = checker.real_ball(x0, region.eps)
    done = _DONE.setdefault(key, [])
    for S2, lv in done:
        if lv.verdict is Verdict.PROVED and set(S2) <= set(S):
            return Result(query.id, Verdict.PROVED, "hierarchy", lv.stage, None, None, time.monotonic() - t0,
                          f"implied by the proof for the smaller set {list(S2)}")
        if lv.verdict is Verdict.FALSIFIED and set(S2) >= set(S) and lv.counterexample is not None:
            ce = checker.replay(np.asarray(lv.counterexample.x), S)
            if ce is not None:
                adv = _top_outside(ce.y, S)
                return Result(query.id, Verdict.FALSIFIED, "hierarchy", lv.stage, ce.margin, ce,
                              time.monotonic() - t0, f"implied by the counterexample for level {lv.level}; "
                              + _adv_message(adv, label, done, query.network, query.level is not None))
    same = _OPEN.get((key, tuple(S)))
    if same is not None and same[0] >= budget.left():  # the same set, already left open with more time
        return replace_result(same[1], query_id=query.id, time_s=time.monotonic() - t0,
                              message=f"the same set as {same[1].query_id}, left open with "
                              f"{same[0]:.3g} s: {same[1].message}")
    share = budget.left() * 0.5 if math.isfinite(budget.left()) else None
    deadline = None if share is None else time.monotonic() + share
    pr = checker.check_point(x0, int(label), float(region.eps), index=region.center.index, deadline=deadline,
                             sets=[(level, S, f"level {level}")])
    lv = next(v for v in pr.levels if v.classes == tuple(S))
    done.append((tuple(S), lv))
    if lv.verdict in (Verdict.PROVED, Verdict.FALSIFIED):
        msg = ""
        if lv.verdict is Verdict.FALSIFIED and lv.adversarial_class is not None:
            msg = _adv_message(lv.adversarial_class, label, done, query.network, query.level is not None)
        margin = lv.counterexample.margin if lv.counterexample is not None else lv.margin
        return Result(query.id, lv.verdict, "hierarchy", lv.stage, margin, lv.counterexample,
                      time.monotonic() - t0, msg)
    rest = _fallback(query, Budget(budget.deadline), checker)
    if rest.verdict in (Verdict.PROVED, Verdict.FALSIFIED):
        done.append((tuple(S), LevelVerdict(level, "", tuple(S), rest.verdict, rest.stage,
                                            counterexample=rest.counterexample)))
    note = f"decided by {rest.backend or 'the planner'} after the level driver ({', '.join(checker.methods)})"
    if rest.verdict is Verdict.FALSIFIED and rest.counterexample is not None:
        note += "; " + _adv_message(_top_outside(rest.counterexample.y, S), label, done, query.network,
                                        query.level is not None)
    elif rest.verdict not in (Verdict.PROVED, Verdict.FALSIFIED):
        note = f"open after the level driver ({', '.join(checker.methods)}) and {rest.backend or 'the planner'}"
    out = replace_result(rest, time_s=time.monotonic() - t0,
                         message=(rest.message + "; " if rest.message else "") + note)
    if out.verdict not in (Verdict.PROVED, Verdict.FALSIFIED):
        _OPEN[(key, tuple(S))] = (budget.deadline - t0, out)
    return out


Z3_MAX_RELUS = 1000  # above this Z3 does not finish in a query's budget (cifar10_small, 2,568 ReLUs: 0 of 90 in 5 s)


def _fallback(query: ir.Query, budget, checker: HierarchyChecker):
    """The planner's portfolio for what the level driver left open, without Z3 on large networks."""
    from hdsl import planner

    relus = sum(n.numel for n in checker.graph.nodes if n.op == "relu")
    if (query.options.backend or "auto") != "auto" or relus <= Z3_MAX_RELUS:
        return planner.solve_query(query, budget)
    names = [n for n in planner.PORTFOLIO if n != "z3"]
    return planner._portfolio(query, budget, names, None, time.monotonic())


def replace_result(result, **changes):
    from dataclasses import replace

    return replace(result, **changes)


def _adv_message(adv: int, label: int, done, network: ir.Network, with_depth: bool = True) -> str:
    """Name the adversarial class and the depth of its common ancestor with the label, as far as the
    levels checked so far for this input show it (the root, level 0, is shared by all)."""
    depth = max([lv.level for S2, lv in done if adv in S2 and label in S2] + [0])
    name = network.classes[adv] if network.classes and adv < len(network.classes) else str(adv)
    if not with_depth:
        return f"adversarial class {name} (#{adv})"
    return f"adversarial class {name} (#{adv}); common ancestor with the label at level {depth}"
