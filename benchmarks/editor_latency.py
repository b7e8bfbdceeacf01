"""Language-server latency: what one keystroke, hover or completion costs on real and large specs.

    python benchmarks/editor_latency.py [--lines 10000] [--repeat 3]

For every spec in ``specs/`` and for a generated spec of ``--lines`` lines
(``benchmarks/parse_speed.py``'s generator), times the pure functions behind
the server's handlers, best of ``--repeat``: ``analyse`` (parse + check, what a
change or an open costs), ``analyse`` of the same text with a syntax error in
the middle (the tolerant path: opened broken, which also checks the statements
that parse, or edited from a good version, which reuses its facts), completion at the end of
the file, hover and go to definition on the last property's name, and
formatting. The first analysis of a session also imports torch and onnx for
the checker (reported separately).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(path: Path, text: str, repeat: int) -> dict[str, float]:
    from hdsl.lsp.analysis import analyse
    from hdsl.lsp.features import complete_at, definition_at, format_edits, hover_at

    uri = path.resolve().as_uri()
    a = analyse(uri, text)
    lines = text.split("\n")
    last_line = len(lines) - 1
    prop_line = max(i for i, ln in enumerate(lines) if ln.startswith("property "))
    col = len("property ") + 1
    middle = text.index("\nproperty ", len(text) // 2) + 1
    broken = text[:middle] + "property = \n" + text[middle:]
    return {
        "analyse": best(lambda: analyse(uri, text), repeat),
        "analyse (syntax error, first)": best(lambda: analyse(uri, broken), repeat),
        "analyse (syntax error, edit)": best(lambda: analyse(uri, broken, previous=a), repeat),
        "completion": best(lambda: complete_at(a, last_line, len(lines[-1])), repeat),
        "hover": best(lambda: hover_at(a, prop_line, col), repeat),
        "definition": best(lambda: definition_at(a, prop_line, col), repeat),
        "format": best(lambda: format_edits(text, str(path)), repeat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from hdsl.lsp.analysis import analyse

    first = ROOT / "specs" / "cifar10_hierarchy.hspec"
    t = time.perf_counter()
    analyse(first.resolve().as_uri(), first.read_text(encoding="utf-8"))
    print(f"first analysis of the session (imports torch, onnx): {time.perf_counter() - t:.2f} s")
    cases = [(p, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "specs").glob("*.hspec"))]
    from parse_speed import generate

    tmp = Path(tempfile.mkdtemp()) / "generated.hspec"
    big = generate(args.lines)
    tmp.write_text(big, encoding="utf-8")
    cases.append((tmp, big))
    names = None
    for path, text in cases:
        row = measure(path, text, args.repeat)
        if names is None:
            names = list(row)
            print("| spec | lines | " + " | ".join(names) + " |")
            print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
        cells = [f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s" for v in row.values()]
        print(f"| {path.name} | {text.count(chr(10))} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
