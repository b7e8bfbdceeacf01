"""Mutation fuzzing of the front end: bad specs must give diagnostics, never an internal error.

Each run takes a shipped spec, sometimes drops, repeats or moves a line, applies a few random
token-level mutations (delete, duplicate or swap tokens, replace a number by an odd one, a name
by another one of the spec, a token by a keyword or a stray character, truncate), and runs what
``hdsl check`` runs before solving: parse, check (deep: the models, data and hierarchy files are
opened) and lower. Anything that escapes as an exception other than
``HdslError`` is a bug; so is an error diagnostic without a location in the spec or in a named
file. With ``--solve SECONDS`` the mutants of the quick specs (not the CIFAR-10 ones) are also
decided, two items a check, and a result whose message reports an internal error is a bug.
``--target lsp`` sends the mutants through the language server's features instead (diagnostics,
code actions, outline, folding, semantic tokens, formatting, and hover, completion, definition,
references and highlights at random positions); ``--target vnnlib|hierarchy|csv`` mutates VNN-LIB
files, hierarchies (JSON, Newick, NBDT) and the MNIST CSV through their parsers and loaders.

    python benchmarks/spec_fuzz.py --runs 2000 --seed 0
    python benchmarks/spec_fuzz.py --runs 300 --solve 2
    python benchmarks/spec_fuzz.py --target lsp --runs 1000

Prints one line per failure (seed, spec, exception) and a summary; ``--show SEED`` prints the
mutated text of one run so that it can be replayed by hand.
"""

from __future__ import annotations

import argparse
import collections
import functools
import random
import re
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.hspec"))
STATS: collections.Counter = collections.Counter()  # mutants that checked clean, items decided
QUICK = [p for p in SPECS if not p.name.startswith("cifar10")]  # items decided in seconds

# A token: a string, a number (with exponent), a word, or any other single character.
TOKEN = re.compile(r'"[^"\n]*"|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[A-Za-z_][A-Za-z_0-9]*|\s+|.', re.S)
ODD_NUMBERS = ("0", "-1", "1e308", "1e-320", "0.0", "3.5", "999999999999999999999", "00", "1e", "-0")
KEYWORDS = ("forall", "exists", "in", "model", "data", "classes", "hierarchy", "property", "check",
            "const", "argmax", "linf", "and", "or", "not", "level", "take", "timeout", "backend",
            "arithmetic", "explainer", "faithfulness", "sufficient", "iia", "top", "of", "with",
            "confidence", "ancestor", "certified_radius", "causal", "alignment", "import", "onnx", "csv")


def mutate(text: str, rng: random.Random) -> str:
    if rng.random() < 0.2:  # whole lines: a declaration dropped, repeated or moved
        lines = text.splitlines(keepends=True)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        kind = rng.choice(("drop", "repeat", "move"))
        if kind == "drop":
            del lines[i]
        elif kind == "repeat":
            lines.insert(j, lines[i])
        else:
            lines.insert(j, lines.pop(i))
        text = "".join(lines)
    tokens = TOKEN.findall(text)
    solid = [i for i, t in enumerate(tokens) if not t.isspace()]
    words = sorted({t for t in tokens if re.fullmatch(r'[A-Za-z_]\w*|"[^"]*"', t)}) or ["x"]
    for _ in range(rng.randint(1, 3)):
        if not solid:
            break
        kind = rng.choice(("delete", "duplicate", "swap", "number", "number", "number", "word", "word",
                           "keyword", "truncate", "char"))
        i = rng.choice(solid)
        if kind == "delete":
            tokens[i] = ""
        elif kind == "duplicate":
            tokens[i] = tokens[i] + " " + tokens[i]
        elif kind == "swap":
            j = rng.choice(solid)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == "number":
            numbers = [k for k in solid if re.fullmatch(r"\d.*", tokens[k])]
            tokens[rng.choice(numbers or [i])] = rng.choice(ODD_NUMBERS)
        elif kind == "word":
            tokens[i] = rng.choice(words)
        elif kind == "keyword":
            tokens[i] = rng.choice(KEYWORDS)
        elif kind == "truncate":
            tokens = tokens[:i]
            solid = [k for k in solid if k < i] or [0]
            if not tokens:
                tokens = [""]
        else:
            tokens[i] = rng.choice("{}()[],:=<>!+-*/.#\"'\\\t\x00é")
    return "".join(tokens)


