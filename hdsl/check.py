"""The checker: imports, name resolution, declarations, files and shapes.

``check_file(path)`` parses a spec and its imports and resolves every
declaration into IR values (constants, classes, hierarchies, networks, data
sets). It never stops at the first problem: every diagnostic is collected in
``Spec.diagnostics``; properties are analysed by ``hdsl.lower`` (which the
checker runs, so a spec that checks clean also lowers). The symbol table
(``Spec.symbols``) is what the language server uses for hover and go-to.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from hdsl import ast, ir
from hdsl.constants import Value, evaluate, show
from hdsl.diagnostics import Diagnostic, HdslError, Severity, article
from hdsl.onnx_info import read_onnx, shapes_match, strip_batch
from hdsl.parser import parse_source
from hdsl.source import SourceFile, Span

# Diagnostic codes: E2xx names, E3xx values/shapes, E4xx files, E6xx unsupported.
E_DUPLICATE = "E201"
E_UNKNOWN = "E202"
E_WRONG_KIND = "E203"
E_DUP_CLASS = "E204"
E_IMPORT_CYCLE = "E205"
E_DUP_CHECK = "E206"
E_BAD_VALUE = "E304"
E_SHAPE = "E303"
E_OUTPUTS = "E305"
E_FORMAT = "E306"
E_TOO_DEEP = "E316"
W_NO_EFFECT = "W317"
E_IMPORT_MISSING = "E410"
E_MODEL_MISSING = "E411"
E_MODEL_UNREADABLE = "E412"

BACKENDS = ("auto", "bounds", "z3", "attack")
MODEL_FORMATS = ("onnx",)
DATA_FORMATS = ("npz", "npy", "csv")
HIERARCHY_FORMATS = ("json", "newick", "nbdt")


@dataclass
class Symbol:
    """A declared name: its kind, declaration node and the file it is in."""

    name: str
    kind: str  # const classes hierarchy model data property explainer causal alignment
    node: object
    span: Span | None


@dataclass
class ModelInfo:
    network: ir.Network
    onnx_input: tuple[int | None, ...] | None = None  # as stored in the file (with batch dim)
    onnx_outputs: int | None = None


@dataclass
class Spec:
    """A checked spec: resolved declarations plus every diagnostic found."""

    source: SourceFile
    module: ast.Module | None
    symbols: dict[str, Symbol] = field(default_factory=dict)
    consts: dict[str, Value] = field(default_factory=dict)
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    hierarchies: dict[str, ir.Hierarchy] = field(default_factory=dict)
    models: dict[str, ModelInfo] = field(default_factory=dict)
    datasets: dict[str, ir.Dataset] = field(default_factory=dict)
    properties: dict[str, ast.PropertyDecl] = field(default_factory=dict)
    checks: list[ast.CheckStmt] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    main_properties: list[str] = field(default_factory=list)
    deep: bool = True  # also import the ONNX graph to report unsupported operators
    plans: dict = field(default_factory=dict)  # property -> hdsl.lower.Plan (properties that checked clean)
    check_plan: list = field(default_factory=list)  # (property, ir.CheckOptions, span) per checked property
    imported: set = field(default_factory=set)  # resolved paths of imported files

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint))

    def warn(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint, Severity.WARNING))

    def absorb(self, err: HdslError, span: Span | None = None) -> None:
        """Keep a stage's diagnostics; those without a location get ``span``."""
        for d in err.diagnostics:
            if d.span is None and span is not None:
                hint = d.hint if d.path is None else f"in {d.path}" + (f"; {d.hint}" if d.hint else "")
                d = Diagnostic(d.code, d.message, span, hint, d.severity)
            self.diagnostics.append(d)

    def resolve_path(self, node: ast.String) -> str:
        base = Path(node.span.path).parent if node.span is not None else Path(".")
        return str(base / node.value)

    def lookup(self, name: str, kind: str, node, what: str | None = None) -> Symbol | None:
        """The symbol ``name`` of ``kind``, or a diagnostic at ``node``."""
        sym = self.symbols.get(name)
        span = getattr(node, "span", None)
        if sym is None:
            self.error(E_UNKNOWN, f"unknown {what or kind} '{name}'", span,
                       suggest(name, [s.name for s in self.symbols.values() if s.kind == kind]))
            return None
        if sym.kind != kind:
            self.error(E_WRONG_KIND, f"'{name}' is {article(sym.kind)}, not {article(what or kind)}", span)
            return None
        return sym

    def const_lookup(self, name: ast.Name) -> Value | None:
        return self.consts.get(name.id)

    def fold(self, expr) -> Value | None:
        """Fold a constant expression; a diagnostic and None when it is not constant."""
        try:
            return evaluate(expr, self.const_lookup)
        except HdslError as err:
            self.absorb(err)
            return None


