"""Lowering of the XAI constructs of a spec (called by ``hdsl.lower`` through ``MEASURE_HOOKS``).

Language::

    explainer ig  = integrated_gradients(net, steps 32)          # keywords: steps samples seed baseline
    explainer occ = occlusion(net, window(8), stride(4))          # other options as name(value)
    explainer sal = saliency(net)                                 # |gradient|; saliency(net, signed) for the raw sign
    explainer rnd = random(net, seed 1)                           # controls: random, randomized_model(net, method(ig))

    # a bootstrap decision (PASS / FAIL / INCONCLUSIVE with the interval)
    property f = faithfulness(net, ig, test, metric deletion_auc, removal telea) <= 0.3 with confidence 0.95

    # a comparison: rank explainers under every removal; PASS when the ranking does not change
    property c = faithfulness(net, {ig, sal, rnd}, test, metric srg, removal {black, telea, learned("inp.pt")})

    # formal sufficiency of the top-k features (k a number, or `min` to search the smallest)
    property s = sufficient(net, test, top 40 of ig)               # free features over the input range
    property t = sufficient(net, test, top min of ig, linf(0.05))  # free features within eps of the image

Faithfulness options: ``metric`` (deletion_auc, insertion_auc, lerf_auc, srg,
road_morf, road_lerf, pixel_flipping, faithfulness_corr, faithfulness_estimate),
``removal`` (black, zero, mean, constant(v), blur(sigma), nli(noise), telea(r),
ns(r), biharmonic, learned("file.pt")), ``steps N``, ``target predicted|label``,
and positional ``patch(P)`` / ``channel`` (feature granularity) and ``logit``
(score). ``with confidence c samples B seed s``: bootstrap level, resamples, seed.
"""

from __future__ import annotations

from fractions import Fraction

from hdsl import ast
from hdsl.diagnostics import Diagnostic, HdslError
from hdsl.xai.ir import ExplainerComparison, ExplainerSpec, Faithfulness, MetricOptions, RemovalSpec, Sufficiency

E = "E801"  # XAI property errors
E_EXPL = "E802"  # explainer declarations

REMOVALS = ("black", "zero", "mean", "constant", "blur", "nli", "road", "telea", "ns", "biharmonic", "learned")
METRICS = ("deletion_auc", "morf_auc", "lerf_auc", "insertion_auc", "srg", "road_morf", "road_lerf",
           "pixel_flipping", "faithfulness_corr", "faithfulness_estimate")
FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}


def _err(code: str, message: str, node, hint: str | None = None) -> HdslError:
    return HdslError([Diagnostic(code, message, getattr(node, "span", None), hint)])


def _number(spec, node, what: str) -> Fraction:
    v = spec.fold(node)
    if v is None:
        raise HdslError([])
    if isinstance(v, tuple):
        raise _err(E, f"{what} must be a number, not a list", node)
    return Fraction(v)


COUNT_MAX = 10**6  # steps, samples, patch sizes ...: larger ones only exhaust memory or time


def _int(spec, node, what: str, minimum: int = 0, maximum: int = COUNT_MAX) -> int:
    v = _number(spec, node, what)
    if v.denominator != 1 or not minimum <= v <= maximum:
        raise _err(E, f"{what} must be an integer from {minimum} to {maximum:,}", node)
    return int(v)


def _seed(spec, node) -> int:
    from hdsl.constants import seed_value

    return seed_value(_number(spec, node, "seed"), node)


def _split(call: ast.Call):
    pos, kws = [], []
    for a in call.args:
        if isinstance(a, ast.Keywords):
            kws.extend(a.items)
        else:
            pos.append(a)
    return pos, kws


def _symbol(spec, node, kind: str, what: str):
    from hdsl.check import named_symbol

    return named_symbol(spec, node, kind, what, E)


# --------------------------------------------------------------------------- explainers

_KEYWORD_PARAMS = {"steps": "steps", "samples": "samples", "seed": "seed", "baseline": "baseline"}


