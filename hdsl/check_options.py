"""The options of a ``check`` statement, carried by every IR item that the statement decides.

A module of its own (no torch, no other hdsl import) so that ``hdsl.ir`` and the
feature IRs it re-exports (``hdsl.xai.ir``, ``hdsl.causal.ir``) share one class.
"""

from __future__ import annotations

from dataclasses import dataclass

ARITHMETICS = ("float32", "real")


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """How an item is decided; ``arithmetic`` also changes what ``proved`` means.

    ``"float32"`` (the default): proved for the real-valued network *and* for any
    float32 execution of it (any summation order, FMA or not). ``"real"``: proved
    for the real-valued network only (the float32 weights taken as exact
    rationals), the question α,β-CROWN, Marabou and nnenum answer; float32
    rounding of the deployed network is not covered.

    ``timeout`` is the budget of one item: a query, one image's sufficiency
    search, one interchange experiment.
    """

    timeout: float | None = None  # seconds per item; None = the CLI default
    backend: str = "auto"  # "auto" | a registered backend name
    arithmetic: str = "float32"  # one of ARITHMETICS


def options_of(item: object) -> CheckOptions | None:
    """The check options an IR item carries, or None for items that take none (measurements)."""
    options = getattr(item, "options", None)
    return options if isinstance(options, CheckOptions) else None


def arithmetic_of(item: object) -> str | None:
    """The arithmetic an item's result is about, or None where arithmetic has no effect on it."""
    options = options_of(item)
    ignored = item.ignored_options() if hasattr(item, "ignored_options") else {}
    return options.arithmetic if options is not None and "arithmetic" not in ignored else None
