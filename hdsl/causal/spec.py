"""Lowering of the causal constructs of a spec (called by ``hdsl.lower`` through ``MEASURE_HOOKS``).

Language (see the README's causal section)::

    causal model heq {
      input W, X, Y, Z in range(6)      # range(n), range(a, b), [lo, hi], bool, {0, 1, 2}, {red, green}
      WX = W == X                        # == != < <= > >= and or not + - * / (floor), if(c, a, b), mod(a, b), xor(a, b)
      YZ = Y == Z
      O  = WX == YZ                      # the last variable is the output
    }
    alignment right of heq to net { WX -> layer "h"[0:8]  YZ -> layer "h"[8:16] }
    alignment das of heq to net { WX -> layer "hr@rot_wx.npy"[0:8] }   # coordinates 0..7 of a given rotation

    property p = iia(net, heq, right, over all, intervene {WX}, {WX, YZ}) >= 0.95
    property q = iia(net, heq, right, over all, intervene [{WX}, {YZ}]) >= 0.95 with confidence 0.99 samples 5000
    property r = iia(net, heq, right, over all, intervene {WX}, linf(0.01)) >= 1      # formal, per pair region

Each set after ``intervene`` is one experiment whose variables share one source;
a list of sets is one multi-source experiment. Inputs are one-hot encoded in
declaration order. Variable types are inferred: comparisons and logic give
``bool``; arithmetic gives the integer range it reaches over its parents' domains.
"""

from __future__ import annotations

from fractions import Fraction

from hdsl import ast
from hdsl.causal import model as cm
from hdsl.causal.alignment import Alignment, Site
from hdsl.causal.ir import IIA
from hdsl.diagnostics import Diagnostic, HdslError

E = "E701"  # causal model errors
E_ALIGN = "E702"
E_CALL = "E703"


def _err(code: str, message: str, node, hint: str | None = None) -> HdslError:
    return HdslError([Diagnostic(code, message, getattr(node, "span", None), hint)])


# --------------------------------------------------------------------------- causal models


COUNT_MAX = 10**7  # sample counts and domain bounds: larger ones only exhaust memory or time


def _int(spec, node, what: str, maximum: int | None = COUNT_MAX) -> int:
    v = spec.fold(node)
    if v is None:
        raise HdslError([])
    if isinstance(v, tuple) or Fraction(v).denominator != 1:
        raise _err(E, f"{what} must be an integer", node)
    if maximum is not None and abs(v) > maximum:
        raise _err(E, f"{what} must be at most {maximum:,} in magnitude", node)
    return int(v)


def _neuron(spec, node) -> int:
    """A neuron index of an alignment range (its end is checked against the node's width later)."""
    v = _int(spec, node, "a neuron index", maximum=None)
    if v >= 2**31:
        raise _err(E_ALIGN, f"neuron index {v:.3g} is past any layer's width", node)
    return v


def _seed(spec, node) -> int:
    from hdsl.constants import seed_value

    v = spec.fold(node)
    if v is None:
        raise HdslError([])
    return seed_value(v, node)


def _domain(spec, node) -> cm.VarType:
    if node is None:
        return cm.VarType.boolean()
    if isinstance(node, ast.Name) and node.id == "bool":
        return cm.VarType.boolean()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        args = [a for a in node.args if not isinstance(a, ast.Keywords)]
        if len(args) not in (1, 2):
            raise _err(E, "range takes (n) or (start, stop)", node)
        lo, hi = (0, _int(spec, args[0], "range")) if len(args) == 1 else \
            (_int(spec, args[0], "range"), _int(spec, args[1], "range"))
        if hi <= lo:
            raise _err(E, f"range({lo}, {hi}) is empty", node)
        return cm.VarType.integer(lo, hi - 1)
    if isinstance(node, ast.ListExpr) and len(node.items) == 2 and \
            not any(isinstance(i, ast.Name) and i.id not in spec.consts for i in node.items):
        lo, hi = _int(spec, node.items[0], "a bound"), _int(spec, node.items[1], "a bound")
        if hi < lo:
            raise _err(E, f"empty interval [{lo}, {hi}]", node)
        return cm.VarType.integer(lo, hi)  # [a, b]: the integers a..b, as input ranges are written
    if isinstance(node, (ast.SetExpr, ast.ListExpr)):
        if node.items and all(isinstance(i, ast.Name) for i in node.items):
            labels = tuple(i.id for i in node.items)
            if len(set(labels)) != len(labels):
                raise _err(E, "an enum lists a value twice", node)
            return cm.VarType.enum(labels)
        values = sorted({_int(spec, i, "a domain value") for i in node.items})
        if not values or values != list(range(values[0], values[-1] + 1)):
            raise _err(E, "an integer domain must be a contiguous set of integers", node,
                       "write range(a, b), or name the values as an enum {a, b, c}")
        return cm.VarType.integer(values[0], values[-1])
    raise _err(E, "unknown domain", node, "use range(n), range(a, b), [lo, hi], bool, {0, 1, 2} or {red, green}")


