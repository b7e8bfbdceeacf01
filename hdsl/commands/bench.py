"""``hdsl bench DIR``: run a VNN-COMP benchmark folder and compare with its ground truth."""

from __future__ import annotations

from typing import Optional

import typer

from hdsl.commands import non_negative, output_file, positive_seconds, write_output
from hdsl.commands.arithmetic import HELP as ARITHMETIC_HELP


def bench(
    folder: str = typer.Argument(..., help="benchmark folder with instances.csv (onnx,vnnlib,timeout; no header)"),
    truth: Optional[str] = typer.Option(None, "--truth",
                                        help="ground-truth CSV (instance,expected); default: FOLDER/ground_truth.csv if present"),
    no_truth: bool = typer.Option(False, "--no-truth", help="do not compare with a ground truth"),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="run at most N instances (after --filter)"),
    pattern: Optional[str] = typer.Option(None, "--filter", help="only instances whose id matches this regular expression"),
    timeout_scale: float = typer.Option(1.0, "--timeout-scale", callback=non_negative,
                                        help="multiply every instance's timeout"),
    timeout: Optional[float] = typer.Option(None, "--timeout", callback=positive_seconds,
                                            help="use this timeout (s) for every instance"),
    backend: str = typer.Option("auto", "--backend", help="planner backend: auto or a registered backend name"),
    arithmetic: str = typer.Option("float32", "--arithmetic", help=ARITHMETIC_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON on standard output"),
    out: Optional[str] = typer.Option(None, "--out", "-o", callback=output_file,
                                      help="also write the JSON results to this file"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no per-instance progress lines"),
) -> None:
    """Run every instance of a benchmark folder; print solved / wrong / time per (expected x verdict).

    A wrong answer (unsat where sat is expected, or sat where unsat is expected)
    is shown in red and makes the exit code 1; otherwise the exit code is 0.
    """
    import json
    from pathlib import Path

    from rich.console import Console

    from hdsl.bench import read_truth, render_table, run_benchmark, summary_lines
    from hdsl.commands.arithmetic import checked

    checked(arithmetic)

    truth_path = None if no_truth else (truth or (str(Path(folder) / "ground_truth.csv")
                                                  if (Path(folder) / "ground_truth.csv").exists() else None))
    gt = read_truth(truth_path) if truth_path else None
    err = Console(stderr=True, highlight=False)
    con = err if as_json else Console(highlight=False)
    if truth_path and not quiet:
        err.print(f"ground truth: {truth_path}", markup=False)

    def progress(k: int, n: int, row) -> None:
        o = row.outcome
        if row.wrong:
            err.print(f"[bold white on red]WRONG ANSWER[/] {o.instance}: hdsl says {o.verdict}, expected {row.expected}"
                      f" (stage {o.stage or '?'}, backend {o.backend or '?'})", soft_wrap=True)
        if quiet:
            return
        exp = f" expected {row.expected}" if row.expected != "none" else ""
        extra = f" [{o.stage}]" if o.stage else ""
        msg = f" - {o.message.splitlines()[0]}" if o.message and o.verdict in ("error", "unknown", "timeout") else ""
        err.print(f"[{k:>{len(str(n))}}/{n}] {o.instance}: {o.verdict} {o.time_s:.2f}s{extra}{exp}{msg}", markup=False,
                  soft_wrap=True)

    report = run_benchmark(folder, truth=gt, pattern=pattern, limit=limit, timeout_scale=timeout_scale,
                           timeout=timeout, backend=backend, arithmetic=arithmetic, progress=progress)
    data = report.to_json()
    data["settings"]["truth"] = truth_path
    if out:
        write_output(out, json.dumps(data, indent=2), "the JSON results")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        con.print(render_table(report))
        for line in summary_lines(report):
            con.print(line, markup=False)
    if report.wrong:
        err.print(f"[bold white on red] {len(report.wrong)} WRONG ANSWER(S) [/] "
                  + ", ".join(r.outcome.instance for r in report.wrong))
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
