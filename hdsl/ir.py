"""The intermediate representation: frozen, slotted dataclasses.

This module is the contract between the front end (parser, checker, lowering)
and the backends. It imports neither Lark nor torch. Spans are kept out of
equality and repr (``field(compare=False, repr=False)``) so golden tests and
hashing ignore layout.

Conventions
-----------
* Outputs are referred to by index ``y_i`` into the network's flattened output.
* ``OutputSpec`` describes the **unsafe** outputs, as VNN-LIB does: an OR of
  ANDs of linear constraints. A query is *proved* only when every disjunct is
  shown infeasible over the input region; it is *falsified* by an input whose
  outputs satisfy some disjunct.
* Tie semantics: ``argmax f(x) in S`` holds iff ``max_{j in S} y_j`` is strictly
  greater than every ``y_k`` with ``k`` outside ``S``; its unsafe set is
  ``OR_{k not in S} AND_{j in S} (y_k - y_j >= 0)`` (non-strict), so a tie is unsafe.
* Input regions live in the network's *raw* input space (before the
  normalisation declared on the model); backends fold the normalisation in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from hdsl.source import Span

# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class LinearExpr:
    """``sum(c * y[i] for i, c in terms) + const``."""

    terms: tuple[tuple[int, float], ...]
    const: float = 0.0

    def evaluate(self, y) -> float:
        return float(sum(c * float(y[i]) for i, c in self.terms) + self.const)


@dataclass(frozen=True, slots=True)
class Constraint:
    """``expr >= 0`` (or ``expr > 0`` when ``strict``)."""

    expr: LinearExpr
    strict: bool = False

    def holds(self, y) -> bool:
        v = self.expr.evaluate(y)
        return v > 0 if self.strict else v >= 0


@dataclass(frozen=True, slots=True)
class Conjunction:
    constraints: tuple[Constraint, ...]

    def holds(self, y) -> bool:
        return all(c.holds(y) for c in self.constraints)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """The unsafe output set: ``OR`` over ``unsafe`` of ``AND`` over each conjunction.

    An empty ``unsafe`` tuple means nothing is unsafe (the property is trivially true).
    """

    unsafe: tuple[Conjunction, ...]

    def violated_by(self, y) -> bool:
        return any(c.holds(y) for c in self.unsafe)

    def margin(self, y) -> float:
        """Signed safety margin of a concrete output: > 0 safe, <= 0 unsafe.

        For each disjunct, the margin is ``-min_c expr_c(y)`` (it is unsafe iff
        every constraint is >= 0); the spec's margin is the minimum over disjuncts.
        """
        if not self.unsafe:
            return float("inf")
        return min(-min(c.expr.evaluate(y) for c in conj.constraints) for conj in self.unsafe)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Dataset:
    """A data source: ``indices`` are the selected rows after slicing/``take``."""

    name: str
    path: str
    format: str  # "npz" | "npy" | "csv"
    indices: tuple[int, ...] | None = None
    options: tuple[tuple[str, str], ...] = ()  # format options, e.g. (("label_column", "0"),)
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DataPoint:
    """Row ``index`` (position within the dataset's selection) of a dataset."""

    data: Dataset
    index: int


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box, flattened in the network input's memory order."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class LinfBall:
    """``{x : ||x - center||_inf <= eps} ∩ [lo, hi]^n`` (domain from the model's input range)."""

    center: DataPoint
    eps: float
    domain: tuple[float, float]


@dataclass(frozen=True, slots=True)
class UnionRegion:
    """A union of regions (e.g. ACAS Xu property 6): proved iff proved on every part."""

    parts: tuple["Region", ...]


Region = Union[Box, LinfBall, UnionRegion]

# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    path: str
    input_shape: tuple[int, ...]  # without the batch dimension
    input_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None
    num_outputs: int | None = None
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class HierarchyNode:
    """An internal node; children are nodes or class names (leaves)."""

    name: str
    children: tuple[Union["HierarchyNode", str], ...]


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """A tree over ``classes`` (in output order). Level = depth; the root is level 0."""

    name: str
    classes: tuple[str, ...]
    root: HierarchyNode
    span: Span | None = field(default=None, compare=False, repr=False)

    def leaves(self, node: HierarchyNode | str) -> tuple[str, ...]:
        if isinstance(node, str):
            return (node,)
        out: list[str] = []
        for child in node.children:
            out.extend(self.leaves(child))
        return tuple(out)

    def path_to(self, cls: str) -> tuple[HierarchyNode | str, ...]:
        """Nodes from the root down to the leaf ``cls`` (inclusive)."""

        def walk(node, trail):
            if isinstance(node, str):
                return trail + (node,) if node == cls else None
            for child in node.children:
                found = walk(child, trail + (node,))
                if found:
                    return found
            return None

        found = walk(self.root, ())
        if found is None:
            raise KeyError(cls)
        return found

    def ancestor(self, cls: str, level: int) -> HierarchyNode | str:
        """The ancestor of ``cls`` at depth ``level`` (``cls`` itself when it is shallower)."""
        path = self.path_to(cls)
        return path[min(level, len(path) - 1)]

    def depth(self) -> int:
        """Depth of the deepest leaf."""

        def d(node) -> int:
            return 0 if isinstance(node, str) else 1 + max(d(c) for c in node.children)

        return d(self.root)

    def class_indices(self, node: HierarchyNode | str) -> tuple[int, ...]:
        index = {c: i for i, c in enumerate(self.classes)}
        return tuple(sorted(index[c] for c in self.leaves(node)))


# --------------------------------------------------------------------------- queries


# ``CheckOptions`` lives in ``hdsl.check_options`` so that the feature IRs (``hdsl.xai.ir``,
# ``hdsl.causal.ir``), which this module re-exports, can carry it without a circular import.
from hdsl.check_options import ARITHMETICS, CheckOptions, options_of  # noqa: E402,F401


@dataclass(frozen=True, slots=True)
class Query:
    """Decide ``forall x in region: outputs(network(x)) not in spec.unsafe``.

    ``property``, ``index``, ``label``, ``level`` and ``eps`` say where the query came
    from, for reports; they do not change its meaning.
    """

    id: str
    network: Network
    region: Region
    spec: OutputSpec
    property: str
    options: CheckOptions = CheckOptions()
    index: int | None = None
    label: int | None = None
    level: int | None = None
    eps: float | None = None
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Check:
    """One ``check`` statement: the items it needs decided or measured."""

    property: str
    items: tuple[object, ...]  # Query, or a measurement node added by a feature module
    options: CheckOptions = CheckOptions()
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Program:
    networks: tuple[Network, ...] = ()
    datasets: tuple[Dataset, ...] = ()
    hierarchies: tuple[Hierarchy, ...] = ()
    checks: tuple[Check, ...] = ()


# --------------------------------------------------------------------------- causal alignment
# Defined in hdsl.causal.ir (no torch); re-exported here as part of the IR contract.
from hdsl.causal.ir import IIA  # noqa: E402,F401

# --------------------------------------------------------------------------- XAI faithfulness and sufficiency
# Defined in hdsl.xai.ir (no torch); re-exported here as part of the IR contract.
from hdsl.xai.ir import ExplainerComparison, ExplainerSpec, Faithfulness, RemovalSpec, Sufficiency  # noqa: E402,F401