_ARITH = {"+": "+", "-": "-", "*": "*", "/": "/"}
_LOGIC = {"and": "and", "or": "or"}


def _expr(node, names: set[str], labels: dict[str, int]) -> cm.Expr:
    span = getattr(node, "span", None)
    if isinstance(node, ast.Number):
        if node.value.denominator != 1:
            raise _err(E, "causal models compute with integers", node)
        return cm.Const(int(node.value), span)
    if isinstance(node, ast.Bool):
        return cm.Const(int(node.value), span)
    if isinstance(node, ast.Name):
        if node.id in names:
            return cm.Ref(node.id, span)
        if node.id in labels:
            return cm.Const(labels[node.id], span)
        if node.id in ("true", "false"):
            return cm.Const(int(node.id == "true"), span)
        raise _err(E, f"unknown variable '{node.id}'", node, "variables: " + ", ".join(sorted(names)))
    if isinstance(node, ast.Neg):
        return cm.Unary("-", _expr(node.operand, names, labels), span)
    if isinstance(node, ast.Not):
        return cm.Unary("not", _expr(node.operand, names, labels), span)
    if isinstance(node, ast.Compare):
        return cm.Binary(node.op, _expr(node.left, names, labels), _expr(node.right, names, labels), span)
    if isinstance(node, ast.BinOp):
        if node.op == "implies":
            return cm.Binary("or", cm.Unary("not", _expr(node.left, names, labels)),
                             _expr(node.right, names, labels), span)
        op = _ARITH.get(node.op) or _LOGIC.get(node.op)
        if op is None:
            raise _err(E, f"operator '{node.op}' is not allowed in a causal model", node)
        return cm.Binary(op, _expr(node.left, names, labels), _expr(node.right, names, labels), span)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [a for a in node.args if not isinstance(a, ast.Keywords)]
        f = node.func.id
        if f == "if" and len(args) == 3:
            return cm.IfElse(*(_expr(a, names, labels) for a in args), span)
        if f in ("mod", "xor") and len(args) == 2:
            return cm.Binary("%" if f == "mod" else "xor", *(_expr(a, names, labels) for a in args), span)
        if f in ("min", "max") and len(args) == 2:
            a, b = (_expr(x, names, labels) for x in args)
            cmp = cm.Binary("<=" if f == "min" else ">=", a, b)
            return cm.IfElse(cmp, a, b, span)
    raise _err(E, "this expression is not allowed in a causal model", node,
               "use variables, integers, comparisons, and/or/not, + - * /, if(c, a, b), mod(a, b), xor(a, b), "
               "min/max(a, b)")


def _is_bool(e: cm.Expr, types: dict[str, cm.VarType]) -> bool:
    if isinstance(e, cm.Binary):
        return e.op in cm.COMPARE or e.op in cm.LOGIC
    if isinstance(e, cm.Unary):
        return e.op == "not"
    if isinstance(e, cm.Ref):
        return types[e.name].kind == "bool"
    if isinstance(e, cm.IfElse):
        return _is_bool(e.then, types) and _is_bool(e.other, types)
    return False


def _infer(e: cm.Expr, types: dict[str, cm.VarType], node) -> cm.VarType:
    import numpy as np

    if isinstance(e, cm.Ref):
        return types[e.name]
    if _is_bool(e, types):
        return cm.VarType.boolean()
    parents = sorted(cm.refs(e))
    sizes = [types[p].size for p in parents]
    total = int(np.prod(sizes)) if sizes else 1
    if total > 2_000_000:
        raise _err(E, f"cannot infer the range of this equation: {total:,} parent settings", node)
    grid = np.indices(sizes).reshape(len(sizes), -1) if sizes else np.zeros((0, 1), dtype=np.int64)
    env = {p: grid[i].astype(np.int64) + types[p].lo for i, p in enumerate(parents)}
    try:
        val = np.broadcast_to(cm._eval(e, env, total), (total,))
    except HdslError as err:
        raise _err(E, err.diagnostics[0].message, node, err.diagnostics[0].hint) from None
    return cm.VarType.integer(int(val.min()), int(val.max()))


