"""Formal interchange checks: prove the intervened network matches the counterfactual over a region.

The interchange network for k sources is an ordinary graph: its input is the
concatenation of the base and source inputs; each source copy runs the prefix
up to its aligned nodes; the base copy runs the whole network with every
aligned node replaced by ``(I - P) h_b + P h_s`` (two ``linear`` nodes and an
``add``). The bound propagator (``hdsl.bounds``, sound under float32 rounding)
then bounds ``y_{y*} - y_j`` over a box around each (base, source) pair.

Regions keep the high-level variables constant: every causal input's encoding
moves in an L-infinity ball of radius eps, and eps must be below half the
smallest L-infinity distance between two codes of that input, so each input
still decodes (nearest code) to its value and the counterfactual label is that
of the centre pair. The share of pairs proved is a sound lower bound on IIA
over the region. Nothing here is reported as falsified: a pair that is not
proved is *unknown* (its centre's concrete outcome is reported alongside).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hdsl.causal.alignment import Alignment, encode_inputs, projector
from hdsl.causal.iia import _check_groups
from hdsl.causal.intervene import Interchanger
from hdsl.causal.model import CausalModel
from hdsl.diagnostics import HdslError


@dataclass(frozen=True)
class FormalResult:
    groups: tuple[tuple[str, ...], ...]
    eps: float
    method: str
    pairs: int
    proved: int
    center_correct: int  # pairs whose centre interchange (float32) matches the counterfactual label
    time_s: float
    centre_failures: tuple[tuple[int, ...], ...] = ()  # (base, sources.., prediction), for replay
    arithmetic: str = "float32"  # what "proved" covers (hdsl.ir.CheckOptions)

    @property
    def share(self) -> float:
        return self.proved / self.pairs if self.pairs else 0.0

    def summary(self) -> str:
        return (f"proved on {self.proved}/{self.pairs} pair regions ({self.share:.4f}; a sound lower bound on IIA "
                f"over the region) at eps={self.eps:g} with {self.method}"
                + (" in real arithmetic (not covering float32 execution)" if self.arithmetic == "real" else "")
                + f"; centres correct {self.center_correct}/{self.pairs}")


def max_eps(model: CausalModel, alignment: Alignment) -> float:
    """Largest eps (exclusive) that keeps every causal input decodable: half the min code distance."""
    import numpy as np

    best = float("inf")
    for v in model.inputs:
        codes = {v.name: np.arange(v.type.lo, v.type.hi + 1)}
        one = Alignment("", model.name, "", (), tuple(e for e in alignment.encodings if e.var == v.name))
        sub = CausalModel(model.name, (v,), (), v.name)
        x = encode_inputs(sub, one, codes)
        if len(x) > 1:
            d = np.abs(x[:, None, :] - x[None, :, :]).max(-1)
            d[np.eye(len(x), dtype=bool)] = np.inf
            best = min(best, float(d.min()) / 2)
    return best


def interchange_graph(graph, sites_by_group: list[list[tuple[str, "object"]]]):
    """A graph computing the network on base input 0 with, for group g, ``P (h_{s_g} - h_b)`` added at each site.

    ``sites_by_group[g]`` lists (node name, projector P as a float64 numpy [n, n]) for source g.
    The returned graph's input is the flat concatenation [x_b, x_s1, ..., x_sk].
    """
    import math

    import numpy as np
    import torch

    from hdsl.nn.graph import Graph, Node

    src = graph.exact if getattr(graph, "exact", None) is not None else graph
    nodes = src.nodes
    inp = nodes[0]
    n_in = math.prod(inp.shape)
    k = len(sites_by_group)
    dt = torch.float64
    out: list[Node] = [Node("xx", "input", (), (n_in * (k + 1),), {}, "")]

    def select(prefix: str, j: int) -> None:
        w = torch.zeros(n_in, n_in * (k + 1), dtype=dt)
        w[:, j * n_in:(j + 1) * n_in] = torch.eye(n_in, dtype=dt)
        out.append(Node(prefix + "#flat", "linear", ("xx",), (n_in,), {"weight": w, "bias": torch.zeros(n_in, dtype=dt)}))
        out.append(Node(prefix + inp.name, "reshape", (prefix + "#flat",), inp.shape, {}))

    def ancestors(names: set[str]) -> set[str]:
        need, stack = set(), list(names)
        while stack:
            n = stack.pop()
            if n in need:
                continue
            need.add(n)
            stack.extend(src.by_name[n].inputs)
        return need

    def copy(node, prefix: str, rename) -> Node:
        return Node(rename(node.name), node.op, tuple(rename(i) for i in node.inputs), node.shape,
                    {kk: (v.to(dt) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                     for kk, v in node.params.items()}, node.onnx_node)

    for g, sites in enumerate(sites_by_group):
        prefix = f"s{g}/"
        select(prefix, g + 1)
        need = ancestors({name for name, _ in sites})
        for node in nodes[1:]:
            if node.name in need:
                out.append(copy(node, prefix, lambda nm, p=prefix: p + nm))
    select("b/", 0)
    spliced: dict[str, list[tuple[int, np.ndarray]]] = {}
    for g, sites in enumerate(sites_by_group):
        for name, p in sites:
            spliced.setdefault(name, []).append((g, p))

    def base_name(nm: str) -> str:
        return "b/" + nm

    for node in nodes[1:]:
        if node.name not in spliced:
            out.append(copy(node, "b/", base_name))
            continue
        orig = copy(node, "b/", base_name)
        n = math.prod(node.shape)
        hb = "b/" + node.name + "#orig"
        out.append(Node(hb, orig.op, orig.inputs, orig.shape, orig.params, orig.onnx_node))
        flat = lambda nm: nm + "#flat"  # noqa: E731
        out.append(Node(flat(hb), "reshape", (hb,), (n,), {}))
        total = np.eye(n)
        for g, p in spliced[node.name]:
            total = total - p
        acc = hb + "#keep"
        out.append(Node(acc, "linear", (flat(hb),), (n,), {"weight": torch.tensor(total, dtype=dt),
                                                          "bias": torch.zeros(n, dtype=dt)}))
        for g, p in spliced[node.name]:
            hs = f"s{g}/{node.name}"
            out.append(Node(flat(hs), "reshape", (hs,), (n,), {}))
            part = f"{hb}#from{g}"
            out.append(Node(part, "linear", (flat(hs),), (n,), {"weight": torch.tensor(p, dtype=dt),
                                                                "bias": torch.zeros(n, dtype=dt)}))
            nxt = f"{hb}#sum{g}"
            out.append(Node(nxt, "add", (acc, part), (n,), {}))
            acc = nxt
        out.append(Node("b/" + node.name, "reshape", (acc,), node.shape, {}))
    g64 = Graph(out, "b/" + src.output, getattr(graph, "source_path", None))
    g32 = Graph([nd.to(dtype=torch.float32) for nd in out], g64.output, g64.source_path)
    g32.exact = g64
    return g32


def certify(net, model: CausalModel, alignment: Alignment, groups, eps: float, inputs: dict | None = None,
            samples: int | None = None, seed: int = 0, method: str = "crown", batch_size: int = 4096,
            max_pairs: int = 200_000, deadline: float | None = None, arithmetic: str = "float32") -> FormalResult:
    """Prove, pair region by pair region, that the interchange output's argmax is the counterfactual label.

    ``arithmetic="float32"`` proves it for every float32 execution of the interchange network as well;
    ``"real"`` for the real-valued network only (``hdsl.ir.CheckOptions``).
    """
    import numpy as np
    import torch

    from hdsl.bounds import compute_bounds
    from hdsl.overflow import largest_values, limit_for

    groups = _check_groups(model, alignment, groups)
    limit = max_eps(model, alignment)
    if not 0 <= eps < limit:
        raise HdslError.single("C501", f"eps={eps:g} lets a causal input change value (codes are {2 * limit:g} "
                               f"apart in L-infinity)", alignment.span, f"use eps < {limit:g}")
    if not hasattr(net, "nodes"):
        raise HdslError.single("C502", "formal checks need a network imported as an hdsl graph (ONNX)",
                               alignment.span)
    t0 = time.perf_counter()
    inputs = inputs if inputs is not None else model.enumerate_inputs()
    n = len(next(iter(inputs.values())))
    k = len(groups)
    total = n ** (k + 1)
    if samples is None and total > max_pairs:
        raise HdslError.single("C503", f"a formal check over all {total:,} pair regions exceeds {max_pairs:,}",
                               alignment.span, "sample pairs instead (`samples N`)")
    x = encode_inputs(model, alignment, inputs)
    ic = Interchanger(net, alignment, x)
    sizes = ic.node_sizes
    sites_by_group = []
    for grp in groups:
        sites = []
        for var in grp:
            site = alignment.site_of(var)
            if site is not None:
                node = net.resolve(site.node)
                sites.append((node, projector(site, sizes[node])))
        sites_by_group.append(sites)
    ig = interchange_graph(net, sites_by_group)
    table = model.run(inputs)
    n_out = ic.out.shape[1]
    rng = np.random.default_rng(seed)
    count = total if samples is None else int(samples)
    proved = centre_ok = 0
    done = 0
    fails: list[tuple[int, ...]] = []
    xt = torch.from_numpy(x).double()
    for start in range(0, count, batch_size):
        if deadline is not None and time.monotonic() > deadline:
            if samples is None:
                raise HdslError.single("C504", f"timed out after {start:,} of {count:,} pair regions",
                                       alignment.span, "raise the timeout, or sample pairs (`samples N`)")
            break  # sampled: the regions checked so far are still a uniform sample
        m = min(batch_size, count - start)
        if samples is None:
            ks = np.arange(start, start + m, dtype=np.int64)
            cols = [ks // (n ** j) % n for j in range(k, -1, -1)]
        else:
            draw = rng.integers(0, n, size=(m, k + 1))
            cols = [draw[:, j] for j in range(k + 1)]
        b, srcs = cols[0], cols[1:]
        base_in = {v.name: inputs[v.name][b] for v in model.inputs}
        y = model.label(model.run(base_in, {var: table[var][s] for grp, s in zip(groups, srcs) for var in grp}))
        centre = torch.cat([xt[torch.from_numpy(c)] for c in cols], dim=1)
        with torch.no_grad():
            pred = ic.predict(torch.from_numpy(b), {var: torch.from_numpy(s) for grp, s in zip(groups, srcs)
                                                     for var in grp}).numpy()
        centre_ok += int((pred == y).sum())
        for i in np.flatnonzero(pred != y)[: max(0, 64 - len(fails))]:
            fails.append(tuple(int(c[i]) for c in cols) + (int(pred[i]),))
        if n_out == 1:
            C = torch.zeros(m, 1, 1, dtype=torch.float64)
            C[:, 0, 0] = torch.from_numpy(np.where(y == 1, 1.0, -1.0))
        else:
            C = torch.zeros(m, n_out - 1, n_out, dtype=torch.float64)
            for i, yi in enumerate(y):
                others = [j for j in range(n_out) if j != yi]
                C[i, torch.arange(n_out - 1), int(yi)] = 1.0
                C[i, torch.arange(n_out - 1), torch.tensor(others)] = -1.0
        lb, _ = compute_bounds(ig, centre - eps, centre + eps, C, method=method, need_upper=False,
                               device="cpu", arithmetic=arithmetic)
        ok = (lb > 0).all(dim=1) if n_out > 1 else lb[:, 0] > 0
        sizes, _ = largest_values(ig, centre - eps, centre + eps)
        ok &= sizes < limit_for(arithmetic)  # no proof where a value may overflow (hdsl.overflow)
        proved += int(ok.sum())
        done += m
    return FormalResult(groups, eps, method, done, proved, centre_ok, time.perf_counter() - t0, tuple(fails),
                        arithmetic)
