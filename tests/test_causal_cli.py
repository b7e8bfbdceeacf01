"""`hdsl causal train` / `hdsl causal das` and `hdsl check` exit codes on the example specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from hdsl.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_train_writes_an_onnx_model_that_computes_the_task(tmp_path):
    out = tmp_path / "b.onnx"
    res = CliRunner().invoke(app, ["causal", "train", "bool", str(out)])
    assert res.exit_code == 0, res.output
    assert "accuracy on all 16 inputs 1.0000" in res.output and out.exists()


def test_das_command_learns_and_saves_a_rotation(tmp_path):
    rot = tmp_path / "r.npy"
    res = CliRunner().invoke(app, ["causal", "das", str(ROOT / "models" / "causal_heq_rot.onnx"), "--node", "hr",
                                   "--k", "8", "--steps", "30", "--out", str(rot)])
    assert res.exit_code == 0, res.output
    assert "held-out IIA" in res.output and "learned rotation" in res.output
    r = np.load(rot)
    assert r.shape == (16, 16) and np.abs(r.T @ r - np.eye(16)).max() < 1e-10


import pytest  # noqa: E402


@pytest.mark.parametrize("args, words", [
    (["train", "nope", "x.onnx"], "unknown task"),
    (["das", str(ROOT / "models" / "causal_heq.onnx"), "--task", "nope"], "unknown task"),
    (["das", str(ROOT / "models" / "causal_heq.onnx"), "--node", "nope", "--steps", "2"],
     "the network has no node 'nope'"),
])
def test_bad_names_are_diagnostics(tmp_path, capsys, monkeypatch, args, words):
    """Unknown tasks and nodes were internal errors (KeyError) in `hdsl causal das`."""
    from hdsl.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as ex:
        main(["causal", *args])
    assert ex.value.code == 3 and words in capsys.readouterr().err


def test_check_exit_code_on_failing_causal_spec():
    from hdsl.cli import main

    import pytest

    with pytest.raises(SystemExit) as ex:
        main(["check", str(ROOT / "specs" / "causal_circuit.hspec"), "--quiet"])
    assert ex.value.code == 1  # wrong alignments fail
