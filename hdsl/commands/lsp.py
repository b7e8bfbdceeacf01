"""``hdsl lsp``: the language server (stdio by default) that editors start."""

from __future__ import annotations

from typing import Optional

import typer


def lsp(
    stdio: bool = typer.Option(True, "--stdio/--no-stdio", help="talk LSP on standard input/output (the default)"),
    tcp: Optional[int] = typer.Option(None, "--tcp", metavar="PORT", help="listen on this TCP port instead (debugging)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address for --tcp"),
) -> None:
    """Run the hdsl language server: diagnostics, hover, completion, go to definition, formatting.

    Needs pygls, from the optional 'lsp' extra of hdsl.
    """
    try:
        from hdsl.lsp.server import main
    except ImportError as exc:
        from hdsl.diagnostics import HdslError

        raise HdslError.single("E901", f"the language server needs pygls: {exc}",
                               hint="install it with: pip install 'hdsl[lsp]'") from None
    main((host, tcp) if tcp is not None else None)


def register(app: typer.Typer) -> None:
    app.command(name="lsp")(lsp)
