"""Wall time of `hdsl check` with 1 and 2 worker processes and local Ray (issue 9).

Runs the same spec three ways with the result store disabled, checks that the
verdicts are identical, and prints a markdown table. Usage:

    python benchmarks/parallel_runs.py [SPEC] [--ray]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(spec: str, extra: list[str]) -> tuple[float, list]:
    cmd = [sys.executable, "-m", "hdsl", "check", spec, "--json", "--store", "none", *extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode not in (0, 1, 2):
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    doc = json.loads(out.stdout)
    verdicts = sorted((i["query"] if "query" in i else i.get("item"), i.get("verdict") or i.get("status"))
                      for p in doc["properties"] for i in p["items"])
    return wall, verdicts


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    spec = args[0] if args else "specs/cifar10_hierarchy.hspec"
    modes = [("1 worker", ["--workers", "1"]), ("2 workers", ["--workers", "2"])]
    if "--ray" in sys.argv:
        modes.append(("Ray (local)", ["--ray", "local"]))
    rows, reference = [], None
    for name, extra in modes:
        wall, verdicts = run(spec, extra)
        reference = reference or verdicts
        rows.append((name, wall, len(verdicts), verdicts == reference))
    print(f"spec: {spec}; load average before: {os.getloadavg()[0]:.1f}; cores: {os.cpu_count()}\n")
    print("| execution | wall s | items | same verdicts as 1 worker |")
    print("| --- | ---: | ---: | --- |")
    for name, wall, n, same in rows:
        print(f"| {name} | {wall:.1f} | {n} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
