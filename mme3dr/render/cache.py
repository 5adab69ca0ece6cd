"""Render one asset into the content-addressed render cache (``NNN.png`` + ``transforms.json``).

A cache entry is keyed by everything that changes its pixels: the asset's sha256, the rig hash, the
shading and render-protocol version, the backend, and the frame options (``up_axis``, ``normalise``).
An entry is built in a temporary folder and renamed into place once complete, so a crash never leaves
a half-written entry and concurrent workers cannot see one. Light at import: the renderer is imported
only when something must be drawn.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mme3dr.assets.closure import ClosureError, asset_closure, closure_sha256
from mme3dr.assets.mesh import (
    DEFAULT_MAX_FACES,
    MeshError,
    MeshFailure,
    check_asset_file,
    load_mesh,
)
from mme3dr.render.cameras import Rig

# Bump when anything that changes rendered pixels changes (shading, lights, materials, PNG encoding).
# v1.1: the moderngl renderer and its shader, the material model (issue 12); v1 entries are not reused.
RENDER_PROTOCOL = "mme3dr-render-v1.1"
# Our own minimal PNG writer (filter type 0, one IDAT, zlib level 1): ~3 ms a 512^2 RGBA view of a small
# object against ~11 ms for Pillow at any level (its per-row filtering dominates). Level 1 against 3: 7
# against 11 ms a view of a 100k-face object filling the view, for 8 % more bytes (benchmarks/
# render_bench.py: the encoder was a third of the per-asset path's cost above the bare draw). Bytes are
# deterministic for one zlib build.
PNG_COMPRESS_LEVEL = 1
ENTRY_META = "render.json"


@dataclass
class RenderOutcome:
    """What happened to one asset. ``failure`` is None on success; ``render_dir`` holds the views."""

    asset_path: str
    asset_sha256: str | None = None
    render_dir: str | None = None
    failure: MeshFailure | None = None
    detail: str = ""
    cached: bool = False
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)
    error: str | None = None  # an unexpected renderer error (not the asset's fault), if any
    #: The render passed the pool's deadline (``error`` says what was waiting): ``render_timeout``.
    timed_out: bool = False
    #: The views just drawn, (V, H, W, 4) uint8 RGBA, the same pixels as the entry's PNGs; only when
    #: asked for (``keep_views``) and only for a fresh render, so a caller can skip decoding them again.
    views: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.error is None

    @property
    def reason(self) -> str | None:
        """The failure reason as a string (``render_timeout`` past the pool's deadline, ``render_error``
        for other unexpected renderer errors)."""
        if self.failure is not None:
            return self.failure.value
        if self.timed_out:
            return "render_timeout"
        return "render_error" if self.error else None


def cache_key(
    asset_sha256: str,
    rig: Rig,
    *,
    shading: str = "protocol",
    backend: str,
    up_axis: str = "y",
    normalise: bool = True,
) -> str:
    """Hex sha256 naming the cache entry of one asset rendered one way."""
    spec = {
        "asset_sha256": asset_sha256,
        "rig_hash": rig.hash,
        "shading": shading,
        "protocol": RENDER_PROTOCOL,
        "backend": backend,
        "up_axis": up_axis,
        "normalise": bool(normalise),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def entry_dir(cache_root: str | os.PathLike, key: str) -> Path:
    return Path(cache_root) / key[:2] / key


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(rgba: np.ndarray, level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """(H, W, 4) uint8 RGBA -> PNG bytes (8-bit RGBA, no interlace, filter 0 on every row; PNG spec
    ISO/IEC 15948: signature, IHDR, one zlib IDAT, IEND)."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"expected (H, W, 4) uint8, got {rgba.shape}")
    h, w = rgba.shape[:2]
    raw = np.zeros((h, w * 4 + 1), np.uint8)  # each scanline starts with its filter-type byte (0)
    raw[:, 1:] = rgba.reshape(h, w * 4)
    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8 bits, colour type 6 = RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
        + _png_chunk(b"IEND", b"")
    )


def write_views(directory: Path, rgba: np.ndarray, rig: Rig) -> None:
    """Write ``NNN.png`` (RGBA) for each view and the rig's ``transforms.json`` into ``directory``."""
    for i, view in enumerate(rgba):
        (directory / f"{i:03d}.png").write_bytes(encode_png(view))
    rig.write_transforms(directory / "transforms.json")


def load_views(render_dir: str | os.PathLike) -> np.ndarray:
    """(V, H, W, 4) uint8 RGBA views of a render directory, in its transforms.json frame order."""
    from PIL import Image

    render_dir = Path(render_dir)
    frames = json.loads((render_dir / "transforms.json").read_text())["frames"]
    return np.stack([np.asarray(Image.open(render_dir / f["file_path"]).convert("RGBA")) for f in frames])


