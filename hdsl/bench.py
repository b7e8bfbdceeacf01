"""VNN-COMP instances and benchmark folders: run them, re-validate, compare with ground truth.

One instance is an ONNX network, a VNN-LIB property and a timeout. The
planner decides the query; this module maps its verdict to the VNN-COMP word
(``sat``/``unsat``/``unknown``/``timeout``) and never says ``sat`` without
re-checking the counterexample itself: the point (rounded to float32) must lie
in the input box with zero tolerance and onnxruntime's outputs on it must
satisfy a disjunct of the unsafe condition. A failed check becomes ``unknown``.

A benchmark folder holds ``instances.csv`` (``onnx,vnnlib,timeout``, no
header) and optionally ``ground_truth.csv`` (``instance,expected``); the
instance id is ``<onnx stem>-<vnnlib stem>`` as in VNN-COMP. A *wrong* answer
is ``unsat`` where ``sat`` is expected or ``sat`` where ``unsat`` is expected.
"""

from __future__ import annotations

import csv
import math
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hdsl.diagnostics import HdslError
from hdsl.ir import CheckOptions, Network, Query
from hdsl.results import Result, Verdict

VERDICTS = ("sat", "unsat", "unknown", "timeout", "error")
EXPECTED = ("sat", "unsat", "unknown", "none")
WRONG_PAIRS = {("sat", "unsat"), ("unsat", "sat")}  # (verdict, expected)

Solver = Callable[[Query, object], Result]


# --------------------------------------------------------------------------- ONNX facts


@dataclass(frozen=True, slots=True)
class OnnxInfo:
    """What the runner needs to know about an ONNX file: input name/shape/dtype and output size."""

    path: str
    input_name: str
    input_shape: tuple[int, ...]  # without the batch dimension
    dtype: str  # numpy dtype name of the input
    num_outputs: int


_INFO: dict[tuple[str, str], OnnxInfo] = {}
_SESSIONS: dict[tuple[str, str], object] = {}


def _key(path: str | Path) -> tuple[str, str]:
    from hdsl.files import content_digest

    p = Path(path)
    try:
        return str(p.resolve()), content_digest(p)
    except FileNotFoundError:
        raise HdslError.single("V401", f"ONNX file not found: {p}", path=str(p)) from None


def _session(path: str | Path):
    import onnxruntime as ort

    key = _key(path)
    if key not in _SESSIONS:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            _SESSIONS[key] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises many types for bad files
            raise HdslError.single("V402", f"onnxruntime cannot load {path}: {err}", path=str(path)) from None
    return _SESSIONS[key]


def onnx_info(path: str | Path) -> OnnxInfo:
    """Input name, per-sample shape (leading batch dimension dropped), dtype and output size (cached)."""
    key = _key(path)
    if key in _INFO:
        return _INFO[key]
    sess = _session(path)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise HdslError.single("V403", f"{path} has {len(inputs)} inputs; VNN-LIB instances need exactly one",
                               path=str(path))
    inp = inputs[0]
    dims = list(inp.shape)
    per_sample = dims[1:] if len(dims) > 1 else dims
    if not all(isinstance(d, int) and d > 0 for d in per_sample):
        raise HdslError.single("V403", f"{path}: input shape {dims} has unknown dimensions", path=str(path))
    dtype = {"tensor(float)": "float32", "tensor(double)": "float64"}.get(inp.type)
    if dtype is None:
        raise HdslError.single("V403", f"{path}: unsupported input type {inp.type}", path=str(path))
    out = sess.get_outputs()[0]
    odims = [d for d in out.shape[1:]] if len(out.shape) > 1 else list(out.shape)
    num_out = math.prod(odims) if all(isinstance(d, int) and d > 0 for d in odims) else None
    if num_out is None:  # run once on zeros to learn the output size
        num_out = len(run_model(path, [0.0] * math.prod(per_sample), _info=(inp.name, tuple(per_sample), dtype)))
    info = OnnxInfo(str(path), inp.name, tuple(int(d) for d in per_sample), dtype, int(num_out))
    _INFO[key] = info
    return info


def run_model(path: str | Path, x: Sequence[float], _info: tuple | None = None) -> tuple[float, ...]:
    """The flattened outputs of onnxruntime on one input ``x`` (flattened, cast to the model's dtype)."""
    import numpy as np

    if _info is None:
        info = onnx_info(path)
        _info = (info.input_name, info.input_shape, info.dtype)
    name, shape, dtype = _info
    arr = np.asarray(x, dtype=dtype).reshape(1, *shape)
    y = _session(path).run(None, {name: arr})[0]
    return tuple(float(v) for v in np.asarray(y, dtype=np.float64).reshape(-1))


