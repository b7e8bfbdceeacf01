"""Properties -> IR queries.

``analyse_properties(spec)`` checks every property once (shape of the
quantifiers, the model it calls, its output condition) and keeps a ``Plan``;
``lower(spec)`` expands each checked property into ``ir.Query`` objects: one
per data point (and per hierarchy level for ``level all``), each with the
unsafe set of its output condition (see ``hdsl.passes``).

Supported property shapes::

    forall (x, y) in DATA: forall x2 in linf(x, EPS): COND(net(x2), y)
    forall x in DATA: COND(net(x))                                 (the point itself)
    forall x in box(LO, HI): COND(net(x))                          (also linf(CENTRE, EPS))
    forall x in union(box(...), box(...)): COND(net(x))

COND (``hdsl.conditions``) combines, with ``and or not implies``,
``argmax net(v) == c`` / ``!= c`` / ``in S`` (``S`` a set ``{a, b}`` or
``ancestor(h, c, level k)``) and linear comparisons of outputs ``net(v)[i]``.

Measurement properties (faithfulness, sufficiency, IIA, certified radius) are
lowered by their feature module when it is installed: ``MEASURE_HOOKS`` maps
the function name to a module whose ``lower_property(spec, decl)`` returns the
IR items (run by ``hdsl.planner.run_item``); without the module the property
gets an ``E601 ... not supported by this version`` diagnostic.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

from hdsl import ast, ir
from hdsl.check import Spec, suggest
from hdsl.constants import show
from hdsl.diagnostics import HdslError
from hdsl.conditions import ConditionBuilder, Stop
from hdsl.passes import MAX_DISJUNCTS, TooComplex, dnf_size, unsafe_spec

E_NO_MODEL = "E307"
E_NOT_CONDITION = "E308"
E_WRONG_INPUT = "E309"
E_QUANTIFIER = "E310"
E_STATS = "E311"
E_NO_LABELS = "E312"
E_LABEL_RANGE = "E313"
E_TOO_COMPLEX = "E314"
E_ARGS = "E315"
E_SHAPE = "E303"
E_BAD_VALUE = "E304"
E_UNKNOWN = "E202"
E_UNSUPPORTED = "E601"

# Function name -> (feature module exposing ``lower_property(spec, decl) -> tuple[item, ...]``, feature label).
MEASURE_HOOKS: dict[str, tuple[str, str]] = {
    "faithfulness": ("hdsl.xai.spec", "faithfulness"),
    "sufficient": ("hdsl.xai.spec", "sufficiency"),
    "iia": ("hdsl.causal.spec", "interchange-intervention (iia)"),
    "certified_radius": ("hdsl.radius.spec", "certified-radius"),
}
BUILTINS = ("linf", "box", "union", "ancestor", "group") + tuple(MEASURE_HOOKS)


@dataclass
class Plan:
    """A checked property, ready to expand into queries."""

    name: str
    decl: ast.PropertyDecl
    network: ir.Network | None = None
    data: ir.Dataset | None = None
    labels: tuple[int, ...] | None = None
    data_var: str | None = None
    label_var: str | None = None
    input_var: str | None = None
    region: str = "point"  # point | linf | box
    eps: Fraction | None = None
    boxes: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()  # (lower, upper) per box
    levels: tuple[int, ...] | None = None
    condition: object = None  # the AST of the output condition
    items: tuple | None = None  # measurement items from a feature module (None: the property is a query)
    hierarchies: list = field(default_factory=list)


# --------------------------------------------------------------------------- analysis


def analyse_properties(spec: Spec) -> None:
    spec.plans = {}
    for name, decl in spec.properties.items():
        plan = Plan(name, decl)
        try:
            _analyse(spec, plan)
        except Stop:
            continue
        spec.plans[name] = plan


def _walk(expr):
    yield expr
    for child in _children(expr):
        yield from _walk(child)


def _children(e):
    if isinstance(e, (ast.ListExpr, ast.SetExpr)):
        return e.items
    if isinstance(e, ast.Call):
        out = [e.func]
        for a in e.args:
            out.extend(k.value for k in a.items) if isinstance(a, ast.Keywords) else out.append(a)
        return out
    if isinstance(e, ast.Index):
        idx = e.index
        return [e.target] + ([p for p in (idx.start, idx.stop) if p is not None] if isinstance(idx, ast.Slice)
                             else [idx])
    if isinstance(e, (ast.Neg, ast.Argmax, ast.Not)):
        return [e.operand]
    if isinstance(e, (ast.BinOp, ast.Compare, ast.Member)):
        return [e.left, e.right]
    if isinstance(e, ast.Forall):
        return [e.domain, e.body]
    return []


def _stop(spec: Spec, code: str, message: str, node, hint: str | None = None):
    spec.error(code, message, getattr(node, "span", None), hint)
    raise Stop


def _analyse(spec: Spec, plan: Plan) -> None:
    decl = plan.decl
    nodes = list(_walk(decl.body))  # one walk serves every scan below
    calls = [e for e in nodes if isinstance(e, ast.Call) and isinstance(e.func, ast.Name)]
    measures = [c for c in calls if c.func.id in MEASURE_HOOKS and c.func.id not in spec.symbols]
    if measures:
        _measure(spec, plan, measures[0])
        return
    if decl.stats:
        spec.error(E_STATS, "`with confidence/samples/seed` applies to statistical properties only",
                   decl.stats[0].span, "verification queries are proved or falsified, not estimated")
    models = {c.func.id: c for c in calls if spec.symbols.get(c.func.id) and spec.symbols[c.func.id].kind == "model"}
    if not models:
        _stop(spec, E_NO_MODEL, f"property '{plan.name}' does not apply any model", decl.body,
              "write e.g. `argmax net(x) == y` with a declared `model net = onnx \"...\"`")
    if len(models) > 1:
        second = list(models.values())[1]
        _stop(spec, E_NO_MODEL, "a property may apply only one model", second.func)
    (model_name, _), = models.items()
    info = spec.models.get(model_name)
    if info is None:
        raise Stop  # the model declaration has its own diagnostic
    plan.network = info.network
    if plan.network.num_outputs is None:
        _stop(spec, E_NO_MODEL, f"the number of outputs of '{model_name}' is unknown",
              plan.network.span, "declare `outputs CLASSES` or `outputs N`")
    body = decl.body
    binders = []
    if isinstance(body, ast.Forall) and isinstance(body.domain, ast.Name):
        _data_binder(spec, plan, body)
        binders.append(body)
        body = body.body
    if isinstance(body, ast.Forall):
        _region_binder(spec, plan, body)
        binders.append(body)
        body = body.body
    elif plan.data_var is not None:
        plan.input_var = plan.data_var
    else:
        _stop(spec, E_QUANTIFIER, "a property starts with `forall x in DATA:` or `forall x in box(...)/linf(...):`",
              decl.body)
    for e in nodes:
        if isinstance(e, ast.Forall) and all(e is not b for b in binders):
            _stop(spec, E_QUANTIFIER, "`forall` may only appear at the start of a property "
                                      "(over a data set, then over a region)", e)
    plan.condition = body
    # Build the condition once for diagnostics (with the first label / level).
    label = plan.labels[0] if plan.labels else (0 if plan.label_var else None)
    formula = ConditionBuilder(spec, plan, label, None, report=True).condition(body)
    size = dnf_size(formula, plan.network.num_outputs)
    if size > MAX_DISJUNCTS:
        _stop(spec, E_TOO_COMPLEX, f"the output condition expands to {size} disjuncts (more than {MAX_DISJUNCTS})",
              body, "split the property into several properties")
    if any(isinstance(e, ast.AllLevels) for e in nodes):
        hs = plan.hierarchies
        plan.levels = tuple(range(1, max(h.depth() for h in hs) + 1)) if hs else None
    if plan.labels is not None:
        for i, y in enumerate(plan.labels):
            if not 0 <= y < plan.network.num_outputs:
                _stop(spec, E_LABEL_RANGE, f"row {i} of '{plan.data.name}' has label {y}, but "
                                           f"'{model_name}' has {plan.network.num_outputs} outputs",
                      plan.decl.body.domain)


def _data_binder(spec: Spec, plan: Plan, forall: ast.Forall) -> None:
    name = forall.domain.id
    sym = spec.lookup(name, "data", forall.domain, "data set")
    if sym is None or name not in spec.datasets:
        raise Stop
    ds = spec.datasets[name]
    opts = dict(ds.options)
    if "shape" not in opts:
        ds = ir.Dataset(ds.name, ds.path, ds.format, ds.indices,
                        ds.options + (("shape", ",".join(map(str, plan.network.input_shape))),), span=ds.span)
    elif tuple(int(s) for s in opts["shape"].split(",")) != plan.network.input_shape:
        _stop(spec, E_SHAPE, f"data '{name}' has shape [{opts['shape']}] but model '{plan.network.name}' takes "
                             f"{list(plan.network.input_shape)}", forall.domain)
    from hdsl.data import load_dataset

    try:  # without its span, so a problem is reported where the model meets the data
        loaded = load_dataset(replace(ds, span=None))
    except HdslError as err:
        spec.absorb(err, forall.domain.span)
        raise Stop from None
    plan.data = ds
    plan.data_var = forall.binders[0].name
    if len(forall.binders) == 2:
        plan.label_var = forall.binders[1].name
        if loaded.y is None:
            _stop(spec, E_NO_LABELS, f"data '{name}' has no labels, so '{plan.label_var}' has no value",
                  forall.binders[1], "declare the label (csv: `label column N`; npz: a `y` array) "
                                     "or bind only the input: `forall x in ...`")
        plan.labels = tuple(int(v) for v in loaded.y)
    elif plan.data and loaded.y is not None:
        plan.labels = tuple(int(v) for v in loaded.y)


def _positional(spec: Spec, call: ast.Call, count: int) -> list:
    args = [a for a in call.args if not isinstance(a, ast.Keywords)]
    if len(args) != count or len(args) != len(call.args):
        _stop(spec, E_ARGS, f"{call.func.id}(...) takes {count} arguments", call)
    return args


def _region_binder(spec: Spec, plan: Plan, forall: ast.Forall) -> None:
    dom = forall.domain
    if len(forall.binders) != 1:
        _stop(spec, E_QUANTIFIER, "a region binds one variable: `forall x2 in linf(x, eps):`", forall.binders[1])
    if not _is_region(dom, ("linf", "box", "union")):
        if isinstance(dom, ast.Call) and isinstance(dom.func, ast.Name) and dom.func.id not in spec.symbols:
            _stop(spec, E_UNKNOWN, f"unknown region '{dom.func.id}'", dom.func,
                  suggest(dom.func.id, ["linf", "box", "union"]))
        _stop(spec, E_QUANTIFIER, "forall ranges over a data set, linf(x, eps), box(lo, hi) or union(...)", dom)
    plan.input_var = forall.binders[0].name
    n = math.prod(plan.network.input_shape)
    if dom.func.id != "union":
        box = _one_region(spec, plan, dom, n)
        if box is None:
            plan.region = "linf"
        else:
            plan.region, plan.boxes = "box", (box,)
        return
    parts = [a for a in dom.args if not isinstance(a, ast.Keywords)]
    if len(parts) < 2 or len(parts) != len(dom.args):
        _stop(spec, E_ARGS, "union(...) takes two or more regions", dom)
    boxes = []
    for part in parts:
        if not _is_region(part, ("linf", "box")):
            _stop(spec, E_QUANTIFIER, "union(...) joins box(lo, hi) and linf(CENTRE, eps) regions", part)
        box = _one_region(spec, plan, part, n)
        if box is None:
            _stop(spec, E_QUANTIFIER, "a union cannot hold a ball around a data point", part)
        boxes.append(box)
    plan.region, plan.boxes, plan.eps = "box", tuple(boxes), None


def _is_region(node, names: tuple[str, ...]) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names


def _one_region(spec: Spec, plan: Plan, dom: ast.Call, n: int):
    """A box (lower, upper) for ``box(...)`` / ``linf(CONSTANT, eps)``, or None for a ball around the data point."""
    if dom.func.id == "linf":
        centre, eps_node = _positional(spec, dom, 2)
        eps = spec.fold(eps_node)
        if eps is None:
            raise Stop
        if isinstance(eps, tuple) or eps < 0:
            _stop(spec, E_BAD_VALUE, f"eps must be a non-negative number, not {show(eps)}", eps_node)
        plan.eps = eps
        if isinstance(centre, ast.Name) and centre.id == plan.data_var:
            return None
        if isinstance(centre, ast.Name) and centre.id not in spec.consts and plan.data_var is None:
            _stop(spec, E_WRONG_INPUT, f"'{centre.id}' is not a data point or a constant", centre,
                  "quantify over data first: `forall x in DATA: forall x2 in linf(x, eps): ...`")
        c = _vector(spec, centre, n, "the centre")
        lo, hi = plan.network.input_range or (-math.inf, math.inf)
        return tuple(max(lo, float(v - eps)) for v in c), tuple(min(hi, float(v + eps)) for v in c)
    lo_node, hi_node = _positional(spec, dom, 2)
    lo, hi = _vector(spec, lo_node, n, "the lower corner"), _vector(spec, hi_node, n, "the upper corner")
    bad = next((i for i in range(n) if lo[i] > hi[i]), None)
    if bad is not None:
        _stop(spec, E_BAD_VALUE, f"box is empty: lower bound {lo[bad]} > upper bound {hi[bad]} at index {bad}", dom)
    return tuple(float(v) for v in lo), tuple(float(v) for v in hi)


def _vector(spec: Spec, node, n: int, what: str) -> tuple[Fraction, ...]:
    v = spec.fold(node)
    if v is None:
        raise Stop
    if not isinstance(v, tuple):
        return (v,) * n
    if len(v) != n:
        _stop(spec, E_SHAPE, f"{what} has {len(v)} values but the model input has {n}", node)
    return v


def _measure(spec: Spec, plan: Plan, call: ast.Call) -> None:
    module, label = MEASURE_HOOKS[call.func.id]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing too
        found = False
    if not found:
        _stop(spec, E_UNSUPPORTED, f"{label} properties are not supported by this version of hdsl", call.func,
              f"the {label} feature module ({module}) is not installed")
    try:
        plan.items = tuple(importlib.import_module(module).lower_property(spec, plan.decl))
    except HdslError as err:
        spec.absorb(err, call.span)
        raise Stop from None


# --------------------------------------------------------------------------- lowering


def lower(spec: Spec) -> ir.Program:
    """The IR of a checked spec (``spec.ok`` must hold); raises ``HdslError`` if expansion fails."""
    if not spec.ok:
        raise HdslError([d for d in spec.diagnostics])
    checks = []
    plans: dict[str, Plan] = spec.plans
    expanded: dict[str, tuple] = {}
    for name, options, span in spec.check_plan:
        plan = plans.get(name)
        if plan is None:
            continue
        if name not in expanded:
            expanded[name] = plan.items if plan.items is not None else tuple(_queries(spec, plan))
        items = tuple(_with_options(q, options) for q in expanded[name])
        checks.append(ir.Check(name, items, options, span=span))
    used = [p for p in plans.values() if any(c.property == p.name for c in checks)]
    networks = tuple(dict.fromkeys(p.network for p in used if p.network is not None))
    datasets = tuple(dict.fromkeys(p.data for p in used if p.data is not None))
    hierarchies = tuple(dict.fromkeys(h for p in used for h in p.hierarchies))
    from hdsl.passes import run_passes

    return run_passes(ir.Program(networks, datasets, hierarchies, tuple(checks)))


def _with_options(item, options: ir.CheckOptions):
    """The item under its check statement's options (measurements, which take none, as they are)."""
    own = ir.options_of(item)
    if own is not None and own != options:
        return replace(item, options=options)
    return item


