"""What an asset file refers to, and where a reference may lead: the one parser that the asset's closure
(:mod:`closure`: the store, the render cache key, leaderboard bundles) and the loaders (:mod:`obj`,
:mod:`gltf_data`, :mod:`gltf_materials`) share, so a file the loader reads is always a file the closure
holds.

Light module (standard library only).

- OBJ: ``mtllib NAME`` (the rest of the line, quotes stripped: names may hold spaces).
- MTL: every texture statement (``map_*``, ``bump``, ``disp``, ``decal``, ``refl``, ``norm``; any case).
  Options before the file name are skipped with their arguments as the MTL spec gives them (Wavefront
  MTL, Paul Bourke's copy): ``-o/-s/-t u [v [w]]``, ``-mm base gain``, ``-bm/-boost/-texres n``,
  numbers in any notation (``1e-9``, ``-.5``, ``+2``); ``-clamp/-blendu/-blendv/-cc on|off``;
  ``-imfchan r|g|b|m|l|z``; ``-type sphere|cube_*``. The name may be quoted; backslashes are folder
  separators (Windows exporters).
- glTF: ``buffers[].uri`` and ``images[].uri`` other than ``data:`` URIs, percent-decoded (RFC 3986).

:func:`resolve` turns a reference into a file inside the asset's folder or raises :class:`ClosureError`
naming the reference: an absolute path (``/x``, ``C:\\x``, ``\\\\server\\x``), a ``file:`` or any other
URI scheme, a path that climbs out with ``..``, or a symlink (of the file or a folder on the way) whose
target lies outside. Policy: such an asset is refused as a whole (``asset_refused``), never rendered
with the reference left out, so a score never depends on a file that a stored copy or a bundle lacks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import struct
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "REFERRING_SUFFIXES", "ClosureError", "MapStatement", "check_main", "decode_text", "gltf_container",
    "gltf_document", "gltf_uris", "mtl_maps", "mtl_materials", "obj_mtllibs", "parse_map", "references",
    "resolve",
]

#: MTL texture statements (lower-cased keys).
_MAP_KEY = re.compile(r"^(map_\w+|bump|disp|decal|refl|norm)$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_ON_OFF = {"on", "off"}
_CHANNELS = {"r", "g", "b", "m", "l", "z"}
_TYPES = {"sphere", "cube_top", "cube_bottom", "cube_front", "cube_back", "cube_left", "cube_right"}
# option -> (min numbers, max numbers) or the set of words it takes.
_OPTIONS: dict[str, tuple[int, int] | set[str]] = {
    "-o": (1, 3), "-s": (1, 3), "-t": (1, 3), "-mm": (1, 2), "-bm": (1, 1), "-boost": (1, 1),
    "-texres": (1, 1), "-clamp": _ON_OFF, "-blendu": _ON_OFF, "-blendv": _ON_OFF, "-cc": _ON_OFF,
    "-imfchan": _CHANNELS, "-type": _TYPES,
}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: "C:" is a drive, not a scheme
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


class ClosureError(OSError):
    """An asset references a file outside its own folder (or is such a symlink); ``str`` says which."""


@dataclass
class MapStatement:
    """One MTL texture statement: ``key`` (lower-case, e.g. ``map_kd``), the file ``name`` as written
    (quotes removed) and ``options`` {``-o``: ["0.5", "0"], ``-clamp``: ["on"], ...} as strings."""

    key: str
    name: str
    options: dict[str, list[str]] = field(default_factory=dict)


def decode_text(data: bytes) -> str:
    """Text of a text-format asset: UTF-8 (with or without BOM) when it decodes, else Windows-1252/
    Latin-1, which decode any byte. Exporters write names and comments in their locale's code page;
    the geometry itself is ASCII either way, so no byte can make a text asset unreadable."""
    for codec in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1")


def _tokens(text: str) -> list[str]:
    """Whitespace-separated tokens with quotes ("a b", 'a b') grouped and removed; backslashes kept."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split, lexer.escape, lexer.commenters = True, "", ""
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: the quote is part of the name
        return text.split()


def parse_map(args: str) -> tuple[str, dict[str, list[str]]]:
    """(file name, options) of the arguments of an MTL texture statement (see the module docstring).

    An option missing its argument ends the options; everything after them is the name, its tokens
    joined by one space ("" when nothing is left)."""
    tokens, options, i = _tokens(args), {}, 0
    while i < len(tokens) and tokens[i].lower() in _OPTIONS:
        key, spec = tokens[i].lower(), _OPTIONS[tokens[i].lower()]
        values: list[str] = []
        i += 1
        if isinstance(spec, set):
            if i < len(tokens) and tokens[i].lower() in spec:
                values, i = [tokens[i].lower()], i + 1
        else:
            while i < len(tokens) and len(values) < spec[1] and _NUMBER.match(tokens[i]):
                values.append(tokens[i])
                i += 1
        options[key] = values
    return " ".join(tokens[i:]), options


def obj_mtllibs(text: str) -> list[str]:
    """The MTL file names of an OBJ's ``mtllib`` statements, in order, without duplicates."""
    names = []
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0] == "mtllib":
            name = " ".join(_tokens(parts[1]))
            if name and name not in names:
                names.append(name)
    return names


