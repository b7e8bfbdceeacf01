"""Bootstrap confidence intervals over images and threshold decisions.

Percentile bootstrap of the mean with a seeded ``numpy.random.Generator``
(PCG64), so a result is reproducible from its recorded seed. NaN per-image
values (e.g. a correlation of a constant series) are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdsl.results import Status


@dataclass(frozen=True)
class Interval:
    estimate: float
    lower: float
    upper: float
    confidence: float
    samples: int  # images used (NaNs dropped)
    dropped: int
    resamples: int
    seed: int


def bootstrap_mean(values, confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> Interval:
    """Two-sided percentile bootstrap interval for the mean of ``values``."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = v[~np.isnan(v)]
    dropped = v.size - keep.size
    if keep.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), confidence, 0, dropped, resamples, seed)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, keep.size, size=(resamples, keep.size))
    means = keep[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(keep.mean()), float(lo), float(hi), confidence, int(keep.size), int(dropped),
                    resamples, seed)


def paired_difference(a, b, confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> Interval:
    """Bootstrap interval for mean(a − b) over the same images (paired)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return bootstrap_mean(a - b, confidence, resamples, seed)


def decide(interval: Interval, comparison: str, threshold: float) -> Status:
    """PASS when the whole interval satisfies ``estimate <cmp> threshold``, FAIL when
    none of it does, INCONCLUSIVE when it straddles the threshold (or is empty)."""
    lo, hi = interval.lower, interval.upper
    if interval.samples == 0 or np.isnan(lo) or np.isnan(hi):
        return Status.INCONCLUSIVE
    if comparison in ("<=", "<"):
        ok = hi <= threshold if comparison == "<=" else hi < threshold
        bad = lo > threshold if comparison == "<=" else lo >= threshold
    elif comparison in (">=", ">"):
        ok = lo >= threshold if comparison == ">=" else lo > threshold
        bad = hi < threshold if comparison == ">=" else hi <= threshold
    else:
        raise ValueError(f"unknown comparison {comparison!r}")
    return Status.PASS if ok else Status.FAIL if bad else Status.INCONCLUSIVE