def named_symbol(spec: Spec, node, kind: str, what: str, code: str) -> Symbol:
    """The symbol of ``kind`` that ``node`` names, for a feature's call arguments; else an error
    ``code`` at the node with a close name or the declared ones as hint."""
    if not isinstance(node, ast.Name):
        raise HdslError.single(code, f"expected the name of {article(what)}", getattr(node, "span", None))
    sym = spec.symbols.get(node.id)
    if sym is None or sym.kind != kind:
        options = [s.name for s in spec.symbols.values() if s.kind == kind]
        hint = suggest(node.id, options) or ("declared: " + ", ".join(options) if options else
                                             f"declare {article(what)} first")
        raise HdslError.single(code, f"'{node.id}' is not {article(what)}", node.span, hint)
    return sym


def suggest(name: str, options) -> str | None:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"did you mean '{close[0]}'?" if close else None


# --------------------------------------------------------------------------- entry points


def check_file(path: str | Path, deep: bool = True) -> Spec:
    """Parse and check the spec at ``path`` (never raises for a bad spec)."""
    try:
        source = SourceFile.read(path)
    except (OSError, UnicodeDecodeError) as exc:
        spec = Spec(SourceFile(str(path), ""), None)
        spec.diagnostics.append(Diagnostic("E400", f"cannot read spec file: {exc}", path=str(path)))
        return spec
    return check_source(source, deep=deep)


def check_source(source: SourceFile, deep: bool = True) -> Spec:
    spec = Spec(source, None, deep=deep)
    try:
        spec.module = parse_source(source)
    except HdslError as err:
        spec.absorb(err)
        return spec
    try:
        _check_module(spec, source)
    except RecursionError:
        spec.error(E_TOO_DEEP, "an expression is nested too deeply", Span(source, 0, 0),
                   "split it with `const` declarations")
    # in reading order, whatever the checking order; once each (properties sharing a declaration
    # would each report its problem)
    spec.diagnostics[:] = sorted(dict.fromkeys(spec.diagnostics), key=_position)
    return spec


def _check_module(spec: Spec, source: SourceFile) -> None:
    statements: list[tuple[ast.Module, object]] = []
    _collect(spec, source, spec.module, statements, visiting=[str(Path(source.path).resolve())], main=True)
    for stmt in statements:
        _declare(spec, stmt)
    rank = {kind: i for i, kind in enumerate(_ORDER)}
    for stmt in sorted(statements, key=lambda s: rank.get(type(s), len(rank))):
        _resolve(spec, stmt)
    from hdsl.lower import analyse_properties

    analyse_properties(spec)
    check_checks(spec)


def _position(d: Diagnostic) -> tuple:
    if d.span is None:
        return (1, d.path or "", 0)
    return (0, d.span.path, d.span.start)


