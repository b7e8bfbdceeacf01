"""Soundness fuzzing: every complete and incomplete method against dense sampling and each other.

    python benchmarks/soundness_fuzz.py [--seeds 0:50] [--arithmetic float32,real] [--budget 10]
                                        [--out fuzz.jsonl]

For each seed a random ReLU network (1-5 inputs, 1-3 hidden layers of 3-13
neurons, 2-5 outputs) is written as ONNX, with a random box and a random
OR-of-ANDs unsafe set shifted so that its sampled boundary lies within a few
percent of the box (some instances violated, most near the edge). Then each
method decides it in each arithmetic:

* ``bounds``: the incomplete pipeline (concrete, PGD, IBP, CROWN, α-CROWN);
* ``input``: input-splitting branch and bound (no Z3 at the leaves);
* ``relu``: ReLU-splitting branch and bound with β (no Z3);
* ``z3``: the exact SMT backend.

The oracle is 50,000 uniform samples plus every corner of the box, evaluated in
float32 (``arithmetic float32``: any float32 execution must be safe when proved)
or in float64 (``arithmetic real``; a violation must exceed 1e-9 relative to
count, as the real network's rounding is not the question). A run fails on:

* ``unsound``: proved, but a sample violates;
* ``contradiction``: one method proved what another falsified;
* ``bad counterexample``: falsified with a point outside the box, or one the
  oracle's own evaluation finds safe;
* ``error``: an exception.

``--kind levels`` fuzzes the hierarchy level driver (``hdsl.hierarchy_check``)
instead: a random label, a random chain of nested class sets around it and an
L-infinity ball (radius drawn so some levels are near their boundary), decided
by checkers with growing method sets (``pairs``; ``pairs, lambda``;
``pairs, lambda, split``; ``exact``), without the PGD attack so that the
proving methods meet the violated levels themselves. Each proved level must hold on every
sample of the ball (strict argmax in the set, ties unsafe), each counterexample
must lie in the ball and violate, and no method may prove a level another
falsifies; proofs must also be monotone (a proved set's supersets proved).

``--arch conv`` draws small conv nets instead of MLPs (1-2 x 4 x 4 inputs; conv, optional
batch norm and average pooling; 50,000 samples of a small box, no corners; the spec's sampled
boundary within -2 % / +40 % of the margin's spread), and the float32 oracle is onnxruntime itself.

One JSON line per (seed, arithmetic) goes to ``--out``; the summary is printed
at the end and the exit status is 1 if anything failed. Nothing here is timed:
it is a search for wrong answers, run by hand (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

F32 = np.float32
SAMPLES = 50_000
REAL_TOLERANCE = 1e-9


def random_net(rng: np.random.Generator):
    """Weights scaled by 1/sqrt(fan-in) so deep nets neither vanish nor blow up."""
    from hdsl.exact.net import Layer, PwlNet

    n_in = int(rng.integers(1, 6))
    hidden = [int(rng.integers(3, 14)) for _ in range(int(rng.integers(1, 4)))]
    sizes = [n_in, *hidden, int(rng.integers(2, 6))]
    return PwlNet(tuple(
        Layer((rng.normal(size=(o, i)) / np.sqrt(i)).astype(F32), (rng.normal(size=o) * 0.3).astype(F32),
              k < len(sizes) - 2)
        for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]))))


def oracle_points(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform samples plus every corner of the box (at most 32 here), as float32."""
    pts = rng.uniform(lo, hi, size=(SAMPLES, lo.size))
    corners = np.array(list(itertools.product(*zip(lo, hi))))
    return np.clip(np.concatenate([pts, corners]).astype(F32), lo.astype(F32), hi.astype(F32))


def random_constraints(rng: np.random.Generator, n_out: int):
    """1-3 disjuncts of 1-3 constraints: class differences ``y_k - y_j`` or dense random rows."""
    from hdsl import ir

    disjuncts = []
    for _ in range(int(rng.integers(1, 4))):
        cons = []
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.5:
                k, j = rng.choice(n_out, size=2, replace=False)
                terms = ((int(k), 1.0), (int(j), -1.0))
            else:
                terms = tuple((i, float(np.round(c, 3))) for i, c in enumerate(rng.normal(size=n_out)))
            cons.append(terms)
        disjuncts.append(cons)
    return [[ir.LinearExpr(t) for t in d] for d in disjuncts]


