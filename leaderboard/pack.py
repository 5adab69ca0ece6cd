"""Pack an evaluation run directory into a submission bundle (``mme3dr submit``).

A run directory (``mme3dr evaluate --out RUN_DIR``) holds ``results.json``, ``samples.jsonl``, the
generated assets (content-addressed: a file's sha256 is in ``samples.jsonl``) and the rendered views.
Packing copies the first two byte for byte, adds every distinct asset found by its hash (or, with
``include_assets=False``, only lists the hashes) and a few thumbnails, and writes ``bundle.json``.

Light module: standard library, pydantic and Pillow (for thumbnails). No torch, no renderer: a
thumbnail is a downscaled copy of a view the run already rendered.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from leaderboard.bundle import (
    ASSETS_DIR,
    RESULTS_NAME,
    SAMPLES_NAME,
    THUMBNAILS_DIR,
    AssetEntry,
    BundleError,
    Submitter,
    sha256_file,
    write_bundle,
)

THUMBNAIL_PX = 160
#: Where a run may keep its generated files and its renders (searched in this order).
_ASSET_DIRS = ("assets", "generated", "outputs")
_RENDER_DIRS = ("renders", "render_cache", "views")
_RUN_HINT = "point `mme3dr submit` at a finished `mme3dr evaluate --out` folder"


def _load_samples(run_dir: Path) -> list[dict]:
    path = run_dir / SAMPLES_NAME
    if not path.is_file():
        raise BundleError(f"{path} is missing: {_RUN_HINT}")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BundleError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return out


def find_assets(run_dir: Path, wanted: dict[str, str]) -> dict[str, Path]:
    """Locate each wanted asset (sha256 -> format) in the run directory by its content hash.

    Files named ``<sha256>.<ext>`` are checked first (the harness's content-addressed store); any other
    file under the asset folders is hashed only if something is still missing.
    """
    found: dict[str, Path] = {}
    candidates = [p for d in _ASSET_DIRS if (run_dir / d).is_dir() for p in sorted((run_dir / d).rglob("*"))
                  if p.is_file() and not p.is_symlink()]
    for path in candidates:
        stem = path.name.split(".")[0]
        if stem in wanted and stem not in found and sha256_file(path) == stem:
            found[stem] = path
    if len(found) < len(wanted):
        for path in candidates:
            if path.name.split(".")[0] in found:
                continue
            digest = sha256_file(path)
            if digest in wanted and digest not in found:
                found[digest] = path
    return found


def _find_view(run_dir: Path, keys: list[str]) -> Path | None:
    """The first rendered view (``000.png``) of a render folder named by one of ``keys``."""
    for d in _RENDER_DIRS:
        root = run_dir / d
        if not root.is_dir():
            continue
        for key in keys:
            for view in sorted(root.rglob(f"{key}/000.png")):
                return view
    return None


def make_thumbnail(view_png: Path, size: int = THUMBNAIL_PX) -> bytes:
    """A ``size``-px PNG of one RGBA view, composited onto white like every metric input."""
    from PIL import Image

    with Image.open(view_png) as im:
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def choose_thumbnail_samples(samples: list[dict], n: int) -> list[dict]:
    """Up to ``n`` scored samples, round-robin over categories in case order (deterministic)."""
    by_cat: dict[str, list[dict]] = {}
    for s in sorted(samples, key=lambda s: (s.get("case_id", ""), s.get("sample_index", 0))):
        if s.get("status") == "ok" and s.get("asset_sha256") and s.get("sample_index", 0) == 0:
            by_cat.setdefault(s.get("category", ""), []).append(s)
    chosen: list[dict] = []
    while len(chosen) < n and any(by_cat.values()):
        for cat in sorted(by_cat):
            if by_cat[cat] and len(chosen) < n:
                chosen.append(by_cat[cat].pop(0))
    return chosen


def pack_run(run_dir: Path, out: Path, submitter: Submitter, *, include_assets: bool = True,
             n_thumbnails: int = 10) -> str:
    """Write the bundle for ``run_dir`` to ``out``; return its sha256. Does not validate (see validate.py).

    Raises ``BundleError`` when the run is incomplete (missing results, samples or asset files).
    """
    run_dir = Path(run_dir)
    results = run_dir / RESULTS_NAME
    if not results.is_file():
        raise BundleError(f"{results} is missing: {_RUN_HINT}")
    samples = _load_samples(run_dir)
    wanted = {s["asset_sha256"]: (s.get("asset_format") or "bin").lower()
              for s in samples if s.get("asset_sha256")}
    assets = [AssetEntry(sha256=sha, format=fmt) for sha, fmt in sorted(wanted.items())]
    members: dict[str, bytes | Path] = {RESULTS_NAME: results, SAMPLES_NAME: run_dir / SAMPLES_NAME}
    if include_assets:
        found = find_assets(run_dir, wanted)
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise BundleError(
                f"{len(missing)} generated asset(s) listed in samples.jsonl are not in {run_dir} "
                f"(first: {missing[0]}); keep the run's asset folder, or pass --no-assets to submit hashes"
            )
        for sha, fmt in sorted(wanted.items()):
            members[f"{ASSETS_DIR}/{sha}.{fmt}"] = found[sha]
    thumbnails: dict[str, str] = {}
    for s in choose_thumbnail_samples(samples, n_thumbnails):
        view = _find_view(run_dir, [k for k in (s.get("render_sha256"), s.get("asset_sha256")) if k])
        if view is not None:
            name = f"{THUMBNAILS_DIR}/{s['case_id']}.png"
            members[name] = make_thumbnail(view)
            thumbnails[s["case_id"]] = name
    return write_bundle(out, members, submitter, assets=assets, thumbnails=thumbnails,
                        assets_included=include_assets)
