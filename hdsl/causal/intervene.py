"""Interchange interventions on an imported network graph, batched over pairs.

Works on anything with the graph interface of ``hdsl.nn``:
``forward(x, record=(names...), patch={name: fn}) -> (out, acts)`` where a patch
replaces a node's output by ``fn(original)`` and the rest of the graph runs on
it. No framework hooks: the same code serves every graph the importer reads.

Each input's activations at the aligned nodes are computed once and cached;
a batch of pairs then costs one patched forward pass on the bases (the splice
gathers source rows from the cache with pure tensor indexing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from hdsl.causal.alignment import Alignment, Site


class PatchableNet(Protocol):
    def forward(self, x, record: Sequence[str] = (), patch: dict | None = None): ...


def readout(out):
    """Class index from network outputs: argmax, or ``out > 0`` for a single logit."""
    flat = out.reshape(out.shape[0], -1)
    if flat.shape[1] == 1:
        return (flat[:, 0] > 0).long()
    return flat.argmax(dim=1)


@dataclass
class _SiteTensors:
    site: Site
    rows: object  # torch tensor [k, n] of the rotation's selected rows, or None


def forward(net, x, record=(), patch=None):
    """``(out, acts)`` from either graph flavour (``Graph.forward`` returns bare ``out`` without record/patch)."""
    res = net.forward(x, record=tuple(record), patch=patch or None)
    if isinstance(res, tuple):
        return res
    return res, {}


class _Suffix:
    """Run only the part of an ``hdsl.nn.Graph`` downstream of the patched nodes.

    Nodes that feed that part from outside (the *frontier*) and the patched nodes
    themselves are cached once per input; a batch of pairs then re-executes only
    the downstream nodes. Patched nodes downstream of other patched nodes are
    recomputed before their own splice, so any set of sites is handled.
    """

    def __init__(self, graph, sites: tuple[str, ...]):
        resolved = {graph.resolve(s) for s in sites}
        down: set[str] = set()
        self.steps: list[tuple[object, bool]] = []  # (node, computed?)
        for node in graph.nodes:
            feeds = any(i in down for i in node.inputs)
            if node.name in resolved or feeds:
                self.steps.append((node, feeds))
                down.add(node.name)
        cached = {n.name for n, computed in self.steps if not computed}
        for node, computed in self.steps:
            if computed:
                cached |= {i for i in node.inputs if i not in down}
        self.cached = tuple(sorted(cached))
        self.output = graph.output
        self.reaches_output = graph.output in down

    def run(self, cache: dict, base_idx, patches: dict):
        values = {}
        for node, computed in self.steps:
            if computed:
                v = node.apply([values[i] if i in values else cache[i][base_idx] for i in node.inputs])
            else:
                v = cache[node.name][base_idx]
            if node.name in patches:
                v = patches[node.name](v)
            values[node.name] = v
        return values[self.output] if self.reaches_output else None


class Interchanger:
    """Caches activations of a fixed input set and runs interchange interventions among them."""

    def __init__(self, net: PatchableNet, alignment: Alignment, x, batch_size: int = 16384):
        import torch

        self.net = net
        self.alignment = alignment
        self.batch_size = batch_size
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.nodes = tuple(dict.fromkeys(s.node for _, s in alignment.sites))
        self.suffix = None
        if self.nodes and hasattr(net, "nodes") and hasattr(net, "resolve"):
            self.nodes = tuple(dict.fromkeys(net.resolve(n) for n in self.nodes))
            self.suffix = _Suffix(net, self.nodes)
        record = tuple(dict.fromkeys(self.nodes + (self.suffix.cached if self.suffix else ())))
        with torch.no_grad():
            outs, acts = [], {n: [] for n in record}
            for i in range(0, len(self.x), batch_size):
                out, a = forward(net, self.x[i:i + batch_size], record=record)
                outs.append(out.reshape(out.shape[0], -1))
                for n in record:
                    acts[n].append(a[n])
        self.out = torch.cat(outs)
        self.pred = readout(self.out)
        self.cache = {n: torch.cat(v) for n, v in acts.items()}
        self.acts = {n: self.cache[n].reshape(len(self.x), -1) for n in self.nodes}
        self._sites: dict[str, _SiteTensors] = {}
        self._slices: dict = {}
        for var, site in alignment.sites:
            rows = None
            if site.rotation is not None:
                r = torch.tensor(site.rotation.matrix, dtype=torch.float32)
                rows = r[site.start:site.stop]
            node = net.resolve(site.node) if self.suffix is not None else site.node
            self._sites[var] = _SiteTensors(Site(node, site.start, site.stop, site.rotation, site.span), rows)

    @property
    def node_sizes(self) -> dict[str, int]:
        return {n: int(a.shape[1]) for n, a in self.acts.items()}

    def patches(self, sources: dict[str, object], inplace: bool = False) -> dict[str, Callable]:
        """Patch functions for ``{variable: source index tensor}`` (unaligned variables do nothing).

        Only the aligned units of each source are gathered; ``inplace`` lets the splice write
        into the node's value (safe when that value is a fresh gather, as in suffix runs).
        """
        by_node: dict[str, list[tuple[_SiteTensors, object]]] = {}
        for var, src_idx in sources.items():
            st = self._sites.get(var)
            if st is None:
                continue
            if st.rows is None:
                src = self._slice(st.site)[src_idx]
            else:
                src = self.acts[st.site.node][src_idx]
            by_node.setdefault(st.site.node, []).append((st, src))
        return {node: _splicer(items, inplace) for node, items in by_node.items()}

    def _slice(self, site: Site):
        key = (site.node, site.start, site.stop)
        if key not in self._slices:
            self._slices[key] = self.acts[site.node][:, site.start:site.stop].contiguous()
        return self._slices[key]

    def aligned(self, variables) -> bool:
        return any(v in self._sites for v in variables)

    def run(self, base_idx, sources: dict[str, object], extra: dict | None = None, full: bool = False):
        """Outputs [B, classes]: base rows ``base_idx``, each variable V spliced from rows ``sources[V]``.

        ``extra`` adds patches (e.g. a learned rotation); ``full`` forces a whole-graph forward pass.
        """
        fast = self.suffix is not None and not full
        patch = self.patches(sources, inplace=fast)
        if extra:
            patch.update(extra)
        if not patch:
            return self.out[base_idx]
        if fast and set(patch) <= set(self.nodes):
            out = self.suffix.run(self.cache, base_idx, patch)
            if out is None:
                return self.out[base_idx]
            return out.reshape(out.shape[0], -1)
        if fast:  # extra patches elsewhere: the splices must not write into shared values
            patch = {**self.patches(sources), **(extra or {})}
        out, _ = forward(self.net, self.x[base_idx], patch=patch)
        return out.reshape(out.shape[0], -1)

    def outcome_table(self, groups, limit: int):
        """Predictions for every class of equivalent (base, sources) tuples, or None when it would not pay.

        Two bases are equivalent when they agree exactly on everything the downstream part reads
        except the spliced units; two sources of a group when their spliced units are equal. Neuron
        splices copy values, so every tuple of a class reaches the downstream part with bit-identical
        activations and one forward pass per class is exact. (Rotated sites are not deduplicated:
        their splice is a float computation on the whole base vector.)
        Returns ``(base_class [n], [source_class [n] per group], table [nb, ns_1, ...])``.
        """
        import math

        import torch

        if self.suffix is None or not self.suffix.reaches_output:
            return None
        n = len(self.x)
        sites = [[self._sites[v] for v in grp if v in self._sites] for grp in groups]
        if any(st.rows is not None for grp in sites for st in grp):
            return None
        keys = []
        for name in self.suffix.cached:
            v = self.cache[name].reshape(n, -1)
            aligned = [st.site for grp in sites for st in grp if st.site.node == name]
            if aligned:
                v = v.clone()
                for site in aligned:
                    v[:, site.start:site.stop] = 0  # overwritten by the sources: not part of the base's class
            keys.append(v)
        _, base_cls = torch.unique(torch.cat(keys, 1), dim=0, return_inverse=True)
        src_cls = []
        for grp in sites:
            if not grp:
                src_cls.append(torch.zeros(n, dtype=torch.long))
                continue
            key = torch.cat([self._slice(st.site) for st in grp], 1)
            src_cls.append(torch.unique(key, dim=0, return_inverse=True)[1])
        sizes = [int(base_cls.max()) + 1] + [int(c.max()) + 1 for c in src_cls]
        total = math.prod(sizes)
        if total > limit:
            return None

        def reps(cls, m):
            r = torch.empty(m, dtype=torch.long)
            r.scatter_(0, cls, torch.arange(n))
            return r

        rep_b = reps(base_cls, sizes[0])
        rep_s = [reps(c, m) for c, m in zip(src_cls, sizes[1:])]
        table = torch.empty(total, dtype=torch.long)
        for start in range(0, total, self.batch_size):
            ks = torch.arange(start, min(start + self.batch_size, total))
            cols, rest = [], ks
            for m in reversed(sizes):
                cols.append(rest % m)
                rest = rest // m
            cols.reverse()
            sources = {v: rep_s[g][cols[g + 1]] for g, grp in enumerate(groups) for v in grp}
            table[ks] = self.predict(rep_b[cols[0]], sources)
        return base_cls, src_cls, table.reshape(sizes)

    def predict(self, base_idx, sources: dict[str, object], full: bool = False):
        import torch

        with torch.no_grad():
            if not self.aligned(sources):
                return self.pred[base_idx]
            return readout(self.run(base_idx, sources, full=full))


def _splicer(items, inplace: bool = False):
    """h' = h + sum_V P_V (s_V - h): neuron ranges are copied, rotated ranges added as projections."""

    def fn(orig):
        shape = orig.shape
        h = orig.reshape(shape[0], -1)
        out = h if inplace and all(st.rows is None for st, _ in items) else h.clone()
        for st, src in items:
            site = st.site
            if st.rows is None:
                out[:, site.start:site.stop] = src
            else:
                rows = st.rows.to(h.dtype)
                out = out + ((src - h) @ rows.T) @ rows
        return out.reshape(shape)

    return fn
