"""IR nodes of the XAI feature (re-exported at the end of ``hdsl.ir``).

Light on purpose: no torch, no planner import. Items are measured or decided
by ``hdsl.xai.handler`` (registered with the planner).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdsl.check_options import CheckOptions
from hdsl.source import Span


def _measurement_ignores(self) -> dict[str, str]:
    """Check options a measurement cannot honour, each with the reason (the checker warns)."""
    return dict.fromkeys(("timeout", "backend", "arithmetic"),
                         "a faithfulness measurement runs to completion on the float32 model")


@dataclass(frozen=True, slots=True)
class ExplainerSpec:
    """``explainer NAME = method(net, key value, ...)``."""

    name: str
    method: str
    network: str
    params: tuple[tuple[str, object], ...] = ()
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RemovalSpec:
    """A removal baseline by name with its arguments, e.g. ``("blur", (2.0,))`` or ``("learned", ("inp.pt",))``."""

    kind: str
    args: tuple[object, ...] = ()

    @property
    def label(self) -> str:
        if not self.args:
            return self.kind
        shown = [a if isinstance(a, str) and self.kind != "learned" else
                 (a.rsplit("/", 1)[-1] if isinstance(a, str) else f"{a:g}") for a in self.args]
        return f"{self.kind}({', '.join(shown)})"


@dataclass(frozen=True, slots=True)
class MetricOptions:
    metric: str = "deletion_auc"
    steps: int = 16
    granularity: str = "pixel"  # pixel | patch | channel
    patch: int = 1
    score: str = "softmax"  # softmax | logit
    target: str = "predicted"  # predicted | label
    runs: int = 100  # faithfulness_corr subsets
    subset: float = 0.1  # faithfulness_corr subset size, a fraction of the features


@dataclass(frozen=True, slots=True)
class Faithfulness:
    """``faithfulness(net, E, DATA, metric M, removal R) CMP t with confidence c``: a bootstrap decision."""

    id: str
    property: str
    network: object  # hdsl.ir.Network
    explainer: ExplainerSpec
    data: object  # hdsl.ir.Dataset
    removal: RemovalSpec
    options: MetricOptions = MetricOptions()
    threshold: float | None = None
    comparison: str = "<="
    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 0
    span: Span | None = field(default=None, compare=False, repr=False)

    ignored_options = _measurement_ignores


@dataclass(frozen=True, slots=True)
class ExplainerComparison:
    """``faithfulness(net, {E1, E2, ...}, DATA, metric M, removal {R1, R2, ...})``: rank the explainers
    under every removal baseline and report whether the ranking changes."""

    id: str
    property: str
    network: object
    explainers: tuple[ExplainerSpec, ...]
    data: object
    removals: tuple[RemovalSpec, ...]
    options: MetricOptions = MetricOptions()
    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 0
    span: Span | None = field(default=None, compare=False, repr=False)

    ignored_options = _measurement_ignores


@dataclass(frozen=True, slots=True)
class Sufficiency:
    """``sufficient(net, DATA, top k of E [, linf(eps)] [, patch(p)])`` for one data row.

    ``k=None`` searches the smallest sufficient k. Free features range over the
    model's input range, or over ``[x - eps, x + eps]`` intersected with it.
    """

    id: str
    property: str
    network: object
    explainer: ExplainerSpec
    data: object
    index: int
    k: int | None = None
    eps: float | None = None
    granularity: str = "pixel"
    patch: int = 1
    target: str = "predicted"
    timeout: float | None = None  # per query (per k); None: 10 s, within the item's budget
    span: Span | None = field(default=None, compare=False, repr=False)
    options: CheckOptions = field(default=CheckOptions(), repr=False)  # the check's: budget, backend, arithmetic