def mtl_materials(text: str) -> dict[str, dict[str, str]]:
    """``{material name: {lower-case key: rest of line}}`` of an MTL file (later statements win)."""
    materials: dict[str, dict[str, str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        key, rest = key.strip(), rest.strip()
        if key == "newmtl":
            current = materials.setdefault(rest, {})
        elif current is not None:
            current[key.lower()] = rest
    return materials


def mtl_maps(text: str) -> list[MapStatement]:
    """Every texture statement of an MTL file, inside a material or not, in file order."""
    out = []
    for raw in text.splitlines():
        key, _, rest = raw.strip().partition(" ")
        if _MAP_KEY.match(key.lower()) and rest.strip():
            name, options = parse_map(rest.strip())
            out.append(MapStatement(key.lower(), name, options))
    return out


def gltf_container(data: bytes) -> tuple[bytes, bytes | None]:
    """(JSON bytes, BIN chunk or None) of a ``.glb`` (magic ``glTF``, glTF 2.0 §4.4) or ``.gltf`` file.
    Raises ``ValueError`` saying what is wrong with a GLB's header or chunks."""
    if data[:4] != b"glTF":
        return data, None
    if len(data) < 20:
        raise ValueError(f"GLB header is cut off ({len(data)} bytes)")
    _, _, length = struct.unpack_from("<III", data, 0)
    if length > len(data):
        raise ValueError(f"GLB header declares {length:,} bytes but the file holds {len(data):,} "
                         "(truncated download?)")
    chunks, offset = [], 12
    while offset + 8 <= length:
        size, kind = struct.unpack_from("<II", data, offset)
        if offset + 8 + size > length:
            raise ValueError(f"GLB chunk at byte {offset} declares {size:,} bytes, past the end of the "
                             f"{length:,}-byte file")
        chunks.append((kind, data[offset + 8: offset + 8 + size]))
        offset += 8 + size
    if not chunks or chunks[0][0] != 0x4E4F534A:
        raise ValueError("GLB has no JSON chunk first")
    return chunks[0][1], next((c for k, c in chunks[1:] if k == 0x004E4942), None)


def gltf_document(json_bytes: bytes) -> dict:
    """The glTF JSON object. Raises ``ValueError`` for text that is not UTF-8 JSON holding an object,
    including nesting too deep to parse (``RecursionError`` is turned into a ``ValueError``)."""
    try:
        doc = json.loads(json_bytes.decode("utf-8-sig"))
    except RecursionError as exc:
        raise ValueError("glTF JSON is nested too deeply to parse") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"glTF JSON could not be parsed ({exc})") from exc
    if not isinstance(doc, dict):
        raise ValueError("glTF JSON is not an object")
    return doc


def gltf_uris(doc: dict) -> list[str]:
    """The external URIs of a glTF document's buffers and images (not ``data:``), percent-decoded."""
    out = []
    for key in ("buffers", "images"):
        items = doc.get(key)
        for item in items if isinstance(items, list) else []:
            uri = item.get("uri") if isinstance(item, dict) else None
            if isinstance(uri, str) and not uri.startswith("data:"):
                out.append(urllib.parse.unquote(uri))
    return out


def _refuse(asset: Path, name: str, why: str) -> ClosureError:
    return ClosureError(f"refused: {asset.name} references {name!r}, {why}, outside the asset's folder "
                        f"{asset.parent.resolve()}; an asset may only use files inside its own folder")


def resolve(asset: Path, name: str, referrer: str = "") -> tuple[str, Path]:
    """(normalised name relative to the asset's folder, real path) of reference ``name`` made by the
    file ``referrer`` (relative to the asset's folder; "" for the asset itself). Backslashes are folder
    separators in both ``name`` and ``referrer`` (so ``mtllib sub\\a.mtl``'s textures are looked up in
    ``sub/`` by the closure and the loaders alike). The file need not exist. Raises
    :class:`ClosureError` when the reference leaves the folder (module docstring)."""
    root = asset.parent.resolve()
    ref = name.strip().replace("\\", "/")
    if _SCHEME.match(ref):
        raise _refuse(asset, name, "a URI (only relative file names are read)")
    if os.path.isabs(ref) or _DRIVE.match(name.strip()) or ref.startswith("//"):
        raise _refuse(asset, name, "an absolute path")
    rel = os.path.normpath(os.path.join(os.path.dirname(referrer.replace("\\", "/")), ref))
    if rel == "." or not ref:
        raise _refuse(asset, name, "which names the folder itself, not a file in it")
    if rel == ".." or rel.startswith("../"):
        raise _refuse(asset, name, "which climbs out with '..'")
    candidate = root / rel
    real = candidate.resolve()
    if real != root and root not in real.parents:
        raise _refuse(asset, name, f"which resolves through a symlink to {real}")
    return rel, real


def check_main(asset: Path) -> Path:
    """The asset's own real path; raises :class:`ClosureError` if it is a symlink leading out of its
    folder."""
    root, real = asset.parent.resolve(), asset.resolve()
    if root not in real.parents:
        raise ClosureError(f"refused: {asset.name} is a symlink to {real}, outside its folder {root}")
    return real


REFERRING_SUFFIXES = (".gltf", ".glb", ".obj", ".mtl")


def references(path: Path, data: bytes | None = None) -> list[str]:
    """The names file ``path`` refers to, by its suffix, as written (not yet checked); ``data``: its
    bytes when the caller has them (read here only for the suffixes that can refer to files). An
    unparsable glTF refers to nothing here (its loader reports it)."""
    suffix = path.suffix.lower()
    if suffix not in REFERRING_SUFFIXES:
        return []
    data = path.read_bytes() if data is None else data
    if suffix in (".gltf", ".glb"):
        try:
            doc = gltf_document(gltf_container(data)[0])
        except (ValueError, struct.error):
            return []
        return gltf_uris(doc)
    if suffix == ".obj":
        return obj_mtllibs(decode_text(data))
    if suffix == ".mtl":
        return [m.name for m in mtl_maps(decode_text(data)) if m.name]
    return []
