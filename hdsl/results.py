"""Verdicts and results, shared by every backend and report."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(str, Enum):
    PROVED = "proved"
    FALSIFIED = "falsified"  # only with a counterexample replayed on the real model
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Counterexample:
    """An input that violates the spec, with the outputs of the real model on it.

    ``x`` is flattened in the network input's memory order (raw input space);
    ``y`` are the outputs computed by the replay (onnxruntime for ONNX files).
    """

    x: tuple[float, ...]
    y: tuple[float, ...]
    margin: float  # the spec's margin on y (<= 0 means violated)
    replayed_with: str  # e.g. "onnxruntime"
    max_abs_diff: float = 0.0  # |replay - internal| on the outputs


@dataclass(frozen=True, slots=True)
class Result:
    query_id: str
    verdict: Verdict
    backend: str = ""
    stage: str = ""  # which step decided it: "concrete", "attack", "ibp", "crown", "alpha", "bab", "z3"
    margin: float | None = None  # proved: certified lower bound (>0); falsified: counterexample margin
    counterexample: Counterexample | None = None
    time_s: float = 0.0
    message: str = ""
    stats: tuple[tuple[str, float], ...] = field(default=())

    def to_json(self) -> dict:
        d = {
            "query": self.query_id,
            "verdict": self.verdict.value,
            "backend": self.backend,
            "stage": self.stage,
            "margin": self.margin,
            "time_s": round(self.time_s, 6),
            "message": self.message,
            "stats": dict(self.stats),
        }
        if self.counterexample is not None:
            ce = self.counterexample
            d["counterexample"] = {
                "x": list(ce.x),
                "y": list(ce.y),
                "margin": ce.margin,
                "replayed_with": ce.replayed_with,
                "max_abs_diff": ce.max_abs_diff,
            }
        return d


class Status(str, Enum):
    """Outcome of a statistical measurement against its threshold."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # the confidence interval straddles the threshold
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class MeasurementResult:
    """A measured quantity with its statistics (faithfulness, IIA, ...)."""

    item_id: str
    status: Status
    estimate: float
    interval: tuple[float, float] | None = None
    confidence: float | None = None
    samples: int = 0
    threshold: float | None = None
    comparison: str = ""  # e.g. "<=" or ">="
    method: str = ""  # e.g. "bootstrap", "clopper-pearson", "exhaustive"
    time_s: float = 0.0
    message: str = ""
    details: tuple[tuple[str, object], ...] = ()

    def to_json(self) -> dict:
        return {
            "item": self.item_id,
            "status": self.status.value,
            "estimate": self.estimate,
            "interval": list(self.interval) if self.interval else None,
            "confidence": self.confidence,
            "samples": self.samples,
            "threshold": self.threshold,
            "comparison": self.comparison,
            "method": self.method,
            "time_s": round(self.time_s, 6),
            "message": self.message,
            "details": {k: v for k, v in self.details},
        }