def _queries(spec: Spec, plan: Plan):
    net = plan.network
    domain = net.input_range or (-math.inf, math.inf)
    points = range(len(plan.data.indices)) if plan.data is not None else [None]
    levels = plan.levels or (None,)
    for i in points:
        label = plan.labels[i] if (plan.labels is not None and i is not None) else None
        if plan.region == "box":
            parts = tuple(ir.Box(lo, hi) for lo, hi in plan.boxes)
            region: ir.Region = parts[0] if len(parts) == 1 else ir.UnionRegion(parts)
        else:
            eps = float(plan.eps) if plan.region == "linf" else 0.0
            region = ir.LinfBall(ir.DataPoint(plan.data, i), eps, domain)
        for level in levels:
            try:
                formula = ConditionBuilder(spec, plan, label, level, report=False).condition(plan.condition)
                unsafe = unsafe_spec(formula, net.num_outputs)
            except TooComplex as exc:
                raise HdslError.single(E_TOO_COMPLEX, f"the output condition expands to {exc.args[0]} disjuncts "
                                       f"(more than the limit)", plan.decl.span,
                                       "split the property into several properties") from None
            except Stop:  # pragma: no cover - the same builder passed during analysis
                raise HdslError.single(E_NOT_CONDITION, "cannot lower this condition", plan.decl.span) from None
            qid = plan.name + (f"[{i}]" if i is not None else "") + (f"@level{level}" if level is not None else "")
            yield ir.Query(qid, net, region, unsafe, plan.name, ir.CheckOptions(), i, label, level,
                           float(plan.eps) if plan.eps is not None and plan.region == "linf" else
                           (0.0 if plan.region == "point" else None), span=plan.decl.span)