def plain_onnx(path: str | Path) -> Path:
    """``path`` itself, or for a gzipped ONNX file (VNN-COMP ships ``.onnx.gz``) a decompressed copy.

    The copy lives in the temporary directory under the content's hash, so it is made once.
    """
    import gzip
    import hashlib
    import tempfile

    p = Path(path)
    try:
        with p.open("rb") as f:
            magic = f.read(2)
    except FileNotFoundError:
        raise HdslError.single("V401", f"ONNX file not found: {p}", path=str(p)) from None
    if magic != b"\x1f\x8b":
        return p
    raw = p.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:24]
    out = Path(tempfile.gettempdir()) / "hdsl-onnx" / f"{digest}-{p.name.removesuffix('.gz')}"
    if not out.exists():
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise HdslError.single("V402", f"corrupt gzip file {p}: {err}", path=str(p)) from None
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(out)
    return out


def network_for(path: str | Path) -> Network:
    """The hdsl ``Network`` of a VNN-COMP ONNX file: its own input shape, no normalisation, no input range."""
    info = onnx_info(path)
    return Network(name=Path(path).stem, path=str(path), input_shape=info.input_shape,
                   input_range=None, num_outputs=info.num_outputs)


# --------------------------------------------------------------------------- one instance


@dataclass(frozen=True, slots=True)
class Outcome:
    """The VNN-COMP answer for one instance, with what led to it."""

    instance: str
    verdict: str  # sat | unsat | unknown | timeout | error
    time_s: float
    stage: str = ""
    backend: str = ""
    message: str = ""
    x: tuple[float, ...] | None = None  # for sat: the re-validated input (float32 values)
    y: tuple[float, ...] | None = None  # for sat: onnxruntime's outputs on x
    raw_verdict: str = ""  # the planner's verdict before mapping/validation
    timeout_s: float | None = None

    def to_json(self) -> dict:
        d = {
            "instance": self.instance,
            "verdict": self.verdict,
            "time_s": round(self.time_s, 4),
            "stage": self.stage,
            "backend": self.backend,
            "raw_verdict": self.raw_verdict,
            "timeout_s": self.timeout_s,
            "message": self.message,
        }
        if self.x is not None:
            d["counterexample"] = {"x": list(self.x), "y": list(self.y or ())}
        return d


def instance_id(onnx_path: str | Path, vnnlib_path: str | Path) -> str:
    """VNN-COMP's instance name: ``<onnx stem>-<vnnlib stem>`` (``.gz`` and the format suffix removed)."""

    def stem(p: str | Path, suffix: str) -> str:
        name = Path(p).name
        for s in (".gz", suffix):
            if name.endswith(s):
                name = name[: -len(s)]
        return name

    return f"{stem(onnx_path, '.onnx')}-{stem(vnnlib_path, '.vnnlib')}"


def validate_counterexample(prop, onnx_path: str | Path, x: Sequence[float]) -> tuple[bool, str, tuple, tuple]:
    """Independently check a counterexample: ``(ok, why, x32, y)``.

    ``x`` is rounded to the model's input dtype first (what the model really
    sees); it must lie inside one of the property's boxes with zero tolerance,
    and onnxruntime's outputs on it must satisfy a disjunct of the unsafe set.
    """
    import numpy as np

    info = onnx_info(onnx_path)
    if len(x) != prop.num_inputs:
        return False, f"counterexample has {len(x)} inputs, the property {prop.num_inputs}", (), ()
    xr = tuple(float(v) for v in np.asarray(x, dtype=np.float64).astype(info.dtype))
    if not all(math.isfinite(v) for v in xr):
        return False, "counterexample has a non-finite input", xr, ()
    if not prop.contains(xr):
        return False, "counterexample lies outside the input region", xr, ()
    y = run_model(onnx_path, xr)
    if not all(math.isfinite(v) for v in y):
        return False, "the model's output on the counterexample is not finite", xr, y
    if len(y) < prop.num_outputs:
        return False, f"the model has {len(y)} outputs, the property uses {prop.num_outputs}", xr, y
    if not prop.spec.violated_by(y):
        return False, "onnxruntime's outputs do not satisfy the unsafe condition", xr, y
    return True, "", xr, y


