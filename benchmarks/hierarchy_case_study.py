"""Case study: hierarchical robustness of the small CIFAR-10 network, per level × eps, per method.

Runs the level driver (``hdsl.hierarchy_check``) on the shipped network and test
images with four method ladders, all behind the same concrete check and PGD
attack (so falsification is shared and every counterexample is replayed):

* ``naive``  -- CROWN lower bounds of all class-pair differences, one witness per outside class;
* ``lambda`` -- naive, then the λ (convex combination) bound for the open outside classes;
* ``split``  -- naive + λ, then branch and bound (``hdsl.bab``, ReLU splitting, no Z3);
* ``exact``  -- Z3 alone (``hdsl.backends.z3``), with the same per-level timeout.

Writes an ``hdsl-hierarchy-results/1`` JSON document (the main run is the
``split`` ladder, plus certified radii by bisection for the first images), a
PNG of the verified fraction vs eps, and prints the tables and a markdown
version for benchmarks/README.md.

    python benchmarks/hierarchy_case_study.py --n 20 --eps 1,2,4 --complete-n 5 --timeout 5
    python benchmarks/hierarchy_case_study.py --full --out full.json --plot full.png   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LADDERS = {
    "naive": ("pairs",),
    "lambda": ("pairs", "lambda"),
    "split": ("pairs", "lambda", "split"),
    "exact": ("exact",),
}


#: The full setting: every shipped test image, four radii, splitting and Z3 on all of them with
#: 30 s a level, certified radii for ten images: hours on one CPU thread, where the default setting
#: takes minutes. It is meant for a GPU: the level bounds and branch and bound run on
#: ``hdsl.bounds.default_device()`` (``$HDSL_DEVICE``, else CUDA when available).
FULL = {"n": 50, "eps": "0.5,1,2,4", "complete_n": 50, "timeout": 30.0, "radius_n": 10,
        "ladders": "naive,lambda,split,exact"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="images (CIFAR-10 test 0..n-1, at most 50)")
    ap.add_argument("--eps", default="1,2,4", help="radii in units of 1/255, comma separated")
    ap.add_argument("--complete-n", type=int, default=5, help="images on which split and exact also run")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per level for split / exact")
    ap.add_argument("--radius-n", type=int, default=5, help="images for the certified radius bisection")
    ap.add_argument("--ladders", default="naive,lambda,split,exact", help="which method ladders to run")
    ap.add_argument("--watchdog", type=float, default=0, help="dump stacks and exit after this many seconds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: timings are CPU-bound, comparable)")
    ap.add_argument("--hierarchy", default=str(REPO / "hierarchies/cifar10_3level.hier.json"))
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/hierarchy_case_study.json"))
    ap.add_argument("--plot", default=str(REPO / "benchmarks/results/hierarchy_case_study.png"))
    ap.add_argument("--full", action="store_true",
                    help="the full setting (hours on a CPU): " + ", ".join(f"--{k.replace('_', '-')} {v}"
                                                                          for k, v in FULL.items()))
    args = ap.parse_args(argv)
    if args.full:
        for k, v in FULL.items():
            setattr(args, k, v)
    if args.watchdog:  # print every thread's stack if a run hangs (a backend not keeping its deadline)
        import faulthandler

        faulthandler.dump_traceback_later(args.watchdog, exit=True)

    import torch
    from rich.console import Console

    from hdsl.hierarchy import load_hierarchy
    from hdsl.hierarchy_check import HierarchyChecker
    from hdsl.ir import Network
    from hdsl.report.hierarchy import build_document, markdown_tables, print_report, summary_from_json, write_json, \
        write_plot
    from hdsl.results import Verdict

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    console = Console()
    h = load_hierarchy(args.hierarchy)
    net = Network("cifar10_small", str(REPO / "models/cifar10_small.onnx"), (32, 32, 3), (0.0, 1.0),
                  classes=h.classes, num_outputs=10)
    data = np.load(REPO / "data/cifar10_test.npz")
    xs, ys = data["x"][: args.n], data["y"][: args.n]
    eps_list = [float(e) / 255 for e in args.eps.split(",")]
    checker = HierarchyChecker(net, h, split_timeout=args.timeout)
    graph = checker.graph
    chosen = [m for m in args.ladders.split(",") if m in LADDERS]
    checkers = {m: HierarchyChecker(net, h, methods=LADDERS[m], split_timeout=args.timeout, graph=graph)
                for m in chosen}
    counts: dict = {m: defaultdict(lambda: defaultdict(lambda: {"proved": 0, "falsified": 0, "unknown": 0,
                                                                 "n": 0, "time_s": 0.0}))
                    for m in chosen}
    main_points = []
    replayed = 0
    from hdsl.bounds import default_device

    device = default_device()
    # CPU seconds on the CPU (the machine may be shared); wall seconds on a GPU, whose work the
    # process's CPU time does not count
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    t_all, cpu_all = time.perf_counter(), time.process_time()
    for eps in eps_list:
        for i, (x, y) in enumerate(zip(xs, ys)):
            for m, c in checkers.items():
                if m in ("split", "exact") and i >= args.complete_n:
                    continue
                t = clock()
                r = c.check_point(x, int(y), eps, index=i)
                dt = clock() - t
                for lv in r.levels[1:]:
                    cell = counts[m][str(eps)][str(lv.level)]
                    v = lv.verdict.value if lv.verdict in (Verdict.PROVED, Verdict.FALSIFIED) else "unknown"
                    cell[v] += 1
                    cell["n"] += 1
                    cell["time_s"] += dt / max(1, len(r.levels) - 1)
                    if lv.counterexample is not None:
                        assert lv.counterexample.replayed_with == "onnxruntime" and lv.counterexample.margin <= 0
                        replayed += 1
                if m == main_ladder(chosen, i < args.complete_n):
                    main_points.append(r)
            console.print(f"eps {eps * 255:g}/255 image {i}: "
                          + " ".join(f"{lv.level}:{lv.verdict.value[0]}" for lv in main_points[-1].levels[1:]),
                          highlight=False)
    radii = []
    for i in range(min(args.radius_n, len(xs))):
        for level in range(1, h.depth() + 1):
            radii.append(checkers[main_ladder(chosen, False)].certified_radius(xs[i], int(ys[i]), level, eps_max=16 / 255,
                                                             tol=0.05 / 255, max_steps=12, index=i))
    methods = {m: {e: dict(per) for e, per in counts[m].items()} for m in chosen}
    doc = build_document(main_points, radii, network=net.path, hierarchy=h, methods=methods,
                         extra={"settings": vars(args), "replayed_counterexamples": replayed,
                                "wall_s": round(time.perf_counter() - t_all, 1),
                                "cpu_s": round(time.process_time() - cpu_all, 1),
                                "torch_threads": torch.get_num_threads(), "device": str(device),
                                "cell_times": "cpu" if device.type == "cpu" else "wall"})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(json.loads(json.dumps(doc, default=str).replace("Infinity", '"inf"')), args.out)
    s = summary_from_json(json.loads(Path(args.out).read_text()))
    print_report(s, console)
    write_plot(s, args.plot)
    console.print(f"{replayed} counterexamples, every one replayed with onnxruntime; "
                  f"wall {doc['wall_s']} s, CPU {doc['cpu_s']} s; bounds on {device}")
    print(markdown_tables(s))
    return 0


def main_ladder(chosen: list[str], complete: bool) -> str:
    """The strongest ladder that ran on this image (exact alone is not a ladder of the others)."""
    order = ["split", "lambda", "naive"] if complete else ["lambda", "naive"]
    return next((m for m in order if m in chosen), chosen[0])


if __name__ == "__main__":
    raise SystemExit(main())
