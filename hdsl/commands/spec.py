"""``hdsl check``, ``hdsl parse``, ``hdsl ir`` and ``hdsl fmt``: the spec commands.

Every command prints diagnostics (with caret excerpts) instead of tracebacks
and exits with the codes documented in ``hdsl.cli`` and the README.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from hdsl.commands import output_file, positive_seconds, write_output
from hdsl.commands.arithmetic import HELP as ARITHMETIC_HELP
from hdsl.commands.arithmetic import checked as checked_arithmetic

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
    vnnlib_dir: Optional[Path] = typer.Option(None, "--vnnlib", help="also export every query to VNN-LIB in "
                                                                    "this folder, with an instances.csv"),
) -> None:
    """Check a spec and print its lowered IR (the queries `hdsl check` would run)."""
    from hdsl.irtext import format_program, to_json
    from hdsl.lower import lower

    spec = _checked(spec_file, as_json, deep=False)
    program = lower(spec)
    base = str(Path(spec_file).resolve().parent)
    if vnnlib_dir is not None:
        _export_vnnlib(program, vnnlib_dir)
    if as_json:
        typer.echo(json.dumps(to_json(program, base), indent=1))
        return
    typer.echo(format_program(program, base), nl=False)


def _export_vnnlib(program, folder: Path) -> None:
    """One ``.vnnlib`` file per query plus a VNN-COMP ``instances.csv`` (onnx, vnnlib, timeout),
    so ``hdsl bench FOLDER`` and other verifiers run exactly the spec's queries."""
    import re

    from hdsl import ir
    from hdsl.vnnlib import write_vnnlib

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for check in program.checks:
        for item in check.items:
            if not isinstance(item, ir.Query):
                continue  # measurements have no VNN-LIB form
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.id).strip("_") + ".vnnlib"
            write_vnnlib(item, folder / name)
            timeout = item.options.timeout if item.options.timeout is not None else DEFAULT_TIMEOUT
            rows.append(f"{Path(item.network.path).resolve()},{name},{timeout:g}")
    (folder / "instances.csv").write_text("\n".join(rows) + ("\n" if rows else ""), encoding="utf-8")
    typer.echo(f"wrote {len(rows)} VNN-LIB queries and instances.csv to {folder}", err=True)


