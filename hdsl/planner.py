"""The planner: which backend decides which item, within which budget.

``run_item(item, budget)`` dispatches on the item's type through ``HANDLERS``
(feature modules add theirs with ``register_handler(Type, fn)``); a ``Query``
goes to ``solve_query``, which runs ``query.options.backend`` or, for
``"auto"``, the backends of ``PORTFOLIO`` in order until one proves or
falsifies it (later backends may refine an ``unknown``). Every exception in a
backend becomes ``Result(ERROR)`` with its message, and a spent budget
becomes ``TIMEOUT``; nothing escapes as a traceback.

``solve_queries`` batches many queries through backends that offer
``run_batch`` (the bounds backend decides all queries on one network in one
batch), then finishes the undecided ones query by query.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from hdsl import backends
from hdsl.backends import Budget
from hdsl.ir import Query
from hdsl.results import MeasurementResult, Result, Verdict

AnyResult = Result | MeasurementResult

# "auto" portfolio, in order. Other modules extend it (e.g. branch and bound, then Z3) with
# ``add_to_portfolio``; names must be registered in ``hdsl.backends.REGISTRY``.
PORTFOLIO: list[str] = ["bounds"]

HANDLERS: dict[type, Callable[[Any, Budget], AnyResult]] = {}

# Fraction of the time left that a portfolio backend may use when later backends follow it.
SHARE: dict[str, float] = {}


def register_handler(item_type: type, fn: Callable[[Any, Budget], AnyResult]) -> None:
    """Decide/measure items of ``item_type`` with ``fn(item, budget)``."""
    HANDLERS[item_type] = fn


def add_to_portfolio(name: str, after: str | None = None) -> None:
    """Insert backend ``name`` into the auto portfolio (after ``after``, else at the end); idempotent."""
    if name in PORTFOLIO:
        return
    if after is not None and after in PORTFOLIO:
        PORTFOLIO.insert(PORTFOLIO.index(after) + 1, name)
    else:
        PORTFOLIO.append(name)


def as_budget(budget: Budget | float | None) -> Budget:
    return budget if isinstance(budget, Budget) else Budget.seconds(budget)


def run_item(item: Any, budget: Budget | float | None = None) -> AnyResult:
    """Decide or measure one item."""
    if isinstance(item, Query) and budget is None:
        budget = item.options.timeout
    budget = as_budget(budget)
    for cls in type(item).__mro__:
        if cls in HANDLERS:
            return HANDLERS[cls](item, budget)
    raise TypeError(f"no handler for {type(item).__name__}; register one with hdsl.planner.register_handler")


def _error(query: Query, backend: str, message: str, t0: float) -> Result:
    return Result(query.id, Verdict.ERROR, backend, "", None, None, time.monotonic() - t0, message)


def _run_backend(name: str, query: Query, budget: Budget) -> Result:
    t0 = time.monotonic()
    if name not in backends.REGISTRY:
        return _error(query, name, f"unknown backend {name!r}; registered: {', '.join(backends.REGISTRY)}", t0)
    try:
        if not backends.available(name):
            return _error(query, name, f"backend {name!r} is not available (missing modules)", t0)
        be = backends.get(name)
        if not be.supports(query):
            return Result(query.id, Verdict.UNKNOWN, name, "", None, None, time.monotonic() - t0,
                          f"backend {name!r} does not support this query")
        result = be.run(query, budget)
    except Exception as exc:  # noqa: BLE001 - a backend failure is a result, not a crash
        return _error(query, name, _describe(exc), t0)
    if result.verdict in (Verdict.UNKNOWN,) and budget.expired():
        result = _with(result, verdict=Verdict.TIMEOUT, message=result.message or "the time budget ran out")
    return result


def _describe(exc: Exception) -> str:
    """A backend's exception as a result message. A diagnostic (a bad file met while solving) and
    running out of memory are the user's to act on; anything else is a bug in hdsl, and says so:
    the message starts with "internal error", which makes ``hdsl check`` exit 4."""
    from hdsl.diagnostics import HdslError

    if isinstance(exc, HdslError):
        return "; ".join(d.render() for d in exc.diagnostics)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory: {type(exc).__name__}: {exc}"
    return f"internal error: {type(exc).__name__}: {exc}"


def _with(result: Result, **changes) -> Result:
    import dataclasses

    return dataclasses.replace(result, **changes)


def _better(a: Result | None, b: Result) -> Result:
    """Keep the more informative undecided result (unknown with a margin beats timeout/error)."""
    if a is None:
        return b
    rank = {Verdict.UNKNOWN: 2, Verdict.TIMEOUT: 1, Verdict.ERROR: 0}
    if rank.get(b.verdict, 0) != rank.get(a.verdict, 0):
        return b if rank.get(b.verdict, 0) > rank.get(a.verdict, 0) else a
    am = a.margin if a.margin is not None else -math.inf
    bm = b.margin if b.margin is not None else -math.inf
    return b if bm > am else a


def guard_overflow(solve: Callable[..., Result]) -> Callable[..., Result]:
    """``solve`` whose proofs are dropped where the query's region may overflow (``hdsl.overflow``)."""
    import functools

    @functools.wraps(solve)
    def guarded(query: Query, budget: Budget | float | None = None) -> Result:
        from hdsl.overflow import without_overflowing_proofs

        return without_overflowing_proofs(solve(query, budget), query)

    return guarded