def default_solver() -> Solver:
    """``hdsl.planner.solve_query`` (imported lazily: it pulls in torch)."""
    try:
        from hdsl.planner import solve_query
    except ImportError as err:
        raise HdslError.single("V404", f"the verification planner is not available: {err}") from None
    return solve_query


def solve_instance(onnx_path: str | Path, vnnlib_path: str | Path, timeout: float | None, *,
                   backend: str = "auto", solver: Solver | None = None, instance: str | None = None,
                   arithmetic: str = "float32") -> Outcome:
    """Decide one VNN-COMP instance; input problems raise ``HdslError``, solver failures become ``error``.

    ``arithmetic="real"`` asks the competition's question (the real-valued network, ``hdsl.ir.CheckOptions``)."""
    from hdsl.backends import Budget
    from hdsl.vnnlib import load_vnnlib, to_query

    start = time.monotonic()
    name = instance or instance_id(onnx_path, vnnlib_path)
    prop = load_vnnlib(vnnlib_path)
    onnx_path = plain_onnx(onnx_path)
    network = network_for(onnx_path)
    query = to_query(prop, network, name, Path(vnnlib_path).name, CheckOptions(timeout=timeout, backend=backend,
                                                                                   arithmetic=arithmetic))
    solve = solver or default_solver()
    budget = Budget.seconds(None if timeout is None else max(0.0, timeout - (time.monotonic() - start)))
    try:
        result = solve(query, budget)
    except HdslError:
        raise
    except Exception as err:  # noqa: BLE001 - one failing instance must not stop a benchmark run
        return Outcome(name, "error", time.monotonic() - start, message=f"{type(err).__name__}: {err}",
                       raw_verdict="error", timeout_s=timeout)
    raw = result.verdict.value
    common = dict(stage=result.stage, backend=result.backend, raw_verdict=raw, timeout_s=timeout)
    if result.verdict is Verdict.FALSIFIED:
        ce = result.counterexample
        if ce is None:
            return Outcome(name, "unknown", time.monotonic() - start,
                           message="falsified without a counterexample: reported as unknown", **common)
        ok, why, xr, y = validate_counterexample(prop, onnx_path, ce.x)
        if not ok:
            return Outcome(name, "unknown", time.monotonic() - start,
                           message=f"counterexample failed re-validation ({why}): reported as unknown", **common)
        return Outcome(name, "sat", time.monotonic() - start, message=result.message, x=xr, y=y, **common)
    verdict = {Verdict.PROVED: "unsat", Verdict.TIMEOUT: "timeout"}.get(result.verdict, "unknown")
    return Outcome(name, verdict, time.monotonic() - start, message=result.message, **common)


def result_file_text(outcome: Outcome) -> str:
    """The VNN-COMP result file: the verdict line, then for ``sat`` the counterexample block."""
    from hdsl.vnnlib import format_counterexample

    text = outcome.verdict if outcome.verdict != "error" else "unknown"
    if outcome.verdict == "sat" and outcome.x is not None:
        text += "\n" + format_counterexample(outcome.x, outcome.y or ())
    return text + "\n"


# --------------------------------------------------------------------------- benchmark folders


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    onnx: Path
    vnnlib: Path
    timeout: float
    line: int  # in instances.csv


def _resolve(folder: Path, rel: str) -> Path:
    p = (folder / rel.strip()).resolve() if not Path(rel.strip()).is_absolute() else Path(rel.strip())
    if not p.exists() and Path(str(p) + ".gz").exists():
        return Path(str(p) + ".gz")
    return p


