"""``hdsl check``, ``hdsl parse``, ``hdsl ir`` and ``hdsl fmt``: the spec commands.

Every command prints diagnostics (with caret excerpts) instead of tracebacks
and exits with the codes documented in ``hdsl.cli`` and the README.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

DEFAULT_TIMEOUT = 60.0


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _print_diagnostics(diagnostics) -> None:
    from hdsl.cli import print_diagnostics

    if diagnostics:
        print_diagnostics(diagnostics)


def _checked(spec_file: str, as_json: bool, deep: bool = True):
    """Parse and check; on errors print them (or a JSON document) and exit 3."""
    from hdsl.check import check_file
    from hdsl.cli import ExitCode

    spec = check_file(spec_file, deep=deep)
    if not spec.ok:
        if as_json:
            typer.echo(json.dumps({"spec": spec_file, "exit_code": int(ExitCode.SPEC_ERROR),
                                   "diagnostics": [d.to_json() for d in spec.diagnostics]}, indent=2))
        else:
            _print_diagnostics(spec.diagnostics)
        raise typer.Exit(ExitCode.SPEC_ERROR)
    if not as_json:
        _print_diagnostics(spec.diagnostics)  # warnings
    return spec


def parse_cmd(
    spec_file: str = typer.Argument(..., help="the .hspec file"),
    as_json: bool = typer.Option(False, "--json", help="print the syntax tree as JSON"),
) -> None:
    """Parse a spec (syntax only) and print its syntax tree."""
    from hdsl.diagnostics import HdslError
    from hdsl.fmt import ast_to_json
    from hdsl.parser import parse_source
    from hdsl.source import SourceFile

    try:
        module = parse_source(SourceFile.read(spec_file))
    except OSError as exc:
        raise HdslError.single("E400", f"cannot read spec file: {exc.strerror or exc}", path=spec_file) from None
    doc = ast_to_json(module)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.pretty import Pretty

    _console().print(Pretty(doc, indent_guides=True, expand_all=False))


def ir_cmd(
    spec_file: str = typer.Argument(..., help="the .hspec file"),
    as_json: bool = typer.Option(False, "--json", help="print the IR (or the diagnostics) as JSON"),
) -> None:
    """Check a spec and print its lowered IR (the queries `hdsl check` would run)."""
    from hdsl.irtext import format_program, to_json
    from hdsl.lower import lower

    spec = _checked(spec_file, as_json, deep=False)
    program = lower(spec)
    base = str(Path(spec_file).resolve().parent)
    if as_json:
        typer.echo(json.dumps(to_json(program, base), indent=1))
        return
    typer.echo(format_program(program, base), nl=False)


def check_cmd(
    spec_file: str = typer.Argument(..., help="the .hspec file"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help=f"seconds per query (default: the spec's "
                                                                     f"`timeout`, else {DEFAULT_TIMEOUT:g})"),
    backend: Optional[str] = typer.Option(None, "--backend", help="auto | bounds | z3 (default: the spec's)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON document instead of the table"),
    junit: Optional[Path] = typer.Option(None, "--junit", help="also write JUnit XML to this file"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar, only the summary"),
) -> None:
    """Check a spec: parse, type-check, lower, and decide every query."""
    from hdsl.cli import ExitCode
    from hdsl.lower import lower
    from hdsl.report.results import exit_code, summarise

    if backend is not None and backend not in _backend_choices():
        from hdsl.diagnostics import HdslError

        raise HdslError.single("E202", f"unknown backend '{backend}'", hint="use one of: " +
                               ", ".join(_backend_choices()))
    spec = _checked(spec_file, as_json)
    program = lower(spec)
    pairs = _run(program, timeout, backend, show_progress=not (quiet or as_json))
    items = {getattr(i, "id", None): i for c in program.checks for i in c.items}
    results = [r for _, r in pairs]
    summaries = summarise(pairs)
    code = exit_code(results) if results else int(ExitCode.OK)
    internal = any(getattr(r, "message", "").startswith("internal error") for r in results)
    if as_json:
        from hdsl.report.json_report import check_document

        typer.echo(json.dumps(check_document(spec_file, summaries, spec.diagnostics, code, items), indent=2))
    else:
        from hdsl.report.table import results_table

        console = _console()
        console.print(results_table(summaries, title=f"hdsl check {spec_file}"))
        if not quiet:
            _print_details(console, pairs, items)
    if junit is not None:
        from hdsl.report.junit import junit_xml

        junit.write_text(junit_xml(spec_file, summaries), encoding="utf-8")
    raise typer.Exit(int(ExitCode.INTERNAL) if internal else code)


def _backend_choices() -> tuple[str, ...]:
    from hdsl.check import backend_names

    return backend_names()


def _run(program, timeout: float | None, backend: str | None, show_progress: bool) -> list:
    """Decide every item, with a progress bar; never fakes a verdict."""
    from dataclasses import replace

    from hdsl import ir
    from hdsl.backends import Budget
    from hdsl.diagnostics import HdslError
    from hdsl.results import Result, Verdict

    try:
        from hdsl.planner import run_item
    except ImportError:
        run_item = None
    items = [(c.property, item) for c in program.checks for item in c.items]
    out = []
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=_console(stderr=True), disable=not show_progress, transient=True)
    with progress:
        task = progress.add_task("checking", total=len(items))
        for prop, item in items:
            qid = getattr(item, "id", None) or getattr(item, "item_id", "?")
            progress.update(task, description=f"checking {qid}")
            if isinstance(item, ir.Query):
                opts = item.options
                item = replace(item, options=ir.CheckOptions(timeout if timeout is not None else opts.timeout,
                                                             backend or opts.backend))
            seconds = getattr(getattr(item, "options", None), "timeout", None) or DEFAULT_TIMEOUT
            start = time.monotonic()
            if run_item is None:
                result = Result(qid, Verdict.UNKNOWN, message="no backend available")
            else:
                try:
                    result = run_item(item, Budget.seconds(seconds))
                except HdslError as err:
                    _print_diagnostics(err.diagnostics)
                    result = Result(qid, Verdict.ERROR, time_s=time.monotonic() - start,
                                    message="; ".join(d.message for d in err.diagnostics))
                except Exception as exc:  # noqa: BLE001 - one failing query must not hide the others
                    import os

                    if os.environ.get("HDSL_DEBUG"):
                        raise
                    result = Result(qid, Verdict.ERROR, time_s=time.monotonic() - start,
                                    message=f"internal error: {type(exc).__name__}: {exc}")
            out.append((prop, result))
            progress.advance(task)
    return out


def _print_details(console, pairs, items: dict) -> None:
    """One line per item that is not proved/passed: what happened and why."""
    from hdsl.report.results import item_id, outcome, predicted_class

    for _prop, r in pairs:
        kind = outcome(r)
        if kind in ("proved", "pass"):
            continue
        style = "red" if kind in ("falsified", "fail", "error") else "yellow"
        msg = getattr(r, "message", "")
        margin = getattr(r, "margin", None)
        extra = f" margin {margin:.4g}" if isinstance(margin, float) else ""
        seen = predicted_class(r, items.get(item_id(r)))
        if seen:
            extra += f"; {seen}"
        console.print(f"  [{style}]{kind}[/] {item_id(r)}{extra}" + (f": {msg}" if msg else ""), highlight=False)


def fmt_cmd(
    files: List[str] = typer.Argument(..., help=".hspec files to format in place"),
    check: bool = typer.Option(False, "--check", help="change nothing; exit 1 if a file would be reformatted"),
    stdout: bool = typer.Option(False, "--stdout", help="print the formatted text instead of writing it"),
) -> None:
    """Format specs canonically (idempotent; never changes the meaning)."""
    from hdsl.diagnostics import HdslError
    from hdsl.fmt import format_source
    from hdsl.source import SourceFile

    changed = []
    errors = []
    for f in files:
        try:
            src = SourceFile.read(f)
            text = format_source(src)
        except HdslError as err:
            errors.extend(err.diagnostics)
            continue
        except OSError as exc:
            errors.append(HdslError.single("E400", f"cannot read spec file: {exc.strerror or exc}",
                                           path=f).diagnostics[0])
            continue
        if stdout:
            sys.stdout.write(text)
        elif text != src.text:
            changed.append(f)
            if not check:
                Path(f).write_text(text, encoding="utf-8")
    if errors:
        raise HdslError(errors)
    for f in changed:
        typer.echo(f"{'would reformat' if check else 'reformatted'} {f}", err=True)
    if check and changed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)
    app.command("parse")(parse_cmd)
    app.command("ir")(ir_cmd)
    app.command("fmt")(fmt_cmd)