def _collect(spec: Spec, source: SourceFile, module: ast.Module, out: list, visiting: list[str], main: bool) -> None:
    """Statements of ``module`` with those of its imports first (each file once)."""
    for stmt in module.statements:
        if isinstance(stmt, ast.Import):
            target = Path(spec.resolve_path(stmt.path)).resolve()
            key = str(target)
            if key in visiting:
                spec.error(E_IMPORT_CYCLE, f"import cycle: {stmt.path.value} imports itself (directly or not)",
                           stmt.path.span)
                continue
            if key in spec.imported:
                continue
            spec.imported.add(key)
            try:
                sub_source = SourceFile.read(target)
            except (OSError, UnicodeDecodeError):
                spec.error(E_IMPORT_MISSING, f"imported file not found: {stmt.path.value}", stmt.path.span,
                           "paths are relative to the importing file's directory")
                continue
            try:
                sub = parse_source(sub_source)
            except HdslError as err:
                spec.absorb(err)
                continue
            _collect(spec, sub_source, sub, out, visiting + [key], main=False)
        elif isinstance(stmt, ast.CheckStmt):
            if main:
                spec.checks.append(stmt)
        else:
            out.append(stmt)
            if main and isinstance(stmt, ast.PropertyDecl):
                spec.main_properties.append(stmt.name.name)


_KINDS = {
    ast.Const: "const", ast.Classes: "classes", ast.HierarchyDecl: "hierarchy", ast.ModelDecl: "model",
    ast.DataDecl: "data", ast.PropertyDecl: "property", ast.ExplainerDecl: "explainer",
    ast.CausalModelDecl: "causal model", ast.AlignmentDecl: "alignment",
}


def _declare(spec: Spec, stmt) -> None:
    name: ast.Ident = stmt.name
    if name.name in spec.symbols:
        first = spec.symbols[name.name]
        where = f" (first declared at {first.span})" if first.span is not None else ""
        spec.error(E_DUPLICATE, f"'{name.name}' is declared twice{where}", name.span,
                   "every declaration needs its own name")
        return
    spec.symbols[name.name] = Symbol(name.name, _KINDS[type(stmt)], stmt, name.span)


# Declarations resolve kind by kind (constants first, properties last), so a name may be used
# before the line that declares it; constants among themselves resolve in order.
_ORDER = (ast.Const, ast.Classes, ast.HierarchyDecl, ast.ModelDecl, ast.DataDecl, ast.PropertyDecl)


def _resolve(spec: Spec, stmt) -> None:
    if spec.symbols.get(stmt.name.name, None) is None or spec.symbols[stmt.name.name].node is not stmt:
        return  # a duplicate: reported already
    from hdsl.check_data import declare_data

    handler = {
        ast.Const: _const, ast.Classes: _classes, ast.HierarchyDecl: _hierarchy, ast.ModelDecl: _model,
        ast.DataDecl: declare_data, ast.PropertyDecl: _property,
    }.get(type(stmt))
    if handler is not None:
        handler(spec, stmt)


# --------------------------------------------------------------------------- declarations


def _const(spec: Spec, c: ast.Const) -> None:
    value = spec.fold(c.value)
    if value is not None:
        spec.consts[c.name.name] = value


def _classes(spec: Spec, c: ast.Classes) -> None:
    seen: dict[str, ast.Ident] = {}
    for ident in c.classes:
        if ident.name in seen:
            spec.error(E_DUP_CLASS, f"class '{ident.name}' is listed twice in '{c.name.name}'", ident.span,
                       "class names must be unique: they name the model's outputs in order")
        seen.setdefault(ident.name, ident)
    spec.classes[c.name.name] = tuple(seen)


def _hier_node(name: str, items) -> ir.HierarchyNode:
    children = tuple(_hier_node(i.name.name, i.children) if isinstance(i, ast.HierGroup) else i.name for i in items)
    return ir.HierarchyNode(name, children)


