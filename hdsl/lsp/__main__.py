"""``python -m hdsl.lsp``: the language server on standard input/output."""

from hdsl.lsp.server import main

if __name__ == "__main__":
    main()
