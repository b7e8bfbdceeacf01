"""Mutated shipped specs give located diagnostics, never an internal error.

A fixed slice of the seeds of ``benchmarks/spec_fuzz.py`` (which runs thousands): the seeds below
include ones that found the bugs fixed with it (a causal range of 1e308 allocating a dense
projector, a constant 2/1e-320 overflowing a float, a per-image property over no rows).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _fuzzer():
    spec = importlib.util.spec_from_file_location("spec_fuzz", ROOT / "benchmarks" / "spec_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fuzz():
    module = _fuzzer()
    root = module.workspace()
    yield module, root
    shutil.rmtree(root, ignore_errors=True)


def _no_failures(run, seeds) -> None:
    """``run(seed)`` gives (name, mutated text, failure or None); the first failure is shown whole."""
    failures = []
    for seed in seeds:
        name, text, failure = run(seed)
        if failure:
            failures.append(f"seed {seed} ({name}): {failure}\n{text}")
    assert not failures, failures[0]


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("first", [0, 2956, 4241, 101701])
def test_mutated_specs_never_crash_the_front_end(fuzz, first):
    module, root = fuzz
    _no_failures(lambda seed: module.run_one(seed, root), range(first, first + 100))


@pytest.mark.parametrize("target, first", [("vnnlib", 0), ("hierarchy", 0), ("hierarchy", 700), ("csv", 0)])
def test_mutated_files_never_crash_their_parsers(target, first):
    """VNN-LIB, hierarchy (JSON, Newick, NBDT) and CSV files; hierarchy seeds 76 and 783 found NBDT
    links to numeric node ids reported without a location."""
    module = _fuzzer()
    _no_failures(lambda seed: module.run_file(seed, target), range(first, first + 150))


def test_mutated_specs_never_crash_the_editor_features(fuzz):
    module, root = fuzz
    _no_failures(lambda seed: module.run_editor(seed, root), range(100))


def test_mutations_reach_past_the_parser(fuzz):
    """The fuzzer is only useful if many mutants parse and check: count the clean ones."""
    module, root = fuzz
    from hdsl.check import check_file
    import random

    clean = 0
    for seed in range(200):
        rng = random.Random(seed)
        spec = rng.choice(module.SPECS)
        path = root / "specs" / f"m_{spec.name}"
        path.write_text(module.mutate(spec.read_text(), rng))
        clean += check_file(path).ok
    assert 30 <= clean <= 170