def lower_causal_model(spec, decl: ast.CausalModelDecl) -> cm.CausalModel:
    """AST -> validated ``CausalModel`` (cached on the spec)."""
    cache = _cache(spec, "models")
    if decl.name.name in cache:
        return cache[decl.name.name]
    inputs: list[cm.CausalVar] = []
    variables: list[cm.CausalVar] = []
    types: dict[str, cm.VarType] = {}
    labels: dict[str, int] = {}
    for item in decl.items:
        if isinstance(item, ast.CausalInput):
            t = _domain(spec, item.domain)
            for ident in item.names:
                if ident.name in types:
                    raise _err(E, f"variable '{ident.name}' is declared twice", ident)
                types[ident.name] = t
                inputs.append(cm.CausalVar(ident.name, t, None, ident.span))
            for i, lab in enumerate(t.labels):
                labels.setdefault(lab, i)
    names = set(types) | {i.name.name for i in decl.items if isinstance(i, ast.CausalVar)}
    for item in decl.items:
        if isinstance(item, ast.CausalVar):
            if item.name.name in types:
                raise _err(E, f"variable '{item.name.name}' is declared twice", item.name)
            e = _expr(item.value, names, labels)
            missing = [r for r in cm.refs(e) if r not in types]
            if missing:
                raise _err(E, f"'{missing[0]}' is used before its equation", item.value,
                           "declare variables after the variables they depend on (this also rules out cycles)")
            t = _infer(e, types, item.value)
            types[item.name.name] = t
            variables.append(cm.CausalVar(item.name.name, t, e, item.name.span))
    if not inputs:
        raise _err(E, f"causal model '{decl.name.name}' has no inputs", decl.name, "declare `input A, B in bool`")
    if not variables:
        raise _err(E, f"causal model '{decl.name.name}' has no equations", decl.name,
                   "the last `NAME = expression` is the output")
    model = cm.validate(cm.CausalModel(decl.name.name, tuple(inputs), tuple(variables), variables[-1].name,
                                       decl.span))
    cache[decl.name.name] = model
    return model


# --------------------------------------------------------------------------- alignments


def lower_alignment(spec, decl: ast.AlignmentDecl, model: cm.CausalModel) -> Alignment:
    from hdsl.causal.das import load_rotation

    sites = []
    seen = set()
    for item in decl.items:
        var = item.variable.name
        if var not in model.names:
            raise _err(E_ALIGN, f"'{var}' is not a variable of causal model '{model.name}'", item.variable,
                       "variables: " + ", ".join(model.names))
        if var in seen:
            raise _err(E_ALIGN, f"'{var}' is aligned twice", item.variable)
        seen.add(var)
        node, rotation = item.layer.value, None
        if "@" in node:
            node, rot_file = node.split("@", 1)
            path = spec.resolve_path(ast.String(rot_file, item.layer.span))
            try:
                rotation = load_rotation(path)
            except HdslError as err:
                raise _err(E_ALIGN, err.diagnostics[0].message, item.layer) from None
        start, stop = 0, -1
        if item.slice is not None:
            if item.slice.start is not None:
                start = _neuron(spec, item.slice.start)
            if item.slice.stop is not None:
                stop = _neuron(spec, item.slice.stop)
        sites.append((var, Site(node, start, stop, rotation, item.span)))
    return Alignment(decl.name.name, model.name, decl.network.name, tuple(sites), (), decl.span)


# --------------------------------------------------------------------------- iia(...)


def _cache(spec, key: str) -> dict:
    store = getattr(spec, "_causal_cache", None)
    if store is None:
        store = {}
        spec._causal_cache = store
    return store.setdefault(key, {})


def _symbol(spec, node, kind: str, what: str):
    from hdsl.check import named_symbol

    return named_symbol(spec, node, kind, what, E_CALL)


def _var_set(node, model: cm.CausalModel) -> tuple[str, ...]:
    if not isinstance(node, ast.SetExpr) or not node.items or not all(isinstance(i, ast.Name) for i in node.items):
        raise _err(E_CALL, "an intervention is a set of causal variables, e.g. {WX} or {WX, YZ}", node)
    out = []
    for i in node.items:
        if i.id not in model.names:
            raise _err(E_CALL, f"'{i.id}' is not a variable of causal model '{model.name}'", i,
                       "variables: " + ", ".join(model.names))
        out.append(i.id)
    return tuple(dict.fromkeys(out))