def shifted_spec(disjuncts, shift: float):
    """Subtracting ``shift`` from every constraint adds ``shift`` to the spec's margin everywhere."""
    from hdsl import ir

    return ir.OutputSpec(tuple(
        ir.Conjunction(tuple(ir.Constraint(ir.LinearExpr(e.terms, -shift)) for e in d)) for d in disjuncts))


def outputs(net, x: np.ndarray, arithmetic: str) -> np.ndarray:
    """The network's outputs at float32 points ``x`` in the arithmetic's own evaluation, as float64."""
    dtype = np.float32 if arithmetic == "float32" else np.float64
    return net.forward(np.asarray(x, np.float32), dtype=dtype).astype(np.float64)


def violations(m: np.ndarray, ys: np.ndarray, arithmetic: str) -> np.ndarray:
    """Which margins violate: ``<= 0`` in float32 (a tie is unsafe); in real arithmetic below
    ``-1e-9 (1 + max |y|)``, what hdsl's replay requires (float64 rounding cannot fake that)."""
    if arithmetic == "float32":
        return m <= 0
    return m < -REAL_TOLERANCE * (1 + np.abs(ys).max(axis=1))


def margins(spec, ys: np.ndarray) -> np.ndarray:
    """The spec's margin on each row of ``ys`` (vectorised ``OutputSpec.margin``)."""
    per_disjunct = []
    for conj in spec.unsafe:
        vals = np.stack([sum(c * ys[:, i] for i, c in con.expr.terms) + con.expr.const
                         for con in conj.constraints], axis=1)
        per_disjunct.append(-vals.min(axis=1))
    return np.min(np.stack(per_disjunct, axis=1), axis=1)


def make_instance(seed: int, folder: Path):
    from hdsl import ir
    from hdsl.exact.net import to_onnx

    rng = np.random.default_rng(seed)
    net = random_net(rng)
    n = net.input_size
    centre = rng.uniform(-1, 1, size=n)
    radius = rng.uniform(0.02, 1.0, size=n)
    lo, hi = (centre - radius).astype(F32).astype(np.float64), (centre + radius).astype(F32).astype(np.float64)
    pts = oracle_points(rng, lo, hi)
    disjuncts = random_constraints(rng, net.output_size)
    base = margins(shifted_spec(disjuncts, 0.0), net.forward(pts, dtype=np.float64))
    spread = float(base.max() - base.min()) or 1.0
    # sampled minimum margin lands in [-3 %, +5 %] of the margin's spread: mostly just safe on the samples
    shift = float(np.round(-base.min() + spread * rng.uniform(-0.03, 0.05), 6))
    spec = shifted_spec(disjuncts, shift)
    path = folder / f"fuzz{seed}.onnx"
    to_onnx(net, str(path))
    network = ir.Network(f"fuzz{seed}", str(path), (n,))
    return net, lo, hi, pts, spec, network


class ConvModel:
    """A random conv net (``hdsl.nn.build.random_convnet``) as the oracle evaluates it: onnxruntime
    for float32 (the real model), the imported graph in float64 for real arithmetic."""

    def __init__(self, path: Path):
        from hdsl.nn import load_onnx

        self.path = path
        self.graph = load_onnx(path)
        self.input_size = int(np.prod(self.graph.input_shape))
        self.output_size = self.graph.output_size

    def outputs(self, x: np.ndarray, arithmetic: str) -> np.ndarray:
        import torch

        from hdsl.nn.ort import run_onnx

        x = np.asarray(x, np.float32)
        if arithmetic == "float32":
            return run_onnx(self.path, x).astype(np.float64)
        with torch.no_grad():
            xs = torch.from_numpy(x.astype(np.float64)).reshape(len(x), *self.graph.input_shape)
            return self.graph.exact.forward(xs).reshape(len(x), -1).numpy()


