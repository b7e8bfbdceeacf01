"""Content keys for the files a spec names (networks, data).

Every cache of something read from a file (imported graphs, Z3 encodings,
onnxruntime sessions, data sets, stored results) is keyed on the file's
*contents*, not its modification time: a model rewritten within the file
system's timestamp granularity, with the same size, must never be answered by
a proof about the old one. Hashing is cheap next to what the caches save
(about 2 ms for a 1 MB network).
"""

from __future__ import annotations

import hashlib
import os


def content_digest(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes (OSError if it cannot be read)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