def run_one(seed: int, workdir: Path, solve: float | None = None) -> tuple[str, str, str | None]:
    """(spec name, mutated text, failure or None) for one seed; with ``solve`` (seconds), the
    first items of a mutant of a quick spec are also decided, and an internal error is a failure."""
    from hdsl.check import check_file
    from hdsl.diagnostics import HdslError, Severity
    from hdsl.lower import lower

    rng = random.Random(seed)
    spec = rng.choice(QUICK if solve else SPECS)
    text = mutate(spec.read_text(), rng)
    path = workdir / "specs" / f"fuzz_{spec.name}"
    path.write_text(text)
    try:
        checked = check_file(path, deep=True)
        for d in checked.diagnostics:
            if d.severity is Severity.ERROR and d.span is None and d.path is None:
                return spec.name, text, f"diagnostic without a location: {d.render()}"
        if checked.ok:
            STATS["clean"] += 1
            program = lower(checked)
            if solve:
                failure = _solve(program, solve)
                if failure:
                    return spec.name, text, failure
    except HdslError as err:
        for d in err.diagnostics:
            if d.span is None and d.path is None:
                return spec.name, text, f"diagnostic without a location: {d.render()}"
    except RecursionError:
        return spec.name, text, "RecursionError"
    except Exception:  # noqa: BLE001 - what the fuzzer looks for
        return spec.name, text, traceback.format_exc(limit=-3)
    return spec.name, text, None


@functools.lru_cache(maxsize=None)
def _corpus(target: str) -> list[tuple[str, str, str | None]]:
    """(name, text, format) of the shipped files a target mutates."""
    if target == "csv":
        return [("mnist_test_10.csv", (REPO / "data/mnist_test_10.csv").read_text(), None)]
    if target == "vnnlib":
        from hdsl.vnnlib import read_vnnlib_text

        folder = REPO / "tests/data/vnncomp/acasxu/vnnlib"
        return [(f.name, read_vnnlib_text(f), None) for f in sorted(folder.glob("*"))]
    from hdsl.hierarchy import load_hierarchy, to_newick

    out = []
    for f in sorted((REPO / "hierarchies").glob("*.json")):
        h = load_hierarchy(str(f))
        out += [(f.name, f.read_text(), "json"), (f.name + ".nwk", to_newick(h), "newick"),
                (f.name + ".nbdt", _nbdt(h), "nbdt")]
    return out


def _nbdt(h) -> str:
    """The tree as NBDT's networkx node-link JSON (leaves labelled with their class)."""
    import json

    nodes, links = [], []

    def walk(node) -> str:
        if isinstance(node, str):
            nodes.append({"id": f"n{h.classes.index(node)}", "label": node})
            return nodes[-1]["id"]
        me = f"f{len(links) + len(nodes) + 100}"
        nodes.append({"id": me})
        for child in node.children:
            links.append({"source": me, "target": walk(child)})
        return me

    walk(h.root)
    return json.dumps({"directed": True, "multigraph": False, "graph": {}, "nodes": nodes, "links": links})


def run_file(seed: int, target: str, solve: float | None = None) -> tuple[str, str, str | None]:
    """One mutant of a VNN-LIB, hierarchy or CSV file through its parser; with ``solve``
    (seconds), a VNN-LIB mutant is decided on ACAS Xu 1_1 as ``hdsl vnnlib`` would, and an
    ``error`` outcome (a solver failure) is a failure."""
    from hdsl.diagnostics import HdslError

    rng = random.Random(seed)
    name, text, fmt = rng.choice(_corpus(target))
    text = mutate(text, rng)
    try:
        if target == "csv":
            from hdsl.data import load_dataset
            from hdsl.ir import Dataset

            path = Path(tempfile.gettempdir()) / f"hdsl-fuzz-{seed}.csv"
            path.write_text(text)
            try:
                shape = rng.choice(("784", "784,1", "1,28,28"))
                options = (("label_column", "0"), ("scale", "1/255"), ("shape", shape))
                load_dataset(Dataset("d", str(path), "csv", rng.choice((None, (0, 3), (9,))), options))
            finally:
                path.unlink(missing_ok=True)
        elif target == "vnnlib" and solve:
            from hdsl.bench import solve_instance

            path = Path(tempfile.gettempdir()) / f"hdsl-fuzz-{seed}.vnnlib"
            path.write_text(text)
            try:
                outcome = solve_instance(REPO / "models/acasxu_1_1.onnx", path, solve)
            finally:
                path.unlink(missing_ok=True)
            if outcome.verdict == "error":
                return name, text, f"error outcome: {outcome.message}"
        elif target == "vnnlib":
            from hdsl.vnnlib import parse_vnnlib

            parse_vnnlib(text, name)
        else:
            from hdsl.hierarchy import parse_hierarchy

            parse_hierarchy(text, name, fmt=fmt, num_outputs=rng.choice((None, 10, 100)))
    except HdslError as err:
        for d in err.diagnostics:
            if d.span is None and d.path is None:
                return name, text, f"diagnostic without a location: {d.render()}"
    except RecursionError:
        return name, text, "RecursionError"
    except Exception:  # noqa: BLE001 - what the fuzzer looks for
        return name, text, traceback.format_exc(limit=-3)
    return name, text, None


