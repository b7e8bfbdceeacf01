"""The ``--json`` document of ``hdsl check`` (stable keys; one entry per item)."""

from __future__ import annotations

import math

from hdsl import __version__
from hdsl.report.results import PropertySummary, item_id, predicted_class, query_meta


def _finite(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _finite(obj)


def check_document(spec_path: str, summaries: list[PropertySummary], diagnostics, exit_code: int,
                   items: dict | None = None) -> dict:
    """The whole run; ``items`` (id -> IR item) adds where each query came from and, for a
    counterexample, the class the model predicts there."""
    items = items or {}
    totals: dict[str, int] = {}
    for s in summaries:
        for k, n in s.counts.items():
            totals[k] = totals.get(k, 0) + n
    return _clean({
        "hdsl": __version__,
        "spec": spec_path,
        "exit_code": exit_code,
        "summary": totals,
        "properties": [
            {"name": s.name, "status": s.status, "counts": s.counts, "worst_margin": s.worst_margin,
             "time_s": round(s.time_s, 6), "items": [_item(r, items) for r in s.results]}
            for s in summaries
        ],
        "diagnostics": [d.to_json() for d in diagnostics],
    })


def _item(r, items: dict) -> dict:
    doc = r.to_json()
    query = items.get(item_id(r))
    doc.update(query_meta(query))
    seen = predicted_class(r, query)
    if seen:
        doc["explanation"] = seen
    return doc