def _rows(spec, node, model: cm.CausalModel):
    import numpy as np

    if isinstance(node, ast.AllLevels) or (isinstance(node, ast.Name) and node.id == "all"):
        return None, None
    if not isinstance(node, ast.Name) or node.id not in spec.datasets:
        raise _err(E_CALL, "`over` takes `all` or a data set", node,
                   "a data set whose rows are settings of the model's inputs, one column per input in order")
    from hdsl.data import load_dataset

    try:
        loaded = load_dataset(spec.datasets[node.id])
    except HdslError as err:
        raise _err(err.diagnostics[0].code, err.diagnostics[0].message, node, err.diagnostics[0].hint) from None
    x = np.asarray(loaded.x).reshape(len(loaded.x), -1)
    if x.shape[1] != len(model.inputs):
        raise _err(E_CALL, f"data set '{node.id}' has {x.shape[1]} columns but '{model.name}' has "
                   f"{len(model.inputs)} inputs", node)
    rows = []
    for r in x:
        vals = []
        for v, t in zip(r, model.inputs):
            iv = int(round(float(v)))
            if iv != float(v) or not t.type.lo <= iv <= t.type.hi:
                raise _err(E_CALL, f"data set '{node.id}': value {float(v):g} is not in {t.name}'s domain {t.type}",
                           node)
            vals.append(iv)
        rows.append(tuple(vals))
    return tuple(rows), node.id


