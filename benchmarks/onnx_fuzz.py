"""Mutation fuzzing of the ONNX import: a broken or unusual model is a diagnostic, never a crash,
and never a network that computes something other than what onnxruntime computes.

Each run takes a model (the shipped ACAS Xu, CIFAR-10 and causal networks, and random
convolutional nets with batch norm or pooling, or MLPs with sigmoid / tanh) and applies one to
three structural mutations: change or drop an attribute (strides, pads, perm, axis, transB,
kernel_shape ...), swap an operator for a related one (Relu/Sigmoid/Tanh/Identity, Add/Sub/Mul,
MaxPool/AveragePool, Gemm/MatMul), rewire an input to another tensor, drop a node, or reshape a
weight. The mutant goes through ``hdsl.nn.load_onnx``, which compares its import with
onnxruntime on random inputs. A run fails on an exception other than a diagnostic. A mutant that
imports while onnxruntime cannot run it is counted as ``unchecked`` (its import could not be
compared), listed with ``--show-unchecked``. With ``--bounds METHOD`` every imported mutant is
also bounded over a small L∞ box, and onnxruntime's outputs on samples of the box must lie
within the bounds.

    python benchmarks/onnx_fuzz.py --runs 2000 --seed 0
    python benchmarks/onnx_fuzz.py --runs 2000 --bounds crown
"""

from __future__ import annotations

import argparse
import collections
import functools
import random
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("acasxu_1_1.onnx", "cifar10_small.onnx", "causal_heq.onnx", "causal_heq_rot.onnx")
RELATED = [("Relu", "Sigmoid", "Tanh", "Identity"), ("Add", "Sub", "Mul"), ("MaxPool", "AveragePool"),
           ("Gemm", "MatMul")]


@functools.lru_cache(maxsize=None)
def corpus() -> tuple[tuple[str, bytes], ...]:
    """(name, serialised model) of every model the fuzzer starts from."""
    from hdsl.nn.build import random_convnet, random_mlp

    out = [(name, (REPO / "models" / name).read_bytes()) for name in SHIPPED]
    rng = np.random.default_rng(0)
    out.append(("convnet_bn", random_convnet(rng, batchnorm=True).SerializeToString()))
    out.append(("convnet_avgpool", random_convnet(rng, batchnorm=False, avgpool=True).SerializeToString()))
    out.append(("mlp_sigmoid", random_mlp(rng, [5, 8, 8, 3], activation="Sigmoid").SerializeToString()))
    out.append(("mlp_tanh", random_mlp(rng, [5, 8, 3], activation="Tanh").SerializeToString()))
    return tuple(out)


def _odd_int(rng: random.Random, v: int) -> int:
    return rng.choice((v + 1, v - 1, 0, -1, 2 * v + 3, 1 << 20))


def mutate(model, rng: random.Random):
    """The model with one to three structural mutations (in place; returns it)."""
    from onnx import numpy_helper

    graph = model.graph
    for _ in range(rng.randint(1, 3)):
        nodes = list(graph.node)
        if not nodes:
            break
        node = rng.choice(nodes)
        kind = rng.choice(("attribute", "attribute", "op", "rewire", "drop", "weight", "opset"))
        if kind == "attribute" and node.attribute:
            attr = rng.choice(list(node.attribute))
            if rng.random() < 0.2:
                node.attribute.remove(attr)
            elif attr.type == attr.INT:
                attr.i = _odd_int(rng, attr.i)
            elif attr.type == attr.INTS and len(attr.ints):
                values = list(attr.ints)
                if rng.random() < 0.3:
                    values = values[:-1] or [rng.choice((0, 1, 2))]
                else:
                    k = rng.randrange(len(values))
                    values[k] = _odd_int(rng, values[k])
                del attr.ints[:]
                attr.ints.extend(values)
            elif attr.type == attr.FLOAT:
                attr.f = rng.choice((0.0, -1.0, 1e30, float("nan"), attr.f * 2))
        elif kind == "op":
            family = next((f for f in RELATED if node.op_type in f), None)
            if family:
                node.op_type = rng.choice([o for o in family if o != node.op_type])
                if node.op_type in ("Relu", "Sigmoid", "Tanh", "Identity"):
                    del node.attribute[:]
        elif kind == "rewire" and node.input:
            names = [i.name for i in graph.input] + [o for n in nodes for o in n.output] + \
                [i.name for i in graph.initializer]
            node.input[rng.randrange(len(node.input))] = rng.choice(names)
        elif kind == "drop":
            graph.node.remove(node)
        elif kind == "weight" and graph.initializer:
            init = rng.choice(list(graph.initializer))
            a = numpy_helper.to_array(init)
            if a.size > 1:
                a = a.reshape(-1)[: rng.randint(1, a.size - 1)] if rng.random() < 0.5 else a.reshape(-1)
                if rng.random() < 0.2 and a.dtype.kind == "f":
                    a = a.copy()
                    a[rng.randrange(a.size)] = rng.choice((np.inf, np.nan))
            init.CopyFrom(numpy_helper.from_array(a.astype(numpy_helper.to_array(init).dtype), init.name))
        elif kind == "opset":
            model.opset_import[0].version = rng.choice((7, 9, 11, 13, 17, 21))
    return model


