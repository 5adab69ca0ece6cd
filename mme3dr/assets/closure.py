"""An asset's file closure: the file and everything it references (glTF buffers and images, OBJ
MTL files and their texture maps, in sub-folders too), and the sha256 that names the whole closure.

Light module (standard library only). References are found and resolved by :mod:`references`, the
parser the loaders use too, so the closure holds every file a loader can read. A reference that leaves
the asset's folder (``../x.png``, an absolute path, a ``file:`` URI, a symlink pointing outside) is
refused with :class:`ClosureError`, so that a stored asset can never pull in files from elsewhere on
the machine. A reference to a file that does not exist is left out (the loader reports it: a missing
glTF buffer is ``corrupt_file``, a missing MTL or texture is a note and an uncoloured surface).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mme3dr.assets.references import REFERRING_SUFFIXES, ClosureError, check_main, references, resolve

__all__ = ["ClosureError", "asset_closure", "closure_sha256"]


def asset_closure(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """(name relative to the asset's folder, real path) of the asset and every file it references,
    transitively; the asset first, then sorted by name. Raises :class:`ClosureError` for a reference
    (or the asset itself, when it is a symlink) that leaves the asset's folder."""
    asset = Path(path)
    found: dict[str, Path] = {asset.name: check_main(asset)}
    queue = [asset.name]
    while queue:
        name = queue.pop()
        real = found[name]
        refers = Path(name).suffix.lower() in REFERRING_SUFFIXES  # by the name the loader sees
        for ref in references(Path(name), real.read_bytes()) if refers else []:
            rel, target = resolve(asset, ref, referrer=name)
            if rel not in found and target.is_file():
                found[rel] = target
                queue.append(rel)
    main = found.pop(asset.name)
    return [(asset.name, main)] + sorted(found.items())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def closure_sha256(closure: list[tuple[str, Path]]) -> str:
    """The content address of a closure: the file's own sha256 for a single file (so single-file
    assets keep their plain file hash), else sha256 of the JSON list [[name, sha256], ...], the asset
    first with the name "" (what it references is named in its bytes; its own name is not content, so
    a renamed copy, as the leaderboard's verifier stages it, keeps its address)."""
    if len(closure) == 1:
        return _file_sha256(closure[0][1])
    listing = [["" if i == 0 else name, _file_sha256(real)] for i, (name, real) in enumerate(closure)]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
