"""``hdsl vnnlib NET.onnx PROP.vnnlib``: decide one VNN-COMP instance, answering as VNN-COMP tools do."""

from __future__ import annotations

from typing import Optional

import typer

from hdsl.commands import output_file, positive_seconds, write_output
from hdsl.commands.arithmetic import HELP as ARITHMETIC_HELP


def vnnlib(
    onnx: str = typer.Argument(..., help="the network (ONNX)"),
    prop: str = typer.Argument(..., help="the property (VNN-LIB 1.0, optionally gzipped)"),
    timeout: float = typer.Option(300.0, "--timeout", "-t", callback=positive_seconds,
                                  help="seconds for this instance"),
    out: Optional[str] = typer.Option(None, "--out", "-o", callback=output_file,
                                      help="also write the VNN-COMP result file (verdict line, then the counterexample)"),
    backend: str = typer.Option("auto", "--backend", help="planner backend: auto or a registered backend name"),
    arithmetic: str = typer.Option("float32", "--arithmetic", help=ARITHMETIC_HELP),
) -> None:
    """Run a VNN-COMP instance: prints sat / unsat / unknown / timeout on the first line of standard output.

    sat means the property's unsafe condition is reachable; the counterexample
    follows as ((X_0 v) ... (Y_0 v) ...). It is printed only after hdsl
    re-validated it: the point lies in the input box with zero tolerance and
    onnxruntime's outputs satisfy the unsafe condition; otherwise the answer is unknown.
    Exit code: 0 unsat, 1 sat, 2 unknown/timeout, 3 bad input files.
    """
    from rich.console import Console

    from hdsl.bench import result_file_text, solve_instance
    from hdsl.cli import ExitCode
    from hdsl.commands.arithmetic import checked

    outcome = solve_instance(onnx, prop, timeout, backend=backend, arithmetic=checked(arithmetic))
    text = result_file_text(outcome)
    typer.echo(text, nl=False)
    if out is not None:
        write_output(out, text, "the result file")
    err = Console(stderr=True, highlight=False)
    how = ", ".join(p for p in (f"stage {outcome.stage}" if outcome.stage else "",
                                f"backend {outcome.backend}" if outcome.backend else "") if p)
    err.print(f"hdsl: {outcome.verdict} in {outcome.time_s:.2f}s" + (f" ({how})" if how else ""), markup=False, soft_wrap=True)
    if outcome.message:
        err.print(f"hdsl: {outcome.message}", markup=False, soft_wrap=True)
    code = {"unsat": ExitCode.OK, "sat": ExitCode.FALSIFIED}.get(outcome.verdict, ExitCode.UNDECIDED)
    raise typer.Exit(int(code))


def register(app: typer.Typer) -> None:
    app.command("vnnlib")(vnnlib)