def make_conv_instance(seed: int, folder: Path):
    """A conv net on a 1-2 x 4 x 4 input (conv, optional batch norm and average pooling), a small
    box (16-32 inputs: samples only, no corners) and a spec shifted to the sampled boundary."""
    from hdsl import ir
    from hdsl.nn.build import random_convnet, save

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 3)), 4, 4)
    model = random_convnet(rng, in_shape=shape, channels=tuple(int(c) for c in rng.integers(2, 4, 2)), hidden=6,
                           classes=int(rng.integers(2, 5)), stride=int(rng.integers(1, 3)),
                           batchnorm=bool(rng.random() < 0.5), avgpool=bool(rng.random() < 0.5))
    path = Path(save(model, folder / f"conv{seed}.onnx"))
    net = ConvModel(path)
    n = net.input_size
    centre = rng.uniform(-1, 1, size=n)
    radius = rng.uniform(0.01, 0.15, size=n)
    lo, hi = (centre - radius).astype(F32).astype(np.float64), (centre + radius).astype(F32).astype(np.float64)
    pts = np.clip(rng.uniform(lo, hi, size=(SAMPLES, n)).astype(F32), lo.astype(F32), hi.astype(F32))
    disjuncts = random_constraints(rng, net.output_size)
    base = margins(shifted_spec(disjuncts, 0.0), net.outputs(pts, "real"))
    spread = float(base.max() - base.min()) or 1.0
    # wider than the MLPs' band: in 16-32 dimensions the samples miss the true minimum by more
    shift = float(np.round(-base.min() + spread * rng.uniform(-0.02, 0.4), 6))
    network = ir.Network(f"conv{seed}", str(path), shape)
    return net, lo, hi, pts, shifted_spec(disjuncts, shift), network


def methods(budget: float):
    from hdsl.backends.bounds import BoundsBackend
    from hdsl.backends.z3 import Z3Backend
    from hdsl.bab.backend import BabBackend

    return {
        "bounds": (BoundsBackend(), budget),
        "input": (BabBackend(mode="input", use_z3=False), budget),
        "relu": (BabBackend(mode="relu", use_z3=False), budget),
        "z3": (Z3Backend(), 2 * budget),
    }


def fuzz_one(seed: int, arithmetic: str, budget: float, folder: Path, arch: str = "mlp") -> dict:
    from hdsl import ir
    from hdsl.backends import Budget
    from hdsl.results import Verdict

    if arch == "conv":
        net, lo, hi, pts, spec, network = make_conv_instance(seed, folder)
        evaluate = net.outputs
    else:
        net, lo, hi, pts, spec, network = make_instance(seed, folder)
        evaluate = lambda x, a: outputs(net, x, a)  # noqa: E731
    ys = evaluate(pts, arithmetic)
    m = margins(spec, ys)
    violated = bool(violations(m, ys, arithmetic).any())
    q = ir.Query(f"fuzz{seed}", network, ir.Box(tuple(lo), tuple(hi)), spec, "fuzz",
                 options=ir.CheckOptions(arithmetic=arithmetic))
    layers = [int(l.weight.shape[0]) for l in net.layers] if arch == "mlp" else \
        [n.op for n in net.graph.nodes[1:]]
    row = {"seed": seed, "arithmetic": arithmetic, "arch": arch, "inputs": net.input_size,
           "layers": layers, "disjuncts": len(spec.unsafe),
           "sampled_min_margin": float(m.min()), "sampled_violation": violated, "verdicts": {}, "failures": []}
    for name, (backend, seconds) in methods(budget).items():
        t0 = time.monotonic()
        try:
            r = backend.run(q, Budget.seconds(seconds))
        except Exception:  # noqa: BLE001 - the fuzzer's job is to report it
            row["failures"].append(f"error: {name}: {traceback.format_exc(limit=3)}")
            continue
        row["verdicts"][name] = {"verdict": r.verdict.value, "stage": r.stage,
                                 "time_s": round(time.monotonic() - t0, 3)}
        if r.verdict is Verdict.PROVED and violated:
            row["failures"].append(f"unsound: {name} proved, sampled margin {m.min():.3g}")
        if r.verdict is Verdict.FALSIFIED:
            ce = r.counterexample
            x = np.asarray(ce.x, dtype=np.float64) if ce is not None else None
            if x is None or np.any(x < lo) or np.any(x > hi):
                row["failures"].append(f"bad counterexample: {name}: outside the box")
                continue
            y = evaluate(x[None], arithmetic)
            if not violations(margins(spec, y), y, arithmetic)[0]:
                row["failures"].append(f"bad counterexample: {name}: margin {margins(spec, y)[0]:.3g} is safe")
    decided = {k: v["verdict"] for k, v in row["verdicts"].items() if v["verdict"] in ("proved", "falsified")}
    if len(set(decided.values())) > 1:
        row["failures"].append(f"contradiction: {decided}")
    return row


