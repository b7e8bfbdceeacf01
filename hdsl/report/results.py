"""Summaries of check results shared by the table, JSON and JUnit renderers."""

from __future__ import annotations

from dataclasses import dataclass, field

from hdsl.check_options import arithmetic_of
from hdsl.results import MeasurementResult, Result, Status, Verdict

OUTCOMES = ("proved", "falsified", "unknown", "timeout", "error", "pass", "fail", "inconclusive")


def outcome(r: Result | MeasurementResult) -> str:
    return r.verdict.value if isinstance(r, Result) else r.status.value


def item_id(r: Result | MeasurementResult) -> str:
    return r.query_id if isinstance(r, Result) else r.item_id


@dataclass
class PropertySummary:
    """Verdict counts, worst margin and time of one checked property."""

    name: str
    results: list = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[outcome(r)] = out.get(outcome(r), 0) + 1
        return {k: out[k] for k in OUTCOMES if k in out}

    @property
    def worst_margin(self) -> float | None:
        margins = [r.margin for r in self.results if isinstance(r, Result) and r.margin is not None]
        return min(margins) if margins else None

    @property
    def time_s(self) -> float:
        return sum(r.time_s for r in self.results)

    @property
    def status(self) -> str:
        """falsified > undecided > proved (a property with no items is 'empty')."""
        kinds = {outcome(r) for r in self.results}
        if not kinds:
            return "empty"
        if kinds & {"falsified", "fail"}:
            return "falsified"
        if kinds <= {"proved", "pass"}:
            return "proved"
        return "undecided"


def summarise(results: list[tuple[str, Result | MeasurementResult]],
              properties: tuple[str, ...] = ()) -> list[PropertySummary]:
    """Group ``(property, result)`` pairs by property, in first-seen order. Every name in
    ``properties`` gets a summary, so a check that expanded to no items (a data selection of no
    rows) shows as 'empty' instead of vanishing from the report."""
    by_name: dict[str, PropertySummary] = {name: PropertySummary(name) for name in properties}
    for prop, r in results:
        by_name.setdefault(prop, PropertySummary(prop)).results.append(r)
    return list(by_name.values())


def exit_code(results: list[Result | MeasurementResult]) -> int:
    """0 all proved/passed; 1 something falsified/failed; 2 otherwise undecided (see hdsl.cli)."""
    if any((isinstance(r, Result) and r.verdict is Verdict.FALSIFIED) or
           (isinstance(r, MeasurementResult) and r.status is Status.FAIL) for r in results):
        return 1
    if all((isinstance(r, Result) and r.verdict is Verdict.PROVED) or
           (isinstance(r, MeasurementResult) and r.status is Status.PASS) for r in results):
        return 0
    return 2


def _class_name(net, i: int) -> str:
    return net.classes[i] if net.classes and 0 <= i < len(net.classes) else str(i)


def predicted_class(r, query) -> str:
    """For a confirmed counterexample: the class the model predicts there (and the label), in words."""
    ce = getattr(r, "counterexample", None)
    if ce is None or query is None or not ce.y or getattr(query, "network", None) is None:
        return ""
    net = query.network
    top = max(range(len(ce.y)), key=lambda i: ce.y[i])
    text = f"the model predicts {_class_name(net, top)}"
    if query.label is not None:
        text += f" (label {_class_name(net, query.label)})"
    return text


def query_meta(query) -> dict:
    """Where a query came from (property, data point, label, level, eps), for reports."""
    if query is None or not hasattr(query, "property"):
        return {}
    meta = {"property": query.property}
    for key in ("index", "label", "level", "eps"):
        value = getattr(query, key, None)
        if value is not None:
            meta[key] = value
    if getattr(query, "label", None) is not None and query.network.classes:
        meta["label_name"] = _class_name(query.network, query.label)
    arithmetic = arithmetic_of(query)
    if arithmetic is not None:
        meta["arithmetic"] = arithmetic  # what "proved" covers (hdsl.ir.CheckOptions)
    return meta
