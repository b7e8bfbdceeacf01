"""Exact encoding of a ReLU network and an unsafe output set in Z3 (linear real arithmetic).

Every weight is a float32 (or float64) number, so ``Fraction(float(w))`` is its
exact value and the encoding is the real-valued network with exactly those
weights. ReLUs become case splits (a Boolean per unstable neuron) plus the
redundant triangle constraints, which let the LRA core prune before it splits;
neurons that bound propagation proved stable are fixed to their linear piece.

One ``Z3Network`` holds one network over one input box; specs are checked under
``push``/``pop`` so the network is encoded once for many specs.

Soundness with float32: ``check`` takes per-row slacks (see ``hdsl.exact.fperr``)
and proves the *relaxed* negated spec unsatisfiable (every unsafe constraint
loosened by its slack), which implies the float32 network is safe too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hdsl.exact.net import PwlNet
from hdsl.exact.spec import SpecRows


def _q(v: float):
    import z3

    f = Fraction(float(v))
    return z3.RealVal(f.numerator) if f.denominator == 1 else z3.Q(f.numerator, f.denominator)


def _pad(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widen float64-computed bounds outward, so float64 rounding cannot make them unsound."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    return lo - 1e-9 * (1 + np.abs(lo)), hi + 1e-9 * (1 + np.abs(hi))


@dataclass(frozen=True)
class SmtAnswer:
    status: str  # "unsat" | "sat" | "unknown" | "timeout"
    x: np.ndarray | None = None  # the model's input (float64 of the exact rational) when sat
    time_s: float = 0.0
    reason: str = ""


def _r(v: float) -> str:
    """The exact value of a float as an SMT-LIB real term."""
    n, d = float(v).as_integer_ratio()
    num = f"{abs(n)}.0" if d == 1 else f"(/ {abs(n)}.0 {d}.0)"
    return f"(- {num})" if n < 0 else num


class Z3Network:
    """The network over an input box, encoded once; ``check`` a spec incrementally.

    The encoding is written as SMT-LIB text and parsed by Z3 in one go, which is
    an order of magnitude faster than building the terms through the Python API.
    """

    def __init__(
        self,
        net: PwlNet,
        lo: np.ndarray,
        hi: np.ndarray,
        pre_bounds: list[tuple[np.ndarray, np.ndarray]] | None = None,
        fixed: list[np.ndarray] | None = None,
    ):
        """``pre_bounds[l]`` bounds layer ``l``'s pre-activation (valid on the box);
        ``fixed[l]`` (+1 active, -1 inactive, 0 free) adds ReLU split constraints
        (the encoding is then of the box intersected with that sub-domain)."""
        import z3

        self.net = net
        self.solver = z3.Solver()
        out: list[str] = []
        decl = out.append
        h: list[str] = []
        for i, (a, b) in enumerate(zip(lo, hi)):
            decl(f"(declare-const x{i} Real)(assert (<= {_r(a)} x{i} {_r(b)}))")
            h.append(f"x{i}")
        self.unstable = 0
        for li, layer in enumerate(net.layers):
            W = np.asarray(layer.weight)
            bias = np.asarray(layer.bias)
            bounds = _pad(*pre_bounds[li]) if pre_bounds is not None else None
            fix = fixed[li] if fixed is not None else None
            nxt: list[str] = []
            for j in range(W.shape[0]):
                row = W[j]
                terms = [f"(* {_r(row[i])} {h[i]})" for i in np.nonzero(row)[0] if h[i] != "0.0"]
                terms.append(_r(bias[j]))
                z = f"z{li}_{j}"
                decl(f"(declare-const {z} Real)(assert (= {z} (+ {' '.join(terms)} 0.0)))")
                l = u = None
                if bounds is not None:
                    l, u = float(bounds[0][j]), float(bounds[1][j])
                    decl(f"(assert (<= {_r(l)} {z} {_r(u)}))")
                if not layer.relu:
                    nxt.append(z)
                    continue
                f = int(fix[j]) if fix is not None else 0
                if f > 0 or (l is not None and l >= 0):
                    if f > 0:
                        decl(f"(assert (>= {z} 0.0))")
                    nxt.append(z)
                elif f < 0 or (u is not None and u <= 0):
                    if f < 0:
                        decl(f"(assert (<= {z} 0.0))")
                    nxt.append("0.0")
                else:
                    self.unstable += 1
                    r = f"h{li}_{j}"
                    a = f"a{li}_{j}"
                    decl(
                        f"(declare-const {r} Real)(declare-const {a} Bool)"
                        f"(assert (=> {a} (and (>= {z} 0.0) (= {r} {z}))))"
                        f"(assert (=> (not {a}) (and (<= {z} 0.0) (= {r} 0.0))))"
                        f"(assert (>= {r} 0.0))(assert (>= {r} {z}))"
                    )
                    if l is not None and u is not None and u > l:
                        # triangle: (u - l) r <= u (z - l)
                        decl(f"(assert (<= (* {_r(u - l)} {r}) (* {_r(u)} (- {z} {_r(l)}))))")
                    nxt.append(r)
            h = nxt
        ys = []
        for k, name in enumerate(h):
            decl(f"(declare-const y{k} Real)(assert (= y{k} {name}))")
            ys.append(f"y{k}")
        self.solver.from_string("".join(out))
        self.x = [z3.Real(f"x{i}") for i in range(net.input_size)]
        self.y = [z3.Real(n) for n in ys]

    def check(self, rows: SpecRows, bound: np.ndarray, timeout_s: float | None) -> SmtAnswer:
        """Is there an input whose outputs satisfy some disjunct, with every row's
        safety value ``<= bound[row]``? (``bound = slack`` relaxes, ``-slack`` tightens.)"""
        import z3

        s = self.solver
        t0 = time.monotonic()
        if timeout_s is not None and timeout_s <= 0:
            return SmtAnswer("timeout", reason="no time left")
        finite = timeout_s is not None and math.isfinite(timeout_s)
        # Z3 overruns its limits under load (measured: up to 2x), so ask for half the time left.
        s.set("timeout", max(1, int(0.5 * timeout_s * 1000)) if finite else 4294967295)
        try:
            s.push()
        except z3.Z3Exception:
            # A late interrupt from an earlier check's timer can cancel this push; the flag is
            # cleared by the failed call, so one retry suffices (else: inconclusive, never a crash).
            try:
                s.push()
            except z3.Z3Exception as exc:
                return SmtAnswer("timeout", time_s=time.monotonic() - t0, reason=f"interrupted: {exc}")
        # Z3's own timeout is not always honoured promptly (long preprocessing with big rationals),
        # so a timer interrupts the context at the deadline as well.
        timer = None
        if finite:
            import threading

            timer = threading.Timer(0.8 * max(0.0, timeout_s), s.ctx.interrupt)
            timer.daemon = True
            timer.start()
        try:
            disjuncts = []
            for k in range(rows.n_disjuncts):
                idx = np.nonzero(rows.disjunct == k)[0]
                conj = []
                for r in idx:
                    a = rows.A[r]
                    val = z3.Sum([_q(a[i]) * self.y[i] for i in np.nonzero(a)[0]] or [_q(0.0)]) + _q(rows.d[r])
                    conj.append(val <= _q(bound[r]))
                disjuncts.append(z3.And(conj) if conj else z3.BoolVal(True))
            s.add(z3.Or(disjuncts) if disjuncts else z3.BoolVal(False))
            res = s.check()
            dt = time.monotonic() - t0
            if res == z3.unsat:
                return SmtAnswer("unsat", time_s=dt)
            if res == z3.sat:
                m = s.model()
                x = np.array(
                    [float(m.eval(xi, model_completion=True).as_fraction()) for xi in self.x], dtype=np.float64
                )
                return SmtAnswer("sat", x=x, time_s=dt)
            reason = s.reason_unknown()
            status = "timeout" if ("timeout" in reason or "canceled" in reason) else "unknown"
            return SmtAnswer(status, time_s=dt, reason=reason)
        except z3.Z3Exception as exc:  # interrupted while building the query or reading the model
            return SmtAnswer("timeout", time_s=time.monotonic() - t0, reason=f"interrupted: {exc}")
        finally:
            if timer is not None:
                timer.cancel()
            try:
                s.pop()
            except z3.Z3Exception:
                s.pop()  # same late-interrupt race as for push


def _dyadic(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Exact integer form of a float array: ``a = ints * 2**-e`` (object array of Python ints)."""
    flat = [float(v).as_integer_ratio() for v in np.asarray(a, dtype=np.float64).reshape(-1)]
    e = max((d.bit_length() - 1 for _, d in flat), default=0)
    ints = np.array([n << (e - (d.bit_length() - 1)) for n, d in flat], dtype=object)
    return ints.reshape(np.shape(a)), e


