"""A content-addressed store of generated assets: each asset is its whole file closure, named by its hash.

Light module (standard library only). Adapters write wherever they like; the harness copies each
returned asset here, so that (1) a re-run or ``--resume`` recognises an asset by its content,
(2) identical outputs are stored once, and (3) the asset a score refers to cannot change afterwards.

An asset is its file closure (:func:`asset_closure`): a ``.gltf`` with its ``.bin`` and images, an OBJ
with its MTL files and textures, sub-folders included; never the other files of the folder it came
from. Layout: a single-file asset is ``<root>/<sha[:2]>/<sha>.<ext>`` (sha = the file's sha256); a
closure of several files is the directory ``<root>/<sha[:2]>/<sha>/`` holding the files under their
relative names plus ``closure.json`` naming the main file (sha = :func:`closure_sha256`).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from mme3dr.assets.closure import ClosureError, asset_closure, closure_sha256

__all__ = ["AssetStore", "ClosureError", "StoredAsset"]

_MANIFEST = "closure.json"


@dataclass(frozen=True)
class StoredAsset:
    sha256: str
    path: Path
    format: str


class AssetStore:
    """``put`` copies an asset's closure in (atomically) and returns where it lives; ``get`` finds it."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def put(self, path: str | os.PathLike, fmt: str | None = None) -> StoredAsset:
        """Store the asset at ``path`` with every file it references; idempotent. Raises
        :class:`ClosureError` (an ``OSError``) when it references a file outside its folder."""
        src = Path(path)
        fmt = (fmt or src.suffix.lstrip(".")).lower()
        closure = asset_closure(src)
        sha = closure_sha256(closure)
        if len(closure) == 1:
            target = self.root / sha[:2] / f"{sha}.{fmt}"
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.partial")
                try:
                    shutil.copyfile(closure[0][1], tmp)
                    tmp.replace(target)
                except BaseException:  # a full disk, a kill: leave no half-copied file behind
                    tmp.unlink(missing_ok=True)
                    raise
            return StoredAsset(sha, target, fmt)
        directory = self.root / sha[:2] / sha
        main = directory / closure[0][0]
        if (directory / _MANIFEST).is_file():
            return StoredAsset(sha, main, fmt)
        tmp_dir = directory.with_name(f"{sha}.{uuid.uuid4().hex[:8]}.partial")
        try:
            for name, real in closure:
                (tmp_dir / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(real, tmp_dir / name)
            manifest = {"main": closure[0][0], "files": [n for n, _ in closure]}
            (tmp_dir / _MANIFEST).write_text(json.dumps(manifest))
        except BaseException:  # a full disk, a kill: leave no half-copied folder behind
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        try:
            shutil.rmtree(directory, ignore_errors=True)  # a legacy or half-written entry
            tmp_dir.replace(directory)
        except OSError:  # another process stored the same closure first: theirs is identical
            shutil.rmtree(tmp_dir, ignore_errors=True)
            if not (directory / _MANIFEST).is_file():
                raise
        return StoredAsset(sha, main, fmt)

    def get(self, sha: str, fmt: str) -> Path | None:
        """The stored main file for ``sha`` (``None`` when absent)."""
        directory = self.root / sha[:2] / sha
        if (directory / _MANIFEST).is_file():
            main = directory / json.loads((directory / _MANIFEST).read_text())["main"]
            return main if main.is_file() else None
        if directory.is_dir():  # stores written before closures: one sibling-folder copy per asset
            files = sorted(directory.glob(f"*.{fmt}"))
            return files[0] if len(files) == 1 else None
        p = self.root / sha[:2] / f"{sha}.{fmt}"
        return p if p.is_file() else None
