"""Load the data sets a spec declares (npz, npy, csv) into the model's raw input space.

``load_dataset(ds)`` is the one entry point: it reads the file, applies the
declared value scale, reshapes (with an optional ``hwc->chw`` layout change)
and restricts to ``ds.indices``. Results are cached per data set and file
modification time. Every problem with a file becomes an ``HdslError`` naming
the file, never a numpy traceback.

Options (``Dataset.options``, all strings):
  ``x_key`` / ``y_key``   npz array names (default ``x`` / ``y``; ``y`` optional)
  ``label_column``        csv column holding the integer label (otherwise: no labels)
  ``scale``               factor applied to the values, e.g. ``0.00392156862745098``
  ``shape``               per-row shape after the layout change, e.g. ``3,32,32``
  ``layout``              ``hwc->chw`` or ``chw->hwc`` (needs ``shape``)
  ``delimiter``           csv delimiter (default ``,``)
  ``header``              csv header lines to skip (default ``0``)
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hdsl.diagnostics import HdslError
from hdsl.ir import Dataset

LAYOUTS = ("hwc->chw", "chw->hwc")
OPTION_KEYS = ("x_key", "y_key", "label_column", "scale", "shape", "layout", "delimiter", "header")


@dataclass(frozen=True)
class LoadedData:
    """``x``: float32 ``(N, *shape)`` in the model's raw input space; ``y``: int64 ``(N,)`` or None."""

    x: np.ndarray
    y: np.ndarray | None

    def __len__(self) -> int:
        return int(self.x.shape[0])


_CACHE: dict[tuple[Dataset, str], LoadedData] = {}


def load_dataset(ds: Dataset) -> LoadedData:
    """Read ``ds`` (cached on the declaration and the file's content digest)."""
    from hdsl.files import content_digest

    try:
        digest = content_digest(ds.path)
    except OSError:
        raise _err(ds, "E401", f"data file not found: {ds.path}",
                   hint="paths in a spec are relative to the spec file's directory") from None
    key = (ds, digest)
    if key not in _CACHE:
        _CACHE[key] = _load(ds)
    return _CACHE[key]


def row_count(ds: Dataset) -> int:
    """Number of rows in the file before selection (reads and caches the file)."""
    return len(load_dataset(Dataset(ds.name, ds.path, ds.format, None, ds.options)))


def _err(ds: Dataset, code: str, message: str, hint: str | None = None) -> HdslError:
    return HdslError.single(code, message, span=ds.span, hint=hint, path=None if ds.span else ds.path)


def _load(ds: Dataset) -> LoadedData:
    opts = dict(ds.options)
    unknown = sorted(set(opts) - set(OPTION_KEYS))
    if unknown:
        raise _err(ds, "E402", f"unknown data option(s): {', '.join(unknown)}")
    reader = {"npz": _read_npz, "npy": _read_npy, "csv": _read_csv}.get(ds.format)
    if reader is None:
        raise _err(ds, "E403", f"unknown data format {ds.format!r}", hint="use npz, npy or csv")
    try:
        x, y = reader(ds, opts)
    except HdslError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError) as exc:
        raise _err(ds, "E404", f"cannot read {ds.format} file {ds.path}: {exc}") from None
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[0] == 0:
        raise _err(ds, "E405", f"data file {ds.path} holds no rows")
    if not np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_:
        raise _err(ds, "E405", f"data file {ds.path}: inputs are not numeric (dtype {x.dtype})")
    x = x.astype(np.float64)
    if "scale" in opts:
        with np.errstate(over="ignore"):  # an overflow is reported below, as a diagnostic
            x = x * _number(ds, opts["scale"])
    x = _reshape(ds, x, opts)
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise _err(ds, "E405", f"data file {ds.path}: {len(y)} labels for {len(x)} inputs")
        if not np.all(np.isfinite(y.astype(np.float64))) or np.any(np.mod(y, 1) != 0) or np.any(y < 0):
            raise _err(ds, "E405", f"data file {ds.path}: labels must be non-negative integers")
        y = y.astype(np.int64)
    if ds.indices is not None:
        bad = [i for i in ds.indices if not 0 <= i < len(x)]
        if bad:
            raise _err(ds, "E406", f"row {bad[0]} selected but {ds.path} has only {len(x)} rows")
        idx = np.asarray(ds.indices, dtype=np.int64)
        x = x[idx]
        y = None if y is None else y[idx]
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        row = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0][0])
        row = ds.indices[row] if ds.indices is not None else row
        raise _err(ds, "E405", f"data file {ds.path}: row {row} holds a NaN or a value beyond float32's range"
                   + (" after `scale`" if "scale" in opts else ""),
                   hint="every input must be a finite float32 number")
    x.setflags(write=False)
    if y is not None:
        y.setflags(write=False)
    return LoadedData(x, y)