def check_cmd(
    spec_file: str = typer.Argument(..., help="the .hspec file"),
    timeout: Optional[float] = typer.Option(None, "--timeout", callback=positive_seconds,
                                            help=f"seconds per query (default: the spec's "
                                                                     f"`timeout`, else {DEFAULT_TIMEOUT:g})"),
    backend: Optional[str] = typer.Option(None, "--backend", help="auto | bounds | z3 (default: the spec's)"),
    arithmetic: Optional[str] = typer.Option(None, "--arithmetic", help=ARITHMETIC_HELP + " (default: the spec's)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON document instead of the table"),
    junit: Optional[Path] = typer.Option(None, "--junit", callback=output_file,
                                         help="also write JUnit XML to this file"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar, only the summary"),
    workers: int = typer.Option(1, "--workers", min=1, help="solve items in this many processes"),
    ray: Optional[str] = typer.Option(None, "--ray", help="send items to a Ray cluster at ADDRESS "
                                                          "('local' starts one on this machine)"),
    store: Optional[str] = typer.Option(None, "--store", help="result store (default: $HDSL_STORE, else "
                                                               ".hdsl-run/results.sqlite in the current directory; "
                                                               "'none' disables it)"),
    fresh: bool = typer.Option(False, "--fresh", help="forget stored results and solve everything again"),
) -> None:
    """Check a spec: parse, type-check, lower, and decide every query.

    Results go to a store as they arrive: an interrupted run resumes where it
    stopped, and unchanged queries are never solved twice.
    """
    from hdsl.cli import ExitCode
    from hdsl.lower import lower
    from hdsl.report.results import exit_code, summarise

    if backend is not None and backend not in _backend_choices():
        from hdsl.diagnostics import HdslError

        raise HdslError.single("E202", f"unknown backend '{backend}'", hint="use one of: " +
                               ", ".join(_backend_choices()))
    checked_arithmetic(arithmetic)
    spec = _checked(spec_file, as_json)
    program = _with_arithmetic(lower(spec), arithmetic)
    if not program.checks and not as_json:
        _console(stderr=True).print(f"[yellow]nothing to check[/]: {spec_file} declares no properties "
                                    "(an imported file's properties are checked only where they are named in a "
                                    "`check` statement)")
    from hdsl.runner import RunInterrupted

    try:
        pairs = _run(program, timeout, backend, show_progress=not (quiet or as_json),
                     run=RunSettings(workers, ray, store, fresh))
    except RunInterrupted as stop:
        _print_interrupted(program, stop.results)
        raise typer.Exit(130)
    items = {getattr(i, "id", None): i for c in program.checks for i in c.items}
    results = [r for _, r in pairs]
    summaries = summarise(pairs, tuple(c.property for c in program.checks))
    code = exit_code(results) if results else int(ExitCode.OK)
    internal = any(getattr(r, "message", "").startswith("internal error") for r in results)
    if as_json:
        from hdsl.report.json_report import check_document

        typer.echo(json.dumps(check_document(spec_file, summaries, spec.diagnostics, code, items), indent=2))
    else:
        from hdsl.report.table import results_table

        console = _console()
        console.print(results_table(summaries, title=f"hdsl check {spec_file}"))
        from hdsl.check_options import arithmetic_of

        real = sorted({c.property for c in program.checks for i in c.items if arithmetic_of(i) == "real"})
        if real:
            console.print(f"[yellow]arithmetic real[/] ({', '.join(real)}): proved covers the real-valued network "
                          "only, not its float32 execution.")
        if not quiet:
            _print_details(console, pairs, items)
        # --- hierarchy (hdsl.report.hierarchy): levels × eps and granularity tables for level queries
        from hdsl.report.hierarchy import print_check_summary

        print_check_summary(program, pairs, console)
    if junit is not None:
        from hdsl.report.junit import junit_xml

        write_output(junit, junit_xml(spec_file, summaries), "JUnit XML")
    raise typer.Exit(int(ExitCode.INTERNAL) if internal else code)


def _print_interrupted(program, results) -> None:
    """Ctrl-C: the table of what finished; the rest resumes from the store next time."""
    from hdsl.report.results import summarise
    from hdsl.report.table import results_table

    props = [c.property for c in program.checks for _ in c.items]
    done = [(p, r) for p, r in zip(props, results) if r is not None]
    console = _console()
    console.print(results_table(summarise(done), title="interrupted: finished items"))
    console.print(f"[yellow]interrupted[/]: {len(done)} of {len(props)} items finished and stored; "
                  "run the same command again to resume.")


def _with_arithmetic(program, arithmetic: str | None):
    """``--arithmetic`` over the spec's choice, on every query (so reports and the store see it)."""
    if arithmetic is None:
        return program
    from dataclasses import replace

    from hdsl import ir

    def one(item):
        if ir.options_of(item) is not None:
            return replace(item, options=replace(item.options, arithmetic=arithmetic))
        return item

    return replace(program, checks=tuple(replace(c, items=tuple(one(i) for i in c.items)) for c in program.checks))


def _backend_choices() -> tuple[str, ...]:
    from hdsl.check import backend_names

    return backend_names()


def _run(program, timeout: float | None, backend: str | None, show_progress: bool,
         run: "RunSettings | None" = None) -> list:
    """Decide every item through the runner (store, workers, Ray), with a progress bar.

    Never fakes a verdict. On Ctrl-C the finished results are kept in the store,
    and ``RunInterrupted`` carries them (in order, None for unfinished items).
    """
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from hdsl import ir
    from hdsl.report.results import outcome
    from hdsl.runner import RunConfig, run_items

    run = run or RunSettings()
    props, items = [], []
    for c in program.checks:
        for item in c.items:
            opts = ir.options_of(item)
            if opts is not None:
                item = replace(item, options=ir.CheckOptions(timeout if timeout is not None else opts.timeout,
                                                             backend or opts.backend, opts.arithmetic))
            props.append(c.property)
            items.append(item)
    config = RunConfig(timeout=timeout if timeout is not None else DEFAULT_TIMEOUT, workers=run.workers,
                       ray_address=run.ray)
    counts = {"proved": 0, "falsified": 0, "other": 0, "cached": 0}

    def label() -> str:
        return (f"[green]{counts['proved']} proved/passed[/] [red]{counts['falsified']} falsified/failed[/] "
                f"[yellow]{counts['other']} other[/] ({counts['cached']} from the store)")

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=_console(stderr=True), disable=not show_progress,
                        transient=True)
    store = _open_store(run)
    try:
        with progress:
            task = progress.add_task(label(), total=len(items))

            def on_result(_i, result, cached) -> None:
                kind = outcome(result)
                key = "proved" if kind in ("proved", "pass") else "falsified" if kind in ("falsified", "fail") \
                    else "other"
                counts[key] += 1
                counts["cached"] += int(cached)
                progress.update(task, advance=1, description=label())

            results = run_items(items, config, store, on_result)
    finally:
        if store is not None:
            store.close()
    return list(zip(props, results))


class RunSettings:
    """How ``hdsl check`` executes its items (see ``hdsl.runner``)."""

    def __init__(self, workers: int = 1, ray: str | None = None, store: str | None = None, fresh: bool = False):
        self.workers, self.ray, self.store, self.fresh = workers, ray, store, fresh


def _open_store(run: RunSettings):
    from hdsl.store import DEFAULT_STORE, ResultStore

    import os

    choice = run.store or os.environ.get("HDSL_STORE") or DEFAULT_STORE
    if choice == "none":
        return None
    path = Path(choice)
    if run.fresh and path.exists():
        path.unlink()
    try:
        return ResultStore(path)
    except Exception as exc:  # sqlite errors, permissions
        from hdsl.diagnostics import HdslError

        raise HdslError.single("E402", f"cannot open the result store {path}: {exc}",
                               path=str(path), hint="pass --store PATH, or --store none to run without one") from None


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