def lower_explainer(spec, decl: ast.ExplainerDecl) -> ExplainerSpec:
    """``explainer e = method(net, ...)`` -> ``ExplainerSpec`` (validated against the method's options)."""
    from hdsl.xai.attributions import METHODS, PARAMS

    cache = _cache(spec)
    if decl.name.name in cache:
        return cache[decl.name.name]
    v = decl.value
    if not (isinstance(v, ast.Call) and isinstance(v.func, ast.Name)):
        raise _err(E_EXPL, "an explainer is a method applied to a model, e.g. integrated_gradients(net, steps 32)",
                   v, "methods: " + ", ".join(METHODS))
    method = v.func.id
    if method not in PARAMS:
        from hdsl.check import suggest

        raise _err(E_EXPL, f"unknown attribution method '{method}'", v.func,
                   suggest(method, METHODS) or "methods: " + ", ".join(METHODS))
    pos, kws = _split(v)
    if not pos:
        raise _err(E_EXPL, f"{method} needs the model it explains: {method}(net)", v)
    net = _symbol(spec, pos[0], "model", "model")
    params: dict[str, object] = {}
    allowed = PARAMS[method]
    for kw in kws:
        key = _KEYWORD_PARAMS.get(kw.key)
        if key is None or key not in allowed:
            raise _err(E_EXPL, f"{method} does not take `{kw.key}`", kw,
                       "options: " + (", ".join(allowed) or "none"))
        params[key] = _int(spec, kw.value, key, 1) if key in ("steps", "samples") else (
            _seed(spec, kw.value) if key == "seed" else float(_number(spec, kw.value, key)))
    for extra in pos[1:]:
        if isinstance(extra, ast.Name) and "signed" in allowed and extra.id == "signed":
            params["signed"] = True
        elif isinstance(extra, ast.Name) and method == "randomized_model" and extra.id in PARAMS:
            params["method"] = extra.id
        elif isinstance(extra, ast.Call) and isinstance(extra.func, ast.Name) and extra.func.id in allowed:
            key = extra.func.id
            args, _ = _split(extra)
            if len(args) != 1:
                raise _err(E_EXPL, f"{key}(...) takes one value", extra)
            if key == "layer":
                if not isinstance(args[0], ast.String):
                    raise _err(E_EXPL, 'layer takes a node name in quotes: layer("conv2")', args[0])
                params[key] = args[0].value
            elif key == "method":
                if not isinstance(args[0], ast.Name) or args[0].id not in PARAMS:
                    raise _err(E_EXPL, "method(...) takes an attribution method name", args[0])
                params[key] = args[0].id
            elif key == "seed":
                params[key] = _seed(spec, args[0])
            elif key in ("window", "stride", "steps", "samples", "baselines"):
                params[key] = _int(spec, args[0], key, 0 if key == "stride" else 1)
            else:
                params[key] = float(_number(spec, args[0], key))
        else:
            raise _err(E_EXPL, f"unexpected argument to {method}", extra,
                       "options: " + (", ".join(f"{k}(...)" for k in allowed) or "none"))
    out = ExplainerSpec(decl.name.name, method, net.name, tuple(sorted(params.items())), decl.span)
    cache[decl.name.name] = out
    return out


def _cache(spec) -> dict:
    store = getattr(spec, "_xai_explainers", None)
    if store is None:
        store = {}
        spec._xai_explainers = store
    return store


def _explainer(spec, node, net_name: str) -> ExplainerSpec:
    sym = _symbol(spec, node, "explainer", "explainer")
    e = lower_explainer(spec, sym.node)
    if e.network != net_name:
        raise _err(E, f"explainer '{e.name}' explains model '{e.network}', not '{net_name}'", node)
    return e


# --------------------------------------------------------------------------- removals


