"""The CLI's command modules (each exposes ``register(app)``) and checks their options share.

The checks run as typer callbacks, before any work: a bad time limit or an output file in a folder
that does not exist is a usage error at once, not an internal error after a long run.
"""

from __future__ import annotations

from pathlib import Path

import typer


def positive_seconds(value: float | None) -> float | None:
    """A time limit: seconds greater than 0 (``inf``: none). NaN, 0 and negatives are refused."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g}: give a number of seconds greater than 0")
    return value


def non_negative(value: float | None) -> float | None:
    """A scale factor: 0 or more, not NaN."""
    if value is not None and not value >= 0:
        raise typer.BadParameter(f"{value:g}: give a number of 0 or more")
    return value


def one_of(*choices: str):
    """A word from ``choices``."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r}: use one of {', '.join(choices)}")
        return value

    return check


def output_file(value):
    """A file to write: its folder must exist and it must not be a folder itself."""
    if value is not None and str(value) != "":
        path = Path(value).expanduser()
        if path.is_dir():
            raise typer.BadParameter(f"{value} is a folder; give a file name")
        if not path.parent.is_dir():
            raise typer.BadParameter(f"{value}: the folder {path.parent} does not exist")
    return value


def write_output(path: str | Path, text: str, what: str) -> None:
    """Write a result file; a failure (permissions, a full disk) is diagnostic E413, not a crash."""
    from hdsl.diagnostics import HdslError

    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HdslError.single("E413", f"cannot write {what} to {path}: {exc.strerror or exc}", path=str(path),
                               hint="check that the folder exists and is writable") from None
