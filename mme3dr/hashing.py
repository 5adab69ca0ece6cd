"""Content hashes: the one streamed file sha256 every stage keys its caches and records by.

Stdlib only, so the light modules (manifest, toys4k, results, leaderboard) can use it without numpy.
"""

from __future__ import annotations

import hashlib
import os

#: Read size for streaming: large enough to keep hashing I/O-bound, small enough for any asset.
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, streamed in 1 MiB chunks (content address of assets, weights,
    Toys4K sources and bundle members).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:12]
    'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