def _number(ds: Dataset, text: str) -> float:
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise _err(ds, "E402", f"bad numeric option {text!r}") from None


def _read_npz(ds: Dataset, opts: dict) -> tuple:
    xk, yk = opts.get("x_key", "x"), opts.get("y_key", "y")
    with np.load(ds.path, allow_pickle=False) as f:
        keys = list(f.keys())
        if xk not in keys:
            raise _err(ds, "E407", f"npz file {ds.path} has no array {xk!r} (it has: {', '.join(keys) or 'none'})",
                       hint="name the input array with `input key \"NAME\"`")
        x = f[xk]
        if yk in keys:
            y = f[yk]
        elif "y_key" in opts:
            raise _err(ds, "E407", f"npz file {ds.path} has no array {yk!r} (it has: {', '.join(keys)})")
        else:
            y = None
    return x, y


def _read_npy(ds: Dataset, opts: dict) -> tuple:
    return np.load(ds.path, allow_pickle=False), None


def _read_csv(ds: Dataset, opts: dict) -> tuple:
    delim = opts.get("delimiter", ",")
    skip = int(opts.get("header", "0"))
    table = np.loadtxt(ds.path, delimiter=delim, skiprows=skip, ndmin=2, dtype=np.float64)
    if "label_column" not in opts:
        return table, None
    col = int(opts["label_column"])
    if not -table.shape[1] <= col < table.shape[1]:
        raise _err(ds, "E408", f"label column {col} out of range: {ds.path} has {table.shape[1]} columns")
    y = table[:, col]
    x = np.delete(table, col % table.shape[1], axis=1)
    return x, y


def _reshape(ds: Dataset, x: np.ndarray, opts: dict) -> np.ndarray:
    layout = opts.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise _err(ds, "E402", f"unknown layout {layout!r}", hint="use hwc -> chw or chw -> hwc")
    if "shape" not in opts:
        if layout is not None:
            raise _err(ds, "E402", "a layout change needs the input shape", hint="declare `shape [C, H, W]`")
        return x
    try:
        shape = tuple(int(s) for s in opts["shape"].split(",") if s.strip())
    except ValueError:
        raise _err(ds, "E402", f"bad shape {opts['shape']!r}") from None
    n = x.shape[0]
    size = int(np.prod(shape)) if shape else 1
    if int(np.prod(x.shape[1:])) != size:
        raise _err(ds, "E409", f"data rows of {ds.path} have {int(np.prod(x.shape[1:]))} values, "
                              f"but the input shape {list(shape)} needs {size}")
    if layout == "hwc->chw":
        if len(shape) != 3:
            raise _err(ds, "E402", "hwc -> chw needs a 3-d shape [C, H, W]")
        c, h, w = shape
        return x.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    if layout == "chw->hwc":
        if len(shape) != 3:
            raise _err(ds, "E402", "chw -> hwc needs a 3-d shape [H, W, C]")
        h, w, c = shape
        return x.reshape(n, c, h, w).transpose(0, 2, 3, 1)
    return x.reshape((n,) + shape)
