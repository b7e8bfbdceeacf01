"""Z3 in the killable worker: same answers as in-process, and a late worker is stopped at the deadline."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from hdsl import ir
from hdsl.backends.z3 import box_bounds
from hdsl.exact import isolated
from hdsl.exact.decide import decide_box, isolate_z3, make_encoding
from hdsl.exact.isolated import IsolatedZ3Network, isolation_available
from hdsl.exact.net import Layer, PwlNet
from hdsl.exact.smt import CompactZ3Network, Z3Network
from hdsl.exact.spec import spec_rows

pytestmark = pytest.mark.skipif(not isolation_available(), reason="killable Z3 workers need POSIX pipes")
torch.set_num_threads(1)
F32 = np.float32


def random_net(rng, n_in: int, width: int = 6) -> PwlNet:
    return PwlNet((
        Layer(rng.normal(size=(width, n_in)).astype(F32), rng.normal(size=width).astype(F32), True),
        Layer(rng.normal(size=(width, width)).astype(F32), rng.normal(size=width).astype(F32), True),
        Layer(rng.normal(size=(3, width)).astype(F32), rng.normal(size=3).astype(F32), False),
    ))


def argmax_is(k: int, n: int = 3) -> ir.OutputSpec:
    return ir.OutputSpec(tuple(
        ir.Conjunction((ir.Constraint(ir.LinearExpr(((j, 1.0), (k, -1.0)))),)) for j in range(n) if j != k))


@pytest.mark.parametrize("compact", [False, True])
def test_worker_answers_as_in_process(compact):
    rng = np.random.default_rng(11)
    seen = set()
    for _ in range(4):
        net = random_net(rng, 2)
        rows = spec_rows(argmax_is(0), 3)
        lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
        pre, slack = box_bounds(net, rows, lo, hi)
        local = (CompactZ3Network if compact else Z3Network)(net, lo, hi, pre)
        remote = IsolatedZ3Network(net, lo, hi, pre, compact=compact)
        for bound in (slack, -slack, slack - 100.0):  # the same encoding, several specs: reused in the worker
            a, b = local.check(rows, bound, 30), remote.check(rows, bound, 30)
            assert a.status == b.status
            seen.add(a.status)
            if a.status == "sat":
                assert b.x is not None and b.x.shape == (2,)
                assert np.all(b.x >= lo) and np.all(b.x <= hi)
        assert remote.unstable == local.unstable
    assert {"sat", "unsat"} <= seen  # the comparison covered both answers


def test_late_worker_is_killed_at_the_deadline_and_restarted():
    w = isolated._WORKER
    before = w.restarts
    t0 = time.monotonic()
    assert w.call(("stall", 30.0), time.monotonic() + 0.3) is None
    assert time.monotonic() - t0 < 5.0
    assert w.restarts == before + 1
    # The next query gets a fresh worker and a real answer.
    net = random_net(np.random.default_rng(2), 2)
    rows = spec_rows(argmax_is(1), 3)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    ans = IsolatedZ3Network(net, lo, hi).check(rows, np.zeros(rows.A.shape[0]), 30)
    assert ans.status in ("sat", "unsat")


def test_a_timed_out_check_returns_timeout_not_an_error():
    rng = np.random.default_rng(5)
    net = random_net(rng, 2)
    rows = spec_rows(argmax_is(0), 3)
    enc = IsolatedZ3Network(net, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    assert enc.check(rows, np.zeros(rows.A.shape[0]), 0.0).status == "timeout"


def test_many_input_networks_are_isolated_and_decided(monkeypatch):
    monkeypatch.delenv("HDSL_Z3_ISOLATE", raising=False)
    rng = np.random.default_rng(8)
    net = random_net(rng, 40, width=8)
    assert isolate_z3(net) and not isolate_z3(random_net(rng, 5))
    rows = spec_rows(argmax_is(2), 3)
    lo, hi = np.full(40, -0.02), np.full(40, 0.02)
    pre, slack = box_bounds(net, rows, lo, hi)
    enc = make_encoding(net, lo, hi, pre)
    assert isinstance(enc, IsolatedZ3Network)
    local = Z3Network(net, lo, hi, pre).check(rows, slack, 30)
    out = decide_box(enc, rows, slack, lo, hi, lambda x: None, time.monotonic() + 30)
    assert local.status == "unsat" and out.status == "proved"  # measured: 5 unstable ReLUs, under 1 s
    monkeypatch.setenv("HDSL_Z3_ISOLATE", "0")
    assert not isinstance(make_encoding(net, lo, hi, pre), IsolatedZ3Network)


def test_no_timeout_means_wait_for_the_answer():
    net = random_net(np.random.default_rng(4), 2)
    rows = spec_rows(argmax_is(0), 3)
    ans = IsolatedZ3Network(net, np.array([-1.0, -1.0]), np.array([1.0, 1.0])).check(rows, np.zeros(rows.A.shape[0]),
                                                                                      None)
    assert ans.status in ("sat", "unsat")


def test_the_z3_backend_always_uses_the_worker(monkeypatch):
    # Whole-network queries overran their timeouts in-process even on 5-input ACAS Xu networks.
    from hdsl.backends import z3 as z3_backend

    monkeypatch.delenv("HDSL_Z3_ISOLATE", raising=False)
    net = random_net(np.random.default_rng(1), 2)
    rows = spec_rows(argmax_is(0), 3)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    pre, _ = box_bounds(net, rows, lo, hi)
    enc = z3_backend._encoding(net, ("test-only", lo.tobytes()), lo, hi, pre)
    assert isinstance(enc, IsolatedZ3Network)