def _rescale(ints: np.ndarray, e_from: int, e_to: int) -> np.ndarray:
    return ints * (1 << (e_to - e_from)) if e_to > e_from else ints


class CompactZ3Network(Z3Network):
    """The same exact encoding with every stable neuron eliminated.

    Each layer's pre-activations are composed, exactly, into affine functions
    of the inputs and of the outputs of the *unstable* ReLUs met so far. All
    values are dyadic rationals (float weights and bounds), so the composition
    is done with Python integers over a common power-of-two denominator. Z3
    then sees ``n_in + k`` real variables for ``k`` unstable ReLUs instead of
    hundreds of equalities, which keeps its rational simplex small: the
    encoding for leaves of branch and bound with few inputs.
    """

    def __init__(self, net: PwlNet, lo, hi, pre_bounds, fixed=None):  # noqa: D107 - see class docstring
        import z3

        self.net = net
        self.solver = z3.Solver()
        n_in = net.input_size
        out: list[str] = []
        decl = out.append
        names = [f"x{i}" for i in range(n_in)]
        for i, (a, b) in enumerate(zip(lo, hi)):
            decl(f"(declare-const x{i} Real)(assert (<= {_r(a)} x{i} {_r(b)}))")
        # h = (M @ v + c) / 2**E over variables v = names
        M = np.empty((n_in, n_in), dtype=object)
        M[:] = 0
        for i in range(n_in):
            M[i, i] = 1
        c = np.array([0] * n_in, dtype=object)
        E = 0
        self.unstable = 0

        def term(row, const, e) -> str:
            den = 1 << e
            parts = [f"(* {_frac(int(m), den)} {names[k]})" for k, m in enumerate(row) if m != 0]
            parts.append(_frac(int(const), den))
            return f"(+ {' '.join(parts)} 0.0)"

        for li, layer in enumerate(net.layers):
            Wi, ew = _dyadic(layer.weight)
            bi, eb = _dyadic(layer.bias)
            e_new = max(ew + E, eb)
            Mz = _rescale(Wi.dot(M), ew + E, e_new)
            cz = _rescale(Wi.dot(c), ew + E, e_new) + _rescale(bi, eb, e_new)
            M, c, E = Mz, cz, e_new
            if not layer.relu:
                continue
            bounds = _pad(*pre_bounds[li])
            fix = fixed[li] if fixed is not None else None
            keep = np.ones(len(c), dtype=bool)
            new_vars = []
            for j in range(len(c)):
                l, u = float(bounds[0][j]), float(bounds[1][j])
                f = int(fix[j]) if fix is not None else 0
                if f > 0 or l >= 0:
                    if f > 0:
                        decl(f"(assert (>= {term(M[j], c[j], E)} 0.0))")
                    continue
                if f < 0 or u <= 0:
                    if f < 0:
                        decl(f"(assert (<= {term(M[j], c[j], E)} 0.0))")
                    keep[j] = False
                    continue
                self.unstable += 1
                z, r, a = f"z{li}_{j}", f"h{li}_{j}", f"a{li}_{j}"
                decl(
                    f"(declare-const {z} Real)(declare-const {r} Real)(declare-const {a} Bool)"
                    f"(assert (= {z} {term(M[j], c[j], E)}))(assert (<= {_r(l)} {z} {_r(u)}))"
                    f"(assert (=> {a} (and (>= {z} 0.0) (= {r} {z}))))"
                    f"(assert (=> (not {a}) (and (<= {z} 0.0) (= {r} 0.0))))"
                    f"(assert (>= {r} 0.0))(assert (>= {r} {z}))"
                    f"(assert (<= (* {_r(u - l)} {r}) (* {_r(u)} (- {z} {_r(l)}))))"
                )
                new_vars.append((j, r))
            # Inactive rows become 0; unstable rows become their new variable.
            M = M.copy()
            c = c.copy()
            M[~keep] = 0
            c[~keep] = 0
            if new_vars:
                M = np.concatenate([M, np.zeros((len(c), len(new_vars)), dtype=object)], axis=1)
                for t, (j, r) in enumerate(new_vars):
                    M[j] = 0
                    M[j, len(names) + t] = 1 << E
                    c[j] = 0
                names += [r for _, r in new_vars]
        ys = []
        for k in range(len(c)):
            decl(f"(declare-const y{k} Real)(assert (= y{k} {term(M[k], c[k], E)}))")
            ys.append(f"y{k}")
        self.solver.from_string("".join(out))
        self.x = [z3.Real(f"x{i}") for i in range(n_in)]
        self.y = [z3.Real(n) for n in ys]


def _frac(num: int, den: int) -> str:
    from math import gcd

    g = gcd(num, den) or 1
    num, den = num // g, den // g
    body = f"{abs(num)}.0" if den == 1 else f"(/ {abs(num)}.0 {den}.0)"
    return f"(- {body})" if num < 0 else body


def to_float32_in_box(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """The float32 point nearest ``x`` that lies in ``[lo, hi]`` (compared exactly), or None."""
    x32 = np.asarray(x, dtype=np.float64).astype(np.float32)
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    for _ in range(4):
        below = x32.astype(np.float64) < lo
        x32 = np.where(below, np.nextafter(x32, np.float32(np.inf)), x32)
        above = x32.astype(np.float64) > hi
        x32 = np.where(above, np.nextafter(x32, np.float32(-np.inf)), x32)
    x64 = x32.astype(np.float64)
    if np.any(x64 < lo) or np.any(x64 > hi):
        return None
    return x32
