"""Planner handlers for the XAI items: measure faithfulness, compare explainers, decide sufficiency.

Registered with ``hdsl.planner.register_handler`` by one line at the end of
``hdsl/planner.py``. Attributions are cached per (network, explainer, data,
target) within the process, so a comparison and a threshold property over the
same explainer compute it once.
"""

from __future__ import annotations

import math
import time
from itertools import combinations

import numpy as np
import torch

from hdsl.diagnostics import HdslError
from hdsl.results import MeasurementResult, Result, Status, Verdict
from hdsl.xai.ir import ExplainerComparison, ExplainerSpec, Faithfulness, MetricOptions, Sufficiency

_GRAPHS: dict = {}
_ATTRS: dict = {}


# --------------------------------------------------------------------------- loading


def load_model(network):
    """The network as a channel-first torch module on raw inputs (normalisation folded in)."""
    from hdsl.nn import network_graph
    from hdsl.xai.model import ChannelFirst

    key = network
    if key not in _GRAPHS:
        _GRAPHS[key] = ChannelFirst(network_graph(network), tuple(network.input_shape))
    return _GRAPHS[key]


def load_images(network, data, model, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """NCHW images of ``data`` and the class each is explained for."""
    from hdsl.data import load_dataset
    from hdsl.xai.model import images_to_nchw

    loaded = load_dataset(data)
    x = images_to_nchw(loaded.x, tuple(network.input_shape))
    if target == "label":
        if loaded.y is None:
            raise HdslError.single("X060", f"data set '{data.name}' has no labels; use `target predicted`",
                                   span=getattr(data, "span", None))
        y = torch.as_tensor(np.asarray(loaded.y), dtype=torch.long)
    else:
        with torch.no_grad():
            y = model(x).argmax(dim=1)
    return x, y


def attributions(network, explainer: ExplainerSpec, data, model, x, y, target: str) -> torch.Tensor:
    from hdsl.xai.attributions import attribute

    key = (network, explainer, data, target)
    if key not in _ATTRS:
        rng = network.input_range or (0.0, 1.0)
        _ATTRS[key] = attribute(explainer.method, model, x, y, input_range=rng, **dict(explainer.params))
    return _ATTRS[key]


def metric_kwargs(opts: MetricOptions, n_features: int) -> dict:
    """The library options of a metric from the language's options."""
    from hdsl.xai.metrics import Granularity

    gran = Granularity(opts.granularity, opts.patch)
    m = opts.metric
    if m in ("deletion_auc", "morf_auc", "lerf_auc", "insertion_auc", "srg"):
        return {"steps": opts.steps, "granularity": gran, "score": opts.score}
    if m in ("pixel_flipping", "faithfulness_estimate"):
        return {"features_in_step": max(1, math.ceil(n_features / opts.steps)), "granularity": gran,
                "score": opts.score}
    if m in ("road_morf", "road_lerf"):
        pct = tuple(sorted({round(100 * j / opts.steps) for j in range(1, opts.steps)} - {0, 100})) or (50,)
        return {"percentages": pct, "granularity": gran}
    if m == "faithfulness_corr":
        return {"runs": opts.runs, "subset_size": max(1, int(round(opts.subset * n_features))), "granularity": gran,
                "score": opts.score}
    raise HdslError.single("X023", f"unknown faithfulness metric {m!r}")


def measure(network, explainer, data, removal_spec, opts: MetricOptions):
    """Per-image metric values (and the full MetricResult) for one explainer and removal."""
    from hdsl.xai import metrics
    from hdsl.xai.metrics import Granularity
    from hdsl.xai.removal import make_removal

    model = load_model(network)
    x, y = load_images(network, data, model, opts.target)
    attr = attributions(network, explainer, data, model, x, y, opts.target)
    nf = Granularity(opts.granularity, opts.patch).feature_map(*x.shape[1:])[1]
    removal = make_removal(removal_spec.kind, *removal_spec.args)
    return metrics.compute(opts.metric, model, x, y, attr, removal, **metric_kwargs(opts, nf))


# --------------------------------------------------------------------------- faithfulness


def run_faithfulness(item: Faithfulness, budget) -> MeasurementResult:
    from hdsl.xai.stats import bootstrap_mean, decide

    t0 = time.perf_counter()
    try:
        res = measure(item.network, item.explainer, item.data, item.removal, item.options)
    except HdslError as err:
        return MeasurementResult(item.id, Status.ERROR, float("nan"), message=err.diagnostics[0].message,
                                 time_s=time.perf_counter() - t0)
    iv = bootstrap_mean(res.per_image, item.confidence, item.resamples, item.seed)
    status = decide(iv, item.comparison, item.threshold) if item.threshold is not None else Status.INCONCLUSIVE
    better = "higher" if res.higher_is_better else "lower"
    msg = (f"{item.options.metric} of {item.explainer.name} with removal {item.removal.label}: "
           f"{iv.estimate:.4f} [{iv.lower:.4f}, {iv.upper:.4f}] ({better} is better)")
    if iv.dropped:
        msg += f"; {iv.dropped} image(s) without a defined value dropped"
    details = (("metric", item.options.metric), ("explainer", item.explainer.name),
               ("method", item.explainer.method), ("removal", item.removal.label), ("steps", item.options.steps),
               ("granularity", item.options.granularity if item.options.granularity != "patch"
                else f"patch {item.options.patch}"), ("score", item.options.score), ("target", item.options.target),
               ("higher_is_better", res.higher_is_better), ("bootstrap_seed", item.seed),
               ("resamples", item.resamples), ("per_image", [round(float(v), 6) for v in res.per_image]))
    return MeasurementResult(item.id, status, iv.estimate, (iv.lower, iv.upper), item.confidence, iv.samples,
                             item.threshold, item.comparison, "bootstrap (percentile, over images)",
                             time.perf_counter() - t0, msg, details)


# --------------------------------------------------------------------------- comparison


def compare(item: ExplainerComparison):
    """Per removal: per-explainer per-image values, bootstrap intervals and the ranking."""
    from hdsl.xai.stats import bootstrap_mean, paired_difference

    table = {}
    higher = True
    for r in item.removals:
        values = {}
        for e in item.explainers:
            res = measure(item.network, e, item.data, r, item.options)
            values[e.name] = res
            higher = res.higher_is_better
        ivs = {k: bootstrap_mean(v.per_image, item.confidence, item.resamples, item.seed) for k, v in values.items()}
        ranking = sorted(ivs, key=lambda k: (-ivs[k].estimate if higher else ivs[k].estimate))
        pairs = {}
        for a, b in combinations([e.name for e in item.explainers], 2):
            d = paired_difference(values[a].per_image, values[b].per_image, item.confidence, item.resamples,
                                  item.seed)
            sign = 0
            if d.lower > 0:
                sign = 1 if higher else -1  # +1: a significantly better than b
            elif d.upper < 0:
                sign = -1 if higher else 1
            pairs[(a, b)] = (d, sign)
        table[r.label] = {"results": values, "intervals": ivs, "ranking": ranking, "pairs": pairs}
    return table, higher


def run_comparison(item: ExplainerComparison, budget) -> MeasurementResult:
    t0 = time.perf_counter()
    try:
        table, higher = compare(item)
    except HdslError as err:
        return MeasurementResult(item.id, Status.ERROR, float("nan"), message=err.diagnostics[0].message,
                                 time_s=time.perf_counter() - t0)
    labels = list(table)
    rankings = [tuple(table[r]["ranking"]) for r in labels]
    names = [e.name for e in item.explainers]
    pairs = list(combinations(names, 2))
    same_order = 0
    significant_flip = False
    for a, b in pairs:
        orders = {table[r]["ranking"].index(a) < table[r]["ranking"].index(b) for r in labels}
        same_order += len(orders) == 1
        signs = {table[r]["pairs"][(a, b)][1] for r in labels}
        significant_flip |= {1, -1} <= signs
    changes = len(set(rankings)) > 1
    status = Status.PASS if not changes else (Status.FAIL if significant_flip else Status.INCONCLUSIVE)
    agreement = same_order / len(pairs) if pairs else 1.0
    parts = [f"{r}: " + " > ".join(f"{k} ({table[r]['intervals'][k].estimate:.3f})" for k in table[r]["ranking"])
             for r in labels]
    verdict = ("the ranking is the same under every removal" if not changes else
               "the ranking changes with the removal" + (" (significantly)" if significant_flip else
                                                         " (not significantly)"))
    details = [("metric", item.options.metric), ("higher_is_better", higher), ("ranking_changes", changes),
               ("significant_flip", significant_flip), ("pair_agreement", agreement)]
    for r in labels:
        details.append((f"ranking[{r}]", list(table[r]["ranking"])))
        for k, iv in table[r]["intervals"].items():
            details.append((f"{r}/{k}", [round(iv.estimate, 6), round(iv.lower, 6), round(iv.upper, 6)]))
    n = len(next(iter(table[labels[0]]["results"].values())).per_image) if labels else 0
    return MeasurementResult(item.id, status, agreement, None, item.confidence, n, None, "", "paired bootstrap",
                             time.perf_counter() - t0, f"{verdict}; " + "; ".join(parts), tuple(details))


# --------------------------------------------------------------------------- sufficiency


def run_sufficiency(item: Sufficiency, budget) -> Result:
    from hdsl.xai.metrics import Granularity
    from hdsl.xai.sufficiency import Decider, check_k, smallest_sufficient_k

    t0 = time.monotonic()
    try:
        model = load_model(item.network)
        x, y = load_images(item.network, item.data, model, item.target)
        attr = attributions(item.network, item.explainer, item.data, model, x, y, item.target)
    except HdslError as err:
        return Result(item.id, Verdict.ERROR, "xai", "", None, None, time.monotonic() - t0,
                      err.diagnostics[0].message)
    i = item.index
    per_query = item.timeout if item.timeout is not None else 10.0
    left = budget.left() if budget is not None else math.inf
    deadline = None if math.isinf(left) else time.monotonic() + left
    gran = Granularity(item.granularity, item.patch)
    dec = Decider(item.network, x[i].numpy(), attr[i], int(y[i]), eps=item.eps, granularity=gran,
                  timeout=min(per_query, left) if not math.isinf(left) else per_query, deadline=deadline,
                  query_id=item.id, property_name=item.property, index=i, options=item.options)
    what = f"features of {item.explainer.name}" + (f" (free within linf {item.eps:g})" if item.eps is not None
                                                        else " (free over the input range)")
    if item.k is not None:
        k = min(item.k, dec.n_features)
        out = check_k(dec, k)
        r = out.tried[0]
        base = r.result
        msg = f"top {k} {what}: {r.verdict.value}" + (f"; {base.message}" if base is not None and base.message
                                                       else "")
        return Result(item.id, r.verdict, base.backend if base else "xai", r.stage, r.margin,
                      base.counterexample if base else None, time.monotonic() - t0, msg,
                      (("k", float(k)), ("n_features", float(dec.n_features)), ("label", float(y[i]))))
    out = smallest_sufficient_k(dec)
    tried = ", ".join(f"k={t.k}:{t.verdict.value}" for t in out.tried)
    stats = [("n_features", float(dec.n_features)), ("label", float(y[i])), ("queries", float(len(out.tried)))]
    if out.smallest_proved is None:
        top = dec.cache.get(dec.n_features)
        verdict = Verdict.FALSIFIED if top is not None and top.verdict is Verdict.FALSIFIED else (
            Verdict.TIMEOUT if any(t.verdict is Verdict.TIMEOUT for t in out.tried) else Verdict.UNKNOWN)
        ce = top.result.counterexample if verdict is Verdict.FALSIFIED and top.result else None
        return Result(item.id, verdict, "xai", "search", None, ce, time.monotonic() - t0,
                      f"no sufficient top-k set found: {out.extra.get('reason', '')} ({tried})", tuple(stats))
    k = out.smallest_proved
    stats.append(("k_min_proved", float(k)))
    falsified = [t.k for t in out.tried if t.verdict is Verdict.FALSIFIED and t.k < k]
    if falsified:  # truth is monotone in k: the smallest sufficient k is above every falsified k
        stats.append(("k_max_falsified", float(max(falsified))))
    if out.exact:
        msg = f"smallest sufficient k = {k} of {dec.n_features} {what} (k = {k - 1} falsified)"
    elif out.largest_not_proved is None:
        msg = "k = 0 suffices: the class is constant over the whole region"
    else:
        low = max(falsified) if falsified else -1
        undecided = [t.k for t in out.tried if low < t.k < k]
        msg = (f"top {k} of {dec.n_features} {what} is sufficient (proved); the smallest sufficient k lies in "
               f"({low}, {k}]" + (f" (undecided at k = {', '.join(map(str, undecided))})" if undecided else ""))
    proof = dec.cache[k]
    return Result(item.id, Verdict.PROVED, proof.result.backend if proof.result else "xai", proof.stage,
                  proof.margin, None, time.monotonic() - t0, msg + f"; tried {tried}", tuple(stats))


def register() -> None:
    from hdsl.planner import register_handler

    register_handler(Faithfulness, run_faithfulness)
    register_handler(ExplainerComparison, run_comparison)
    register_handler(Sufficiency, run_sufficiency)