def _hierarchy(spec: Spec, h: ast.HierarchyDecl) -> None:
    classes = None
    class_decl = None
    if h.over is not None:
        sym = spec.lookup(h.over.name, "classes", h.over, "class list")
        if sym is None:
            return
        class_decl = sym.node
        classes = spec.classes.get(h.over.name)
    if h.source is not None:
        fmt = h.source.format.name
        if fmt not in HIERARCHY_FORMATS:
            spec.error(E_FORMAT, f"unknown hierarchy format '{fmt}'", h.source.format.span,
                       "use one of: " + ", ".join(HIERARCHY_FORMATS))
            return
        from hdsl.hierarchy import load_hierarchy

        try:
            spec.hierarchies[h.name.name] = load_hierarchy(spec.resolve_path(h.source.path), fmt, classes,
                                                           h.name.name)
        except HdslError as err:
            spec.absorb(err, h.source.path.span)
        return
    if classes is None:
        spec.error(E_UNKNOWN, f"hierarchy '{h.name.name}' needs its classes: `hierarchy {h.name.name} over CLASSES`",
                   h.name.span)
        return
    tree = ir.Hierarchy(h.name.name, classes, _hier_node(h.name.name, h.body), span=h.span)
    places: dict[str, Span | None] = {}

    def walk(items):
        for item in items:
            ident = item.name if isinstance(item, ast.HierGroup) else item
            places[ident.name] = ident.span  # the last occurrence: the duplicate, when there is one
            if isinstance(item, ast.HierGroup):
                walk(item.children)

    walk(h.body)
    in_classes = {i.name: i.span for i in class_decl.classes} if class_decl is not None else {}

    def locate(name: str) -> Span | None:
        return places.get(name) or in_classes.get(name) or h.name.span

    from hdsl.hierarchy import validate_hierarchy

    problems = validate_hierarchy(tree, locate)
    spec.diagnostics.extend(problems)
    if not any(d.severity is Severity.ERROR for d in problems):
        spec.hierarchies[h.name.name] = tree


def int_list(spec: Spec, expr, what: str, positive: bool = True) -> tuple[int, ...] | None:
    value = spec.fold(expr)
    if value is None:
        return None
    items = value if isinstance(value, tuple) else (value,)
    if not items or any(v.denominator != 1 or (positive and v <= 0) for v in items):
        spec.error(E_BAD_VALUE, f"{what} must be a list of positive integers, not {show(value)}", expr.span)
        return None
    return tuple(int(v) for v in items)