def lower_property(spec, decl: ast.PropertyDecl) -> tuple[IIA, ...]:
    body = decl.body
    flip = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}
    if isinstance(body, ast.Compare) and isinstance(body.left, ast.Call) and body.op in flip:
        call, op, bound = body.left, body.op, body.right
    elif isinstance(body, ast.Compare) and isinstance(body.right, ast.Call) and body.op in flip:
        call, op, bound = body.right, flip[body.op], body.left
    else:
        raise _err(E_CALL, "an iia property compares iia(...) with a threshold", body,
                   "e.g. `iia(net, heq, right, over all, intervene {WX}) >= 0.95`")
    threshold = spec.fold(bound)
    if threshold is None or isinstance(threshold, tuple) or not 0 <= threshold <= 1:
        raise _err(E_CALL, "the iia threshold must be a number in [0, 1]", bound)
    positional, keywords = [], []
    for a in call.args:
        if isinstance(a, ast.Keywords):
            keywords.extend(a.items)
            # sets written after `intervene {A}, {B}` are further experiments
        else:
            positional.append(a)
    if len(positional) < 3:
        raise _err(E_CALL, "iia takes (network, causal model, alignment, over ..., intervene ...)", call)
    net_sym = _symbol(spec, positional[0], "model", "network model")
    model_sym = _symbol(spec, positional[1], "causal model", "causal model")
    align_sym = _symbol(spec, positional[2], "alignment", "alignment")
    info = spec.models.get(net_sym.name)
    if info is None:
        raise HdslError([])  # the model declaration has its own diagnostic
    model = lower_causal_model(spec, model_sym.node)
    adecl: ast.AlignmentDecl = align_sym.node
    if adecl.model.name != model.name:
        raise _err(E_ALIGN, f"alignment '{adecl.name.name}' is of '{adecl.model.name}', not '{model.name}'",
                   positional[2])
    if adecl.network.name != net_sym.name:
        raise _err(E_ALIGN, f"alignment '{adecl.name.name}' is to '{adecl.network.name}', not '{net_sym.name}'",
                   positional[2])
    alignment = lower_alignment(spec, adecl, model)
    if spec.deep:
        _check_sites(alignment, model, info.network)
    import math

    from hdsl.causal.alignment import encoded_width

    net = info.network
    width = encoded_width(model, alignment)
    if net.input_shape and math.prod(net.input_shape) != width:
        raise _err(E_CALL, f"{model.name}'s inputs one-hot encode to {width} features but '{net_sym.name}' takes "
                   f"{math.prod(net.input_shape)}", positional[0],
                   "inputs are one-hot encoded in declaration order and concatenated")
    if net.num_outputs is not None and net.num_outputs != model.output_type.size and \
            not (net.num_outputs == 1 and model.output_type.size == 2):
        raise _err(E_CALL, f"'{net_sym.name}' has {net.num_outputs} outputs but {model.name}'s output "
                   f"{model.output} has {model.output_type.size} values", positional[0],
                   "the argmax class i is compared with the output variable's i-th value")
    experiments: list[tuple[tuple[str, ...], ...]] = []
    rows = data = None
    eps = None
    samples: int | None = None
    seed = 0
    metric = "all"
    saw_over = False
    for kw in keywords:
        if kw.key == "over":
            rows, data = _rows(spec, kw.value, model)
            saw_over = True
        elif kw.key == "intervene":
            experiments.append(_experiment(kw.value, model))
        elif kw.key == "samples":
            samples = _int(spec, kw.value, "samples")
        elif kw.key == "seed":
            seed = _seed(spec, kw.value)
        elif kw.key == "metric":
            if not isinstance(kw.value, ast.Name) or kw.value.id not in ("all", "effective"):
                raise _err(E_CALL, "metric is `all` or `effective` (pairs whose counterfactual label changes)",
                           kw.value)
            metric = kw.value.id
        else:
            raise _err(E_CALL, f"iia does not take `{kw.key}`", kw)
    for extra in positional[3:]:
        if isinstance(extra, ast.Call) and isinstance(extra.func, ast.Name) and extra.func.id == "linf":
            args = [a for a in extra.args if not isinstance(a, ast.Keywords)]
            if len(args) != 1:
                raise _err(E_CALL, "linf(EPS) gives the radius of each pair region", extra)
            v = spec.fold(args[0])
            if v is None or isinstance(v, tuple) or v < 0:
                raise _err(E_CALL, "linf radius must be a non-negative number", args[0])
            eps = float(v)
        elif isinstance(extra, (ast.SetExpr, ast.ListExpr)) and experiments:
            experiments.append(_experiment(extra, model))
        else:
            raise _err(E_CALL, "unexpected argument to iia", extra,
                       "after the alignment: `over all|DATA`, `intervene {V}, {V, W}`, `linf(EPS)`")
    if not saw_over:
        raise _err(E_CALL, "iia needs `over all` or `over DATA`", call)
    if not experiments:
        raise _err(E_CALL, "iia needs `intervene {VARIABLES}`", call)
    confidence = 0.95
    for opt in decl.stats:
        v = spec.fold(opt.value)
        if v is None or isinstance(v, tuple):
            raise HdslError([])
        if opt.key == "confidence":
            if not 0 < v < 1:
                raise _err(E_CALL, "confidence must be in (0, 1)", opt.value)
            confidence = float(v)
        elif opt.key == "samples":
            samples = _int(spec, opt.value, "samples")
        elif opt.key == "seed":
            seed = _seed(spec, opt.value)
    if samples is not None and samples <= 0:
        raise _err(E_CALL, "samples must be positive", call)
    from hdsl.causal.alignment import check_disjoint
    from hdsl.causal.iia import DEFAULT_MAX_PAIRS

    n = len(rows) if rows is not None else model.input_count
    for groups in experiments:
        if all(s.stop >= 0 for _, s in alignment.sites):
            try:
                check_disjoint(alignment, tuple(v for g in groups for v in g))
            except HdslError as err:
                raise _err(err.diagnostics[0].code, err.diagnostics[0].message, call, err.diagnostics[0].hint) \
                    from None
        total = n ** (len(groups) + 1)
        limit = 200_000 if eps is not None else DEFAULT_MAX_PAIRS
        if samples is None and total > limit:
            what = "pair regions" if eps is not None else "tuples"
            raise _err(E_CALL, f"`over all` enumerates {total:,} {what} here ({n} input settings, {len(groups)} "
                       f"source(s)), over the limit of {limit:,}", call,
                       "sample instead: add `with confidence 0.99 samples 10000`")
    items = []
    for groups in experiments:
        tag = ",".join("{" + ",".join(g) + "}" for g in groups)
        items.append(IIA(f"{decl.name.name}/iia{tag}", decl.name.name, info.network, model, alignment, groups,
                         rows, data, samples, seed, float(threshold), op, confidence, metric, eps, call.span))
    return tuple(items)


def _check_sites(alignment, model: cm.CausalModel, network) -> None:
    """The alignment's nodes, ranges and rotations against the network's graph, so that a
    misspelt node or a range past its width is a located diagnostic when the spec is checked (the
    run checks again: files may change in between)."""
    from hdsl.causal.alignment import check_alignment
    from hdsl.causal.handler import load_graph, resolve_sites

    try:
        graph = load_graph(network)
    except HdslError:
        return  # the model declaration reports a file that does not import
    resolved, sizes = resolve_sites(alignment, graph)
    check_alignment(resolved, model, sizes)


def _experiment(node, model: cm.CausalModel) -> tuple[tuple[str, ...], ...]:
    if isinstance(node, ast.ListExpr):
        groups = tuple(_var_set(i, model) for i in node.items)
        flat = [v for g in groups for v in g]
        if not groups or len(flat) != len(set(flat)):
            raise _err(E_CALL, "a multi-source intervention needs disjoint sets, e.g. [{WX}, {YZ}]", node)
        return groups
    return (_var_set(node, model),)
