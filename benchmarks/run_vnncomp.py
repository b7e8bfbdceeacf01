#!/usr/bin/env python3
"""Run VNN-COMP benchmark folders with hdsl and compare with the published tools, by hand.

Two steps, so long runs can go in the background and be tabulated later:

    # 1. run (writes the JSON after every instance, so a killed run keeps what it did)
    python benchmarks/run_vnncomp.py run ../shared/benchmarks/acasxu --filter 'prop_[1-4]$' \
        --timeout-scale 0.1 --json /tmp/hdsl_acasxu.json

    # 2. tabulate one or more runs against the folders' vnncomp_tool_results.csv (markdown on stdout)
    python benchmarks/run_vnncomp.py table /tmp/hdsl_acasxu.json /tmp/hdsl_mnist_fc.json

The comparison uses exactly the instances hdsl ran: the published tools' counts
are recomputed on that subset from ``vnncomp_tool_results.csv`` (a result counts
as correct when it agrees with ``ground_truth.csv``). Published times are the
organisers' wall-clock times on their hardware, start-up included.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.is_available()
    except ImportError:
        pass
    return info


def run(args) -> int:
    from hdsl.bench import BenchReport, read_truth, run_benchmark, summary_lines
    from hdsl.diagnostics import HdslError

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    folder = Path(args.folder)
    truth_path = folder / "ground_truth.csv"
    truth = read_truth(truth_path) if truth_path.exists() else None
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    out = Path(args.json)

    def dump(report: BenchReport | None, done: bool) -> None:
        data = report.to_json() if report is not None else {}
        data.setdefault("settings", {}).update(
            folder=str(folder.resolve()), filter=args.filter, limit=args.limit, timeout_scale=args.timeout_scale,
            timeout=args.timeout, backend=args.backend, started=started, finished=done, machine=machine())
        out.write_text(json.dumps(data, indent=1))

    partial = BenchReport(str(folder))

    def progress(k: int, n: int, row) -> None:
        partial.rows.append(row)
        o = row.outcome
        flag = "  <-- WRONG ANSWER" if row.wrong else ""
        print(f"[{k}/{n}] {o.instance}: {o.verdict} {o.time_s:.2f}s [{o.stage}] expected {row.expected}{flag}",
              flush=True)
        dump(partial, False)

    try:
        report = run_benchmark(folder, truth=truth, pattern=args.filter, limit=args.limit,
                               timeout_scale=args.timeout_scale, timeout=args.timeout, backend=args.backend,
                               progress=progress)
    except HdslError as err:
        for d in err.diagnostics:
            print(d.render(), file=sys.stderr)
        return 3
    dump(report, True)
    for line in summary_lines(report):
        print(line)
    return 1 if report.wrong else 0


def _published(folder: Path, ids: set[str], truth: dict[str, str]) -> list[dict]:
    """Per (year, tool): correct sat/unsat, wrong, and times on the instances in ``ids``."""
    path = folder / "vnncomp_tool_results.csv"
    if not path.exists():
        return []
    acc: dict[tuple[str, str], dict] = defaultdict(lambda: {"sat": 0, "unsat": 0, "wrong": 0, "times": []})
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["instance"] not in ids:
                continue
            a = acc[(row["year"], row["tool"])]
            res, exp = row["result"], truth.get(row["instance"], "unknown")
            if res in ("sat", "unsat"):
                if exp in ("sat", "unsat") and res != exp:
                    a["wrong"] += 1
                elif res == exp:
                    a[res] += 1
                    try:
                        a["times"].append(float(row["runtime_s"]))
                    except ValueError:
                        pass
    out = []
    for (year, tool), a in acc.items():
        t = a["times"]
        out.append({"year": year, "tool": tool, "sat": a["sat"], "unsat": a["unsat"], "solved": a["sat"] + a["unsat"],
                     "wrong": a["wrong"], "median_s": statistics.median(t) if t else None, "total_s": sum(t)})
    out.sort(key=lambda r: (-r["solved"], r["wrong"], r["median_s"] or 0.0))
    return out


def table(args) -> int:
    from hdsl.bench import read_truth

    print("| benchmark (instances run) | timeout per instance | hdsl solved (sat / unsat) | wrong | unknown / timeout / error "
          "| hdsl median s (solved) | hdsl total s | solved by stage | best published on the same instances (solved, median s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.results:
        data = json.loads(Path(name).read_text())
        st = data["settings"]
        folder = Path(st["folder"])
        truth = read_truth(folder / "ground_truth.csv")
        rows = data["instances"]
        ids = {r["instance"] for r in rows}
        exp = defaultdict(int)
        for r in rows:
            exp[r["expected"]] += 1
        s = data["summary"]
        timeouts = sorted({r["timeout_s"] for r in rows if r.get("timeout_s") is not None})
        tdesc = (f"{timeouts[0]:g} s" if len(timeouts) == 1 else f"{timeouts[0]:g}-{timeouts[-1]:g} s") if timeouts else "-"
        if st.get("timeout_scale") not in (None, 1.0) and st.get("timeout") is None:
            tdesc += f" (VNN-COMP x {st['timeout_scale']:g})"
        pub = _published(folder, ids, truth)[: args.top]
        pub_txt = "; ".join(
            f"{p['tool']} {p['year']}: {p['solved']} ({p['sat']}/{p['unsat']}), {p['median_s']:.1f}"
            + (f", {p['wrong']} wrong" if p["wrong"] else "") for p in pub if p["median_s"] is not None)
        stages = ", ".join(f"{k} {v}" for k, v in s["by_stage"].items()) or "-"
        label = f"{folder.name} ({len(rows)}: {exp['sat']} sat / {exp['unsat']} unsat / {exp['unknown']} unknown)"
        med = "-" if s["solved_median_s"] is None else f"{s['solved_median_s']:.2f}"
        finished = "" if st.get("finished", True) else " (partial run)"
        print(f"| {label}{finished} | {tdesc} | {s['solved']} ({s['sat']} / {s['unsat']}) | {s['wrong']} "
              f"| {s['unknown']} / {s['timeout']} / {s['error']} | {med} | {s['time_s']:.1f} | {stages} | {pub_txt} |")
    if args.machine:
        data = json.loads(Path(args.results[0]).read_text())
        print()
        print("Machine: " + ", ".join(f"{k} {v}" for k, v in data["settings"].get("machine", {}).items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a benchmark folder and write JSON results")
    r.add_argument("folder")
    r.add_argument("--json", required=True, help="where to write the results (rewritten after every instance)")
    r.add_argument("--filter", default=None, help="regular expression on instance ids")
    r.add_argument("--limit", type=int, default=None)
    r.add_argument("--timeout-scale", type=float, default=1.0)
    r.add_argument("--timeout", type=float, default=None, help="one timeout (s) for every instance")
    r.add_argument("--backend", default="auto")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    r.set_defaults(fn=run)
    t = sub.add_parser("table", help="markdown table of runs vs the published VNN-COMP results")
    t.add_argument("results", nargs="+", help="JSON files written by 'run'")
    t.add_argument("--top", type=int, default=3, help="how many published tools to list")
    t.add_argument("--machine", action="store_true", help="also print the machine of the first run")
    t.set_defaults(fn=table)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