def _model(spec: Spec, m: ast.ModelDecl) -> None:
    fmt = m.source.format.name
    if fmt not in MODEL_FORMATS:
        spec.error(E_FORMAT, f"unknown model format '{fmt}'", m.source.format.span, "models are ONNX files: onnx \"...\"")
        return
    path = spec.resolve_path(m.source.path)
    shape = input_range = mean = std = classes = None
    outputs_node = None
    num_outputs: int | None = None
    for item in m.items:
        if isinstance(item, ast.ModelInput):
            shape = int_list(spec, item.shape, "the input shape")
            if item.range is not None:
                rng = spec.fold(item.range)
                if rng is not None:
                    if not isinstance(rng, tuple) or len(rng) != 2 or rng[0] >= rng[1]:
                        spec.error(E_BAD_VALUE, f"the input range must be [low, high] with low < high, not {show(rng)}",
                                   item.range.span)
                    else:
                        input_range = (float(rng[0]), float(rng[1]))
        elif isinstance(item, ast.ModelNormalize):
            mean, std = spec.fold(item.mean), spec.fold(item.std)
            mean = mean if isinstance(mean, tuple) or mean is None else (mean,)
            std = std if isinstance(std, tuple) or std is None else (std,)
            if std is not None and any(s <= 0 for s in std):
                spec.error(E_BAD_VALUE, "std must be positive", item.std.span)
                std = None
            if mean is not None and std is not None and len(mean) != len(std) and 1 not in (len(mean), len(std)):
                spec.error(E_SHAPE, f"mean has {len(mean)} values but std has {len(std)}", item.span)
                mean = std = None
        elif isinstance(item, ast.ModelOutputs):
            outputs_node = item.value
            if isinstance(item.value, ast.Name) and item.value.id in spec.symbols:
                if spec.lookup(item.value.id, "classes", item.value, "class list") is not None:
                    classes = spec.classes.get(item.value.id)
                    num_outputs = len(classes) if classes is not None else None
            elif isinstance(item.value, ast.Name):
                spec.lookup(item.value.id, "classes", item.value, "class list")
            else:
                count = int_list(spec, item.value, "the number of outputs")
                if count is not None:
                    if len(count) != 1:
                        spec.error(E_BAD_VALUE, "outputs takes a class list or a number", item.value.span)
                    else:
                        num_outputs = count[0]
    info = _read_onnx(spec, path, m)
    if info is not None:
        onnx_in, onnx_out = info
        if shape is None and onnx_in is not None:
            shape = strip_batch(onnx_in)
            if shape is None:
                spec.error(E_SHAPE, f"the model's input shape {list(onnx_in)} has unknown dimensions",
                           m.name.span, "declare it: input [C, H, W]")
        elif shape is not None and onnx_in is not None:
            if not shapes_match(shape, onnx_in):
                spec.error(E_SHAPE, f"declared input shape {list(shape)} does not match the ONNX input "
                                    f"{[d if d is not None else '?' for d in onnx_in]}",
                           _item_span(m, ast.ModelInput) or m.name.span, "give the shape without the batch dimension")
            elif len(shape) == len(onnx_in) > 1 and onnx_in[0] in (None, 1):
                shape = shape[1:]  # the declaration included the batch dimension
        if onnx_out is not None:
            if num_outputs is not None and num_outputs != onnx_out:
                what = f"'{outputs_node.id}' has {num_outputs} classes" if classes is not None else \
                    f"outputs says {num_outputs}"
                spec.error(E_OUTPUTS, f"{what} but the model has {onnx_out} outputs",
                           outputs_node.span if outputs_node is not None else m.name.span,
                           "the classes must name the model's outputs one to one, in order")
            num_outputs = onnx_out if num_outputs is None or num_outputs != onnx_out else num_outputs
    channels = max(len(mean or ()), len(std or ()))
    if shape is not None and channels not in (0, 1, shape[0], shape[-1]):
        spec.error(E_SHAPE, f"normalize has {channels} values but the input {list(shape)} has "
                            f"{shape[0]} channels first or {shape[-1]} last",
                   _item_span(m, ast.ModelNormalize), "give one value per channel, or one for all")
    if shape is None:
        return
    net = ir.Network(
        m.name.name, path, shape, input_range,
        tuple(float(v) for v in mean) if mean else None, tuple(float(v) for v in std) if std else None,
        classes, num_outputs, span=m.span,
    )
    spec.models[m.name.name] = ModelInfo(net, info[0] if info else None, info[1] if info else None)
    if spec.deep and info is not None:
        _deep_import(spec, path, m)


def _item_span(m: ast.ModelDecl, kind) -> Span | None:
    return next((i.span for i in m.items if isinstance(i, kind)), None)


def _read_onnx(spec: Spec, path: str, m: ast.ModelDecl) -> tuple | None:
    """(input dims with batch, output size) from the ONNX file, or a diagnostic."""
    span = m.source.path.span
    if not Path(path).is_file():
        spec.error(E_MODEL_MISSING, f"model file not found: {m.source.path.value}", span,
                   "paths are relative to the spec file's directory")
        return None
    try:
        return read_onnx(path)
    except ValueError as exc:
        spec.error(E_MODEL_UNREADABLE, f"{m.source.path.value}: {exc}", span)
        return None


