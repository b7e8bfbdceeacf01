"""Speed of the bound propagator and of the bounds backend (run by hand; prints markdown).

1. Bound time per network: IBP, CROWN and alpha-CROWN (20 iterations) on one
   L-inf box with the 9-row (or 4-row) argmax-robustness spec, median of
   ``--repeats`` runs after one warm-up.
2. Batch throughput: ``--images`` CIFAR-10 images on ``models/cifar10_small.onnx``
   (marabou_cifar10's small net, NHWC input in [0, 1]), every ``--eps``:
   (a) CROWN bounds for all boxes in one batch (boxes/s);
   (b) the full bounds backend (concrete check, PGD, IBP, CROWN, alpha; no
       branch and bound) through ``hdsl.planner.solve_queries`` (queries/s,
       with the verdict counts).

    python benchmarks/bounds_speed.py                       # shipped 50 images
    python benchmarks/bounds_speed.py --data ../shared/benchmarks/test_images/cifar10_test_100.csv
    python benchmarks/bounds_speed.py --device cuda --threads 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hdsl import ir  # noqa: E402
from hdsl.bounds import bound_state, spec_bounds  # noqa: E402
from hdsl.bounds.spec import BatchSpec, proved, spec_rows  # noqa: E402
from hdsl.nn import load_onnx  # noqa: E402
from hdsl.nn.build import random_convnet, save  # noqa: E402


def argmax_spec(y: int, n: int) -> ir.OutputSpec:
    return ir.OutputSpec(tuple(ir.Conjunction((ir.Constraint(ir.LinearExpr(((k, 1.0), (y, -1.0)))),))
                               for k in range(n) if k != y))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def per_network(device: str, repeats: int, tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    conv_path = save(random_convnet(rng, in_shape=(3, 32, 32), channels=(16, 32), hidden=100, classes=10,
                                    kernel=4, stride=2, pad=1), tmp / "cifar_sized_convnet.onnx")
    nets = [
        ("ACAS Xu 1_1 (5-50x6-5)", ROOT / "models" / "acasxu_1_1.onnx", 0.02),
        ("MNIST 256x2", ROOT / "models" / "mnist_256x2.onnx", 0.02),
        ("marabou cifar10_small", ROOT / "models" / "cifar10_small.onnx", 2 / 255),
        ("generated convnet 3x32x32 (16,32 ch; 100)", Path(conv_path), 2 / 255),
    ]
    rows = ["| network | ReLUs | IBP (ms) | CROWN (ms) | alpha-CROWN, 20 it. (ms) | certified margin IBP / CROWN / alpha |",
            "| --- | ---: | ---: | ---: | ---: | --- |"]
    for label, path, eps in nets:
        if not path.exists():
            continue
        g = load_onnx(path)
        relus = sum(n.numel for n in g.nodes if n.op == "relu")
        x0 = torch.as_tensor(rng.uniform(0.2, 0.8, size=(1, *g.input_shape)))
        y = int(g(x0.float()).argmax())
        rows_spec = spec_rows(argmax_spec(y, g.output_size), g.output_size)
        bs = BatchSpec.stack([rows_spec], device)
        lo, hi = x0 - eps, x0 + eps
        margins, times = [], []
        for method in ("ibp", "crown", "alpha"):
            def run():
                st = bound_state(g, lo, hi, method, device)
                return spec_bounds(st, bs.R, bs.d, method, alpha_iters=20)
            times.append(timed(run, repeats) * 1e3)
            lb = run()
            margins.append(float(lb.min()))
        rows.append(f"| {label} | {relus} | {times[0]:.1f} | {times[1]:.1f} | {times[2]:.1f} | "
                    f"{margins[0]:.3g} / {margins[1]:.3g} / {margins[2]:.3g} |")
    return rows


def load_images(data: Path | None, n: int):
    if data is None:
        data = ROOT / "data" / "cifar10_test.npz"
    if data.suffix == ".csv":
        ds = ir.Dataset("cifar", str(data), "csv", tuple(range(n)),
                        (("label_column", "0"), ("scale", str(1 / 255)), ("shape", "32,32,3")))
    else:
        ds = ir.Dataset("cifar", str(data), "npz", None)
    from hdsl.data import load_dataset

    loaded = load_dataset(ds)
    k = min(n, len(loaded))
    return ir.Dataset(ds.name, ds.path, ds.format, tuple(range(k)), ds.options), loaded, k


def throughput(device: str, data: Path | None, n: int, eps_list: list[float]) -> list[str]:
    from hdsl.backends import Budget
    from hdsl.planner import solve_queries

    ds, loaded, k = load_images(data, n)
    model = ROOT / "models" / "cifar10_small.onnx"
    g = load_onnx(model)
    x = torch.as_tensor(np.array(loaded.x[:k], dtype=np.float64))
    labels = loaded.y[:k]
    pred = g(x.float()).argmax(1).numpy()
    correct = int((pred == labels).sum())
    net = ir.Network("cifar10_small", str(model), (32, 32, 3), (0.0, 1.0), num_outputs=10)
    out = [f"{k} images, {correct} classified correctly; device {device}, torch threads {torch.get_num_threads()}", "",
           "| eps | CROWN bounds, one batch (boxes/s) | verified by CROWN | full backend (queries/s) | verdicts |",
           "| --- | ---: | ---: | ---: | --- |"]
    for eps in eps_list:
        lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
        bs = BatchSpec.stack([spec_rows(argmax_spec(int(l), 10), 10) for l in labels], device)
        t = time.perf_counter()
        st = bound_state(g, lo, hi, "crown", device)
        lb = spec_bounds(st, bs.R, bs.d, "crown")
        t_bounds = time.perf_counter() - t
        n_ok = int(proved(lb, bs).sum())
        qs = [ir.Query(f"img{i}", net, ir.LinfBall(ir.DataPoint(ds, i), eps, (0.0, 1.0)), argmax_spec(int(labels[i]), 10),
                       "robust", ir.CheckOptions(60.0, "bounds")) for i in range(k)]
        t = time.perf_counter()
        rs = solve_queries(qs, Budget.seconds(60.0 * k))
        t_full = time.perf_counter() - t
        counts = Counter(f"{r.verdict.value}/{r.stage}" for r in rs)
        eps_s = str(Fraction(eps).limit_denominator(1000))
        out.append(f"| {eps_s} | {k / t_bounds:.2f} | {n_ok}/{k} | {k / t_full:.2f} | "
                   + ", ".join(f"{v} {c}" for v, c in sorted(counts.items())) + " |")
        print(out[-1], file=sys.stderr, flush=True)  # progress
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    ap.add_argument("--skip-networks", action="store_true", help="only the batch throughput part")
    ap.add_argument("--data", type=Path, default=None, help="CIFAR-10 npz (x, y) or CSV (label, 3072 HWC pixels 0-255)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--eps", type=str, nargs="*", default=["1/255", "2/255", "8/255"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import tempfile

    if not args.skip_networks:
        with tempfile.TemporaryDirectory() as tmp:
            print("\n".join(per_network(args.device, args.repeats, Path(tmp))), flush=True)
        print()
    eps = [float(Fraction(e)) for e in args.eps]
    print("\n".join(throughput(args.device, args.data, args.images, eps)))


if __name__ == "__main__":
    main()
