"""The ``--arithmetic`` option shared by ``hdsl check``, ``hdsl bench`` and ``hdsl vnnlib``."""

from __future__ import annotations

HELP = ("float32: proved covers the real-valued network and any float32 execution of it (default for check); "
        "real: the real-valued network only, the question α,β-CROWN, Marabou and nnenum answer")


def checked(arithmetic: str | None) -> str | None:
    """``arithmetic`` itself, or an E304 diagnostic (``HdslError``) naming the choices."""
    from hdsl.ir import ARITHMETICS

    if arithmetic is not None and arithmetic not in ARITHMETICS:
        from hdsl.diagnostics import HdslError

        raise HdslError.single("E304", f"unknown arithmetic '{arithmetic}'", hint="use one of: " +
                               ", ".join(ARITHMETICS))
    return arithmetic
