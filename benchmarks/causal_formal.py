"""Formal interchange checks: share of pair regions proved, and time, by radius and method.

Network: models/causal_heq.onnx (modular hierarchical equality); alignments
WX -> h[0:8] (right) and WX -> h[8:16] (wrong); uniformly sampled (base, source)
pairs; each causal input's one-hot code moves in an L-infinity ball of radius eps.

    python benchmarks/causal_formal.py [--pairs 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from hdsl.causal import formal, tasks
    from hdsl.causal.alignment import Alignment, Site
    from hdsl.nn import load_onnx

    graph = load_onnx(ROOT / "models" / "causal_heq.onnx")
    m = tasks.heq_model()
    aligns = {"right": Alignment("right", "heq", "net", (("WX", Site("h", 0, 8)),)),
              "wrong": Alignment("wrong", "heq", "net", (("WX", Site("h", 8, 16)),))}
    print("| alignment | method | eps | proved | centres right | time (s) | regions/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, al in aligns.items():
        for method in ("ibp", "crown"):
            for eps in (0.0, 0.01, 0.03, 0.1):
                t0 = time.perf_counter()
                r = formal.certify(graph, m, al, [("WX",)], eps, samples=args.pairs, seed=0, method=method)
                dt = time.perf_counter() - t0
                print(f"| {name} | {method} | {eps:g} | {r.proved}/{r.pairs} ({r.share:.3f}) | "
                      f"{r.center_correct}/{r.pairs} | {dt:.2f} | {r.pairs / dt:,.0f} |")


if __name__ == "__main__":
    main()
