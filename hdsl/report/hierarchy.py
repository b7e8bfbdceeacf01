"""Reports for hierarchical robustness: tree, levels × eps table, granularity, radii, severity, plots.

Everything works from one JSON document (``hdsl-hierarchy-results/1``) so a run
can be re-reported later (``hdsl hierarchy report RESULTS.json --plot out.png``)::

    {"format": "hdsl-hierarchy-results/1", "network": ..., "hierarchy": ...,
     "eps": [...], "depth": D, "level_names": {"1": "vehicle/animal", ...},
     "points": [PointResult.to_json(), ...], "radii": [RadiusResult.to_json(), ...],
     "methods": {method: {eps: {level: {"proved": n, "falsified": n, "unknown": n, "time_s": t}}}}}
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

FORMAT = "hdsl-hierarchy-results/1"
VERDICTS = ("proved", "falsified", "unknown", "timeout", "error")


# --------------------------------------------------------------------------- the tree


def hierarchy_tree(h):
    """A rich ``Tree`` of a hierarchy: groups with their level, leaves with their output index."""
    from rich.tree import Tree

    index = {c: i for i, c in enumerate(h.classes)}

    def label(node, depth):
        if isinstance(node, str):
            return f"[green]{node}[/] [dim]#{index.get(node, '?')} (level {depth})[/]"
        return f"[bold]{node.name}[/] [dim]level {depth}, {len(h.leaves(node))} classes[/]"

    def add(tree, node, depth):
        branch = tree.add(label(node, depth))
        if not isinstance(node, str):
            for c in node.children:
                add(branch, c, depth + 1)

    root = Tree(f"[bold]{h.name}[/]: " + label(h.root, 0))
    for c in h.root.children:
        add(root, c, 1)
    return root


# --------------------------------------------------------------------------- the summary


@dataclass
class Summary:
    """The results document plus derived tables."""

    doc: dict

    @property
    def eps(self) -> list[float]:
        return sorted({float(p["eps"]) for p in self.doc["points"]})

    @property
    def depth(self) -> int:
        return int(self.doc.get("depth") or max((len(p["levels"]) - 1 for p in self.doc["points"]), default=0))

    def level_verdict(self, point: dict, level: int) -> dict:
        """The point's verdict at ``level`` (its leaf's when the leaf is shallower)."""
        levels = point["levels"]
        return levels[min(level, len(levels) - 1)]

    def table(self) -> dict[tuple[int, float], dict]:
        """(level, eps) -> counts of each verdict, n, mean and total time."""
        out: dict[tuple[int, float], dict] = {}
        for p in self.doc["points"]:
            for level in range(1, self.depth + 1):
                lv = self.level_verdict(p, level)
                cell = out.setdefault((level, float(p["eps"])), {v: 0 for v in VERDICTS} | {"n": 0, "time_s": 0.0,
                                                                                          "propagated": 0})
                cell[lv["verdict"]] += 1
                cell["n"] += 1
                cell["time_s"] += float(lv.get("time_s", 0.0))
                if lv.get("propagated_from") is not None:
                    cell["propagated"] += 1
        return out

    def granularity(self) -> dict[float, Counter]:
        """eps -> histogram of the deepest verified level."""
        out: dict[float, Counter] = defaultdict(Counter)
        for p in self.doc["points"]:
            out[float(p["eps"])][int(p["deepest_verified"])] += 1
        return dict(out)

    def severity(self) -> dict[float, Counter]:
        """eps -> histogram of counterexample severity (LCA depth of true and adversarial class;
        one per falsified point, from its coarsest falsified level)."""
        out: dict[float, Counter] = defaultdict(Counter)
        for p in self.doc["points"]:
            for lv in p["levels"]:
                if lv["verdict"] == "falsified" and lv.get("severity") is not None:
                    out[float(p["eps"])][int(lv["severity"])] += 1
                    break
        return dict(out)

    def radii(self) -> dict[int, list[float]]:
        out: dict[int, list[float]] = defaultdict(list)
        for r in self.doc.get("radii", []):
            c = r["certified"]
            out[int(r["level"])].append(math.inf if c == "inf" else float(c))
        return dict(out)


def summary_from_json(doc: dict) -> Summary:
    if doc.get("format") != FORMAT:
        raise ValueError(f"not an {FORMAT} document (format = {doc.get('format')!r})")
    if not isinstance(doc.get("points"), list):
        raise ValueError("missing 'points'")
    return Summary(doc)


def build_document(points, radii=(), *, network: str = "", hierarchy=None, methods: dict | None = None,
                   extra: dict | None = None) -> dict:
    """The JSON document of a run (``points``: PointResult, ``radii``: RadiusResult)."""
    depth = max((len(p.levels) - 1 for p in points), default=0)
    names: dict[str, list[str]] = defaultdict(list)
    for p in points:
        for lv in p.levels:
            if lv.node not in names[str(lv.level)]:
                names[str(lv.level)].append(lv.node)
    doc = {
        "format": FORMAT,
        "network": network,
        "hierarchy": None if hierarchy is None else {"name": hierarchy.name, "classes": list(hierarchy.classes)},
        "eps": sorted({p.eps for p in points}),
        "depth": depth,
        "level_names": {k: v for k, v in names.items()},
        "points": [p.to_json() for p in points],
        "radii": [r.to_json() for r in radii],
    }
    if methods:
        doc["methods"] = methods
    if extra:
        doc.update(extra)
    return doc


# --------------------------------------------------------------------------- rich output


def _pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.0f}%" if d else "-"


def _eps_label(e: float) -> str:
    k = e * 255
    if e < 0.1 and abs(4 * k - round(4 * k)) < 1e-6:  # image radii are usually written in 1/255 units
        return f"{e:.4g} ({k:g}/255)"
    return f"{e:.4g}"


def levels_table(s: Summary):
    from rich.table import Table

    t = Table(title="hierarchical robustness: levels × eps (proved / falsified / unknown, time)")
    names = {k: [n for n in v if n] for k, v in s.doc.get("level_names", {}).items()}
    show_names = any(names.values())
    t.add_column("level", justify="right")
    if show_names:
        t.add_column("nodes")
    t.add_column("eps")
    for col in ("proved", "falsified", "unknown", "time (s)"):
        t.add_column(col, justify="right")
    cells = s.table()
    for level in range(1, s.depth + 1):
        for e in s.eps:
            c = cells.get((level, e))
            if not c:
                continue
            nm = ", ".join(names.get(str(level), []))
            unk = c["unknown"] + c["timeout"] + c["error"]
            head = [str(level)] + ([nm[:40] + ("…" if len(nm) > 40 else "")] if show_names else [])
            t.add_row(*head, _eps_label(e),
                      f"{_pct(c['proved'], c['n'])} ({c['proved']})", f"{_pct(c['falsified'], c['n'])} ({c['falsified']})",
                      f"{_pct(unk, c['n'])} ({unk})", f"{c['time_s']:.2f}")
    return t


def granularity_table(s: Summary):
    from rich.table import Table

    t = Table(title="granularity: deepest verified level per input")
    t.add_column("eps")
    for level in range(0, s.depth + 1):
        t.add_column(f"level {level}", justify="right")
    t.add_column("mean", justify="right")
    for e, hist in sorted(s.granularity().items()):
        n = sum(hist.values())
        mean = sum(k * v for k, v in hist.items()) / n if n else 0.0
        t.add_row(_eps_label(e), *[str(hist.get(level, 0)) for level in range(0, s.depth + 1)], f"{mean:.2f}")
    return t


def severity_table(s: Summary):
    from rich.table import Table

    t = Table(title="counterexample severity: depth of the common ancestor of true and adversarial class "
                    "(0 = only the root: the worst mistake)")
    t.add_column("eps")
    for d in range(0, s.depth):
        t.add_column(f"LCA depth {d}", justify="right")
    for e, hist in sorted(s.severity().items()):
        t.add_row(_eps_label(e), *[str(hist.get(d, 0)) for d in range(0, s.depth)])
    return t


def radius_table(s: Summary):
    from rich.table import Table

    t = Table(title="certified radius per level (bisection on eps; the radius is proved)")
    t.add_column("level", justify="right")
    for col in ("inputs", "mean", "median", "min", "max", "∞"):
        t.add_column(col, justify="right")
    for level, rs in sorted(s.radii().items()):
        finite = [r for r in rs if math.isfinite(r)]
        inf = len(rs) - len(finite)
        fmt = (lambda v: f"{v:.5f}")
        t.add_row(str(level), str(len(rs)),
                  fmt(statistics.mean(finite)) if finite else "-",
                  fmt(statistics.median(rs)) if rs and not math.isinf(statistics.median(rs)) else ("∞" if rs else "-"),
                  fmt(min(rs)) if rs else "-", ("∞" if inf else fmt(max(rs))) if rs else "-", str(inf))
    return t


def methods_table(s: Summary):
    from rich.table import Table

    methods = s.doc.get("methods") or {}
    t = Table(title="solved per method (proved + falsified of n) per level × eps")
    t.add_column("level", justify="right")
    t.add_column("eps")
    for m in methods:
        t.add_column(m, justify="right")
    keys = sorted({(int(lv), float(e)) for m in methods.values() for e, per in m.items() for lv in per})
    for level, e in keys:
        row = []
        for m in methods.values():
            c = m.get(str(e), m.get(e, {})).get(str(level))
            row.append(f"{c['proved'] + c['falsified']}/{c['n']} ({c['proved']} p)" if c else "-")
        t.add_row(str(level), _eps_label(e), *row)
    return t


def print_report(s: Summary, console) -> None:
    console.print(levels_table(s))
    console.print(granularity_table(s))
    if any(s.severity().values()):
        console.print(severity_table(s))
    if s.radii():
        console.print(radius_table(s))
    if s.doc.get("methods"):
        console.print(methods_table(s))


# --------------------------------------------------------------------------- markdown (benchmarks/README.md)


def markdown_tables(s: Summary) -> str:
    lines = ["| level | eps | proved | falsified | unknown | time (s) |", "|---|---|---|---|---|---|"]
    cells = s.table()
    for level in range(1, s.depth + 1):
        for e in s.eps:
            c = cells.get((level, e))
            if c:
                unk = c["unknown"] + c["timeout"] + c["error"]
                lines.append(f"| {level} | {_eps_label(e)} | {c['proved']}/{c['n']} | {c['falsified']}/{c['n']} | "
                             f"{unk}/{c['n']} | {c['time_s']:.1f} |")
    methods = s.doc.get("methods") or {}
    if methods:
        lines += ["", "| level | eps | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
        keys = sorted({(int(lv), float(e)) for m in methods.values() for e, per in m.items() for lv in per})
        for level, e in keys:
            row = []
            for m in methods.values():
                c = m.get(str(e), {}).get(str(level))
                row.append(f"{c['proved']} p + {c['falsified']} f / {c['n']} ({c['time_s']:.1f} s)" if c else "-")
            lines.append(f"| {level} | {_eps_label(e)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def plot_png(s: Summary) -> bytes:
    """Verified fraction vs eps, one curve per level (the curves are nested)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = s.table()
    names = s.doc.get("level_names", {})
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for level in range(1, s.depth + 1):
        xs, ys = [], []
        for e in s.eps:
            c = cells.get((level, e))
            if c and c["n"]:
                xs.append(e)
                ys.append(c["proved"] / c["n"])
        nm = ", ".join(names.get(str(level), []))
        ax.plot(xs, ys, marker="o", label=f"level {level}" + (f" ({nm[:30]})" if nm else ""))
    ax.set_xlabel("eps (L∞)")
    ax.set_ylabel("verified fraction")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("hierarchical robustness: verified fraction vs eps")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def html_page(s: Summary) -> str:
    png = base64.b64encode(plot_png(s)).decode()
    cells = s.table()
    rows = []
    for level in range(1, s.depth + 1):
        for e in s.eps:
            c = cells.get((level, e))
            if c:
                unk = c["unknown"] + c["timeout"] + c["error"]
                rows.append(f"<tr><td>{level}</td><td>{html.escape(_eps_label(e))}</td><td>{c['proved']}/{c['n']}</td>"
                            f"<td>{c['falsified']}/{c['n']}</td><td>{unk}/{c['n']}</td><td>{c['time_s']:.2f}</td></tr>")
    title = html.escape(f"hdsl hierarchical robustness: {s.doc.get('network', '')}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style>"
            f"</head><body><h1>{title}</h1><img src='data:image/png;base64,{png}' alt='verified fraction vs eps'>"
            "<table><tr><th>level</th><th>eps</th><th>proved</th><th>falsified</th><th>unknown</th><th>time (s)</th></tr>"
            + "".join(rows) + "</table></body></html>")