@functools.cache
def _library_versions() -> dict:
    """Versions of the libraries a render depends on, looked up once per process (each lookup scans
    ``sys.path``; this ran once per rendered asset)."""
    from importlib import metadata

    out = {}
    for name in ("moderngl", "glcontext", "trimesh", "DracoPy", "numpy", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _failure(path, sha, exc: MeshError, t0: float) -> RenderOutcome:
    return RenderOutcome(str(path), sha, None, exc.reason, exc.detail, False, time.perf_counter() - t0)


def render_asset(
    path: str | os.PathLike,
    rig: Rig,
    cache_root: str | os.PathLike,
    *,
    up_axis: str = "y",
    shading: str = "protocol",
    backend: str | None = None,
    normalise: bool = True,
    max_faces: int = DEFAULT_MAX_FACES,
    keep_views: bool = False,
) -> RenderOutcome:
    """Render ``path`` with ``rig`` into the cache (or find it there). Asset problems come back as a
    typed ``failure``; nothing is raised for a bad asset. Environment problems (no OpenGL) raise.
    ``keep_views`` returns a fresh render's RGBA views in ``outcome.views`` as well."""
    from mme3dr.render.renderer import get_renderer, resolve_backend

    t0 = time.perf_counter()
    path = Path(path)
    try:
        check_asset_file(path)
        sha = closure_sha256(asset_closure(path))  # the file and what it references (textures, .bin)
    except ClosureError as exc:  # a reference leaving the asset's folder: refused, never read
        return _failure(path, None, MeshError(MeshFailure.asset_refused, path, str(exc)), t0)
    except MeshError as exc:
        return _failure(path, None, exc, t0)
    except Exception as exc:  # noqa: BLE001 - whatever reading the closure raised is this asset's failure
        error = f"{type(exc).__name__} while reading the asset's files: {exc}"
        return RenderOutcome(str(path), None, None, None, error, False, time.perf_counter() - t0, error=error)
    backend = resolve_backend(backend)
    key = cache_key(sha, rig, shading=shading, backend=backend, up_axis=up_axis, normalise=normalise)
    final = entry_dir(cache_root, key)
    if (final / ENTRY_META).is_file():
        meta = json.loads((final / ENTRY_META).read_text())
        return RenderOutcome(str(path), sha, str(final), None, "", True, time.perf_counter() - t0, meta)
    try:
        mesh = load_mesh(path, up_axis=up_axis, normalise=normalise, max_faces=max_faces, sha256=sha)
    except MeshError as exc:
        return _failure(path, sha, exc, t0)
    except Exception as exc:  # a loader bug, not a typed asset problem: record it, keep the batch going
        error = f"{type(exc).__name__} while loading: {exc}"
        return RenderOutcome(str(path), sha, None, None, error, False, time.perf_counter() - t0, error=error)
    renderer = get_renderer(rig.width, rig.height, backend)  # no context at all: raise (environment)
    try:
        result = renderer.render(mesh, rig, shading=shading, depth=False)
    except Exception as exc:  # the asset tripped the renderer: record it, keep the batch going
        return RenderOutcome(
            str(path), sha, None, None, f"{type(exc).__name__}: {exc}", False, time.perf_counter() - t0,
            error=f"{type(exc).__name__}: {exc}",
        )
    meta = {
        "asset_sha256": sha,
        "asset_name": path.name,
        "rig": rig.name,
        "rig_hash": rig.hash,
        "n_views": rig.n_views,
        "size": [rig.width, rig.height],
        "shading": shading,
        "protocol": RENDER_PROTOCOL,
        "backend": renderer.backend,
        "gl_renderer": renderer.gl_renderer,
        "up_axis": up_axis,
        "normalise": normalise,
        "n_faces": mesh.n_faces,
        "notes": list(mesh.notes),  # what the loader left out (a missing MTL or texture)
        "versions": dict(_library_versions()),  # a copy: the cached dict must not be changed
    }
    tmp = Path(cache_root) / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        write_views(tmp, result.rgba, rig)
        (tmp / ENTRY_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another worker finished the same entry first: theirs is identical
            if not (final / ENTRY_META).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return RenderOutcome(str(path), sha, str(final), None, "", False, time.perf_counter() - t0, meta,
                         views=result.rgba if keep_views else None)


def export_entry(render_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Place a cache entry's ``NNN.png`` + ``transforms.json`` in ``out_dir`` (hard links when the
    file system allows, else copies)."""
    src, out = Path(render_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Views of an earlier render with more views (say eval24, now reward6) must not linger.
    for stale in [*out.glob("[0-9][0-9][0-9].png"), out / "transforms.json"]:
        stale.unlink(missing_ok=True)
    for f in sorted(src.iterdir()):
        if f.name == ENTRY_META or not f.is_file():
            continue
        target = out / f.name
        target.unlink(missing_ok=True)
        try:
            os.link(f, target)
        except OSError:
            shutil.copyfile(f, target)
    return out
