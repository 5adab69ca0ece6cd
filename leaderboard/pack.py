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
import re
from pathlib import Path

from leaderboard.bundle import (
    ASSETS_DIR,
    RESULTS_NAME,
    SAMPLES_NAME,
    THUMBNAILS_DIR,
    AssetEntry,
    BundleError,
    Submitter,
    write_bundle,
)

THUMBNAIL_PX = 160
#: Case ids become file names in the archive; anything else is not given a thumbnail.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_RUN_HINT = "point `mme3dr submit` at a finished `mme3dr evaluate --out` folder"


def _load_samples(run_dir: Path) -> list[dict]:
    path = run_dir / SAMPLES_NAME
    if not path.is_file():
        raise BundleError(f"{path} is missing: {_RUN_HINT}")
    out = []
    # JSON Lines split on \n only: str.splitlines would also split on U+2028 inside a string
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BundleError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return out


def asset_members(store_root: Path, sha: str, fmt: str) -> dict[str, Path] | None:
    """Archive path -> file for one stored asset (main file first), or ``None`` when it is not stored.

    The run's asset store (``mme3dr.assets.store.AssetStore``) keeps ``<sha[:2]>/<sha>.<ext>``, or a folder
    ``<sha[:2]>/<sha>/`` with the file and the files it references (its closure: MTL, textures, buffers,
    sub-folders included); the bundle keeps the same split (``assets/<sha>.<ext>`` or
    ``assets/<sha>/<relative name>``). The closure must hash to ``sha`` (``mme3dr.assets.closure``).
    """
    from mme3dr.assets.closure import ClosureError, asset_closure, closure_sha256
    from mme3dr.assets.store import AssetStore

    main = AssetStore(store_root).get(sha, fmt)
    if main is None:
        return None
    try:
        closure = asset_closure(main)
    except ClosureError:
        return None
    if closure_sha256(closure) != sha:
        return None
    if len(closure) == 1:
        return {f"{ASSETS_DIR}/{sha}.{fmt}": main}
    return {f"{ASSETS_DIR}/{sha}/{name}": real for name, real in closure}


def find_views(render_roots: list[Path]) -> dict[str, Path]:
    """asset sha256 -> its ``eval24`` render folder, from the render cache's ``render.json`` files
    (``mme3dr.render.cache``: ``<root>/<key[:2]>/<key>/{NNN.png, render.json}``)."""
    out: dict[str, Path] = {}
    for root in render_roots:
        for meta_path in sorted(Path(root).glob("*/*/render.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if meta.get("rig") == "eval24" and (meta_path.parent / "000.png").is_file():
                out.setdefault(meta.get("asset_sha256"), meta_path.parent)
    return out


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
             n_thumbnails: int = 10, cache_dir: Path | None = None) -> str:
    """Write the bundle for ``run_dir`` to ``out``; return its sha256. Does not validate (see validate.py).

    ``cache_dir`` is the run's ``--cache-dir`` when it was not the default ``RUN_DIR/cache`` (thumbnails
    come from its renders). Raises ``BundleError`` when the run is incomplete (missing results, samples
    or asset files).
    """
    run_dir = Path(run_dir)
    results = run_dir / RESULTS_NAME
    if not results.is_file():
        raise BundleError(f"{results} is missing: {_RUN_HINT}")
    samples = _load_samples(run_dir)
    wanted = {s["asset_sha256"]: (s.get("asset_format") or "bin").lower()
              for s in samples if s.get("asset_sha256")}
    members: dict[str, bytes | Path] = {RESULTS_NAME: results, SAMPLES_NAME: run_dir / SAMPLES_NAME}
    assets = []
    missing = []
    for sha, fmt in sorted(wanted.items()):
        path = None
        if include_assets:
            found = asset_members(run_dir / ASSETS_DIR, sha, fmt)
            if found is None:
                missing.append(sha)
                continue
            members.update(found)
            path = next(iter(found))
        assets.append(AssetEntry(sha256=sha, format=fmt, path=path))
    if missing:
        raise BundleError(
            f"{len(missing)} generated asset(s) listed in samples.jsonl are not in {run_dir / ASSETS_DIR} "
            f"(first: {missing[0]}); keep the run's asset store, or pass --no-assets to submit hashes"
        )
    views = find_views([Path(cache_dir or run_dir / "cache") / "renders"])
    thumbnails: dict[str, str] = {}
    for s in choose_thumbnail_samples(samples, n_thumbnails):
        view_dir = views.get(s["asset_sha256"])
        if view_dir is not None and _SAFE_NAME.match(s["case_id"]):
            name = f"{THUMBNAILS_DIR}/{s['case_id']}.png"
            members[name] = make_thumbnail(view_dir / "000.png")
            thumbnails[s["case_id"]] = name
    return write_bundle(out, members, submitter, assets=assets, thumbnails=thumbnails,
                        assets_included=include_assets)
