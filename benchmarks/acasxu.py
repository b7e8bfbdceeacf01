"""ACAS Xu (VNN-COMP) with the complete pipeline: the auto portfolio, or one backend (e.g. Z3 only).

    python benchmarks/acasxu.py FOLDER [--backend auto|z3|bab] [--cap S] [--only REGEX] [--out results.jsonl]
                                [--arithmetic float32|real]

FOLDER holds ``instances.csv`` (onnx, vnnlib, timeout) and ``ground_truth.csv``
(e.g. the VNN-COMP ``acasxu`` folder, or ``tests/data/vnncomp/acasxu``). Each
instance runs in this process on one thread with ``min(timeout, cap)`` seconds;
answers are checked against the ground truth (a ``sat`` must carry a
counterexample that ``hdsl.bench`` re-validates with onnxruntime). One JSON line
per instance goes to ``--out`` as it finishes; a markdown summary is printed at
the end (solved, wrong, time, deciding stage). ``--arithmetic real`` asks the
competition's question (the real-valued network, as the peer tools decide it);
the default also proves every float32 execution (``hdsl.ir.CheckOptions``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--cap", type=float, default=None, help="cap on each instance's timeout (seconds)")
    ap.add_argument("--only", default=None, help="regex on instance ids")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--arithmetic", default="float32", choices=("float32", "real"),
                    help="real: prove the real-valued network only, as the peer tools do")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from hdsl.bench import read_instances, read_truth, solve_instance

    folder = Path(args.folder)
    instances = read_instances(folder)
    truth = read_truth(folder / "ground_truth.csv") if (folder / "ground_truth.csv").exists() else {}
    if args.only:
        instances = [i for i in instances if re.search(args.only, i.id)]
    if args.limit:
        instances = instances[: args.limit]
    out = open(args.out, "a") if args.out else None
    rows = []
    for inst in instances:
        timeout = inst.timeout if args.cap is None else min(inst.timeout, args.cap)
        t0 = time.monotonic()
        o = solve_instance(inst.onnx, inst.vnnlib, timeout, backend=args.backend, instance=inst.id,
                           arithmetic=args.arithmetic)
        dt = time.monotonic() - t0
        exp = truth.get(inst.id, "unknown")
        wrong = o.verdict in ("sat", "unsat") and exp in ("sat", "unsat") and o.verdict != exp
        row = dict(instance=inst.id, expected=exp, verdict=o.verdict, time_s=round(dt, 3), timeout_s=timeout,
                   stage=o.stage, backend=o.backend, arithmetic=args.arithmetic, wrong=wrong, message=o.message[:300])
        rows.append(row)
        print(json.dumps(row), flush=True)
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()
    print(summary(rows, args.backend + ("" if args.arithmetic == "float32" else f", arithmetic {args.arithmetic}")))
    return 1 if any(r["wrong"] for r in rows) else 0


def summary(rows: list[dict], backend: str) -> str:
    solved = [r for r in rows if r["verdict"] in ("sat", "unsat") and not r["wrong"]]
    times = [r["time_s"] for r in solved]
    stages = Counter(r["stage"] or "?" for r in solved)
    lines = [
        "| backend | instances | solved | sat | unsat | wrong | timeout/unknown | total s (solved) | median s (solved) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {backend} | {len(rows)} | {len(solved)} | {sum(r['verdict'] == 'sat' for r in solved)} | "
        f"{sum(r['verdict'] == 'unsat' for r in solved)} | {sum(r['wrong'] for r in rows)} | "
        f"{len(rows) - len(solved) - sum(r['wrong'] for r in rows)} | {sum(times):.1f} | "
        f"{statistics.median(times) if times else float('nan'):.2f} |",
        "",
        "deciding stage: " + ", ".join(f"{k} {v}" for k, v in sorted(stages.items())),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
