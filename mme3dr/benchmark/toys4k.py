"""Toys4K reference assets: where each case's ground-truth object comes from, and in which frame.

Light module (standard library only; Blender runs as an external process via
``mme3dr.benchmark.blender_convert``).

Four sources, each giving every case a mesh path and its **source frame** (``up_axis``, passed to
``mesh.load_mesh``), verifying hashes where the metadata has them:

============== ======================================= =========== ==========================================
kind           input                                   up_axis     hash check
============== ======================================= =========== ==========================================
``blend-zip``  official ``toys4k_blend_files.zip``     ``"y"``     the .blend's sha256 against the case's
               converted to .glb by Blender                        ``sha256`` (TRELLIS hashes the .blend)
``obj-zip``    official ``toys4k_obj_files.zip``       ``"y"``*    none in the metadata (geometry only)
               (``<cat>/<name>/mesh.obj``)
``trellis``    TRELLIS render layout: metadata CSV +   ``"z"``     render folder named by the sha256 in the
               ``renders/<sha256>/{NNN.png, mesh.ply,              metadata; views and transforms.json exist
               transforms.json}``
``folder``     a plain folder of meshes                as declared ``SHA256SUMS`` in the folder, when present
============== ======================================= =========== ==========================================

Frames, precisely: a ``.blend`` scene is Z up, but the ``.glb`` our converter writes is Y up (glTF
convention, ``export_yup=True``), so ``blend-zip`` yields ``"y"``. TRELLIS's ``mesh.ply`` is written by
Blender in its own Z-up world frame (the rose's stem runs along +Z), so ``trellis`` yields ``"z"``.
(*) ``toys4k_obj_files.zip`` has no frame metadata; Blender's OBJ exporter writes Y up by default, which
we assume; pass ``up_axis="z"`` if your copy differs. A folder's frame is whatever its owner declares.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from mme3dr.benchmark.captions import CaptionTable, read_captions_csv
from mme3dr.benchmark.taxonomy import Case
from mme3dr.errors import UserError
from mme3dr.hashing import file_sha256

__all__ = [
    "MESH_SUFFIXES",
    "ReferenceAsset",
    "SourceConfig",
    "Toys4KError",
    "TrellisObject",
    "load_trellis_layout",
    "open_source",
    "resolve_references",
]

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")


class Toys4KError(UserError, ValueError):
    """A source that cannot be used at all (missing/wrong zip, bad CSV): one line, what and what to do."""


@dataclass(frozen=True)
class ReferenceAsset:
    """A case's ground-truth object: load ``path`` with ``mesh.load_mesh(path, up_axis=up_axis)``.

    ``error`` (one line) is set instead of ``path`` when this object could not be provided; the other
    cases are unaffected. ``render_dir`` is set when the source ships ground-truth views (TRELLIS).
    """

    case_id: str
    file_identifier: str
    source: str
    up_axis: str
    path: Path | None = None
    prompt: str | None = None
    sha256: str | None = None
    render_dir: Path | None = None
    error: str | None = None
    detail: dict = field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        return self.path is not None and self.error is None


@dataclass(frozen=True)
class SourceConfig:
    """Where the Toys4K objects are. ``kind``: ``blend-zip`` | ``obj-zip`` | ``trellis`` | ``folder``."""

    kind: str
    path: Path
    cache_dir: Path | None = None  # extraction / conversion cache (zip kinds); default beside the zip
    blender: str | None = None  # blend-zip: a `blender` binary or a python with bpy; default find_blender()
    up_axis: str | None = None  # obj-zip / folder: the frame of the files (default "y")
    metadata: Path | None = None  # trellis: metadata CSV (default <path>/metadata.csv)


def _unsafe(file_identifier: str) -> str | None:
    """Why a ``file_identifier`` cannot name a file under our cache (absolute, ``..``), else ``None``."""
    parts = PurePosixPath(file_identifier).parts
    if file_identifier.startswith("/") or ".." in parts or "\\" in file_identifier or len(parts) < 2:
        return f"{file_identifier!r}: not a Toys4K identifier ('<category>/<name>_NNN/<name>_NNN.blend')"
    return None


def _asset(case: Case, source: str, up_axis: str, **kw) -> ReferenceAsset:
    return ReferenceAsset(case.case_id, case.file_identifier, source, up_axis, prompt=case.prompt, **kw)


def _open_zip(path: Path, what: str, suffix: str) -> tuple[zipfile.ZipFile, dict[str, str]]:
    """Open an official Toys4K zip and index members by ``<cat>/<name>/<file>`` (any top folder dropped)."""
    if not path.is_file():
        raise Toys4KError(
            f"{what} not found at {path}; request Toys4K from its authors (rehg-lab, lowshot-shapebias "
            "toys4k/README.md) and pass the zip's path"
        )
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise Toys4KError(f"{path} is not a zip file; expected the official {what}") from None
    index = {}
    for name in zf.namelist():
        parts = PurePosixPath(name).parts
        if name.endswith(suffix) and len(parts) >= 3 and "__MACOSX" not in parts:
            index["/".join(parts[-3:])] = name
    if not index:
        zf.close()
        raise Toys4KError(f"{path} holds no '<category>/<name>/*{suffix}' files; is it the official {what}?")
    return zf, index


def _extract(zf: zipfile.ZipFile, member: str, dst: Path) -> Path:
    """Extract one member to ``dst`` (never outside it: the name is ours, not the zip's)."""
    if not dst.is_file() or dst.stat().st_size != zf.getinfo(member).file_size:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(dst.suffix + ".partial")
        with zf.open(member) as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        tmp.replace(dst)
    return dst


def _resolve_blend_zip(cases: list[Case], cfg: SourceConfig) -> list[ReferenceAsset]:
    from mme3dr.benchmark.blender_convert import GLB_UP_AXIS, BlenderNotFound, convert_cached

    cache = Path(cfg.cache_dir or cfg.path.parent / "mme3dr-cache")
    zf, index = _open_zip(cfg.path, "toys4k_blend_files.zip", ".blend")
    out: dict[int, ReferenceAsset] = {}
    pending: list[tuple[int, Case, Path]] = []
    with zf:
        for i, c in enumerate(cases):
            member = index.get(c.file_identifier)
            if member is None:
                problem = f"{c.file_identifier}: not in {cfg.path.name}; re-download the zip (incomplete?)"
                out[i] = _asset(c, "blend-zip", GLB_UP_AXIS, error=problem)
                continue
            src = _extract(zf, member, cache / "blend" / c.file_identifier)
            sha = file_sha256(src)
            if c.sha256 and sha != c.sha256:
                out[i] = _asset(
                    c, "blend-zip", GLB_UP_AXIS, sha256=sha,
                    error=f"{c.file_identifier}: sha256 {sha[:12]}… does not match the metadata's "
                    f"{c.sha256[:12]}…; re-download toys4k_blend_files.zip (file changed or corrupt)",
                )
                continue
            pending.append((i, c, src))
    if pending:
        # Blender is looked up only when something is not in the conversion cache yet.
        try:
            results = convert_cached([p for _, _, p in pending], cache / "glb", cfg.blender)
        except BlenderNotFound as e:  # nothing can convert: a source-level error, like a missing zip
            raise Toys4KError(str(e)) from None
        for (i, c, _), r in zip(pending, results, strict=True):
            extra = {"blender_version": r.blender_version, "n_triangles": r.n_triangles, "cached": r.cached}
            out[i] = _asset(c, "blend-zip", GLB_UP_AXIS, path=r.glb, sha256=r.src_sha256, error=r.error,
                            detail=extra)
    return [out[i] for i in range(len(cases))]


def _resolve_obj_zip(cases: list[Case], cfg: SourceConfig) -> list[ReferenceAsset]:
    up = cfg.up_axis or "y"
    cache = Path(cfg.cache_dir or cfg.path.parent / "mme3dr-cache")
    zf, index = _open_zip(cfg.path, "toys4k_obj_files.zip", ".obj")
    out = []
    with zf:
        for c in cases:
            cat, name = PurePosixPath(c.file_identifier).parts[:2]
            member = index.get(f"{cat}/{name}/mesh.obj")
            if member is None:
                problem = f"{cat}/{name}/mesh.obj: not in {cfg.path.name}; re-download the zip (incomplete?)"
                out.append(_asset(c, "obj-zip", up, error=problem))
                continue
            dst = _extract(zf, member, cache / "obj" / cat / name / "mesh.obj")
            for mtl in [k for k in index if k.startswith(f"{cat}/{name}/") and k.endswith(".mtl")]:
                _extract(zf, index[mtl], cache / "obj" / mtl)
            out.append(_asset(c, "obj-zip", up, path=dst))
    return out


@dataclass(frozen=True)
class TrellisObject:
    """One object of a TRELLIS render layout: its captions, mesh and ground-truth views (Z up)."""

    sha256: str
    file_identifier: str | None
    captions: tuple[str, ...]
    prompt: str | None
    render_dir: Path
    mesh_path: Path
    n_views: int


def _read_trellis_metadata(root: Path, metadata: Path | None) -> CaptionTable:
    if not root.is_dir():
        raise Toys4KError(f"TRELLIS layout folder not found: {root}; pass the folder holding renders/")
    meta = metadata or root / "metadata.csv"
    try:
        return read_captions_csv(meta)
    except ValueError as e:
        raise Toys4KError(str(e)) from None


def _check_trellis_dir(d: Path) -> str | None:
    """The one-line problem with a ``renders/<sha256>`` folder, or ``None`` when it is complete."""
    if not d.is_dir():
        return f"{d}: render folder missing; re-run TRELLIS's render step for this object"
    missing = [n for n in ("mesh.ply", "transforms.json", "000.png") if not (d / n).is_file()]
    if missing:
        need = "NNN.png, transforms.json, mesh.ply"
        return f"{d}: missing {', '.join(missing)}; the TRELLIS layout needs {need} per object"
    return None


def load_trellis_layout(
    root: str | Path, metadata: str | Path | None = None
) -> tuple[list[TrellisObject], list[str]]:
    """Read a TRELLIS render layout (``../shared/data/trellis_rose`` has one object).

    Returns the complete objects and one problem line per incomplete or unreadable one.
    """
    root = Path(root)
    table = _read_trellis_metadata(root, Path(metadata) if metadata else None)
    objects, problems = [], list(table.problems)
    for sha, rec in sorted(table.by_sha256.items()):
        d = root / "renders" / sha
        problem = _check_trellis_dir(d)
        if problem:
            problems.append(problem)
            continue
        n_views = sum(1 for p in d.glob("[0-9][0-9][0-9].png"))
        objects.append(
            TrellisObject(sha, rec.file_identifier, rec.captions, rec.prompt, d, d / "mesh.ply", n_views)
        )
    return objects, problems


def _resolve_trellis(cases: list[Case], cfg: SourceConfig) -> list[ReferenceAsset]:
    table = _read_trellis_metadata(cfg.path, cfg.metadata)
    out = []
    for c in cases:
        rec = table.lookup(c)
        sha = c.sha256 or (rec.sha256 if rec else None)
        if not sha:
            problem = f"{c.file_identifier}: not in {table.path.name}; add its row (sha256, captions)"
            out.append(_asset(c, "trellis", "z", error=problem))
            continue
        d = cfg.path / "renders" / sha
        problem = _check_trellis_dir(d)
        prompt = c.prompt or (rec.prompt if rec else None)
        out.append(
            replace(
                _asset(c, "trellis", "z", sha256=sha, error=problem, render_dir=None if problem else d),
                path=None if problem else d / "mesh.ply",
                prompt=prompt,
            )
        )
    return out


def _read_sha256sums(path: Path) -> dict[str, str]:
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, _, name = line.strip().partition(" ")
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def _resolve_folder(cases: list[Case], cfg: SourceConfig) -> list[ReferenceAsset]:
    root, up = cfg.path, cfg.up_axis or "y"
    if not root.is_dir():
        raise Toys4KError(f"mesh folder not found: {root}; pass a folder of meshes named by object/case id")
    sums = _read_sha256sums(root / "SHA256SUMS") if (root / "SHA256SUMS").is_file() else {}
    out = []
    for c in cases:
        cat, name = PurePosixPath(c.file_identifier).parts[:2]
        stems = [f"{cat}/{name}/{name}", f"{cat}/{name}", name, c.case_id]
        hits = [root / f"{s}{ext}" for s in stems for ext in MESH_SUFFIXES if (root / f"{s}{ext}").is_file()]
        if not hits:
            tried = ", ".join(f"{s}.*" for s in stems)
            problem = f"{c.file_identifier}: no mesh in {root} (tried {tried}); add it or fix its name"
            out.append(_asset(c, "folder", up, error=problem))
            continue
        rel = hits[0].relative_to(root).as_posix()
        if rel in sums and file_sha256(hits[0]) != sums[rel]:
            out.append(_asset(c, "folder", up, error=f"{rel}: sha256 does not match SHA256SUMS; re-copy it"))
            continue
        out.append(_asset(c, "folder", up, path=hits[0]))
    return out


_RESOLVERS = {
    "blend-zip": _resolve_blend_zip,
    "obj-zip": _resolve_obj_zip,
    "trellis": _resolve_trellis,
    "folder": _resolve_folder,
}


def open_source(kind: str, path: str | Path, **options) -> SourceConfig:
    """A checked ``SourceConfig`` (``Toys4KError`` for an unknown kind or up axis)."""
    if kind not in _RESOLVERS:
        raise Toys4KError(f"unknown Toys4K source kind {kind!r}; use one of {', '.join(_RESOLVERS)}")
    if options.get("up_axis") not in (None, "y", "z"):
        raise Toys4KError(f"up_axis must be 'y' or 'z', got {options['up_axis']!r}")
    return SourceConfig(kind=kind, path=Path(path), **options)


def resolve_references(
    cases: list[Case] | tuple[Case, ...], source: SourceConfig, captions: CaptionTable | None = None
) -> list[ReferenceAsset]:
    """Each case's reference asset (path + ``up_axis`` + prompt), in case order.

    With ``captions``, prompts and sha256s are attached first (so the blend-zip source can verify the
    .blend against TRELLIS's hash). Per-case failures are in ``ReferenceAsset.error``; a source that
    cannot be opened at all raises ``Toys4KError``.
    """
    cases = list(cases)
    if captions is not None:
        from mme3dr.benchmark.captions import attach_prompts

        cases, _ = attach_prompts(cases, captions)
    bad = {c.case_id: _unsafe(c.file_identifier) for c in cases}
    good = [c for c in cases if bad[c.case_id] is None]
    done = iter(_RESOLVERS[source.kind](good, source) if good else [])
    up = source.up_axis or ("z" if source.kind == "trellis" else "y")
    return [next(done) if bad[c.case_id] is None else _asset(c, source.kind, up, error=bad[c.case_id])
            for c in cases]
