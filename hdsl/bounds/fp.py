"""Floating-point soundness of the bound propagator.

What "proved" means
-------------------
A bound is *sound* when it contains the outputs of **both** the real-valued
network (exact arithmetic on the ONNX file's float32 parameters, BatchNorm and
divisions taken exactly) **and** any float32 execution of it, e.g. onnxruntime
on CPU, whatever the summation order, with or without FMA.

How
---
1. All bound arithmetic runs in float64 on the importer's exact float64 graph
   (``Graph.exact``), so folding BatchNorm or turning ``Div`` into a scale adds
   no float32 error to the model the bounds talk about.
2. Every affine node is treated as ``y = M x + c + e`` with an unknown per-neuron
   noise ``|e| <= err``, where ``err = gamma(n) * (|M| |x|max + |c|)`` and ``n`` is
   the node's fan-in (dot-product length). This is the classical a-priori bound
   for a float32 dot product of length ``n`` (Higham, Thm 3.5: ``gamma_n =
   n u / (1 - n u)``, any order, FMA allowed) computed here with ``u = 2^-23``,
   i.e. **twice** float32's unit roundoff, plus one extra term for the bias.
   ``|x|max`` comes from the (already widened) interval bounds of the node's
   inputs, which contain every float32 execution as well as the real one.
   IBP widens each interval by ``err``; CROWN subtracts ``|A| . err`` at each
   affine node of the backward pass.
3. The spare factor 2 in ``u`` pays for float64 rounding inside the bound
   computation itself: each backward step multiplies coefficients of size
   ``|A||M|`` and accumulates ``n`` terms, an error of at most ``gamma64(n) |A||M||x|``
   (``2^-53`` per step), which is ~``2^-29`` times the extra float32 slack that
   step receives (``2^-24 (n+1) |A||M||x|``). A final relative-plus-absolute
   outward margin (``final_margin``) covers the concretisation and the last
   spec combination.
4. ReLU, max pooling, reshapes, transposes and concatenation are exact in
   floating point. Sigmoid and tanh get an extra absolute tolerance
   (``TRANSCENDENTAL_TOL``) for the implementation error of the float32 library
   (onnxruntime's are accurate to a few ulp; we allow 2e-6).
5. ``arithmetic real`` (``unit_roundoff``) keeps the same model with ``u = 2^-48``:
   the bounds then hold for the real-valued network only and pay just for their
   own float64 arithmetic (point 3's argument with a factor 32 over float64's
   ``2^-53`` instead of float32's slack; still ~1e-14 per unit of magnitude).
6. Input regions are taken as real boxes (float64 ends), so every float32
   input inside the box is covered.

``tests/test_bounds_soundness.py`` checks the model: bounds contain float64
evaluations *and* onnxruntime float32 outputs on thousands of sampled inputs,
including adversarially scaled weights where float32 error is visible.
"""

from __future__ import annotations

import torch

U = 2.0 ** -23  # twice float32's unit roundoff (see point 3)
U_REAL = 2.0 ** -48  # 32 times float64's: ``arithmetic real`` pays only for the bounds' own float64 rounding
TRANSCENDENTAL_TOL = 2e-6


def unit_roundoff(arithmetic: str = "float32") -> float:
    """The ``u`` of the error model for a query's ``arithmetic`` (``hdsl.ir.CheckOptions``).

    ``"real"`` proves the real-valued network only, so the noise model covers
    just the float64 rounding of the bound computation (point 3's argument with
    ``2^-48`` against float64's ``2^-53``) instead of a float32 execution.
    """
    from hdsl.ir import ARITHMETICS

    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown arithmetic {arithmetic!r}; use one of {ARITHMETICS}")
    return U if arithmetic == "float32" else U_REAL


def gamma(n: int, u: float = U) -> float:
    """Error factor for a dot product of length ``n`` plus a bias in unit roundoff ``u`` (float32 with slack)."""
    k = (n + 1) * u
    if k >= 0.5:
        raise ValueError(f"fan-in {n} too large for the float32 error model")
    return k / (1.0 - k)


def final_margin(lb: torch.Tensor, scale: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Move a float64 lower bound outwards by a relative + absolute margin.

    ``scale`` is a magnitude the bound was computed from (e.g. ``|lb|`` or the
    sum of absolute contributions); the margin dominates float64 rounding of the
    final reductions.
    """
    return lb - 1e-12 * (lb.abs() + scale) - 1e-300