def bounds_violation(graph, path: Path, rng: random.Random, method: str, samples: int = 256) -> str | None:
    """Bound an imported mutant over a small box and compare with onnxruntime on samples of it
    (the real model): a sampled output outside the float32-sound bounds is unsound."""
    import math

    import torch

    from hdsl.bounds import compute_bounds
    from hdsl.nn.ort import run_onnx

    n = math.prod(graph.input_shape)
    gen = np.random.default_rng(rng.randrange(1 << 30))
    centre = gen.uniform(-1, 1, n)
    eps = rng.choice((0.01, 0.05, 0.2))
    lo = torch.as_tensor(centre - eps).reshape(1, *graph.input_shape)
    hi = torch.as_tensor(centre + eps).reshape(1, *graph.input_shape)
    lower, upper = compute_bounds(graph, lo, hi, method=method)
    x = gen.uniform(centre - eps, centre + eps, size=(samples, n)).astype(np.float32)
    inside = (x >= lo.reshape(1, -1).numpy()) & (x <= hi.reshape(1, -1).numpy())
    x = x[inside.all(1)]  # float32 rounding may step outside the float64 box
    y = run_onnx(path, x).astype(np.float64)
    lo_b, hi_b = lower.numpy().reshape(1, -1), upper.numpy().reshape(1, -1)
    bad = (y < lo_b) | (y > hi_b)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        return (f"{method} bounds [{lo_b[0, j]:.9g}, {hi_b[0, j]:.9g}] of output {j} miss onnxruntime's "
                f"{y[i, j]:.9g} (eps {eps})")
    return None


def run_one(seed: int, workdir: Path, bounds: str | None = None) -> tuple[str, str, str | None]:
    """(model name, outcome, failure or None); outcome is 'diagnostic', 'imported' or 'unchecked'.
    With ``bounds`` (a method: ibp, crown, alpha), an imported mutant's bounds are also
    checked against onnxruntime on samples."""
    import onnx

    rng = random.Random(seed)
    name, data = rng.choice(corpus())
    model = mutate(onnx.load_from_string(data), rng)
    path = workdir / f"m{seed}.onnx"
    path.write_bytes(model.SerializeToString())
    try:
        return (name, *_judge(path, rng, bounds))
    finally:
        path.unlink(missing_ok=True)


def _judge(path: Path, rng: random.Random, bounds: str | None) -> tuple[str, str | None]:
    """(outcome, failure or None) of importing the mutant at ``path`` (and bounding it)."""
    from hdsl.diagnostics import HdslError
    from hdsl.nn import load_onnx

    try:
        graph = load_onnx(path)
    except HdslError as err:
        for d in err.diagnostics:
            if d.span is None and d.path is None:
                return "diagnostic", f"diagnostic without a location: {d.render()}"
        return "diagnostic", None
    except RecursionError:
        return "crash", "RecursionError"
    except Exception:  # noqa: BLE001 - what the fuzzer looks for
        return "crash", traceback.format_exc(limit=-3)
    if graph.ort_max_abs_diff is None:
        return "unchecked", None
    if bounds:
        try:
            violation = bounds_violation(graph, path, rng, bounds)
        except Exception:  # noqa: BLE001
            return "crash", traceback.format_exc(limit=-3)
        if violation:
            return "unsound", violation
    return "imported", None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="first seed; run k uses seed + k")
    parser.add_argument("--bounds", choices=("ibp", "crown", "alpha"), default=None,
                        help="also bound each imported mutant over a small box and compare with onnxruntime")
    parser.add_argument("--show-unchecked", action="store_true", help="print the seeds of unchecked imports")
    args = parser.parse_args(argv)
    outcomes: collections.Counter = collections.Counter()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="hdsl-onnx-fuzz-") as tmp:
        for seed in range(args.seed, args.seed + args.runs):
            name, outcome, failure = run_one(seed, Path(tmp), args.bounds)
            outcomes[outcome] += 1
            if failure:
                failures += 1
                print(f"seed {seed} ({name}):\n{failure.rstrip()}\n", flush=True)
            elif outcome == "unchecked" and args.show_unchecked:
                print(f"seed {seed} ({name}): imported, but onnxruntime cannot run it", flush=True)
    print(f"{args.runs} runs, {failures} failures; " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