LEVEL_METHODS = {"pairs": ("pairs",), "lambda": ("pairs", "lambda"), "split": ("pairs", "lambda", "split"),
                 "exact": ("exact",)}


def set_margins(ys: np.ndarray, classes) -> np.ndarray:
    """``max_S y - max_outside y`` per row (> 0 safe; a tie is unsafe)."""
    inside = np.zeros(ys.shape[1], bool)
    inside[list(classes)] = True
    return ys[:, inside].max(axis=1) - ys[:, ~inside].max(axis=1)


def boundary_radius(net, x0: np.ndarray, classes, rng: np.random.Generator, samples: int = 4000) -> float:
    """About the radius at which sampling first finds ``argmax in classes`` violated (bisection), so that
    the fuzzed balls sit near a level's boundary: just safe or just unsafe."""
    lo, hi = 0.0, 2.0
    for _ in range(16):
        mid = (lo + hi) / 2
        pts = np.clip(x0 + rng.uniform(-mid, mid, size=(samples, x0.size)), -2.0, 2.0)
        if set_margins(net.forward(pts, dtype=np.float64), classes).min() <= 0:
            hi = mid
        else:
            lo = mid
    return hi


def fuzz_levels_one(seed: int, arithmetic: str, budget: float, folder: Path) -> dict:
    """One random net, label, chain of nested sets and ball, decided by every level method."""
    from hdsl import ir
    from hdsl.exact.net import to_onnx
    from hdsl.hierarchy_check import HierarchyChecker
    from hdsl.results import Verdict

    rng = np.random.default_rng(10_000_019 + seed)
    net = random_net(rng)
    n, k = net.input_size, net.output_size
    if k < 3:  # a level needs a class outside it and one inside besides the label
        net = random_net(np.random.default_rng(rng.integers(2 ** 31)))
        n, k = net.input_size, net.output_size
    x0 = rng.uniform(-1, 1, size=n).astype(F32)
    label = int(np.argmax(net.forward(x0[None], dtype=np.float64)[0]))
    others = [int(c) for c in rng.permutation(k) if c != label]
    chain = [tuple(sorted([label] + others[:m])) for m in range(len(others) - 1, -1, -1)]  # coarse to fine
    sets = [(lv + 1, S, f"level {lv + 1}") for lv, S in enumerate(chain)]
    eps = boundary_radius(net, x0, chain[int(rng.integers(len(chain)))], rng) * float(rng.uniform(0.85, 1.1))
    eps = float(np.round(max(eps, 1e-4), 6))
    path = folder / f"lvl{seed}.onnx"
    to_onnx(net, str(path))
    network = ir.Network(f"lvl{seed}", str(path), (n,), (-2.0, 2.0), num_outputs=k)
    x64 = x0.astype(np.float64)  # the checker's ball is real: x0 - eps in float64, not rounded to float32
    lo, hi = np.maximum(x64 - eps, -2.0), np.minimum(x64 + eps, 2.0)
    pts = oracle_points(rng, lo, hi)
    ys = outputs(net, pts, arithmetic)
    margins_by_set = {S: set_margins(ys, S) for S in chain}
    violated = {S: bool(violations(m, ys, arithmetic).any()) for S, m in margins_by_set.items()}
    sampled = {S: float(m.min()) for S, m in margins_by_set.items()}
    row = {"seed": seed, "kind": "levels", "arithmetic": arithmetic, "inputs": n,
           "layers": [int(l.weight.shape[0]) for l in net.layers], "eps": eps, "sets": [list(S) for S in chain],
           "sampled_min_margin": {str(list(S)): m for S, m in sampled.items()}, "verdicts": {}, "failures": []}
    decided: dict[tuple, dict[str, str]] = {S: {} for S in chain}
    for name, methods in LEVEL_METHODS.items():
        # no attack: the proving methods face the violated levels themselves (the concrete check of x0 stays)
        checker = HierarchyChecker(network, None, methods=methods, attack=False, split_timeout=budget,
                                   arithmetic=arithmetic)
        t0 = time.monotonic()
        try:
            pr = checker.check_point(x0, label, eps, deadline=time.monotonic() + 2 * budget, sets=sets)
        except Exception:  # noqa: BLE001 - the fuzzer's job is to report it
            row["failures"].append(f"error: {name}: {traceback.format_exc(limit=3)}")
            continue
        row["verdicts"][name] = {"levels": {str(list(lv.classes)): lv.verdict.value for lv in pr.levels
                                            if tuple(lv.classes) in decided},  # not the root (always proved)
                                 "time_s": round(time.monotonic() - t0, 3)}
        by_verdict = {v: {tuple(lv.classes) for lv in pr.levels if lv.verdict is v}
                      for v in (Verdict.PROVED, Verdict.FALSIFIED)}
        for S in by_verdict[Verdict.PROVED]:  # a proof holds for every superset, a counterexample for every subset
            if any(set(S) < set(T) and T not in by_verdict[Verdict.PROVED] for T in chain):
                row["failures"].append(f"not monotone: {name} proved {list(S)} but not all of its supersets")
        for S in by_verdict[Verdict.FALSIFIED]:
            if any(set(T) < set(S) and T not in by_verdict[Verdict.FALSIFIED] for T in chain):
                row["failures"].append(f"not monotone: {name} falsified {list(S)} but not all of its subsets")
        for lv in pr.levels:
            S = tuple(lv.classes)
            if S not in decided:
                continue  # the root
            if lv.verdict in (Verdict.PROVED, Verdict.FALSIFIED):
                decided[S][name] = lv.verdict.value
            if lv.verdict is Verdict.PROVED and violated[S]:
                row["failures"].append(f"unsound: {name} proved {list(S)}, sampled margin {sampled[S]:.3g}")
            if lv.verdict is Verdict.FALSIFIED:
                ce = lv.counterexample
                x = None if ce is None else np.asarray(ce.x, np.float64)
                if x is None or np.any(x < lo) or np.any(x > hi):
                    row["failures"].append(f"bad counterexample: {name} {list(S)}: outside the ball")
                    continue
                y = outputs(net, x[None], arithmetic)
                if not violations(set_margins(y, S), y, arithmetic)[0]:
                    row["failures"].append(f"bad counterexample: {name} {list(S)}: margin "
                                           f"{set_margins(y, S)[0]:.3g} is safe")
    for S, by in decided.items():
        if len(set(by.values())) > 1:
            row["failures"].append(f"contradiction on {list(S)}: {by}")
    return row


