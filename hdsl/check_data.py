"""Checking ``data`` declarations: format, options, the file itself, and row selection.

The file is read here (cached by ``hdsl.data``), so a missing or unreadable
file, a bad option or an out-of-range selection is a diagnostic at the
declaration; the input shape is attached later, where a property meets a model.
"""

from __future__ import annotations

from hdsl import ast, ir
from hdsl.check import DATA_FORMATS, E_BAD_VALUE, E_FORMAT, Spec, int_list
from hdsl.constants import show
from hdsl.diagnostics import HdslError


_DATA_KEYS = {"label column": "label_column", "label key": "y_key", "input key": "x_key", "scale": "scale",
              "layout": "layout", "shape": "shape", "header": "header"}


def declare_data(spec: Spec, d: ast.DataDecl) -> None:
    fmt = d.source.format.name
    if fmt not in DATA_FORMATS:
        spec.error(E_FORMAT, f"unknown data format '{fmt}'", d.source.format.span,
                   "use one of: " + ", ".join(DATA_FORMATS))
        return
    options: list[tuple[str, str]] = []
    for opt in d.options:
        key = _DATA_KEYS[opt.key]
        if isinstance(opt.value, ast.String):
            options.append((key, opt.value.value))
            continue
        if key == "shape":
            shape = int_list(spec, opt.value, "the data shape")
            if shape is not None:
                options.append((key, ",".join(map(str, shape))))
            continue
        value = spec.fold(opt.value)
        if value is None:
            continue
        if isinstance(value, tuple):
            spec.error(E_BAD_VALUE, f"{opt.key} takes a number, not a list", opt.value.span)
        elif key in ("label_column", "header") and value.denominator != 1:
            spec.error(E_BAD_VALUE, f"{opt.key} must be an integer", opt.value.span)
        elif key == "scale" and value <= 0:
            spec.error(E_BAD_VALUE, "scale must be positive", opt.value.span)
        else:
            options.append((key, str(value)))
    if fmt != "csv" and any(k in ("label_column", "header") for k, _ in options):
        spec.error(E_BAD_VALUE, f"label column and header apply to csv files, not {fmt}", d.source.format.span)
    path = spec.resolve_path(d.source.path)
    raw = ir.Dataset(d.name.name, path, fmt, None, tuple(opt for opt in options if opt[0] not in ("shape", "layout")),
                     span=d.source.path.span)
    from hdsl.data import load_dataset

    try:
        rows = len(load_dataset(raw))
    except HdslError as err:
        spec.absorb(err)
        return
    indices = _select(spec, d, rows)
    if indices is None:
        return
    spec.datasets[d.name.name] = ir.Dataset(d.name.name, path, fmt, indices, tuple(options), span=d.span)


def _select(spec: Spec, d: ast.DataDecl, rows: int) -> tuple[int, ...] | None:
    """Apply ``[a:b]``, ``skip n``, ``take n`` / ``take [i, j]`` in order to the file's rows."""
    current = list(range(rows))
    for sel in d.selections:
        if sel.kind == "slice":
            bounds = []
            for part in (sel.value.start, sel.value.stop):
                v = spec.fold(part) if part is not None else None
                if part is not None and (v is None or isinstance(v, tuple) or v.denominator != 1):
                    if v is not None:
                        spec.error(E_BAD_VALUE, "slice bounds must be integers", part.span)
                    return None
                bounds.append(int(v) if v is not None else None)
            current = current[bounds[0]:bounds[1]]
            continue
        v = spec.fold(sel.value)
        if v is None:
            return None
        if sel.kind == "take" and isinstance(v, tuple):
            picks = []
            for x in v:
                if x.denominator != 1 or not 0 <= x < len(current):
                    spec.error(E_BAD_VALUE, f"row {x} is out of range: the selection has {len(current)} rows",
                               sel.value.span)
                    return None
                picks.append(current[int(x)])
            current = picks
            continue
        if isinstance(v, tuple) or v.denominator != 1 or v < 0:
            spec.error(E_BAD_VALUE, f"{sel.kind} needs a non-negative integer, not {show(v)}", sel.value.span)
            return None
        current = current[: int(v)] if sel.kind == "take" else current[int(v):]
    if not current:
        spec.warn(E_BAD_VALUE, f"data '{d.name.name}' selects no rows", d.span)
    return tuple(current)
