"""Exhaustive interchange pairs per second on CPU: hdsl vs pyvene on the same task.

Task: the modular hierarchical-equality network (hdsl.causal.tasks, 1,296 inputs),
alignment WX -> h[0:8]. hdsl runs all 1,679,616 (base, source) pairs, once with
every pair through the network and once with deduplication of equivalent tuples; pyvene
(if importable) runs the first ``--pyvene-pairs`` pairs of the same ordering,
and the two sets of counterfactual predictions are compared on those pairs.

    python benchmarks/causal_pairs.py [--pyvene-pairs 100000] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyvene-pairs", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from hdsl.causal import pyvene_compat, tasks
    from hdsl.causal.alignment import Alignment, Site, encode_inputs
    from hdsl.causal.iia import measure_iia
    from hdsl.causal.intervene import Interchanger, readout
    from hdsl.nn import load_onnx

    task = tasks.heq_task()
    with tempfile.TemporaryDirectory() as d:
        graph = load_onnx(tasks.to_onnx(tasks.train(task, seed=0), Path(d) / "heq.onnx"))
    m = task.model
    al = Alignment("right", m.name, "net", (("WX", Site("h", 0, 8)),))
    measure_iia(graph, m, al, [("WX",)], samples=10_000)  # warm-up
    t0 = time.perf_counter()
    counts = measure_iia(graph, m, al, [("WX",)], dedup=False)
    ours_s = time.perf_counter() - t0
    ours_rate = counts.pairs / ours_s
    print(f"hdsl   : {counts.pairs:,} exhaustive pairs in {ours_s:.2f} s = {ours_rate:,.0f} pairs/s "
          f"(every pair through the network; threads={args.threads}); {counts.summary()}")
    t0 = time.perf_counter()
    dd = measure_iia(graph, m, al, [("WX",)], dedup=True)
    dd_s = time.perf_counter() - t0
    assert (dd.hits, dd.effective, dd.effective_hits) == (counts.hits, counts.effective, counts.effective_hits)
    print(f"hdsl dd: {dd.pairs:,} exhaustive pairs in {dd_s:.2f} s = {dd.pairs / dd_s:,.0f} pairs/s "
          f"(bit-identical tuples evaluated once; same counts)")
    if not pyvene_compat.available():
        print("pyvene: not installed (pip install 'hdsl[causal-compare]'); no ratio")
        return
    x = torch.from_numpy(encode_inputs(m, al, m.enumerate_inputs()))
    k = torch.arange(args.pyvene_pairs)
    b, s = k // len(x), k % len(x)
    pyvene_compat.interchange(graph, "h", [[0, 8], [8, 16]], 0, x[b[:1000]], x[s[:1000]])  # warm-up
    t0 = time.perf_counter()
    theirs = pyvene_compat.interchange(graph, "h", [[0, 8], [8, 16]], 0, x[b], x[s])
    pv_s = time.perf_counter() - t0
    pv_rate = len(k) / pv_s
    ic = Interchanger(graph, al, x)
    with torch.no_grad():
        ours = ic.run(b, {"WX": s})
    agree = (readout(ours) == readout(theirs)).float().mean().item()
    print(f"pyvene : {len(k):,} pairs in {pv_s:.2f} s = {pv_rate:,.0f} pairs/s; "
          f"argmax agreement {agree:.6f}, max |dlogit| {(ours - theirs).abs().max().item():.2e}")
    print(f"ratio  : hdsl / pyvene = {ours_rate / pv_rate:.1f}x (every pair); "
          f"{dd.pairs / dd_s / pv_rate:.0f}x with class deduplication")


if __name__ == "__main__":
    main()
