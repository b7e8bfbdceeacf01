"""The hdsl language server (``hdsl lsp``): diagnostics, hover, completion, definition, formatting.

``analysis`` and ``features`` are pure functions over a document's text (tested
directly); ``server`` only wires them to pygls. pygls is an optional extra:
``pip install 'hdsl[lsp]'``.
"""
