"""Planner handler for ``IIA`` items: load the network graph, measure or prove, decide.

Registered with ``hdsl.planner.register_handler`` when the planner is imported
(one line at the end of ``hdsl/planner.py``), so spawned workers have it too.
"""

from __future__ import annotations

import math
import time

from hdsl.causal.ir import IIA
from hdsl.diagnostics import HdslError
from hdsl.results import MeasurementResult, Status


def load_graph(network):
    from hdsl.nn import network_graph

    return network_graph(network)


def resolve_sites(alignment, graph):
    """Fill open slices (``[a:]``, none) with node sizes and check names, ranges and rotations."""
    from hdsl.causal.alignment import Alignment, Site

    sizes = {}
    for node in graph.nodes:
        sizes[node.name] = math.prod(node.shape)
    sites = []
    for var, s in alignment.sites:
        try:
            name = graph.resolve(s.node)
        except KeyError:
            name = s.node
        full = s.rotation.dim if s.rotation is not None else sizes.get(name, 0)
        sites.append((var, Site(name, s.start, full if s.stop < 0 else s.stop, s.rotation, s.span)))
    return Alignment(alignment.name, alignment.model, alignment.network, tuple(sites), alignment.encodings,
                     alignment.span), sizes


def run_iia(item: IIA, budget=None) -> MeasurementResult:
    t0 = time.perf_counter()
    deadline = getattr(budget, "deadline", None)
    try:
        return _run(item, t0, deadline if deadline is not None and deadline != float("inf") else None)
    except HdslError as err:
        msg = "; ".join(f"{d.code}: {d.message}" + (f" (hint: {d.hint})" if d.hint else "") for d in err.diagnostics)
        return MeasurementResult(item.id, Status.ERROR, 0.0, threshold=item.threshold, comparison=item.comparison,
                                 time_s=time.perf_counter() - t0, message=msg)


def _run(item: IIA, t0: float, deadline: float | None) -> MeasurementResult:
    import numpy as np

    from hdsl.causal.alignment import check_alignment, encoded_width
    from hdsl.causal.iia import decide, measure_iia

    graph = load_graph(item.network)
    alignment, sizes = resolve_sites(item.alignment, graph)
    check_alignment(alignment, item.model, sizes)
    width = encoded_width(item.model, alignment)
    n_in = math.prod(graph.input_shape)
    if width != n_in:
        raise HdslError.single("C206", f"the one-hot encoding of {item.model.name}'s inputs has {width} features "
                               f"but network input has {n_in}", item.span,
                               "inputs are one-hot encoded in declaration order and concatenated")
    n_out = graph.output_size
    k = item.model.output_type.size
    if n_out != k and not (n_out == 1 and k == 2):
        raise HdslError.single("C207", f"the network has {n_out} outputs but {item.model.name}'s output "
                               f"{item.model.output} has {k} values ({item.model.output_type})", item.span,
                               "the argmax class i is compared with the output's i-th value")
    inputs = None
    if item.rows is not None:
        arr = np.asarray(item.rows, dtype=np.int64).reshape(len(item.rows), -1)
        inputs = {v.name: arr[:, i] for i, v in enumerate(item.model.inputs)}
    if item.eps is not None:
        return _formal(item, graph, alignment, inputs, t0, deadline)
    counts = measure_iia(graph, item.model, alignment, item.groups, inputs, item.samples, item.seed,
                         deadline=deadline)
    res = decide(item.id, counts, item.threshold, item.comparison, item.confidence, item.metric)
    return _with_replay(res, item, alignment, inputs, counts)


def _with_replay(res: MeasurementResult, item: IIA, alignment, inputs, counts) -> MeasurementResult:
    """Re-run up to 64 failing and 64 label-changing successful tuples on onnxruntime (the real model)."""
    import dataclasses

    import numpy as np

    from hdsl.causal.alignment import encode_inputs
    from hdsl.causal.replay import replay_tuples

    tuples = counts.failures + counts.successes
    if not tuples or not alignment.sites:
        return res
    if item.network.mean is not None:
        note = "not replayed on onnxruntime (input normalisation is declared on the model)"
        return dataclasses.replace(res, details=res.details + (("replay", note),))
    inputs = inputs if inputs is not None else item.model.enumerate_inputs()
    x = encode_inputs(item.model, alignment, inputs)
    try:
        ort_pred = replay_tuples(item.network.path, alignment, x, item.groups, [t[:-1] for t in tuples])
    except Exception as err:  # noqa: BLE001 - a model the extractor cannot cut: say so, keep the result
        note = f"not replayed on onnxruntime ({type(err).__name__}: {err})"
        return dataclasses.replace(res, details=res.details + (("replay", note),))
    ours = np.asarray([t[-1] for t in tuples])
    agree = int((ort_pred == ours).sum())
    note = (f"onnxruntime agrees on {agree}/{len(tuples)} replayed tuples ({len(counts.failures)} failing, "
            f"{len(counts.successes)} label-changing successes)")
    details = res.details + (("replay", note),)
    if agree == len(tuples):
        return dataclasses.replace(res, details=details, message=res.message + f"; {note}")
    return dataclasses.replace(res, status=Status.INCONCLUSIVE, details=details,
                               message=res.message + f"; {note}: hdsl's executor and onnxruntime disagree "
                                                     "(a near-tie?), so the estimate is not trusted")


def _formal(item: IIA, graph, alignment, inputs, t0: float, deadline: float | None) -> MeasurementResult:
    """Region IIA (share of pair regions on which the output is right everywhere) against the threshold.

    proved share <= region IIA <= centre share. Exhaustive: those two bound it exactly;
    sampled pair regions: Clopper-Pearson on the proved count (lower) and on the centre count (upper).
    """
    from hdsl.causal.formal import certify
    from hdsl.causal.stats import clopper_pearson

    r = certify(graph, item.model, alignment, item.groups, item.eps, inputs, item.samples, item.seed,
                deadline=deadline, arithmetic=item.options.arithmetic)
    if r.pairs == 0:
        return MeasurementResult(item.id, Status.INCONCLUSIVE, 0.0, None, None, 0, item.threshold, item.comparison,
                                 "bound-propagation", time.perf_counter() - t0, "timed out before any pair region")
    if item.samples is None:
        lo, hi, conf, method = r.proved / r.pairs, r.center_correct / r.pairs, 1.0, "bound-propagation"
    else:
        lo = clopper_pearson(r.proved, r.pairs, item.confidence)[0]
        hi = clopper_pearson(r.center_correct, r.pairs, item.confidence)[1]
        conf, method = item.confidence, "bound-propagation + clopper-pearson"
    from hdsl.causal.stats import verdict

    status = Status(verdict((lo, hi), item.threshold, item.comparison))
    details = (("mode", "formal"), ("eps", item.eps), ("proved_pairs", r.proved), ("pairs", r.pairs),
               ("centre_correct", r.center_correct), ("bound_method", r.method), ("arithmetic", r.arithmetic),
               ("groups", [list(g) for g in r.groups]))
    res = MeasurementResult(item.id, status, r.proved / r.pairs, (lo, hi), conf, r.pairs, item.threshold,
                            item.comparison, method, time.perf_counter() - t0, r.summary(), details)
    if not r.centre_failures:
        return res
    # the upper end rests on centres that failed concretely: confirm them on the real model
    from types import SimpleNamespace

    return _with_replay(res, item, alignment, inputs, SimpleNamespace(failures=r.centre_failures, successes=()))


def register() -> None:
    from hdsl.planner import register_handler

    register_handler(IIA, run_iia)
