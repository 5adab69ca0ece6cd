"""An asset's file closure: the file and everything it references (glTF buffers and images, OBJ
MTL files and their texture maps, in sub-folders too), and the sha256 that names the whole closure.

Light module (standard library only). A reference is resolved relative to the asset's folder; one that
leaves it (``../x.png``, an absolute path, a symlink pointing outside) is refused with
:class:`ClosureError`, so that a stored asset can never pull in files from elsewhere on the machine.
A reference to a file that does not exist is left out (the loader reports it: a missing glTF buffer is
``corrupt_file``, a missing MTL or texture is a note and an uncoloured surface).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from pathlib import Path

__all__ = ["ClosureError", "asset_closure", "closure_sha256"]

_MAP_KEYS = re.compile(r"^\s*(map_\w+|bump|disp|decal|refl|norm)\s+(.+)$", re.IGNORECASE | re.MULTILINE)
_MAP_OPTIONS = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1,
                "-mm": 2, "-o": 3, "-s": 3, "-t": 3, "-texres": 1, "-type": 1}


class ClosureError(OSError):
    """An asset references a file outside its own folder (or is such a symlink); ``str`` says which."""


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _map_file(args: str) -> str:
    tokens, i = args.split(), 0
    while i < len(tokens) and tokens[i] in _MAP_OPTIONS:
        n, i = _MAP_OPTIONS[tokens[i]], i + 1
        taken = 0
        while i < len(tokens) and taken < n and (tokens[i].lstrip("-").replace(".", "", 1).isdigit()
                                                 or tokens[i] in ("on", "off")):
            i, taken = i + 1, taken + 1
    return " ".join(tokens[i:])


def _references(path: Path) -> list[str]:
    """Relative names a file refers to (not yet checked)."""
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix == ".gltf" or (suffix == ".glb" and data[:4] == b"glTF"):
        if suffix == ".glb":
            size = int.from_bytes(data[12:16], "little")
            data = data[20:20 + size]
        try:
            doc = json.loads(_decode(data))
        except (ValueError, TypeError):
            return []  # the loader reports an unparsable file
        if not isinstance(doc, dict):
            return []
        uris = [item.get("uri") for key in ("buffers", "images") for item in doc.get(key, []) or []
                if isinstance(item, dict)]
        return [urllib.parse.unquote(u) for u in uris if isinstance(u, str) and not u.startswith("data:")]
    if suffix == ".obj":
        return [line.split(None, 1)[1].strip() for line in _decode(data).splitlines()
                if line.startswith("mtllib") and len(line.split(None, 1)) == 2]
    if suffix == ".mtl":
        return [_map_file(m.group(2)).replace("\\", "/") for m in _MAP_KEYS.finditer(_decode(data))]
    return []


def _inside(root: Path, candidate: Path, name: str, asset: Path) -> Path:
    """``candidate`` resolved, checked to lie inside ``root`` (symlinks followed)."""
    resolved = candidate.resolve()
    if os.path.isabs(name) or (resolved != root and root not in resolved.parents):
        kind = "a symlink to" if candidate.is_symlink() else "resolves to"
        raise ClosureError(f"refused: {asset.name} references {name!r}, which {kind} {resolved}, outside "
                           f"the asset's folder {root}")
    return resolved


def asset_closure(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """(name relative to the asset's folder, real path) of the asset and every file it references,
    transitively; the asset first, then sorted by name. Raises :class:`ClosureError` for a reference
    (or the asset itself, when it is a symlink) that leaves the asset's folder."""
    asset = Path(path)
    root = asset.parent.resolve()
    _inside(root, asset, asset.name, asset)
    found: dict[str, Path] = {asset.name: asset.resolve()}
    queue = [asset.name]
    while queue:
        name = queue.pop()
        for ref in _references(found[name]):
            rel = os.path.normpath(str(Path(name).parent / ref))
            if rel in found:
                continue
            candidate = root / rel
            real = _inside(root, candidate, ref, asset)
            if real.is_file():
                found[rel] = real
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
