"""Per-render feature arrays and set-metric values, cached on disk by content hash.

- ``ViewFeatures`` computes (or loads from ``features/``) one feature array per encoder for the views of
  one render directory, keyed by the render's content hash and the suite's card hash, so a re-run or a
  resumed run never encodes the same images twice. ``encode_views`` is the one place views become
  features (``mme3dr evaluate`` and ``mme3dr score`` both call it).
- ``SetMetricMemo`` remembers KD/FD values by a hash of their exact inputs: a resumed or re-merged run
  with the same features skips ~10 s of KD subsets and FD matrix square roots at 249 cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mme3dr.hashing import file_sha256
from mme3dr.output_files import atomic_write_text

__all__ = ["SetMetricMemo", "ViewFeatures", "encode_views", "load_feature_file", "render_content_sha256",
           "suite_hash"]


def encode_views(suite: Any, rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Every encoder of ``suite`` on ``(V, H, W, 3)`` uint8 views already composited onto the background:
    ``{encoder name: (V, d) float64}`` (CLIP's image tower for ``clip``)."""
    feats: dict[str, np.ndarray] = {}
    for name, encoder in suite.encoders().items():
        fn = encoder.encode_images if name == "clip" else encoder
        feats[name] = np.asarray(fn(rgb), dtype=np.float64)
    return feats


def render_content_sha256(render_dir: str | os.PathLike) -> str:
    """sha256 over the view PNGs of a render directory (name + bytes hash of each, sorted)."""
    h = hashlib.sha256()
    files = sorted(Path(render_dir).glob("[0-9][0-9][0-9].png"))
    if not files:
        raise FileNotFoundError(f"{render_dir}: no NNN.png views")
    for f in files:
        h.update(f"{f.name}:{file_sha256(f)}\n".encode())
    return h.hexdigest()


def suite_hash(card: dict[str, Any]) -> str:
    """Identity of a feature suite: its encoders' card (ids, weight hashes, sizes) and background."""
    key = {"encoders": card.get("encoders"), "background": card.get("background")}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class ViewFeatures:
    """Per-render feature arrays of a ``FeatureSuite``, cached as ``<dir>/<render_sha>.<suite>.npz``.

    Safe to call from several threads at once (the encoder threads of ``render_and_encode``)."""

    def __init__(self, suite: Any, features_dir: str | os.PathLike) -> None:
        self.suite = suite
        self._lock = threading.Lock()
        self.dir = Path(features_dir)
        self.suite_id = suite_hash(suite.card())[:16]
        self.computed = 0
        self.cached = 0
        # Render cache entries are immutable (named by a hash of everything that makes them), so the
        # content hash of an entry's views is computed once and remembered here: a cached re-run then
        # reads no PNG at all.
        self._hash_file = self.dir / "render_sha256.json"
        self._hashes: dict[str, str] = (
            json.loads(self._hash_file.read_text(encoding="utf-8")) if self._hash_file.is_file() else {}
        )
        self._hashes_dirty = False

    def render_sha(self, render_dir: str | os.PathLike) -> str:
        """``render_content_sha256`` of a render cache entry, memoised by the entry's name."""
        key = Path(render_dir).name
        if key not in self._hashes:
            sha = render_content_sha256(render_dir)
            with self._lock:
                self._hashes[key] = sha
                self._hashes_dirty = True
        return self._hashes[key]

    def save(self) -> None:
        """Persist the memo of render hashes (atomically)."""
        with self._lock:
            if not self._hashes_dirty:
                return
            atomic_write_text(self._hash_file, json.dumps(self._hashes, sort_keys=True))
            self._hashes_dirty = False

    def path(self, render_sha: str) -> Path:
        return _feature_path(self.dir, render_sha, self.suite_id)

    def get(self, render_dir: str | os.PathLike, render_sha: str, views: np.ndarray | None = None
            ) -> dict[str, np.ndarray]:
        """The render's features: from ``features/`` if there, else encoded from ``views`` (its
        ``(V, H, W, 4)`` RGBA views, when the caller already holds them) or from its PNGs."""
        p = self.path(render_sha)
        if p.is_file():
            with self._lock:
                self.cached += 1
            return _read_features(p)
        from mme3dr.render.cache import load_views
        from mme3dr.render.renderer import composite_on_white

        rgb = composite_on_white(load_views(render_dir) if views is None else views)
        feats = encode_views(self.suite, rgb)
        from mme3dr.output_files import atomic_path

        with atomic_path(p, suffix=".npz") as tmp:  # a full disk leaves no cut or stray file
            np.savez(tmp, **feats)
        with self._lock:
            self.computed += 1
        return feats


class SetMetricMemo:
    """KD/FD results keyed by sha256 of (metric, the source of the code computing it, numpy version,
    both feature arrays' shape and float64 bytes): a hit is the value that exact computation gave."""

    #: Modules whose source enters the key (by module name: the package re-exports functions as fd, kid).
    CODE_MODULES = ("definitions", "fd", "kid", "feature_matrix")

    def __init__(self, directory: str | os.PathLike) -> None:
        import importlib

        self.dir = Path(directory)
        self.hits = 0
        h = hashlib.sha256()
        for name in self.CODE_MODULES:
            h.update(Path(importlib.import_module(f"mme3dr.metrics.{name}").__file__).read_bytes())
        self.code_sha256 = h.hexdigest()

    def key(self, name: str, gen: np.ndarray, ref: np.ndarray) -> str:
        h = hashlib.sha256(json.dumps({"metric": name, "code": self.code_sha256,
                                       "numpy": np.__version__}, sort_keys=True).encode())
        for a in (gen, ref):
            a = np.ascontiguousarray(a, dtype=np.float64)
            h.update(f"{a.shape}|".encode())
            h.update(memoryview(a).cast("B"))
        return h.hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.dir / f"{key}.json"
        if not p.is_file():
            return None
        self.hits += 1
        return json.loads(p.read_text(encoding="utf-8"))

    def put(self, key: str, value: dict[str, Any]) -> None:
        # json writes floats with repr: they read back bit for bit.
        atomic_write_text(self.dir / f"{key}.json", json.dumps(value, sort_keys=True))


def _feature_path(directory: str | os.PathLike, render_sha: str, suite_id: str) -> Path:
    return Path(directory) / f"{render_sha}.{suite_id}.npz"


def _read_features(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def load_feature_file(features_dirs: Iterable[Path], render_sha: str, suite_id: str) -> dict[str, np.ndarray]:
    """Find ``<render_sha>.<suite_id>.npz`` in any of ``features_dirs`` (shards of one run)."""
    for d in features_dirs:
        p = _feature_path(d, render_sha, suite_id)
        if p.is_file():
            return _read_features(p)
    raise FileNotFoundError(
        f"features for render {render_sha[:12]}… (suite {suite_id}) are missing from "
        f"{', '.join(str(d) for d in features_dirs)}; re-run `mme3dr evaluate --resume` for that shard"
    )
