"""Interchange intervention accuracy: exhaustive or sampled, always with its baselines.

For a base b and one source per intervened group, the high-level label y* is
H(b) with each variable of the group set to its value on that group's source
(descendants recomputed); the low-level prediction is the readout of the
network with the aligned units spliced. Reported together, as the notes ask:

* ``iia``       = P[pred = y*]                  over all pairs
* ``iia_eff``   = P[pred = y* | y* != H(b)]     (pairs whose label changes)
* ``null``      = P[y* = H(b)]                  (what an empty alignment scores)
* ``task_acc``  = P[net(b) = H(b)]              over the inputs

A plain IIA of 0.72 means nothing if the null baseline is 0.72.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

from hdsl.causal.alignment import Alignment, check_disjoint, encode_inputs
from hdsl.causal.intervene import Interchanger, readout
from hdsl.causal.model import CausalModel
from hdsl.causal.stats import clopper_pearson, verdict
from hdsl.diagnostics import HdslError
from hdsl.results import MeasurementResult, Status

DEFAULT_MAX_PAIRS = 20_000_000


@dataclass(frozen=True, slots=True)
class IIACounts:
    groups: tuple[tuple[str, ...], ...]  # each group shares one source
    mode: str  # "exhaustive" | "sampled"
    pairs: int
    hits: int
    effective: int  # pairs whose counterfactual label differs from the base label
    effective_hits: int
    task_correct: int
    task_total: int
    time_s: float = 0.0
    truncated: bool = False  # a sampled run stopped early by its deadline
    # a few scored tuples for replay on the real model: (base, source_1.., prediction), failures first
    failures: tuple[tuple[int, ...], ...] = field(default=(), compare=False, repr=False)
    successes: tuple[tuple[int, ...], ...] = field(default=(), compare=False, repr=False)

    @property
    def iia(self) -> Fraction:
        return Fraction(self.hits, self.pairs) if self.pairs else Fraction(0)

    @property
    def iia_eff(self) -> Fraction:
        return Fraction(self.effective_hits, self.effective) if self.effective else Fraction(0)

    @property
    def null(self) -> Fraction:
        return Fraction(self.pairs - self.effective, self.pairs) if self.pairs else Fraction(0)

    @property
    def task_acc(self) -> Fraction:
        return Fraction(self.task_correct, self.task_total) if self.task_total else Fraction(0)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.time_s if self.time_s > 0 else float("inf")

    def summary(self) -> str:
        def f(k: int, n: int) -> str:
            if not n:
                return "n/a (no pairs)"
            x = Fraction(k, n)
            exact = f" = {x.numerator}/{x.denominator}" if x.denominator != n and 0 < k < n else ""
            return f"{k / n:.4f} ({k}/{n}{exact})"

        g = ", ".join("{" + ", ".join(grp) + "}" for grp in self.groups)
        return (f"IIA {f(self.hits, self.pairs)}; on label-changing pairs {f(self.effective_hits, self.effective)}; "
                f"null baseline {f(self.pairs - self.effective, self.pairs)}; "
                f"task accuracy {f(self.task_correct, self.task_total)}; {self.mode} over {self.pairs} "
                f"{'pairs' if len(self.groups) == 1 else 'tuples'}; intervene {g}")


def _check_groups(model: CausalModel, alignment: Alignment, groups) -> tuple[tuple[str, ...], ...]:
    groups = tuple(tuple(g) for g in groups)
    if not groups or any(not g for g in groups):
        raise HdslError.single("C301", "an interchange intervention needs at least one variable", alignment.span)
    flat = [v for g in groups for v in g]
    for v in flat:
        if v not in model.names:
            raise HdslError.single("C302", f"{v!r} is not a variable of causal model {model.name!r}", alignment.span,
                                   "variables: " + ", ".join(model.names))
    if len(set(flat)) != len(flat):
        raise HdslError.single("C303", "a variable appears in two intervened groups", alignment.span)
    check_disjoint(alignment, tuple(flat))
    return groups


def measure_iia(net, model: CausalModel, alignment: Alignment, groups, inputs: dict | None = None,
                samples: int | None = None, seed: int = 0, max_pairs: int = DEFAULT_MAX_PAIRS,
                batch_size: int = 16384, interchanger: Interchanger | None = None,
                deadline: float | None = None, dedup: bool = True, keep: int = 64) -> IIACounts:
    """IIA of ``alignment`` for the intervention ``groups`` over the input set (all settings by default).

    ``samples=None`` enumerates every (base, source_1, ..., source_k) tuple of the input set;
    otherwise ``samples`` tuples are drawn uniformly with ``seed``. Past ``deadline``
    (``time.monotonic()``), an exhaustive run stops with a diagnostic; a sampled run keeps the
    tuples drawn so far (the stopping time does not depend on the outcomes, so they remain a
    uniform sample) and says so in ``IIACounts.truncated``. With ``dedup``, tuples whose
    downstream activations are bit-identical are evaluated once (``Interchanger.outcome_table``).
    """
    import numpy as np
    import torch

    groups = _check_groups(model, alignment, groups)
    if inputs is None:
        inputs = model.enumerate_inputs()
    n = len(next(iter(inputs.values())))
    k = len(groups)
    total = n ** (k + 1)
    if samples is None and total > max_pairs:
        raise HdslError.single(
            "C304", f"exhaustive IIA needs {total:,} tuples ({n} inputs, {k} source(s)), over the budget of "
                    f"{max_pairs:,}", alignment.span, "sample instead: `samples 10000` (with a confidence level)")
    t0 = time.perf_counter()
    table = model.run(inputs)
    labels = model.label(table)
    ic = interchanger or Interchanger(net, alignment, encode_inputs(model, alignment, inputs), batch_size)
    pred_all = ic.pred.numpy()
    task_correct = int((pred_all == labels).sum())
    rng = np.random.default_rng(seed)
    count = total if samples is None else int(samples)
    hits = eff = eff_hits = 0
    done = 0
    failures: list[tuple[int, ...]] = []
    successes: list[tuple[int, ...]] = []
    lookup = ic.outcome_table(groups, limit=max(1, count // 4)) if dedup else None
    if lookup is not None:
        base_cls, src_cls, table_pred = (lookup[0].numpy(), [c.numpy() for c in lookup[1]], lookup[2].numpy())
    step = batch_size if lookup is None else max(batch_size, 1 << 18)  # table lookups: bigger chunks pay
    for start in range(0, count, step):
        if deadline is not None and time.monotonic() > deadline:
            if samples is None:
                raise HdslError.single("C305", f"timed out after {start:,} of {count:,} exhaustive tuples",
                                       alignment.span, "raise the timeout, or sample (`samples N`)")
            break
        m = min(step, count - start)
        if samples is None:
            ks = np.arange(start, start + m, dtype=np.int64)
            cols = []
            for j in range(k, -1, -1):
                cols.append(ks // (n ** j) % n)
            b, srcs = cols[0], cols[1:]
        else:
            draw = rng.integers(0, n, size=(m, k + 1))
            b, srcs = draw[:, 0], [draw[:, j + 1] for j in range(k)]
        base_in = {v.name: inputs[v.name][b] for v in model.inputs}
        interventions = {var: table[var][s] for grp, s in zip(groups, srcs) for var in grp}
        y_star = model.label(model.run(base_in, interventions))
        if lookup is not None:
            pred = table_pred[(base_cls[b],) + tuple(c[s] for c, s in zip(src_cls, srcs))]
        else:
            sources = {var: torch.from_numpy(s) for grp, s in zip(groups, srcs) for var in grp}
            pred = ic.predict(torch.from_numpy(b), sources).numpy()
        ok = pred == y_star
        changed = y_star != labels[b]
        for bucket, mask in ((failures, ~ok), (successes, ok & changed)):
            if len(bucket) < keep:
                idx = np.flatnonzero(mask)[: keep - len(bucket)]
                bucket.extend(tuple(int(c[i]) for c in [b, *srcs]) + (int(pred[i]),) for i in idx)
        hits += int(ok.sum())
        eff += int(changed.sum())
        eff_hits += int((ok & changed).sum())
        done += m
    return IIACounts(groups, "exhaustive" if samples is None else "sampled", done, hits, eff, eff_hits,
                     task_correct, n, time.perf_counter() - t0, truncated=done < count,
                     failures=tuple(failures), successes=tuple(successes))


def decide(item_id: str, counts: IIACounts, threshold: float | None, comparison: str = ">=",
           confidence: float = 0.95, metric: str = "all") -> MeasurementResult:
    """Turn counts into a verdict: exact for exhaustive runs, Clopper–Pearson for sampled ones."""
    k, n = (counts.hits, counts.pairs) if metric == "all" else (counts.effective_hits, counts.effective)
    estimate = k / n if n else 0.0
    if counts.mode == "exhaustive":
        interval, method, conf = (estimate, estimate), "exhaustive", 1.0
    else:
        interval, method, conf = clopper_pearson(k, n, confidence), "clopper-pearson", confidence
    if threshold is None:
        status = Status.PASS
    elif n == 0:
        status = Status.INCONCLUSIVE
    else:
        status = Status(verdict(interval, threshold, comparison))
    details = (
        ("metric", metric),
        ("iia", float(counts.iia)), ("iia_exact", str(counts.iia)),
        ("iia_eff", float(counts.iia_eff)), ("iia_eff_exact", str(counts.iia_eff)),
        ("null", float(counts.null)), ("null_exact", str(counts.null)),
        ("task_acc", float(counts.task_acc)), ("task_acc_exact", str(counts.task_acc)),
        ("pairs", counts.pairs), ("effective_pairs", counts.effective),
        ("groups", [list(g) for g in counts.groups]), ("pairs_per_s", round(counts.pairs_per_s, 1)),
    )
    message = counts.summary()
    if counts.truncated:
        message += " (sampling stopped at the timeout: fewer tuples than requested)"
    if counts.task_acc < 1:
        message += " (the network does not compute the model's output on every input: IIA is bounded by that)"
    return MeasurementResult(item_id, status, estimate, interval, conf, n, threshold, comparison if threshold is not None
                             else "", method, counts.time_s, message, details)


def base_predictions(net, x) -> "object":
    """Readout of the network on inputs ``x`` (used to report task accuracy)."""
    import torch

    with torch.no_grad():
        out, _ = net.forward(torch.as_tensor(x, dtype=torch.float32))
    return readout(out)