def _deep_import(spec: Spec, path: str, m: ast.ModelDecl) -> None:
    """Import the graph with hdsl.nn, so unsupported operators are reported at the declaration."""
    try:
        from hdsl.nn import load_onnx
    except ImportError:  # pragma: no cover - the nn package is part of hdsl
        return
    try:
        load_onnx(path)
    except HdslError as err:
        spec.absorb(err, m.source.path.span)


def _property(spec: Spec, p: ast.PropertyDecl) -> None:
    spec.properties[p.name.name] = p


def parse_duration(text: str) -> float:
    """``60s`` -> 60.0, ``500ms`` -> 0.5, ``2min`` -> 120.0, ``1h`` -> 3600.0."""
    for unit, factor in (("ms", Fraction(1, 1000)), ("min", Fraction(60)), ("s", Fraction(1)), ("h", Fraction(3600))):
        if text.endswith(unit):
            return float(Fraction(text[: -len(unit)]) * factor)
    return float(Fraction(text))


# --------------------------------------------------------------------------- check statements


def check_checks(spec: Spec) -> None:
    """Resolve ``check`` statements into ``spec.check_plan``: (property, options, span)."""
    plan = []
    planned: set[str] = set()
    if not spec.checks:
        for name in spec.main_properties:
            plan.append((name, ir.CheckOptions(), spec.properties[name].span if name in spec.properties else None))
    for stmt in spec.checks:
        timeout, backend, arithmetic = None, "auto", "float32"
        for opt in stmt.options:
            if opt.key == "timeout":
                if isinstance(opt.value, ast.Duration):
                    timeout = parse_duration(opt.value.text)
                else:
                    v = spec.fold(opt.value)
                    if isinstance(v, tuple):
                        spec.error(E_BAD_VALUE, "the timeout is a number of seconds or a duration such as 60s",
                                   opt.value.span)
                    timeout = None if v is None or isinstance(v, tuple) else float(v)
                if timeout is not None and timeout <= 0:
                    spec.error(E_BAD_VALUE, "the timeout must be positive", opt.value.span)
            elif opt.key == "arithmetic":
                arithmetic = opt.value.name
                if arithmetic not in ir.ARITHMETICS:
                    spec.error(E_BAD_VALUE, f"unknown arithmetic '{arithmetic}'", opt.value.span,
                               "use float32 (proofs cover the deployed float32 network; the default) or real "
                               "(the real-valued network only, as α,β-CROWN and Marabou verify)")
                    arithmetic = "float32"
            else:
                backend = opt.value.name
                known = backend_names()
                if backend not in known:
                    spec.error(E_UNKNOWN, f"unknown backend '{backend}'", opt.value.span,
                               "use one of: " + ", ".join(known))
        for ident in stmt.properties:
            if spec.lookup(ident.name, "property", ident) is None:
                continue
            if ident.name in planned:
                spec.error(E_DUP_CHECK, f"property '{ident.name}' is checked twice", ident.span,
                           "check each property once (options go on that statement)")
                continue
            planned.add(ident.name)
            plan.append((ident.name, ir.CheckOptions(timeout, backend, arithmetic), stmt.span))
            _warn_ignored_options(spec, ident.name, stmt.options)
    spec.check_plan = plan


def _warn_ignored_options(spec: Spec, name: str, options) -> None:
    """A warning for each option that the property's items cannot honour (their ``ignored_options()``)."""
    plan = spec.plans.get(name)
    ignored: dict[str, str] = {}
    for item in (plan.items or ()) if plan is not None else ():
        if hasattr(item, "ignored_options"):
            ignored.update(item.ignored_options())
    for opt in options:
        if opt.key in ignored:
            spec.warn(W_NO_EFFECT, f"`{opt.key}` has no effect on property '{name}'", opt.span, ignored[opt.key])


def backend_names() -> tuple[str, ...]:
    from hdsl import backends

    return tuple(dict.fromkeys(BACKENDS + tuple(backends.REGISTRY)))
