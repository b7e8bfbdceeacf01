"""Grammar and parser: strict LALR, AST shape, spans, syntax diagnostics."""

from fractions import Fraction

import pytest

from hdsl import ast
from hdsl.diagnostics import HdslError
from hdsl.parser import get_parser, keywords, parse_text

DEMO = """\
# comment
import "common.hspec"
const eps = 2/255
classes c = a b cat
hierarchy h over c { g { a b } cat }  # trailing
hierarchy h3 over c = json "x.json"
model net = onnx "m.onnx" { input [3, 32, 32] in [0, 1] normalize mean [0.1] std [0.2] outputs c }
data test = csv "d.csv" { label column 0 scale 1/255 layout hwc -> chw } [0:10] take 5
property p = forall (x, y) in test: forall x2 in linf(x, eps): argmax net(x2) in ancestor(h, y, level all)
property a = forall x in box([0.6, -0.5], [0.7, 0.5]): net(x)[0] <= 3.99 and not net(x)[1] > 2
property f = faithfulness(net, ig, test, metric deletion_auc) <= 0.3 with confidence 0.95
explainer ig = integrated_gradients(net, steps 32)
causal model cm { input a, b in [0, 1]  s = a + b }
alignment al of cm to net { s -> layer "fc1"[0:4] }
check p, a timeout 60s backend auto
"""


def test_grammar_has_no_conflicts_in_strict_mode():
    assert get_parser(strict=True) is not None


def test_keywords_come_from_the_grammar():
    kw = keywords()
    assert {"forall", "argmax", "hierarchy", "property", "check", "implies", "causal", "alignment"} <= set(kw)
    assert "linf" not in kw and "onnx" not in kw  # builtins and formats are names
    assert list(kw) == sorted(kw)


def test_demo_parses_into_the_expected_statements():
    m = parse_text(DEMO, "demo.hspec")
    kinds = [type(s).__name__ for s in m.statements]
    assert kinds == ["Import", "Const", "Classes", "HierarchyDecl", "HierarchyDecl", "ModelDecl", "DataDecl",
                     "PropertyDecl", "PropertyDecl", "PropertyDecl", "ExplainerDecl", "CausalModelDecl",
                     "AlignmentDecl", "CheckStmt"]
    const = m.statements[1]
    assert const.value == ast.BinOp("/", ast.Number(Fraction(2), "2"), ast.Number(Fraction(255), "255"))
    h = m.statements[3]
    assert [type(x).__name__ for x in h.body] == ["HierGroup", "Ident"]
    assert m.comments == ((0, "# comment"), (DEMO.index("# trailing"), "# trailing"))
    p = m.statements[7]
    assert isinstance(p.body, ast.Forall) and [b.name for b in p.body.binders] == ["x", "y"]


def test_spans_are_exact():
    m = parse_text(DEMO, "demo.hspec")
    p = m.statements[7]
    assert p.span.text.startswith("property p =") and p.span.text.endswith("level all)")
    assert (p.name.span.line, p.name.span.column) == (9, 10)
    member = p.body.body.body
    assert member.span.text == "argmax net(x2) in ancestor(h, y, level all)"


def test_layout_does_not_change_the_ast():
    a = parse_text("property p = forall x in d: argmax n(x) == 1 and n(x)[0] >= 2")
    b = parse_text("property   p =\n  forall x in d:\n    (argmax n(x) == 1) and (n(x)[0] >= 2)  # c\n")
    assert a == b


def test_precedence():
    e = parse_text("const c = 1 + 2 * -3 - 4").statements[0].value
    assert e.op == "-" and e.left.op == "+" and e.left.right.op == "*"
    b = parse_text("property p = a or b and not c implies d").statements[0].body
    assert b.op == "implies" and b.left.op == "or" and b.left.right.op == "and"


@pytest.mark.parametrize("text,code,line,col,needle", [
    ("property p = ", "E103", 1, 14, "expected"),
    ("classes c = a b\nproperty p = forall x in d: argmax n(x) = 3", "E102", 2, 41, "a comparison"),
    ("data d = csv 'x'", "E101", 1, 14, "unexpected character"),
    ("const data = 3", "E102", 1, 7, "a name"),
    ("property p = (a\n\n", "E103", 3, 1, "')'"),
    ("model m = onnx \"x\" { input [1] foo }", "E102", 1, 32, "'normalize'"),
])
def test_syntax_errors(text, code, line, col, needle):
    with pytest.raises(HdslError) as e:
        parse_text(text, "bad.hspec")
    (d,) = e.value.diagnostics
    assert (d.code, d.span.line, d.span.column) == (code, line, col)
    assert needle in d.message
    assert d.render().startswith(f"bad.hspec:{line}:{col}: error[{code}]")


def test_readme_examples_parse():
    """Every hspec code block in the README parses (the reference must not lie)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks, current, lang = [], None, ""
    for line in readme.splitlines():
        if line.startswith("```"):
            if current is None:
                current, lang = [], line[3:].strip()
            else:
                if not lang:  # untagged blocks are hspec; bash blocks are tagged
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    blocks = [b for b in blocks if re.match(r"\s*(#|property|const|check|explainer|classes)", b)]
    assert len(blocks) >= 4
    for block in blocks:
        text = re.sub(r"^property NAME = .*$", "", block, flags=re.M)  # the schematic lines
        parse_text(text, "README.md")


def test_several_syntax_errors_are_reported_at_once():
    text = ("const a = = 1\n"
            "classes c = a b\n"
            "const b =\n"
            "property p = forall x in d: argmax n(x) = 3\n"
            "data d = csv $ \"x\"\n"
            "const ok = 1\n"
            "check")
    with pytest.raises(HdslError) as e:
        parse_text(text, "bad.hspec")
    found = [(d.code, d.span.line, d.span.column) for d in e.value.diagnostics]
    assert found == [("E102", 1, 11), ("E102", 4, 1), ("E102", 4, 41), ("E101", 5, 14), ("E103", 7, 6)]