def parse_seeds(text: str) -> range:
    a, _, b = text.partition(":")
    return range(int(a), int(b)) if b else range(int(a), int(a) + 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0:50", help="A:B, half-open")
    ap.add_argument("--arithmetic", default="float32,real")
    ap.add_argument("--budget", type=float, default=10.0, help="seconds per method (Z3 gets twice)")
    ap.add_argument("--out", default=None, help="append one JSON line per run")
    ap.add_argument("--kind", default="queries", choices=("queries", "levels"),
                    help="queries: every backend on OR-of-AND specs; levels: the hierarchy level driver")
    ap.add_argument("--arch", default="mlp", choices=("mlp", "conv"),
                    help="with --kind queries: random MLPs (the default) or small conv nets (conv, batch norm, "
                         "average pooling) judged against onnxruntime")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    arithmetics = [a.strip() for a in args.arithmetic.split(",") if a.strip()]
    out = open(args.out, "a") if args.out else None
    counts = {"runs": 0, "failed": 0}
    tally: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in parse_seeds(args.seeds):
            for arithmetic in arithmetics:
                if args.kind == "queries":
                    row = fuzz_one(seed, arithmetic, args.budget, Path(tmp), args.arch)
                else:
                    row = fuzz_levels_one(seed, arithmetic, args.budget, Path(tmp))
                counts["runs"] += 1
                counts["failed"] += bool(row["failures"])
                for name, v in row["verdicts"].items():
                    for verdict in v["levels"].values() if "levels" in v else [v["verdict"]]:
                        tally.setdefault(name, {}).setdefault(verdict, 0)
                        tally[name][verdict] += 1
                if out:
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                for f in row["failures"]:
                    print(f"seed {seed} {arithmetic}: {f}", file=sys.stderr)
    print(f"{counts['runs']} runs, {counts['failed']} with failures")
    for name, t in tally.items():
        print(f"  {name:7s} " + ", ".join(f"{k} {v}" for k, v in sorted(t.items())))
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