def run_editor(seed: int, workdir: Path) -> tuple[str, str, str | None]:
    """One mutant through the language server's features, at random positions of the document
    (including past a line's end and past the last line, where editors send them too)."""
    from hdsl.lsp import features as f
    from hdsl.lsp.analysis import analyse
    from hdsl.lsp.diagnostics import path_to_uri

    rng = random.Random(seed)
    spec = rng.choice(SPECS)
    text = mutate(spec.read_text(), rng)
    path = workdir / "specs" / f"edit_{spec.name}"
    path.write_text(text)
    uri = path_to_uri(str(path))
    try:
        a = analyse(uri, text, deep=rng.random() < 0.3)
        diagnostics = f.lsp_diagnostics(a)
        f.code_actions(uri, diagnostics)
        f.document_symbols(a)
        f.folding_ranges(a)
        f.semantic_tokens(a)
        f.format_edits(text, str(path))
        lines = text.split("\n")
        for _ in range(8):
            line = rng.randrange(len(lines) + 1)
            character = rng.randrange(len(lines[line]) + 3) if line < len(lines) else rng.randrange(3)
            f.hover_at(a, line, character)
            f.complete_at(a, line, character)
            f.definition_at(a, line, character)
            f.references_at(a, line, character)
            f.highlights_at(a, line, character)
    except Exception:  # noqa: BLE001 - what the fuzzer looks for
        return spec.name, text, traceback.format_exc(limit=-3)
    return spec.name, text, None


def _solve(program, seconds: float, per_check: int = 2) -> str | None:
    """Decide the first items of each check; the message of a result that reports a bug."""
    from hdsl.backends import Budget
    from hdsl.planner import run_item

    for check in program.checks:
        for item in check.items[:per_check]:
            result = run_item(item, Budget.seconds(seconds))
            STATS["decided"] += 1
            message = getattr(result, "message", "") or ""
            if message.startswith(("internal error", "out of memory")):
                return f"{item.id}: {message}"
    return None


def workspace() -> Path:
    """A scratch copy of the repository's layout, so that specs' relative paths resolve."""
    root = Path(tempfile.mkdtemp(prefix="hdsl-spec-fuzz-"))
    (root / "specs").mkdir()
    for folder in ("models", "data", "hierarchies"):
        (root / folder).symlink_to(REPO / folder)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="first seed; run k uses seed + k")
    parser.add_argument("--target", choices=("spec", "lsp", "vnnlib", "hierarchy", "csv"), default="spec",
                        help="what to mutate: shipped specs through the checker (default) or through the language "
                             "server's features, the ACAS Xu VNN-LIB files, the shipped hierarchies in their "
                             "three formats, or the MNIST CSV through the data loader")
    parser.add_argument("--solve", type=float, default=None, metavar="SECONDS",
                        help="also decide the first two items of each check of the quick specs (not the "
                             "CIFAR-10 ones) with this budget each; with --target vnnlib, decide each mutant "
                             "on ACAS Xu 1_1")
    parser.add_argument("--cifar", action="store_true",
                        help="with --solve: mutate the CIFAR-10 specs (hierarchy, XAI) instead of the quick ones")
    parser.add_argument("--show", type=int, default=None, help="print the mutated spec of this seed")
    args = parser.parse_args(argv)
    if args.cifar:
        QUICK[:] = [p for p in SPECS if p.name.startswith("cifar10")]
    if args.show is not None:
        rng = random.Random(args.show)
        spec = rng.choice(QUICK if args.solve else SPECS)
        print(f"# from {spec.name}\n{mutate(spec.read_text(), rng)}")
        return 0
    root = workspace()
    failures = 0
    try:
        for seed in range(args.seed, args.seed + args.runs):
            if args.target == "spec":
                name, _text, failure = run_one(seed, root, args.solve)
            elif args.target == "lsp":
                name, _text, failure = run_editor(seed, root)
            else:
                name, _text, failure = run_file(seed, args.target, args.solve)
            if failure:
                failures += 1
                print(f"seed {seed} ({name}):\n{failure.rstrip()}\n", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    extra = "" if args.target != "spec" else f" ({STATS['clean']} mutants checked clean" + (
        f", {STATS['decided']} items decided)" if args.solve else ")")
    print(f"{args.runs} runs, {failures} failures{extra}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