def _removal(spec, node) -> RemovalSpec:
    if isinstance(node, ast.Name):
        if node.id not in REMOVALS or node.id in ("constant", "learned"):
            from hdsl.check import suggest

            raise _err(E, f"unknown removal baseline '{node.id}'", node,
                       suggest(node.id, REMOVALS) or "one of: " + ", ".join(REMOVALS))
        return RemovalSpec(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in REMOVALS:
        kind = node.func.id
        args, kws = _split(node)
        if kws or len(args) > 1:
            raise _err(E, f"{kind}(...) takes at most one value", node)
        if kind == "learned":
            if len(args) != 1 or not isinstance(args[0], ast.String):
                raise _err(E, 'learned takes the in-painter file: learned("inpainter.pt")', node,
                           "train one with `hdsl xai train-inpainter --images DATA --out FILE`")
            return RemovalSpec(kind, (spec.resolve_path(args[0]),))
        if kind in ("black", "zero", "mean", "biharmonic") and args:
            raise _err(E, f"{kind} takes no value", node)
        if not args:
            if kind == "constant":
                raise _err(E, "constant(...) takes the fill value", node)
            return RemovalSpec(kind)
        value = float(_number(spec, args[0], f"the {kind} parameter"))
        if kind in ("blur", "telea", "ns") and value <= 0:
            raise _err(E, f"the {kind} parameter must be positive", args[0])
        return RemovalSpec(kind, (value,))
    raise _err(E, "expected a removal baseline", node, "one of: " + ", ".join(REMOVALS))


def _many(node, one):
    if isinstance(node, (ast.SetExpr, ast.ListExpr)):
        if not node.items:
            raise _err(E, "an empty set", node)
        return [one(i) for i in node.items], True
    return [one(node)], False


# --------------------------------------------------------------------------- properties


def lower_property(spec, decl: ast.PropertyDecl) -> tuple:
    body = decl.body
    call, op, bound = body, None, None
    if isinstance(body, ast.Compare) and body.op in FLIP:
        if isinstance(body.left, ast.Call):
            call, op, bound = body.left, body.op, body.right
        elif isinstance(body.right, ast.Call):
            call, op, bound = body.right, FLIP[body.op], body.left
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id in ("faithfulness", "sufficient")):
        raise _err(E, "an XAI property is `faithfulness(...) <= t`, `faithfulness(net, {e1, e2}, ...)` or "
                      "`sufficient(net, DATA, top k of e)`", body)
    if call.func.id == "sufficient":
        if op is not None:
            raise _err(E, "sufficient(...) is proved or refuted, not compared with a threshold", body)
        if decl.stats:
            raise _err(E, "`with confidence/samples/seed` does not apply to sufficient(...)", decl.stats[0])
        return _sufficiency(spec, decl, call)
    return _faithfulness(spec, decl, call, op, bound)


def _stats(spec, decl) -> tuple[float, int, int]:
    confidence, resamples, seed = 0.95, 1000, 0
    for opt in decl.stats:
        if opt.key == "confidence":
            v = _number(spec, opt.value, "confidence")
            if not 0 < v < 1:
                raise _err(E, "confidence must be in (0, 1)", opt.value)
            confidence = float(v)
        elif opt.key == "samples":
            resamples = _int(spec, opt.value, "samples (bootstrap resamples)", 10)
        elif opt.key == "seed":
            seed = _seed(spec, opt.value)
    return confidence, resamples, seed


def _faithfulness(spec, decl, call, op, bound) -> tuple:
    pos, kws = _split(call)
    if len(pos) < 3:
        raise _err(E, "faithfulness takes (model, explainer(s), data, metric M, removal R)", call)
    net = _symbol(spec, pos[0], "model", "model")
    info = spec.models.get(net.name)
    if info is None:
        raise HdslError([])  # the model declaration has its own diagnostic
    explainers, many_e = _many(pos[1], lambda n: _explainer(spec, n, net.name))
    data_sym = _symbol(spec, pos[2], "data", "data set")
    data = spec.datasets.get(data_sym.name)
    if data is None:
        raise HdslError([])
    metric, removals, many_r = None, [RemovalSpec("black")], False
    opts: dict = {}
    for kw in kws:
        if kw.key == "metric":
            if not isinstance(kw.value, ast.Name) or kw.value.id not in METRICS:
                from hdsl.check import suggest

                got = kw.value.id if isinstance(kw.value, ast.Name) else ""
                raise _err(E, f"unknown faithfulness metric '{got}'", kw.value,
                           suggest(got, METRICS) or "one of: " + ", ".join(METRICS))
            metric = kw.value.id
        elif kw.key == "removal":
            removals, many_r = _many(kw.value, lambda n: _removal(spec, n))
        elif kw.key == "steps":
            opts["steps"] = _int(spec, kw.value, "steps", 1)
        elif kw.key == "samples":
            opts["runs"] = _int(spec, kw.value, "samples (random subsets)", 2)
        elif kw.key == "target":
            if not isinstance(kw.value, ast.Name) or kw.value.id not in ("predicted", "label"):
                raise _err(E, "target is `predicted` (explain the model's class) or `label` (the data's)", kw.value)
            opts["target"] = kw.value.id
        else:
            raise _err(E, f"faithfulness does not take `{kw.key}`", kw,
                       "options: metric, removal, steps, samples, target")
    for extra in pos[3:]:
        if isinstance(extra, ast.Name) and extra.id in ("pixel", "channel"):
            opts["granularity"] = extra.id
        elif isinstance(extra, ast.Name) and extra.id in ("logit", "softmax"):
            opts["score"] = extra.id
        elif isinstance(extra, ast.Call) and isinstance(extra.func, ast.Name) and extra.func.id == "patch":
            args, _ = _split(extra)
            if len(args) != 1:
                raise _err(E, "patch(P) takes the patch size", extra)
            opts["granularity"], opts["patch"] = "patch", _int(spec, args[0], "patch size", 1)
        else:
            raise _err(E, "unexpected argument to faithfulness", extra,
                       "after the data: patch(P), channel, pixel, logit, and keywords metric/removal/steps/target")
    if metric is None:
        raise _err(E, "faithfulness needs `metric M`", call, "e.g. metric deletion_auc")
    options = MetricOptions(metric=metric, **opts)
    confidence, resamples, seed = _stats(spec, decl)
    network = info.network
    name = decl.name.name
    if op is None:
        if not (many_e or many_r) or len(explainers) < 2:
            raise _err(E, "without a threshold, faithfulness compares explainers: give a set of two or more, "
                          "e.g. faithfulness(net, {ig, sal}, test, metric srg, removal {black, telea})", call,
                       "or compare with a threshold: faithfulness(...) <= 0.3")
        return (ExplainerComparison(f"{name}/compare", name, network, tuple(explainers), data, tuple(removals),
                                    options, confidence, resamples, seed, call.span),)
    t = _number(spec, bound, "the threshold")
    items = []
    for e in explainers:
        for r in removals:
            items.append(Faithfulness(f"{name}/{e.name}/{r.label}", name, network, e, data, r, options,
                                      float(t), op, confidence, resamples, seed, call.span))
    return tuple(items)