def read_instances(folder: str | Path) -> list[Instance]:
    """Parse ``instances.csv`` (no header: onnx path, vnnlib path, timeout seconds)."""
    from hdsl.source import SourceFile

    folder = Path(folder)
    path = folder / "instances.csv" if folder.is_dir() else folder
    base = path.parent
    if not path.exists():
        raise HdslError.single("V501", f"no instances.csv in {folder}", path=str(path),
                               hint="a benchmark folder lists 'onnx,vnnlib,timeout' lines in instances.csv")
    src = SourceFile.read(path)
    out: list[Instance] = []
    for lineno, line in enumerate(src.text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = next(csv.reader([line]))
        start = src.offset(lineno, 1)
        span = src.span(start, start + len(line))
        if len(cells) != 3:
            raise HdslError.single("V502", f"expected 'onnx,vnnlib,timeout', got {len(cells)} field(s)", span)
        try:
            timeout = float(cells[2])
        except ValueError:
            raise HdslError.single("V502", f"timeout '{cells[2].strip()}' is not a number", span) from None
        onnx, vnn = _resolve(base, cells[0]), _resolve(base, cells[1])
        for p in (onnx, vnn):
            if not p.exists():
                raise HdslError.single("V503", f"file not found: {p}", span)
        out.append(Instance(instance_id(onnx, vnn), onnx, vnn, timeout, lineno))
    return out


def read_truth(path: str | Path) -> dict[str, str]:
    """``instance -> expected`` (sat/unsat/unknown) from a ground-truth CSV with a header."""
    from hdsl.source import SourceFile

    p = Path(path)
    if not p.exists():
        raise HdslError.single("V504", f"ground-truth file not found: {p}", path=str(p))
    src = SourceFile.read(p)
    rows = list(csv.reader(src.text.splitlines()))
    if not rows or [c.strip() for c in rows[0][:2]] != ["instance", "expected"]:
        raise HdslError.single("V505", "the ground-truth CSV must start with the header 'instance,expected'",
                               src.span(0, len(src.line_text(1))))
    truth: dict[str, str] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        exp = row[1].strip().lower() if len(row) > 1 else ""
        if exp not in ("sat", "unsat", "unknown"):
            start = src.offset(lineno, 1)
            raise HdslError.single("V505", f"expected must be sat, unsat or unknown, got '{exp}'",
                                   src.span(start, start + len(src.line_text(lineno))))
        truth[row[0].strip()] = exp
    return truth


@dataclass(frozen=True, slots=True)
class Row:
    outcome: Outcome
    expected: str  # sat | unsat | unknown | none (no ground truth)

    @property
    def wrong(self) -> bool:
        return (self.outcome.verdict, self.expected) in WRONG_PAIRS

    @property
    def solved(self) -> bool:
        return self.outcome.verdict in ("sat", "unsat") and not self.wrong


@dataclass
class BenchReport:
    folder: str
    rows: list[Row] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def wrong(self) -> list[Row]:
        return [r for r in self.rows if r.wrong]

    def summary(self) -> dict:
        rows = self.rows
        solved = [r for r in rows if r.solved]
        times = [r.outcome.time_s for r in solved]
        cells: dict[str, dict[str, dict]] = {}
        for exp in EXPECTED:
            for v in VERDICTS:
                sel = [r.outcome.time_s for r in rows if r.expected == exp and r.outcome.verdict == v]
                if sel:
                    cells.setdefault(exp, {})[v] = {"count": len(sel), "time_s": round(sum(sel), 3),
                                                    "median_s": round(statistics.median(sel), 3)}
        stages: dict[str, int] = {}
        for r in solved:
            key = f"{r.outcome.verdict}:{r.outcome.stage or '?'}"
            stages[key] = stages.get(key, 0) + 1
        return {
            "instances": len(rows),
            "solved": len(solved),
            "sat": sum(r.outcome.verdict == "sat" for r in solved),
            "unsat": sum(r.outcome.verdict == "unsat" for r in solved),
            "wrong": len(self.wrong),
            "unknown": sum(r.outcome.verdict == "unknown" for r in rows),
            "timeout": sum(r.outcome.verdict == "timeout" for r in rows),
            "error": sum(r.outcome.verdict == "error" for r in rows),
            "unsat_on_unknown": sum(r.outcome.verdict == "unsat" and r.expected == "unknown" for r in rows),
            "time_s": round(sum(r.outcome.time_s for r in rows), 3),
            "solved_time_s": round(sum(times), 3),
            "solved_median_s": round(statistics.median(times), 3) if times else None,
            "solved_max_s": round(max(times), 3) if times else None,
            "by_expected": cells,
            "by_stage": dict(sorted(stages.items())),
        }

    def to_json(self) -> dict:
        return {
            "folder": self.folder,
            "settings": self.settings,
            "summary": self.summary(),
            "wrong": [r.outcome.instance for r in self.wrong],
            "instances": [dict(r.outcome.to_json(), expected=r.expected, wrong=r.wrong) for r in self.rows],
        }


def select(instances: Iterable[Instance], pattern: str | None = None, limit: int | None = None) -> list[Instance]:
    """Instances whose id matches ``pattern`` (``re.search``), at most ``limit`` of them, in file order."""
    try:
        rx = re.compile(pattern) if pattern else None
    except re.error as err:
        raise HdslError.single("V506", f"invalid --filter regular expression: {err}") from None
    out = [i for i in instances if rx is None or rx.search(i.id)]
    return out[:limit] if limit is not None else out


def effective_timeout(inst: Instance, scale: float = 1.0, override: float | None = None) -> float:
    return float(override) if override is not None else inst.timeout * scale


def run_benchmark(folder: str | Path, *, truth: dict[str, str] | None = None, pattern: str | None = None,
                  limit: int | None = None, timeout_scale: float = 1.0, timeout: float | None = None,
                  backend: str = "auto", solver: Solver | None = None, arithmetic: str = "float32",
                  progress: Callable[[int, int, Row], None] | None = None) -> BenchReport:
    """Run the selected instances of a benchmark folder one after the other.

    An answer that arrives after its timeout (plus 5 % and 1 s of slack for
    start-up) is counted as ``timeout``, as VNN-COMP does; the planner's own
    answer is kept in ``raw_verdict``.
    """
    insts = select(read_instances(folder), pattern, limit)
    solve = solver or default_solver()
    report = BenchReport(str(folder), settings={
        "timeout_scale": timeout_scale, "timeout": timeout, "backend": backend, "arithmetic": arithmetic,
        "filter": pattern, "limit": limit,
        "selected": len(insts)})
    for k, inst in enumerate(insts, start=1):
        t = effective_timeout(inst, timeout_scale, timeout)
        try:
            out = solve_instance(inst.onnx, inst.vnnlib, t, backend=backend, solver=solve, instance=inst.id,
                                 arithmetic=arithmetic)
        except HdslError as err:
            out = Outcome(inst.id, "error", 0.0, message=err.diagnostics[0].render() if err.diagnostics else str(err),
                          raw_verdict="error", timeout_s=t)
        if out.time_s > t * 1.05 + 1.0 and out.verdict in ("sat", "unsat", "unknown"):
            out = Outcome(out.instance, "timeout", out.time_s, out.stage, out.backend,
                          f"answered {out.verdict} after {out.time_s:.1f}s > timeout {t:g}s", None, None,
                          out.raw_verdict, t)
        row = Row(out, truth.get(inst.id, "none") if truth else "none")
        report.rows.append(row)
        if progress is not None:
            progress(k, len(insts), row)
    return report


# --------------------------------------------------------------------------- rendering


def render_table(report: BenchReport):
    """A rich table: rows = expected answer, columns = hdsl's verdict (count, total seconds)."""
    from rich.table import Table

    s = report.summary()
    table = Table()
    table.add_column("expected \\ hdsl")
    verdicts = [v for v in VERDICTS if any(v in cells for cells in s["by_expected"].values())]
    for v in verdicts:
        table.add_column(v, justify="right")
    for exp, cells in s["by_expected"].items():
        row = [exp]
        for v in verdicts:
            c = cells.get(v)
            if c is None:
                row.append("")
                continue
            txt = f"{c['count']} ({c['time_s']:.1f}s)"
            if (v, exp) in WRONG_PAIRS:
                txt = f"[bold white on red]{txt} WRONG[/]"
            elif v in ("sat", "unsat") and v == exp:
                txt = f"[green]{txt}[/]"
            row.append(txt)
        table.add_row(*row)
    return table


def summary_lines(report: BenchReport) -> list[str]:
    s = report.summary()

    def sec(v) -> str:
        return "-" if v is None else f"{v:.2f}s"

    lines = [
        f"{report.folder}: solved {s['solved']}/{s['instances']} (sat {s['sat']}, unsat {s['unsat']}); "
        f"unknown {s['unknown']}, timeout {s['timeout']}, error {s['error']}; {s['wrong']} wrong",
        f"time: total {sec(s['time_s'])}; solved instances: total {sec(s['solved_time_s'])}, "
        f"median {sec(s['solved_median_s'])}, max {sec(s['solved_max_s'])}",
    ]
    if s["by_stage"]:
        lines.append("solved by stage: " + ", ".join(f"{k} {v}" for k, v in s["by_stage"].items()))
    if s["unsat_on_unknown"]:
        lines.append(f"note: {s['unsat_on_unknown']} unsat answer(s) on instances no established tool decided")
    return lines
