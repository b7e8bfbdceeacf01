"""Causal models: exact evaluation, interventions, validation errors."""

from __future__ import annotations

import numpy as np
import pytest

from hdsl.causal import tasks
from hdsl.causal.model import Binary, CausalModel, CausalVar, Const, IfElse, Ref, VarType, validate
from hdsl.diagnostics import HdslError

B = VarType.boolean()


def test_interventions_recompute_descendants_only():
    m = tasks.heq_model()
    inputs = m.enumerate_inputs()
    assert len(inputs["W"]) == 1296 and m.input_count == 1296
    base = m.run(inputs)
    assert base["O"].mean() == pytest.approx(13 / 18)
    flipped = m.run(inputs, {"WX": 1 - base["WX"]})
    assert (flipped["YZ"] == base["YZ"]).all() and (flipped["O"] != base["O"]).all()
    assert m.descendants("W") == {"WX", "O"}


def test_cycle_unknown_and_range_errors():
    cyc = CausalModel("c", (CausalVar("a", B),),
                      (CausalVar("p", B, Binary("and", Ref("a"), Ref("q"))),
                       CausalVar("q", B, Binary("or", Ref("p"), Ref("a")))), "q")
    with pytest.raises(HdslError) as err:
        validate(cyc)
    assert err.value.diagnostics[0].code == "C104" and "p, q" in err.value.diagnostics[0].message
    unknown = CausalModel("u", (CausalVar("a", B),), (CausalVar("p", B, Ref("zz")),), "p")
    with pytest.raises(HdslError) as err:
        validate(unknown)
    assert err.value.diagnostics[0].code == "C103"
    small = VarType.integer(0, 3)
    over = CausalModel("o", (CausalVar("x", small), CausalVar("y", small)),
                       (CausalVar("s", small, Binary("+", Ref("x"), Ref("y"))),), "s")
    with pytest.raises(HdslError) as err:
        validate(over)
    assert err.value.diagnostics[0].code == "C112" and "x=" in err.value.diagnostics[0].message


def test_validate_sorts_topologically_and_evaluates_if_mod():
    n = VarType.integer(0, 4)
    m = validate(CausalModel("t", (CausalVar("x", n), CausalVar("y", n)), (
        CausalVar("big", B, Binary(">=", Ref("s"), Const(3))),
        CausalVar("s", n, Binary("%", Binary("+", Ref("x"), Ref("y")), Const(5))),
        CausalVar("o", n, IfElse(Ref("big"), Ref("x"), Ref("y")))), "o"))
    assert [v.name for v in m.variables] == ["s", "big", "o"]
    v = m.run(m.enumerate_inputs())
    x, y = np.divmod(np.arange(25), 5)
    assert (v["s"] == (x + y) % 5).all() and (v["o"] == np.where((x + y) % 5 >= 3, x, y)).all()