def _sufficiency(spec, decl, call) -> tuple:
    pos, kws = _split(call)
    if len(pos) < 2:
        raise _err(E, "sufficient takes (model, data, top k of explainer)", call)
    net = _symbol(spec, pos[0], "model", "model")
    info = spec.models.get(net.name)
    if info is None:
        raise HdslError([])
    data_sym = _symbol(spec, pos[1], "data", "data set")
    data = spec.datasets.get(data_sym.name)
    if data is None:
        raise HdslError([])
    k: int | None = -1
    explainer = None
    target = "predicted"
    for kw in kws:
        if kw.key == "top":
            if isinstance(kw.value, ast.Name) and kw.value.id == "min":
                k = None
            else:
                k = _int(spec, kw.value, "k", 0)
        elif kw.key == "of":
            explainer = _explainer(spec, kw.value, net.name)
        elif kw.key == "target":
            if not isinstance(kw.value, ast.Name) or kw.value.id not in ("predicted", "label"):
                raise _err(E, "target is `predicted` or `label`", kw.value)
            target = kw.value.id
        else:
            raise _err(E, f"sufficient does not take `{kw.key}`", kw, "write `top k of EXPLAINER` (k or min)")
    if explainer is None or k == -1:
        raise _err(E, "sufficient needs `top k of EXPLAINER` (k a number, or min to search)", call)
    eps, gran, patch = None, "pixel", 1
    for extra in pos[2:]:
        if isinstance(extra, ast.Call) and isinstance(extra.func, ast.Name) and extra.func.id in ("linf", "patch"):
            args, _ = _split(extra)
            if len(args) != 1:
                raise _err(E, f"{extra.func.id}(...) takes one value", extra)
            if extra.func.id == "linf":
                v = _number(spec, args[0], "eps")
                if v < 0:
                    raise _err(E, "eps must be non-negative", args[0])
                eps = float(v)
            else:
                gran, patch = "patch", _int(spec, args[0], "patch size", 1)
        elif isinstance(extra, ast.Name) and extra.id == "channel":
            gran = "channel"
        else:
            raise _err(E, "unexpected argument to sufficient", extra, "after the data: top k of E, linf(EPS), "
                                                                      "patch(P), channel")
    network = info.network
    if eps is None and network.input_range is None:
        raise _err(E, f"model '{net.name}' declares no input range, so the free features are unbounded", call,
                   "declare `input [...] in [lo, hi]` on the model, or give linf(EPS)")
    if data.indices is not None:
        n = len(data.indices)
    else:
        from hdsl.data import row_count

        n = row_count(data)
    name = decl.name.name
    return tuple(Sufficiency(f"{name}[{i}]", name, network, explainer, data, i, k, eps, gran, patch, target,
                             None, call.span) for i in range(n))
