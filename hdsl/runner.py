"""Run many independent items (queries, measurements): cached, parallel, resumable.

Items go through the result store first (an unchanged item is never solved
twice), then to one of three executors with identical results:

* in-process (``workers=1``),
* a pool of ``workers`` spawned processes on this machine (torch threads split
  between them; spawn, not fork, because forking a process that already runs
  torch's thread pools can deadlock),
* a Ray cluster (``ray_address``: ``"local"`` starts one on this machine).

The parent process writes every result to the store as soon as it arrives, so
Ctrl-C or a crash loses at most the items in flight; ``RunInterrupted``
carries the partial results for the caller to print.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from hdsl.results import MeasurementResult, Result
from hdsl.store import ResultStore, item_id, item_key

AnyResult = Result | MeasurementResult
OnResult = Callable[[int, AnyResult, bool], None]  # (item position, result, came from the store)


class RunInterrupted(Exception):
    """Raised on Ctrl-C; ``results[i]`` is None for items not finished."""

    def __init__(self, results: list[AnyResult | None]):
        super().__init__("run interrupted")
        self.results = results


@dataclass(frozen=True)
class RunConfig:
    timeout: float | None = None  # per item, unless the item's own options set one
    workers: int = 1
    ray_address: str | None = None
    backend: str | None = None  # overrides every query's backend when set


def effective_timeout(item: Any, default: float | None) -> float | None:
    options = getattr(item, "options", None)
    own = getattr(options, "timeout", None)
    return own if own is not None else default


def solve_item(item: Any, timeout: float | None, backend: str | None = None) -> AnyResult:
    """Decide or measure one item in this process (the unit of work for every executor)."""
    import dataclasses
    import importlib

    from hdsl.backends import Budget

    from hdsl.results import Verdict

    try:
        planner = importlib.import_module("hdsl.planner")  # via sys.modules, so a test can stand in for it
    except ImportError:
        return Result(item_id(item), Verdict.UNKNOWN, message="no backend available")

    from hdsl.diagnostics import HdslError

    options = getattr(item, "options", None)
    if backend and options is not None and hasattr(options, "backend"):
        item = dataclasses.replace(item, options=dataclasses.replace(options, backend=backend))
    start = time.monotonic()
    try:
        return planner.run_item(item, Budget.seconds(timeout))
    except HdslError as err:  # a bad file found while solving: an error result, not a crash of the run
        message = "; ".join(d.render() for d in err.diagnostics)
    except Exception as exc:  # noqa: BLE001 - one failing item must not hide the others
        if os.environ.get("HDSL_DEBUG"):
            raise
        message = f"internal error: {type(exc).__name__}: {exc}"
    return Result(item_id(item), Verdict.ERROR, time_s=time.monotonic() - start, message=message)


def unit_key(item: Any) -> Any:
    """Items with the same key run together, in order, in one process.

    The level queries of one input (same network, centre and radius) share
    verdicts inside a process (a proof for a set proves its supersets, a
    counterexample falsifies its subsets: ``hdsl.hierarchy_check``); keeping them
    in one unit makes a run's results the same however it is executed.
    """
    from hdsl import ir

    region = getattr(item, "region", None)
    if isinstance(item, ir.Query) and isinstance(region, ir.LinfBall):
        return ("ball", item.network, region.center, region.eps, region.domain)
    return ("item", id(item))


def solve_unit(items: Sequence[Any], timeouts: Sequence[float | None], backend: str | None = None) -> list[AnyResult]:
    """Solve a unit's items in order in this process."""
    return [solve_item(item, t, backend) for item, t in zip(items, timeouts)]


def _units(items, pending: list[int]) -> list[list[int]]:
    groups: dict[Any, list[int]] = {}
    for i in pending:
        groups.setdefault(unit_key(items[i]), []).append(i)
    return list(groups.values())


def _init_worker(threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


def run_items(
    items: Sequence[Any],
    config: RunConfig = RunConfig(),
    store: ResultStore | None = None,
    on_result: OnResult | None = None,
) -> list[AnyResult]:
    """Results for ``items``, in order. Raises ``RunInterrupted`` on Ctrl-C."""
    results: list[AnyResult | None] = [None] * len(items)
    keys = [item_key(it) for it in items] if store is not None else [None] * len(items)
    timeouts = [effective_timeout(it, config.timeout) for it in items]

    def finish(i: int, result: AnyResult, cached: bool) -> None:
        results[i] = result
        if store is not None and not cached:
            store.put(keys[i], result, timeouts[i])
        if on_result is not None:
            on_result(i, result, cached)

    pending: list[int] = []
    for i in range(len(items)):
        hit = store.get(keys[i], timeouts[i]) if store is not None else None
        if hit is not None:
            finish(i, hit, True)
        else:
            pending.append(i)

    units = _units(items, pending)
    try:
        if config.ray_address:
            _run_ray(items, units, timeouts, config, finish)
        elif config.workers > 1 and len(units) > 1:
            _run_pool(items, units, timeouts, config, finish)
        else:
            for i in pending:  # in order; a unit's items share one process anyway
                finish(i, solve_item(items[i], timeouts[i], config.backend), False)
    except KeyboardInterrupt:
        raise RunInterrupted(results) from None
    return results  # type: ignore[return-value]


def _run_pool(items, units, timeouts, config: RunConfig, finish) -> None:
    workers = min(config.workers, len(units))
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,))
    try:
        futures = {pool.submit(solve_unit, [items[i] for i in unit], [timeouts[i] for i in unit], config.backend):
                   unit for unit in units}
        not_done = set(futures)
        while not_done:
            done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
            for fut in done:
                for i, result in zip(futures[fut], fut.result()):
                    finish(i, result, False)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_ray(items, units, timeouts, config: RunConfig, finish) -> None:
    try:
        import ray
    except ImportError:
        from hdsl.diagnostics import HdslError

        raise HdslError.single("E901", "--ray needs the 'ray' package", hint="pip install 'hdsl[ray]'") from None
    if not ray.is_initialized():
        address = None if config.ray_address in ("local", "") else config.ray_address
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        except Exception as exc:  # noqa: BLE001 - ray raises ConnectionError, ValueError, RuntimeError...
            from hdsl.diagnostics import HdslError

            raise HdslError.single("E902", f"cannot connect to the Ray cluster at {config.ray_address!r}: {exc}",
                                   hint="start it with `ray start --head`, or use --ray local") from None
    remote_solve = ray.remote(solve_unit)
    refs = {remote_solve.remote([items[i] for i in unit], [timeouts[i] for i in unit], config.backend): unit
            for unit in units}
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                for i, result in zip(refs.pop(ref), ray.get(ref)):
                    finish(i, result, False)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
