"""Backends behind one protocol, in an ordered registry (order = preference).

Backends are registered by import path and imported lazily, so ``hdsl parse``
never pays for torch or z3. Availability is checked with ``find_spec`` before
import, as CVXPY does for its solvers.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hdsl.ir import Query
from hdsl.results import Result


@dataclass(frozen=True, slots=True)
class Budget:
    """A wall-clock deadline (``time.monotonic()`` seconds)."""

    deadline: float

    @classmethod
    def seconds(cls, s: float | None) -> "Budget":
        return cls(float("inf") if s is None else time.monotonic() + s)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


@runtime_checkable
class Backend(Protocol):
    name: str
    required_modules: tuple[str, ...]

    def supports(self, query: Query) -> bool: ...

    def run(self, query: Query, budget: Budget) -> Result: ...


# name -> "module:attribute" of a zero-argument factory (usually the class).
REGISTRY: dict[str, str] = {}


def register(name: str, target: str) -> None:
    REGISTRY[name] = target


def available(name: str) -> bool:
    target = REGISTRY.get(name)
    if target is None:
        return False
    module = target.split(":")[0]
    try:
        if importlib.util.find_spec(module) is None:
            return False
    except ModuleNotFoundError:
        return False
    backend_cls = _load(target)
    return all(importlib.util.find_spec(m) is not None for m in getattr(backend_cls, "required_modules", ()))


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def get(name: str) -> Backend:
    """Instantiate the backend registered as ``name`` (KeyError if unknown)."""
    return _load(REGISTRY[name])()


register("bounds", "hdsl.backends.bounds:BoundsBackend")
register("attack", "hdsl.backends.bounds:AttackBackend")
register("bab", "hdsl.bab.backend:BabBackend")
register("z3", "hdsl.backends.z3:Z3Backend")
