"""The VS Code extension: manifest paths, grammar regexes, vscode-tmgrammar-test assertions and snapshots,
and the language client against stand-ins for the VS Code API.

The npm tool runs when ``npx`` can fetch or find ``vscode-tmgrammar-test``; the test is skipped (not failed)
when it cannot, so machines without Node or without the npm registry still pass.
"""

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[1] / "editors" / "vscode"
TOOL = "vscode-tmgrammar-test@0.1.3"


def _manifest() -> dict:
    return json.loads((EXT / "package.json").read_text(encoding="utf-8"))


def test_manifest_points_at_real_files():
    pkg = _manifest()
    (lang,) = pkg["contributes"]["languages"]
    (grammar,) = pkg["contributes"]["grammars"]
    assert lang["id"] == grammar["language"] == "hspec" and ".hspec" in lang["extensions"]
    assert (EXT / lang["configuration"]).is_file() and (EXT / grammar["path"]).is_file()
    assert (EXT / pkg["main"]).is_file()
    tm = json.loads((EXT / grammar["path"]).read_text(encoding="utf-8"))
    assert tm["scopeName"] == grammar["scopeName"] == "source.hspec"
    conf = json.loads((EXT / lang["configuration"]).read_text(encoding="utf-8"))
    assert conf["comments"]["lineComment"] == "#"
    assert ["{", "}"] in conf["brackets"]


def _regexes(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end") and isinstance(value, str):
                yield value
            else:
                yield from _regexes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _regexes(item)


def test_grammar_regexes_compile_and_includes_resolve():
    tm = json.loads((EXT / "syntaxes" / "hspec.tmLanguage.json").read_text(encoding="utf-8"))
    for rx in _regexes(tm):
        re.compile(rx)  # our patterns use the common subset of Oniguruma and Python syntax
    for inc in re.findall(r'"include": "#([^"]+)"', json.dumps(tm)):
        assert inc in tm["repository"]


@functools.lru_cache(maxsize=None)
def _npx() -> str | None:
    npx = shutil.which("npx")
    if npx is None:
        return None
    try:
        probe = subprocess.run([npx, "--yes", "-p", TOOL, "vscode-tmgrammar-test", "--version"], cwd=EXT,
                               capture_output=True, text=True, timeout=90, env=_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return npx if probe.returncode == 0 else None


def _env() -> dict:
    return {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}


def _run(binary: str, *args: str) -> subprocess.CompletedProcess:
    npx = _npx()
    if npx is None:
        pytest.skip(f"npx cannot run {TOOL} here")
    return subprocess.run([npx, "--yes", "-p", TOOL, binary, *args], cwd=EXT,
                          capture_output=True, text=True, timeout=180, env=_env())


def test_textmate_assertions():
    files = sorted(p.name for p in (EXT / "tests").glob("*.test.hspec"))
    assert files
    out = _run("vscode-tmgrammar-test", "--compact", "tests/*.test.hspec")
    assert out.returncode == 0, out.stdout + out.stderr


def test_textmate_snapshots():
    assert list((EXT / "tests" / "snap").glob("*.hspec.snap"))
    out = _run("vscode-tmgrammar-snap", "tests/snap/*.hspec")
    assert out.returncode == 0, out.stdout + out.stderr


def test_extension_starts_the_language_server():
    """extension.js against stand-ins for the VS Code API (needs Node, not the npm registry)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run([node, "tests/extension.test.js"], cwd=EXT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "extension.js: ok" in out.stdout, out.stdout + out.stderr
