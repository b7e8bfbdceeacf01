"""``hdsl hierarchy``: show a hierarchy file, convert it, and report hierarchical results."""

from __future__ import annotations

from typing import Optional

import typer

from hdsl.commands import output_file

hierarchy_app = typer.Typer(help="Class hierarchies: show, convert, and report hierarchical robustness results.",
                            no_args_is_help=True)


@hierarchy_app.command("show")
def show(
    file: str = typer.Argument(..., help="hierarchy file (.hier.json, Newick .nwk, or NBDT node-link JSON)"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="json | newick | nbdt (default: detect)"),
) -> None:
    """Validate a hierarchy file and draw it as a tree, with each node's level and class indices."""
    from rich.console import Console

    from hdsl.hierarchy import load_hierarchy
    from hdsl.report.hierarchy import hierarchy_tree

    h = load_hierarchy(file, fmt, None, None)
    console = Console()
    console.print(hierarchy_tree(h))
    console.print(f"{len(h.classes)} classes, depth {h.depth()} (level 0 = root)")


@hierarchy_app.command("convert")
def convert(
    file: str = typer.Argument(..., help="hierarchy file to read"),
    to: str = typer.Option("json", "--to", help="json (hdsl-hierarchy/1) | newick"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="input format (default: detect)"),
) -> None:
    """Print a hierarchy in another format (e.g. import NBDT or Newick into hdsl-hierarchy/1)."""
    import json

    from hdsl.diagnostics import HdslError
    from hdsl.hierarchy import load_hierarchy, to_json, to_newick

    h = load_hierarchy(file, fmt, None, None)
    if to == "json":
        typer.echo(json.dumps(to_json(h), indent=2))
    elif to == "newick":
        typer.echo(to_newick(h))
    else:
        raise HdslError.single("H003", f"unknown output format '{to}'", hint="use json or newick")


@hierarchy_app.command("report")
def report(
    results: str = typer.Argument(..., help="hierarchical results JSON written by `hdsl check --json` or the case study"),
    plot: Optional[str] = typer.Option(None, "--plot", callback=output_file,
                                       help="write verified fraction vs eps (PNG, or HTML if .html)"),
) -> None:
    """Print the levels x eps table, granularity, radii and severity of saved hierarchical results."""
    import json
    from pathlib import Path

    from rich.console import Console

    from hdsl.diagnostics import HdslError
    from hdsl.report.hierarchy import print_report, summary_from_json, write_plot

    try:
        doc = json.loads(Path(results).read_text(encoding="utf-8"))
        summary = summary_from_json(doc)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HdslError.single("H001", f"cannot read hierarchical results '{results}': {exc}", path=results) from None
    print_report(summary, Console())
    if plot:
        write_plot(summary, plot)
        typer.echo(f"wrote {plot}")


def register(app: typer.Typer) -> None:
    app.add_typer(hierarchy_app, name="hierarchy")