def write_plot(s: Summary, path: str) -> None:
    p = Path(path)
    if p.suffix.lower() in (".html", ".htm"):
        p.write_text(html_page(s), encoding="utf-8")
    else:
        p.write_bytes(plot_png(s))


def write_json(doc: dict, path: str) -> None:
    Path(path).write_text(json.dumps(doc, indent=1, default=_default), encoding="utf-8")


def _default(o):
    if isinstance(o, float) and math.isinf(o):
        return "inf"
    raise TypeError(type(o))


__all__ = ["Summary", "build_document", "hierarchy_tree", "html_page", "markdown_tables", "plot_png",
           "print_report", "summary_from_json", "write_json", "write_plot"]


# --------------------------------------------------------------------------- after `hdsl check`


def check_document(program, pairs) -> dict | None:
    """The results document of the level queries (``Query.level`` set) of a checked program.

    ``pairs`` are ``(property, result)`` in the order of ``program.checks[*].items``.
    """
    from hdsl import ir

    items = [item for c in program.checks for item in c.items]
    points: dict[tuple, dict] = {}
    for item, (_, res) in zip(items, pairs):
        if not isinstance(item, ir.Query) or item.level is None or item.eps is None:
            continue
        key = (item.property, item.index, item.eps)
        p = points.setdefault(key, {"index": item.index, "label": item.label, "eps": item.eps,
                                    "property": item.property, "levels": {}})
        verdict = getattr(res, "verdict", None)
        msg = getattr(res, "message", "") or ""
        p["levels"][item.level] = {"level": item.level, "node": "", "verdict": verdict.value if verdict else "error",
                                   "stage": getattr(res, "stage", ""), "time_s": getattr(res, "time_s", 0.0),
                                   "propagated_from": 0 if msg.startswith("implied by") else None,
                                   "severity": _severity_from_message(msg)}
    if not points:
        return None
    docs = []
    for p in points.values():
        depth = max(p["levels"])
        levels = [{"level": 0, "node": "root", "verdict": "proved", "stage": "trivial", "time_s": 0.0}]
        for lv in range(1, depth + 1):
            levels.append(p["levels"].get(lv, {"level": lv, "node": "", "verdict": "unknown", "time_s": 0.0}))
        deepest = 0
        for lv in levels:
            if lv["verdict"] != "proved":
                break
            deepest = lv["level"]
        docs.append({**{k: v for k, v in p.items() if k != "levels"}, "levels": levels, "deepest_verified": deepest})
    return {"format": FORMAT, "network": "", "eps": sorted({d["eps"] for d in docs}),
            "depth": max(len(d["levels"]) - 1 for d in docs), "points": docs, "radii": []}


def _severity_from_message(msg: str) -> int | None:
    import re

    m = re.search(r"common ancestor with the label at level (\d+)", msg)
    return int(m.group(1)) if m else None


def print_check_summary(program, pairs, console) -> None:
    """The levels × eps and granularity tables, when the program checks hierarchy levels."""
    doc = check_document(program, pairs)
    if doc is None:
        return
    s = Summary(doc)
    console.print(levels_table(s))
    console.print(granularity_table(s))
    if any(s.severity().values()):
        console.print(severity_table(s))
