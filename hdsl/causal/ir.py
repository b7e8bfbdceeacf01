"""IR nodes of the causal-alignment feature (re-exported at the end of ``hdsl.ir``).

Light on purpose: no torch, no planner import. The causal model and the
alignment are the frozen dataclasses of ``hdsl.causal.model`` and
``hdsl.causal.alignment``; an ``IIA`` item is one interchange experiment of a
``check`` (one intervention set), measured by ``hdsl.causal.handler``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdsl.causal.alignment import Alignment
from hdsl.causal.model import CausalModel
from hdsl.check_options import CheckOptions
from hdsl.source import Span


@dataclass(frozen=True, slots=True, repr=False)
class IIA:
    """``iia(net, model, alignment, over ..., intervene ...) CMP threshold [with confidence c samples n seed s]``.

    ``groups``: each group of variables takes its values from one source (several groups:
    multi-source). ``rows``: the input settings pairs are drawn from (None: the whole domain).
    ``samples=None``: every tuple is enumerated (exact); else uniform sampling with ``seed``.
    ``eps`` set: a formal check over L-infinity pair regions of that radius instead of a measurement.
    """

    id: str
    property: str
    network: object  # hdsl.ir.Network
    model: CausalModel
    alignment: Alignment
    groups: tuple[tuple[str, ...], ...]
    rows: tuple[tuple[int, ...], ...] | None = None
    data: str | None = None  # name of the data set the rows came from, for reports
    samples: int | None = None
    seed: int = 0
    threshold: float | None = None
    comparison: str = ">="
    confidence: float = 0.95
    metric: str = "all"  # "all" | "effective" (pairs whose counterfactual label changes)
    eps: float | None = None
    span: Span | None = field(default=None, compare=False, repr=False)
    options: CheckOptions = CheckOptions()  # the check statement's: budget; arithmetic of a formal check

    def ignored_options(self) -> dict[str, str]:
        """Check options this item cannot honour, each with the reason (the checker warns)."""
        out = {"backend": "formal interchange checks use bound propagation; measurements run the network"}
        if self.eps is None:
            out["arithmetic"] = ("a measurement runs the float32 network; arithmetic applies to formal checks "
                                 "(linf(EPS))")
        return out

    def __repr__(self) -> str:
        """One line for ``hdsl ir``: what is measured, over what, and how."""
        sets = ", ".join("{" + ", ".join(g) + "}" for g in self.groups)
        inter = f"[{sets}]" if len(self.groups) > 1 else sets
        over = self.data or "all"
        extra = f", metric {self.metric}" if self.metric != "all" else ""
        extra += f", linf({self.eps:g})" if self.eps is not None else ""
        how = "exhaustive" if self.samples is None else \
            f"samples {self.samples} seed {self.seed} confidence {self.confidence:g}"
        sites = "; ".join(f"{v} -> {s.show()}" for v, s in self.alignment.sites) or "(empty)"
        net = getattr(self.network, "name", "?")
        return (f"IIA {self.id}: iia({net}, {self.model.name}, {self.alignment.name}, over {over}, intervene "
                f"{inter}{extra}) {self.comparison} {self.threshold:g} [{how}]; alignment {sites}")
