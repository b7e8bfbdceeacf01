"""The hdsl language server (``hdsl lsp``): diagnostics, hover, completion, definition, formatting.

``analysis`` (the checker's result plus a symbol index that survives syntax
errors) and the feature modules (``diagnostics``, ``hover``, ``completion``,
``outline``; gathered in ``features``) are pure functions over a document's
text, tested directly; ``server`` only wires them to pygls. pygls is an
optional extra: ``pip install 'hdsl[lsp]'``.
"""
