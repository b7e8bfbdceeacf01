"""The ``hdsl`` command line (typer + rich).

Each feature keeps its commands in its own module under ``hdsl/commands``
exposing ``register(app)``; this file only assembles them and turns
diagnostics into exit code 3 instead of a traceback.

Exit codes (documented in the README):
  0  every query proved / every measurement passed
  1  something falsified / failed (a confirmed counterexample)
  2  something unknown, timed out or inconclusive (and nothing falsified)
  3  the spec, an input file or the command line has errors (diagnostics printed)
  4  internal error (a bug in hdsl: please report it)
"""

from __future__ import annotations

import importlib
import os
import sys
from enum import IntEnum

import typer
from rich.console import Console


class ExitCode(IntEnum):
    OK = 0
    FALSIFIED = 1
    UNDECIDED = 2
    SPEC_ERROR = 3
    INTERNAL = 4


# click exits 2 on a usage error (a bad option value, a missing argument, an unknown command),
# which here would read as "undecided" to a CI job; hdsl's code for bad input is 3. (typer may
# vendor its own click: the class is found from typer's BadParameter.)
for _cls in typer.BadParameter.__mro__:
    if _cls.__name__ == "UsageError":
        _cls.exit_code = int(ExitCode.SPEC_ERROR)

app = typer.Typer(
    name="hdsl",
    help="Specify and verify neural networks: hierarchical robustness, XAI faithfulness, causal alignment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Feature modules that contribute commands; each exposes ``register(app)``.
COMMAND_MODULES: tuple[str, ...] = (
    "hdsl.commands.spec",
    "hdsl.commands.vnnlib",
    "hdsl.commands.bench",
    "hdsl.commands.hierarchy",
    "hdsl.commands.causal",
    "hdsl.commands.lsp",
    "hdsl.commands.xai",
)


@app.callback()
def _root(device: str = typer.Option(
        "", "--device", metavar="DEVICE",
        help="where bound propagation, branch and bound and the level bounds run: cpu, cuda or cuda:N "
             "(default: CUDA when available)")) -> None:
    """Specify and verify neural networks: hierarchical robustness, XAI faithfulness, causal alignment."""
    import os

    env = "HDSL_DEVICE"  # hdsl.bounds.DEVICE_ENV, named here so that a plain run does not import torch
    hint = "--device" if device else f"${env}"
    device = device or os.environ.get(env, "").strip()
    if device:
        import re

        if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise typer.BadParameter(f"{device!r}: use cpu, cuda or cuda:N", param_hint=hint)
        if device != "cpu":
            from hdsl.bounds import resolve_device  # the one place that checks a device is there

            try:
                resolve_device(device)
            except RuntimeError as err:
                raise typer.BadParameter(f"{err}; use cpu", param_hint=hint) from None
        os.environ[env] = device  # worker processes inherit it


@app.command()
def version() -> None:
    """Print hdsl's version."""
    from hdsl import __version__

    typer.echo(__version__)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def print_diagnostics(diagnostics, console: Console | None = None) -> None:
    console = console or Console(stderr=True, highlight=False)
    for d in diagnostics:
        if console.is_terminal and not console.no_color:  # colours for people; plain text for pipes and tests
            from hdsl.highlight import highlight_excerpt

            console.print(highlight_excerpt(d), highlight=False, soft_wrap=True)
        else:
            console.print(d.render(), markup=False, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; diagnostics become exit 3, bugs exit 4 without a traceback."""
    from hdsl.diagnostics import HdslError

    try:
        app(args=argv, standalone_mode=True)
    except HdslError as err:
        print_diagnostics(err.diagnostics)
        sys.exit(ExitCode.SPEC_ERROR)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence: no traceback for users
        if os.environ.get("HDSL_DEBUG"):
            raise
        Console(stderr=True).print(
            f"[bold red]internal error[/]: {type(exc).__name__}: {exc}\n"
            "This is a bug in hdsl. Re-run with HDSL_DEBUG=1 for the traceback and report it."
        )
        sys.exit(ExitCode.INTERNAL)


if __name__ == "__main__":
    main()
