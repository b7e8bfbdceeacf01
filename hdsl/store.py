"""A persistent result store keyed by a stable content hash of each query.

Why: users check thousands of (image, ε, level) queries; an interrupted run must
resume where it stopped, and an unchanged query must never be solved twice.

The key of an item is the SHA-256 of a canonical encoding of its IR, in which
every file path (networks, data sets) is replaced by the SHA-256 of the file's
contents, floats are written exactly (``float.hex``), spans are left out, and
the hdsl version is included (a new release may decide differently, e.g. after
a soundness fix). Moving a project to another directory keeps its keys;
editing a network or data file changes them.

A stored ``timeout``/``unknown`` is reused only when it was obtained with at
least the budget now asked for; ``error`` results are never stored.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import sqlite3
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from hdsl import __version__
from hdsl.results import (
    Counterexample,
    MeasurementResult,
    Result,
    Status,
    Verdict,
)

DEFAULT_STORE = ".hdsl-run/results.sqlite"

def file_digest(path: str) -> str:
    """SHA-256 of a file's contents (``missing:NAME`` when it cannot be read)."""
    from hdsl.files import content_digest

    try:
        return content_digest(path)
    except OSError:
        return "missing:" + os.path.basename(path)


def canonical(value: Any, field_name: str = "") -> Any:
    """A JSON-able, layout-free encoding of an IR value (see the module docstring)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"@": type(value).__name__}
        for f in dataclasses.fields(value):
            if not f.compare:  # spans and other layout-only fields
                continue
            out[f.name] = canonical(getattr(value, f.name), f.name)
        return out
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return "sha256:" + file_digest(value) if field_name == "path" else value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return {"f": value.hex()}
    if isinstance(value, Fraction):
        return {"q": [value.numerator, value.denominator]}
    if isinstance(value, (tuple, list)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return canonical(value.tolist())
    raise TypeError(f"cannot hash a {type(value).__name__} in a query")


def item_key(item: Any) -> str:
    """The stable content hash of an IR item (Query or measurement)."""
    payload = json.dumps({"hdsl": __version__, "item": canonical(item)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def item_id(item: Any) -> str:
    return str(getattr(item, "id", None) or getattr(item, "item_id", None) or type(item).__name__)


# --------------------------------------------------------------------------- (de)serialisation


def result_to_json(result: Result | MeasurementResult) -> dict:
    kind = "result" if isinstance(result, Result) else "measurement"
    return {"kind": kind, "data": result.to_json()}


def result_from_json(doc: dict) -> Result | MeasurementResult:
    d = doc["data"]
    if doc["kind"] == "result":
        ce = d.get("counterexample")
        return Result(
            query_id=d["query"],
            verdict=Verdict(d["verdict"]),
            backend=d.get("backend", ""),
            stage=d.get("stage", ""),
            margin=d.get("margin"),
            counterexample=None if ce is None else Counterexample(
                x=tuple(ce["x"]), y=tuple(ce["y"]), margin=ce["margin"],
                replayed_with=ce["replayed_with"], max_abs_diff=ce.get("max_abs_diff", 0.0)),
            time_s=d.get("time_s", 0.0),
            message=d.get("message", ""),
            stats=tuple((k, v) for k, v in (d.get("stats") or {}).items()),
        )
    return MeasurementResult(
        item_id=d["item"],
        status=Status(d["status"]),
        estimate=d["estimate"],
        interval=None if d.get("interval") is None else tuple(d["interval"]),
        confidence=d.get("confidence"),
        samples=d.get("samples", 0),
        threshold=d.get("threshold"),
        comparison=d.get("comparison", ""),
        method=d.get("method", ""),
        time_s=d.get("time_s", 0.0),
        message=d.get("message", ""),
        details=tuple((k, v) for k, v in (d.get("details") or {}).items()),
    )


def _is_final(result: Result | MeasurementResult) -> bool:
    if isinstance(result, Result):
        return result.verdict in (Verdict.PROVED, Verdict.FALSIFIED)
    return result.status in (Status.PASS, Status.FAIL)


def _is_error(result: Result | MeasurementResult) -> bool:
    if isinstance(result, Result):
        return result.verdict is Verdict.ERROR
    return result.status is Status.ERROR


# --------------------------------------------------------------------------- the store


class ResultStore:
    """SQLite-backed results, one row per item key; safe to use from one process at a time
    (workers send results back to the parent, which writes them)."""

    def __init__(self, path: str | os.PathLike = DEFAULT_STORE):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results ("
            " key TEXT PRIMARY KEY, item_id TEXT NOT NULL, budget_s REAL,"
            " payload TEXT NOT NULL, solved_at REAL NOT NULL)"
        )
        self._db.commit()

    def get(self, key: str, budget_s: float | None = None) -> Result | MeasurementResult | None:
        """The stored result for ``key``, unless it is undecided and was given less budget."""
        with self._lock:
            row = self._db.execute("SELECT budget_s, payload FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        stored_budget, payload = row
        result = result_from_json(json.loads(payload))
        if not _is_final(result):
            asked = float("inf") if budget_s is None else budget_s
            had = float("inf") if stored_budget is None else stored_budget
            if had < asked:
                return None
        return result

    def put(self, key: str, result: Result | MeasurementResult, budget_s: float | None = None) -> None:
        if _is_error(result):
            return
        payload = json.dumps(result_to_json(result))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results (key, item_id, budget_s, payload, solved_at) VALUES (?, ?, ?, ?, ?)",
                (key, _result_id(result), budget_s, payload, time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _result_id(result: Result | MeasurementResult) -> str:
    return result.query_id if isinstance(result, Result) else result.item_id
