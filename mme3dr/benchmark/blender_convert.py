"""Convert Toys4K ``.blend`` files to ``.glb`` through an external Blender process, cached by sha256.

Light module (standard library only). Blender never runs inside our process: it needs numpy<2 and its
own Python, so it is either a ``blender`` binary or a Python interpreter that can ``import bpy`` (the
PyPI ``bpy`` wheel in its own venv, as ``.ci/install_blender`` sets up). Our converter script,
``mme3dr/benchmark/blender_scripts/blend_to_glb.py``, runs headless inside it over a batch of files and
records,
per file, the Blender version, the triangle count and the bbox, or the reason it failed.

Frames: a ``.blend`` scene is Z up; the ``.glb`` written here is **Y up** (glTF convention; the exporter
runs with ``export_yup=True``), so converted files load with ``mesh.load_mesh(path, up_axis="y")``.

Cache: ``<cache_dir>/<sha256 of the .blend bytes>.glb`` plus a ``.json`` sidecar with the conversion
record. The key includes nothing else on purpose: the same source always maps to the same file, and
the sidecar says which Blender made it (``CONVERTER_VERSION`` in the sidecar invalidates old entries).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mme3dr.hashing import file_sha256

__all__ = [
    "CONVERTER_VERSION",
    "BlenderCommand",
    "BlenderNotFound",
    "ConversionResult",
    "convert_blend_files",
    "convert_cached",
    "default_blender_venv",
    "find_blender",
]

#: Bump when blend_to_glb.py changes its output, so cached .glb files are re-made.
CONVERTER_VERSION = 1
GLB_UP_AXIS = "y"


class BlenderNotFound(RuntimeError):
    """No usable Blender; the message says how to install one or point at it."""


def default_blender_venv() -> Path:
    """Where ``.ci/install_blender`` puts the ``bpy`` venv (``$MME3DR_BLENDER_VENV`` overrides)."""
    env = os.environ.get("MME3DR_BLENDER_VENV")
    return Path(env) if env else Path.home() / ".cache" / "mme3dr" / "blender-venv"


@dataclass(frozen=True)
class BlenderCommand:
    """How to start Blender: ``kind`` is ``"binary"`` (a ``blender`` executable) or ``"bpy"`` (a Python)."""

    path: str
    kind: str

    def argv(self, script: str, *args: str) -> list[str]:
        if self.kind == "binary":
            return [self.path, "--background", "--factory-startup", "--python", script, "--", *args]
        return [self.path, script, *args]


def _probe(path: str) -> BlenderCommand | None:
    """Classify an executable as a Blender binary or a bpy-capable Python; ``None`` if it is neither."""
    exe = shutil.which(path) or (path if Path(path).is_file() else None)
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-c", "import bpy"], capture_output=True, timeout=120)
        if out.returncode == 0:
            return BlenderCommand(exe, "bpy")
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode == 0 and out.stdout.startswith("Blender"):
        return BlenderCommand(exe, "binary")
    return None


def find_blender(explicit: str | os.PathLike | None = None) -> BlenderCommand:
    """Locate Blender: ``explicit`` (``--blender``), ``$MME3DR_BLENDER``, the install script's venv, then
    ``blender`` on ``PATH``. Raises ``BlenderNotFound`` with what to do."""
    if explicit is not None:
        cmd = _probe(str(explicit))
        if cmd is None:
            raise BlenderNotFound(
                f"--blender {explicit}: not a Blender binary nor a Python that can `import bpy`; pass the "
                "path of `blender` or of a venv python with the `bpy` wheel (bash .ci/install_blender)"
            )
        return cmd
    candidates = []
    if os.environ.get("MME3DR_BLENDER"):
        candidates.append(os.environ["MME3DR_BLENDER"])
    candidates += [str(default_blender_venv() / "bin" / "python"), "blender"]
    for c in candidates:
        cmd = _probe(c)
        if cmd is not None:
            return cmd
    raise BlenderNotFound(
        "Blender not found (tried $MME3DR_BLENDER, "
        f"{default_blender_venv() / 'bin' / 'python'}, `blender` on PATH); install it with "
        "`bash .ci/install_blender` (bpy wheel in its own venv) or `apt-get install blender`, "
        "or pass --blender PATH"
    )


@dataclass(frozen=True)
class ConversionResult:
    """Outcome of one .blend: ``glb`` is set when it converted; otherwise ``error`` is one line."""

    src: Path
    glb: Path | None
    src_sha256: str | None
    blender_version: str | None
    n_triangles: int | None = None
    bbox_min: tuple[float, float, float] | None = None  # Blender world frame (Z up)
    bbox_max: tuple[float, float, float] | None = None
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.glb is not None


def _script_path() -> str:
    return str(resources.files("mme3dr") / "benchmark" / "blender_scripts" / "blend_to_glb.py")


def convert_blend_files(
    jobs: list[tuple[Path, Path]], blender: BlenderCommand, *, timeout_s: float = 1800
) -> list[dict]:
    """Run one Blender process over ``(src.blend, dst.glb)`` pairs; returns the script's records.

    A job whose record is missing (Blender crashed part-way) comes back with ``ok: False`` and the tail
    of Blender's stderr as the reason.
    """
    with tempfile.TemporaryDirectory(prefix="mme3dr-blend-") as tmp:
        jobs_file, results_file = Path(tmp) / "jobs.json", Path(tmp) / "results.json"
        jobs_file.write_text(json.dumps([{"src": str(s), "dst": str(d)} for s, d in jobs]))
        try:
            proc = subprocess.run(
                blender.argv(_script_path(), str(jobs_file), str(results_file)),
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        except subprocess.TimeoutExpired:
            tail = [f"Blender did not finish within {timeout_s:.0f} s"]
        records = json.loads(results_file.read_text()) if results_file.is_file() else []
    done = {r["src"]: r for r in records}
    out = []
    for s, d in jobs:
        out.append(done.get(str(s)) or {"src": str(s), "dst": str(d), "ok": False, "error": tail[0]})
    return out


def _from_sidecar(src: Path, sha: str, glb: Path, rec: dict, cached: bool) -> ConversionResult:
    return ConversionResult(
        src=src,
        glb=glb,
        src_sha256=sha,
        blender_version=rec.get("blender_version"),
        n_triangles=rec.get("n_triangles"),
        bbox_min=tuple(rec["bbox_min"]) if rec.get("bbox_min") else None,
        bbox_max=tuple(rec["bbox_max"]) if rec.get("bbox_max") else None,
        cached=cached,
    )


def convert_cached(
    sources: list[Path],
    cache_dir: Path,
    blender: BlenderCommand | str | None = None,
    *,
    timeout_s: float = 1800,
) -> list[ConversionResult]:
    """Convert ``.blend`` files into ``cache_dir/<sha256>.glb``, skipping ones already converted.

    ``blender`` (a ``BlenderCommand``, a path for ``find_blender``, or ``None`` to search) is resolved
    only if something needs converting, so a warm cache works with no Blender installed. Bad files come
    back with ``error`` set (one line: what is wrong and what to do); the others still convert.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    results: dict[int, ConversionResult] = {}
    todo: list[tuple[int, Path, str]] = []
    for i, src in enumerate(map(Path, sources)):
        if not src.is_file():
            results[i] = ConversionResult(src, None, None, None, error=f"{src}: file not found")
            continue
        sha = file_sha256(src)
        glb, meta = cache_dir / f"{sha}.glb", cache_dir / f"{sha}.json"
        if glb.is_file() and meta.is_file():
            rec = json.loads(meta.read_text())
            if rec.get("converter_version") == CONVERTER_VERSION:
                results[i] = _from_sidecar(src, sha, glb, rec, cached=True)
                continue
        todo.append((i, src, sha))
    if todo:
        if not isinstance(blender, BlenderCommand):
            blender = find_blender(blender)
        tmp_dst = {i: cache_dir / f"{sha}.glb.partial.glb" for i, _, sha in todo}
        records = convert_blend_files([(src, tmp_dst[i]) for i, src, _ in todo], blender, timeout_s=timeout_s)
        for (i, src, sha), rec in zip(todo, records, strict=True):
            if rec.get("ok"):
                glb = cache_dir / f"{sha}.glb"
                os.replace(tmp_dst[i], glb)  # atomic: a half-written file never looks cached
                rec = {k: v for k, v in rec.items() if k != "traceback"}
                rec.update(converter_version=CONVERTER_VERSION, src_sha256=sha, dst=str(glb))
                (cache_dir / f"{sha}.json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
                results[i] = _from_sidecar(src, sha, glb, rec, cached=False)
            else:
                tmp_dst[i].unlink(missing_ok=True)
                results[i] = ConversionResult(
                    src,
                    None,
                    sha,
                    rec.get("blender_version"),
                    error=f"{src.name}: Blender could not convert it ({rec.get('error')}); check that it is "
                    "a Toys4K .blend file (re-extract it from toys4k_blend_files.zip)",
                )
    return [results[i] for i in range(len(sources))]
