"""Output conditions of a property -> ``hdsl.passes`` formulas.

The condition after a property's quantifiers talks about one model applied to
one variable: ``argmax net(v) == c`` / ``!= c`` / ``in S`` (``S`` a set of
classes or ``ancestor(h, c, level k)``) and linear comparisons of outputs
``net(v)[i]``, combined with ``and or not implies``. Classes are class names,
output indices or the label variable, resolved per data point.
"""

from __future__ import annotations

from fractions import Fraction

from hdsl import ast, ir
from hdsl.check import suggest
from hdsl.constants import show
from hdsl.passes import And, ArgmaxIn, Const, Formula, Linear, Not, Or

E_NOT_CONDITION = "E308"
E_WRONG_INPUT = "E309"
E_ARGS = "E315"
E_SHAPE = "E303"
E_BAD_VALUE = "E304"
E_UNKNOWN = "E202"
E_WRONG_KIND = "E203"


class Stop(Exception):
    """Analysis of one property cannot continue (its diagnostic is recorded)."""


class ConditionBuilder:
    """AST condition -> ``hdsl.passes`` formula, for one label and level.

    ``plan`` supplies the network, the variable the model is applied to
    (``input_var``), the label variable and a list that collects the
    hierarchies used; ``report`` says whether problems become diagnostics
    (the first, checking pass) or only stop the build.
    """

    def __init__(self, spec, plan, label: int | None, level: int | None, report: bool):
        self.spec, self.plan, self.label, self.level, self.report = spec, plan, label, level, report
        self.net = plan.network
        self.n = plan.network.num_outputs

    def fail(self, code: str, message: str, node, hint: str | None = None):
        if self.report:
            self.spec.error(code, message, getattr(node, "span", None), hint)
        raise Stop

    def condition(self, e) -> Formula:
        if isinstance(e, ast.Bool):
            return Const(e.value)
        if isinstance(e, ast.Not):
            return Not(self.condition(e.operand))
        if isinstance(e, ast.BinOp) and e.op in ("and", "or", "implies"):
            left, right = self.condition(e.left), self.condition(e.right)
            if e.op == "and":
                return And((left, right))
            if e.op == "or":
                return Or((left, right))
            return Or((Not(left), right))
        if isinstance(e, ast.Member):
            if not isinstance(e.left, ast.Argmax):
                self.fail(E_NOT_CONDITION, "`in` tests the predicted class: `argmax net(x) in S`", e.left)
            self.model_call(e.left.operand)
            return ArgmaxIn(frozenset(self.class_set(e.right)))
        if isinstance(e, ast.Compare):
            if isinstance(e.left, ast.Argmax) or isinstance(e.right, ast.Argmax):
                arg, other = (e.left, e.right) if isinstance(e.left, ast.Argmax) else (e.right, e.left)
                if e.op not in ("==", "!="):
                    self.fail(E_NOT_CONDITION, f"argmax is a class: compare it with == or !=, not {e.op}", e)
                self.model_call(arg.operand)
                atom = ArgmaxIn(frozenset((self.class_index(other),)))
                return atom if e.op == "==" else Not(atom)
            left, right = self.linear(e.left), self.linear(e.right)
            if e.op in ("<=", "<"):
                expr, op = _sub(right, left), (">=" if e.op == "<=" else ">")
            else:
                expr, op = _sub(left, right), e.op
            if not expr[0]:
                self.fail(E_NOT_CONDITION, "this comparison does not involve the model's outputs", e)
            return Linear(_to_ir(expr), op)
        self.unknown_function(e)
        self.fail(E_NOT_CONDITION, "expected a condition on the model's outputs", e,
                  "e.g. `argmax net(x) == y`, `argmax net(x) in {cat, dog}` or `net(x)[0] <= 3.99`")

    def model_call(self, e) -> None:
        if not (isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == self.net.name):
            self.fail(E_NOT_CONDITION, f"argmax applies to the model's output: `argmax {self.net.name}(x)`", e)
        args = [a for a in e.args if not isinstance(a, ast.Keywords)]
        if len(args) != 1 or len(e.args) != 1:
            self.fail(E_ARGS, f"{self.net.name}(...) takes one input", e)
        arg = args[0]
        want = self.plan.input_var
        if not (isinstance(arg, ast.Name) and arg.id == want):
            hint = (f"the property quantifies over '{want}'; apply the model to it: {self.net.name}({want})"
                    if want else None)
            self.fail(E_WRONG_INPUT, f"the model must be applied to '{want}'", arg, hint)

    def class_index(self, e) -> int:
        if isinstance(e, ast.Name):
            if e.id == self.plan.label_var:
                return self.label
            classes = self.net.classes or ()
            if e.id in classes:
                return classes.index(e.id)
            value = self.spec.consts.get(e.id)
            if value is None or isinstance(value, tuple):
                options = list(classes) + ([self.plan.label_var] if self.plan.label_var else [])
                hint = suggest(e.id, options) or (None if classes else f"model '{self.net.name}' has no class "
                                                                       "names; declare `outputs CLASSES` or use an index")
                where = f" of model '{self.net.name}'" if classes else ""
                self.fail(E_UNKNOWN, f"unknown class '{e.id}'{where}", e, hint)
            e = ast.Number(value, e.id, e.span)
        if isinstance(e, ast.Number):
            if e.value.denominator != 1 or not 0 <= e.value < self.n:
                self.fail(E_BAD_VALUE, f"class index {e.text} is out of range: the model has {self.n} outputs", e)
            return int(e.value)
        self.fail(E_NOT_CONDITION, "expected a class (a class name, the label, or an output index)", e)

    def class_set(self, e) -> set[int]:
        if isinstance(e, ast.SetExpr):
            return {self.class_index(item) for item in e.items}
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "ancestor":
            return self.ancestor(e)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "group":
            return self.group(e)
        self.unknown_function(e)
        self.fail(E_NOT_CONDITION, "expected a set of classes: {a, b}, group(h, node) or ancestor(h, y, level k)", e)

    def group(self, call: ast.Call) -> set[int]:
        """``group(h, node)``: the classes under the node of that name in hierarchy ``h``."""
        pos = [a for a in call.args if not isinstance(a, ast.Keywords)]
        if len(pos) != 2 or len(pos) != len(call.args) or not isinstance(pos[1], ast.Name):
            self.fail(E_ARGS, "group takes a hierarchy and a node name: group(h, mammal)", call)
        h = self.hierarchy(pos[0], "group")
        from hdsl.hierarchy import iter_nodes, node_name

        nodes = {node_name(n): n for _, n in iter_nodes(h.root)}
        name = pos[1].id
        if name not in nodes:
            self.fail(E_UNKNOWN, f"hierarchy '{h.name}' has no node '{name}'", pos[1], suggest(name, nodes))
        return set(h.class_indices(nodes[name]))

    def hierarchy(self, h_node, what: str):
        """The hierarchy named by ``h_node``, checked against the model's classes."""
        if not isinstance(h_node, ast.Name):
            self.fail(E_ARGS, f"the first argument of {what} is a hierarchy name", h_node)
        sym = self.spec.symbols.get(h_node.id)
        if sym is None or sym.kind != "hierarchy":
            self.fail(E_UNKNOWN if sym is None else E_WRONG_KIND,
                      f"unknown hierarchy '{h_node.id}'" if sym is None else f"'{h_node.id}' is a {sym.kind}, "
                                                                             "not a hierarchy",
                      h_node, suggest(h_node.id, [s.name for s in self.spec.symbols.values()
                                                  if s.kind == "hierarchy"]))
        h = self.spec.hierarchies.get(h_node.id)
        if h is None:
            raise Stop  # reported at the hierarchy
        if self.net.classes is not None and tuple(h.classes) != tuple(self.net.classes):
            self.fail(E_SHAPE, f"hierarchy '{h.name}' is over other classes than model '{self.net.name}'", h_node,
                      "declare the hierarchy `over` the same class list as the model's `outputs`")
        if len(h.classes) != self.n:
            self.fail(E_SHAPE, f"hierarchy '{h.name}' has {len(h.classes)} classes but model '{self.net.name}' "
                               f"has {self.n} outputs", h_node)
        if h not in self.plan.hierarchies:
            self.plan.hierarchies.append(h)
        return h

    def ancestor(self, call: ast.Call) -> set[int]:
        pos = [a for a in call.args if not isinstance(a, ast.Keywords)]
        kws = [k for a in call.args if isinstance(a, ast.Keywords) for k in a.items]
        if len(pos) != 2 or len(kws) != 1 or kws[0].key != "level":
            self.fail(E_ARGS, "ancestor takes a hierarchy, a class and a level: ancestor(h, y, level 1)", call)
        h_node, cls_node = pos
        h = self.hierarchy(h_node, "ancestor")
        cls = self.class_index(cls_node)
        level_node = kws[0].value
        if isinstance(level_node, ast.AllLevels):
            level = self.level if self.level is not None else 1
        else:
            value = self.spec.fold(level_node)
            if value is None:
                raise Stop
            if isinstance(value, tuple) or value.denominator != 1 or value < 0:
                self.fail(E_BAD_VALUE, f"level must be a non-negative integer or `all`, not {show(value)}", level_node)
            level = int(value)
            if level > h.depth():
                self.fail(E_BAD_VALUE, f"hierarchy '{h.name}' has levels 0..{h.depth()}, not {level}", level_node)
        from hdsl.hierarchy import level_set

        return set(level_set(h, cls, level))

    def linear(self, e) -> tuple[dict[int, Fraction], Fraction]:
        if isinstance(e, ast.Index):
            self.model_call(e.target)
            if isinstance(e.index, ast.Slice):
                self.fail(E_NOT_CONDITION, "compare single outputs: net(x)[i]", e.index)
            return {self.class_index(e.index): Fraction(1)}, Fraction(0)
        if isinstance(e, ast.Number):
            return {}, e.value
        if isinstance(e, ast.Name):
            value = self.spec.consts.get(e.id)
            if value is None or isinstance(value, tuple):
                self.fail(E_UNKNOWN if value is None else E_BAD_VALUE,
                          f"unknown constant '{e.id}'" if value is None else f"'{e.id}' is a list, not a number", e,
                          suggest(e.id, self.spec.consts) if value is None else None)
            return {}, value
        if isinstance(e, ast.Neg):
            terms, c = self.linear(e.operand)
            return {i: -v for i, v in terms.items()}, -c
        if isinstance(e, ast.BinOp) and e.op in "+-":
            left, right = self.linear(e.left), self.linear(e.right)
            return _sub(left, right) if e.op == "-" else _add(left, right)
        if isinstance(e, ast.BinOp) and e.op in "*/":
            left, right = self.linear(e.left), self.linear(e.right)
            if e.op == "*" and left[0] and right[0]:
                self.fail(E_NOT_CONDITION, "only linear conditions on outputs are supported (output * output)", e)
            if e.op == "/" and right[0]:
                self.fail(E_NOT_CONDITION, "only linear conditions on outputs are supported (division by an output)", e)
            if e.op == "/" and right[1] == 0:
                self.fail("E302", "division by zero", e)
            factor, other = (right[1], left) if e.op == "*" and not right[0] else (
                (left[1], right) if e.op == "*" else (1 / right[1], left))
            return {i: v * factor for i, v in other[0].items()}, other[1] * factor
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == self.net.name:
            self.fail(E_NOT_CONDITION, f"{self.net.name}(...) is a vector: pick an output with [i]", e)
        self.unknown_function(e)
        self.fail(E_NOT_CONDITION, "expected a linear expression over the model's outputs", e)

    def unknown_function(self, e) -> None:
        """A call of a name that is neither a model nor a built-in: say so, with a suggestion."""
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id not in self.spec.symbols:
            from hdsl.lower import BUILTINS

            if e.func.id not in BUILTINS:
                models = [s.name for s in self.spec.symbols.values() if s.kind == "model"]
                self.fail(E_UNKNOWN, f"unknown function '{e.func.id}'", e.func,
                          suggest(e.func.id, list(BUILTINS) + models))


def _add(a, b):
    terms = dict(a[0])
    for i, v in b[0].items():
        terms[i] = terms.get(i, 0) + v
    return {i: v for i, v in terms.items() if v != 0}, a[1] + b[1]


def _sub(a, b):
    return _add(a, ({i: -v for i, v in b[0].items()}, -b[1]))


def _to_ir(lin) -> ir.LinearExpr:
    terms, const = lin
    return ir.LinearExpr(tuple((i, float(v)) for i, v in sorted(terms.items())), float(const))
