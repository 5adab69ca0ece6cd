"""A content-addressed store of generated assets: files named by the sha256 of their bytes.

Light module (standard library only). Adapters write wherever they like; the harness copies each
returned file here, so that (1) a re-run or ``--resume`` recognises an asset by its content,
(2) identical outputs are stored once, and (3) the asset a score refers to cannot change afterwards.
Layout: ``<root>/<sha[:2]>/<sha>.<ext>`` plus, for formats with side files (OBJ + MTL + textures,
glTF + .bin), a directory ``<root>/<sha[:2]>/<sha>/`` holding the file and its siblings.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mme3dr.hashing import file_sha256

__all__ = ["AssetStore", "StoredAsset"]

#: Formats whose file can reference sibling files (materials, buffers, textures).
_WITH_SIDE_FILES = {"obj", "gltf"}


@dataclass(frozen=True)
class StoredAsset:
    sha256: str
    path: Path
    format: str


class AssetStore:
    """``put`` copies a file in (atomically) and returns where it lives; ``get`` finds it again."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _target(self, sha: str, fmt: str, name: str) -> Path:
        if fmt in _WITH_SIDE_FILES:
            return self.root / sha[:2] / sha / name
        return self.root / sha[:2] / f"{sha}.{fmt}"

    def put(self, path: str | os.PathLike, fmt: str | None = None) -> StoredAsset:
        """Store the file at ``path`` (and its sibling files, for OBJ/glTF); idempotent."""
        src = Path(path)
        fmt = (fmt or src.suffix.lstrip(".")).lower()
        sha = file_sha256(src)
        target = self._target(sha, fmt, src.name)
        if target.is_file():
            return StoredAsset(sha, target, fmt)
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt in _WITH_SIDE_FILES:
            # Copy the whole directory's regular files (materials/textures are referenced relatively).
            tmp_dir = target.parent.with_name(target.parent.name + ".partial")
            shutil.rmtree(tmp_dir, ignore_errors=True)
            tmp_dir.mkdir(parents=True)
            for sibling in src.parent.iterdir():
                if sibling.is_file():
                    shutil.copyfile(sibling, tmp_dir / sibling.name)
            shutil.rmtree(target.parent, ignore_errors=True)
            tmp_dir.replace(target.parent)
        else:
            tmp = target.with_name(target.name + ".partial")
            shutil.copyfile(src, tmp)
            tmp.replace(target)
        return StoredAsset(sha, target, fmt)

    def get(self, sha: str, fmt: str) -> Path | None:
        """The stored file for ``sha`` (``None`` when absent)."""
        if fmt in _WITH_SIDE_FILES:
            d = self.root / sha[:2] / sha
            files = [p for p in d.glob(f"*.{fmt}")] if d.is_dir() else []
            return files[0] if files else None
        p = self.root / sha[:2] / f"{sha}.{fmt}"
        return p if p.is_file() else None
