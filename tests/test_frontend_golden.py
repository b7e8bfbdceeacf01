"""Golden tests: the IR text of tests/golden/*.hspec and the diagnostics of its bad specs stay stable.

Regenerate after an intended change with ``HDSL_UPDATE_GOLDEN=1 python -m pytest tests/test_frontend_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hdsl.check import check_file
from hdsl.irtext import format_program
from hdsl.lower import lower
from hdsl.validate import program_problems

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("HDSL_UPDATE_GOLDEN") == "1"
CASES = sorted(GOLDEN.glob("*.hspec"))


def _output(spec_path: Path) -> tuple[str, str]:
    spec = check_file(spec_path, deep=False)
    if not spec.ok:
        text = "\n".join(d.render() for d in spec.diagnostics) + "\n"
        return "err", text.replace(str(GOLDEN) + os.sep, "").replace(str(GOLDEN), ".")
    program = lower(spec)
    assert program_problems(program) == []
    return "ir", format_program(program, str(spec_path.parent))


@pytest.mark.parametrize("spec_path", CASES, ids=[p.stem for p in CASES])
def test_golden(spec_path):
    kind, text = _output(spec_path)
    expected_path = spec_path.with_suffix(f".{kind}.txt")
    if UPDATE or not expected_path.exists():
        if not UPDATE:
            pytest.fail(f"missing golden file {expected_path.name}; run with HDSL_UPDATE_GOLDEN=1")
        expected_path.write_text(text, encoding="utf-8")
    assert text == expected_path.read_text(encoding="utf-8")


def test_golden_cases_exist():
    kinds = {_output(p)[0] for p in CASES}
    assert len(CASES) >= 4 and kinds == {"ir", "err"}
