"""Alignments: which low-level units carry each high-level variable.

The map family is pinned on purpose (see the notes on "any network abstracts
any algorithm" with unrestricted maps): a variable is aligned either to a range
of neurons of one graph node (flattened per sample), or to a range of
coordinates of a *given* orthogonal rotation of that node. The splice for a set
of variables, each with its own source, is

    h' = h_b + sum_V P_V (h_{s_V} - h_b),   P_V = R_V^T D_V R_V

(``R_V = I`` for neuron ranges), exactly the note's definition.

How the causal model's inputs become the network's input is part of the
alignment too (``InputEncoding``): a one-hot block, the value itself, or rows
of an embedding table, concatenated in the model's input order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdsl.causal.model import CausalModel
from hdsl.diagnostics import HdslError
from hdsl.source import Span


@dataclass(frozen=True, slots=True)
class Rotation:
    """A fixed orthogonal matrix (rows are the rotated basis) loaded from a file or given inline."""

    matrix: tuple[tuple[float, ...], ...]
    source: str = ""  # file it came from, for reports

    @property
    def dim(self) -> int:
        return len(self.matrix)


@dataclass(frozen=True, slots=True)
class Site:
    """Neurons ``[start, stop)`` of node ``node`` (or of its rotated coordinates when ``rotation``)."""

    node: str
    start: int
    stop: int
    rotation: Rotation | None = None
    span: Span | None = field(default=None, compare=False, repr=False)

    @property
    def width(self) -> int:
        return self.stop - self.start

    def show(self) -> str:
        rot = f" rotated({self.rotation.source or 'inline'})" if self.rotation else ""
        return f'"{self.node}"{rot}[{self.start}:{self.stop}]'


@dataclass(frozen=True, slots=True)
class InputEncoding:
    """How one causal input becomes network input features."""

    var: str
    kind: str = "onehot"  # "onehot" | "value" | "table"
    table: tuple[tuple[float, ...], ...] = ()  # rows indexed by class index, for "table"

    def width(self, size: int) -> int:
        if self.kind == "onehot":
            return size
        if self.kind == "value":
            return 1
        return len(self.table[0])


@dataclass(frozen=True, slots=True)
class Alignment:
    name: str
    model: str
    network: str
    sites: tuple[tuple[str, Site], ...]  # (variable, site); a variable may be left unaligned (null)
    encodings: tuple[InputEncoding, ...] = ()  # one per model input; default one-hot
    span: Span | None = field(default=None, compare=False, repr=False)

    def site_of(self, var: str) -> Site | None:
        for v, s in self.sites:
            if v == var:
                return s
        return None

    def encoding_of(self, var: str) -> InputEncoding:
        for e in self.encodings:
            if e.var == var:
                return e
        return InputEncoding(var)


def check_alignment(alignment: Alignment, model: CausalModel, node_sizes: dict[str, int] | None = None) -> None:
    """Variables exist and are not inputs, sites are in range, rotations are orthogonal."""
    import numpy as np

    names = set(model.names)
    inputs = {v.name for v in model.inputs}
    for var, site in alignment.sites:
        if var not in names:
            raise HdslError.single("C201", f"alignment {alignment.name!r}: {var!r} is not a variable of "
                                   f"causal model {model.name!r}", site.span, "variables: " + ", ".join(model.names))
        if site.start < 0 or site.stop <= site.start:
            raise HdslError.single("C202", f"empty or negative neuron range [{site.start}:{site.stop}] for {var}",
                                   site.span)
        if node_sizes is not None:
            if site.node not in node_sizes:
                near = ", ".join(sorted(node_sizes)[:20])
                raise HdslError.single("C203", f"alignment {alignment.name!r}: the network has no node "
                                       f"{site.node!r}", site.span, f"nodes: {near}")
            size = node_sizes[site.node]
            if site.stop > size:
                raise HdslError.single("C204", f"range [{site.start}:{site.stop}] of {var} exceeds node "
                                       f"{site.node!r}'s {size} neurons", site.span)
        if site.rotation is not None:
            r = np.asarray(site.rotation.matrix, dtype=np.float64)
            if r.ndim != 2 or r.shape[0] != r.shape[1]:
                raise HdslError.single("C205", f"rotation for {var} is not square: shape {r.shape}", site.span)
            err = float(np.abs(r.T @ r - np.eye(r.shape[0])).max())
            if err > 1e-5:
                raise HdslError.single("C206", f"rotation for {var} is not orthogonal (max |R^T R - I| = "
                                       f"{err:.2e} > 1e-5)", site.span,
                                       "learn it with `hdsl causal das`, or orthogonalise it (QR)")
            if node_sizes is not None and site.node in node_sizes and r.shape[0] != node_sizes[site.node]:
                raise HdslError.single("C207", f"rotation for {var} is {r.shape[0]}x{r.shape[0]} but node "
                                       f"{site.node!r} has {node_sizes[site.node]} neurons", site.span)
            if site.stop > r.shape[0]:
                raise HdslError.single("C204", f"range [{site.start}:{site.stop}] of {var} exceeds the "
                                       f"rotation's {r.shape[0]} coordinates", site.span)
        if var in inputs and site.node == "":
            raise HdslError.single("C208", f"input {var!r} needs a network node", site.span)
    for e in alignment.encodings:
        if e.var not in inputs:
            raise HdslError.single("C209", f"encoding for {e.var!r}, which is not an input of {model.name!r}",
                                   alignment.span)
        if e.kind == "table":
            size = model.var(e.var).type.size
            if len(e.table) != size or len({len(r) for r in e.table}) != 1:
                raise HdslError.single("C210", f"embedding table of {e.var} must have {size} rows of equal width",
                                       alignment.span)


def check_disjoint(alignment: Alignment, variables: tuple[str, ...]) -> None:
    """Variables intervened together must own disjoint units (else the splice is ambiguous)."""
    sites = [(v, alignment.site_of(v)) for v in variables if alignment.site_of(v) is not None]
    for i, (var, site) in enumerate(sites):
        for other, earlier in sites[:i]:
            if earlier.node == site.node and _overlap(site, earlier, var, other):
                raise HdslError.single("C211", f"{var} and {other} are aligned to overlapping units of "
                                       f"{site.node!r}; an intervention on both is ambiguous", site.span,
                                       "give each variable its own neurons (or coordinates of one rotation)")


def _overlap(a: Site, b: Site, var: str, other: str) -> bool:
    """Whether two sites of one node share a direction. Plain ranges intersect as intervals (no
    dense projector: a range is only checked against the node's width once the network runs);
    with a rotation, the projectors P_a P_b are compared in the rotation's coordinates."""
    import numpy as np

    if a.rotation is None and b.rotation is None:
        return max(a.start, b.start) < min(a.stop, b.stop)
    n = (a.rotation or b.rotation).dim
    for name, site in ((var, a), (other, b)):
        if site.stop > n:
            raise HdslError.single("C204", f"range [{site.start}:{site.stop}] of {name} exceeds the {n} "
                                   f"units of {site.node!r} (the size of its rotation)", site.span)
    return float(np.abs(projector(a, n) @ projector(b, n)).max()) > 1e-6


def projector(site: Site, size: int | None = None):
    """The projection P = R^T D R onto a site's units (numpy, float64)."""
    import numpy as np

    if site.rotation is None:
        n = size or site.stop
        p = np.zeros((n, n))
        p[np.arange(site.start, site.stop), np.arange(site.start, site.stop)] = 1.0
        return p
    r = np.asarray(site.rotation.matrix, dtype=np.float64)
    rows = r[site.start:site.stop]
    return rows.T @ rows


def encode_inputs(model: CausalModel, alignment: Alignment, values: dict):
    """Network inputs (float32 numpy [n, d]) for causal input settings ``values``."""
    import numpy as np

    blocks = []
    for v in model.inputs:
        enc = alignment.encoding_of(v.name)
        idx = np.asarray(values[v.name], dtype=np.int64) - v.type.lo
        if enc.kind == "onehot":
            blocks.append(np.eye(v.type.size, dtype=np.float32)[idx])
        elif enc.kind == "value":
            blocks.append((idx + v.type.lo).astype(np.float32)[:, None])
        else:
            blocks.append(np.asarray(enc.table, dtype=np.float32)[idx])
    return np.concatenate(blocks, axis=1)


def encoded_width(model: CausalModel, alignment: Alignment) -> int:
    return sum(alignment.encoding_of(v.name).width(v.type.size) for v in model.inputs)
