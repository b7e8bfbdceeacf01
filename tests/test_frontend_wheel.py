"""The built wheel ships the grammar (a package without it cannot parse anything)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_contains_the_grammar(tmp_path):
    pytest.importorskip("build")
    pytest.importorskip("setuptools")  # --no-isolation builds with the installed backend (no network)
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check", "--outdir", str(tmp_path),
                           str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("hdsl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hdsl/grammars/hspec.lark" in names
    assert "hdsl/parser.py" in names and "hdsl/commands/spec.py" in names


def test_grammar_loads_from_the_package():
    from importlib.resources import files

    assert "forall" in (files("hdsl") / "grammars" / "hspec.lark").read_text(encoding="utf-8")