@guard_overflow
def solve_query(query: Query, budget: Budget | float | None = None) -> Result:
    """Decide one query with its chosen backend or the auto portfolio."""
    t0 = time.monotonic()
    budget = as_budget(query.options.timeout if budget is None else budget)
    name = query.options.backend or "auto"
    if name != "auto":
        r = _run_backend(name, query, budget)
        return _with(r, time_s=time.monotonic() - t0)
    return _portfolio(query, budget, PORTFOLIO, None, t0)


def _portfolio(query: Query, budget: Budget, names: list[str], best: Result | None, t0: float) -> Result:
    tried = []
    undecided = [best] if best is not None else []
    for name in names:
        if budget.expired():
            break
        if name not in backends.REGISTRY or not backends.available(name):
            continue
        tried.append(name)
        sub = budget
        if name in SHARE and name != names[-1]:
            sub = Budget(min(budget.deadline, time.monotonic() + SHARE[name] * budget.left()))
        r = _run_backend(name, query, sub)
        if r.verdict in (Verdict.PROVED, Verdict.FALSIFIED):
            return _with(r, time_s=time.monotonic() - t0)
        best = _better(best, r)
        undecided.append(r)
    if best is None:
        msg = "the time budget ran out" if budget.expired() else "no backend is available for this query"
        return Result(query.id, Verdict.TIMEOUT if budget.expired() else Verdict.ERROR, "", "", None, None,
                      time.monotonic() - t0, msg)
    message = _also(best, undecided)
    if budget.expired() and best.verdict is Verdict.UNKNOWN:
        best = _with(best, verdict=Verdict.TIMEOUT)
    return _with(best, time_s=time.monotonic() - t0, message=message,
                 stats=best.stats + (("backends_tried", float(len(tried))),))


def _also(best: Result, undecided: list[Result]) -> str:
    """The reported message, followed by what the other undecided stages found (why a search stayed open)."""
    extra = [f"{r.backend}: {r.message}" for r in undecided if r is not best and r.message and r.backend]
    return "; ".join([best.message, *extra]) if best.message else "; ".join(extra)


def solve_queries(queries: list[Query], budget: Budget | float | None = None) -> list[Result]:
    """Decide many queries: batched through ``run_batch`` where a backend offers it, then one by one.

    ``budget`` is shared by the whole batch (default: the sum of the queries' timeouts).
    """
    t0 = time.monotonic()
    if budget is None:
        ts = [q.options.timeout for q in queries]
        budget = None if any(t is None for t in ts) else float(sum(ts))
    budget = as_budget(budget)
    from hdsl.overflow import without_overflowing_proofs

    results: list[Result | None] = [None] * len(queries)
    batched: dict[int, Result] = {}
    first = PORTFOLIO[0] if PORTFOLIO else None
    batchable = [i for i, q in enumerate(queries) if (q.options.backend or "auto") in ("auto", first)]
    if first is not None and batchable and first in backends.REGISTRY and backends.available(first):
        try:
            be = backends.get(first)
            if hasattr(be, "run_batch"):
                idx = [i for i in batchable if be.supports(queries[i])]
                for i, r in zip(idx, be.run_batch([queries[i] for i in idx], budget)):
                    batched[i] = r
        except Exception as exc:  # noqa: BLE001 - a backend failure is a result, not a crash
            for i in batchable:
                batched[i] = _error(queries[i], first, _describe(exc), t0)
    for i, q in enumerate(queries):
        r = batched.get(i)
        if r is not None and (r.verdict in (Verdict.PROVED, Verdict.FALSIFIED) or q.options.backend == first):
            results[i] = without_overflowing_proofs(r, q)
        elif r is not None:  # continue the auto portfolio after the batched first backend
            results[i] = _portfolio(q, budget, PORTFOLIO[1:], r, t0)
        else:
            results[i] = solve_query(q, budget)
    return results  # type: ignore[return-value]


register_handler(Query, solve_query)

# --- complete verification (hdsl.bab, hdsl.backends.z3): branch and bound with exact leaves, then Z3.
add_to_portfolio("bab", after="bounds")
add_to_portfolio("z3", after="bab")
SHARE.update(bounds=0.25, bab=0.85)

# --- hierarchy (hdsl.hierarchy_check): queries with a level go through the level-aware driver
# first (shared bounds, λ for the disjunction, propagation across levels), the rest to solve_query.
from hdsl.hierarchy_check import solve_hierarchy_query as _solve_hierarchy_query  # noqa: E402

register_handler(Query, guard_overflow(_solve_hierarchy_query))

# --- causal (hdsl.causal.handler): iia(...) measurements and formal interchange checks.
from hdsl.causal.handler import register as _register_causal  # noqa: E402

_register_causal()

# --- xai (hdsl.xai.handler): faithfulness measurements, explainer comparisons, formal sufficiency.
from hdsl.xai.handler import register as _register_xai  # noqa: E402

_register_xai()
