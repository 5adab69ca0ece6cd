"""Score already-rendered views (TRELLIS layout) with a feature suite: the engine of ``mme3dr score``.

Input layout: ``<renders_dir>/<id>/NNN.png`` (RGBA or RGB) for generated objects and the same under the
reference directory for ground truth; every view is composited onto white (protocol v1) before any
encoder sees it. Prompts come from a CSV (``id``/``case_id``/``sha256`` + ``prompt`` [+ ``category``]
columns, e.g. TRELLIS's ``eval_list.csv``), a JSONL file with the same keys, or a JSON ``{id: prompt}``.

Bad objects (no views, unreadable PNG, no prompt) are skipped and listed under ``failures`` with a reason;
they never stop the run. Metrics are computed by the pure functions in :mod:`mme3dr.metrics`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mme3dr.metrics.definitions import ClipScore, SetDistanceMetric, get_metric

_ID_KEYS = ("id", "case_id", "sha256")


@dataclass(frozen=True)
class PromptEntry:
    prompt: str
    category: str | None = None


def read_prompts(path: str | Path) -> dict[str, PromptEntry]:
    """``{object id: PromptEntry}`` from a ``.csv``, ``.jsonl`` or ``.json`` prompts file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompts file {path} does not exist")
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a .json prompts file must map object id to prompt")
        return {str(k): PromptEntry(str(v)) for k, v in data.items()}
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif path.suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
    else:
        raise ValueError(f"{path}: unsupported prompts file type {path.suffix!r}; use .csv, .jsonl or .json")
    out: dict[str, PromptEntry] = {}
    for n, row in enumerate(rows, start=1):
        key = next((row[k] for k in _ID_KEYS if row.get(k)), None)
        if key is None or not row.get("prompt"):
            ids = "/".join(_ID_KEYS)
            raise ValueError(f"{path}: row {n} needs an id column ({ids}) and a 'prompt' column")
        out[str(key)] = PromptEntry(str(row["prompt"]), row.get("category") or None)
    return out


def view_files(object_dir: Path) -> list[Path]:
    """The ``NNN.png`` views of an object directory, sorted by name."""
    return sorted(p for p in object_dir.glob("*.png") if p.stem.isdigit())


def load_object_views(object_dir: Path) -> np.ndarray:
    """``(V, H, W, 3) uint8`` views of one object, composited onto white (protocol v1)."""
    from PIL import Image

    from mme3dr.render.renderer import composite_on_white

    files = view_files(object_dir)
    if not files:
        raise FileNotFoundError(f"{object_dir}: no NNN.png views")
    views = []
    for f in files:
        with Image.open(f) as im:
            views.append(np.asarray(im.convert("RGBA")))
    shapes = {v.shape for v in views}
    if len(shapes) != 1:
        raise ValueError(f"{object_dir}: views differ in size {sorted(shapes)}")
    return composite_on_white(np.stack(views))


def object_dirs(root: Path) -> dict[str, Path]:
    """``{id: directory}`` of every sub-directory of ``root`` that holds at least one NNN.png."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory of <id>/NNN.png renders")
    return {d.name: d for d in sorted(root.iterdir()) if d.is_dir() and view_files(d)}


def score_renders(
    renders_dir: str | Path,
    reference_dir: str | Path,
    prompts: dict[str, PromptEntry],
    suite,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Score generated renders against reference renders with ``suite`` (a :class:`FeatureSuite`).

    Returns a JSON-ready dict: ``profile``, ``leaderboard_eligible``, ``metrics`` (name → value dict),
    ``per_asset`` (id, clip, n_views, category), ``failures`` (id, side, reason) and ``card``.
    """
    from mme3dr.metrics.clip_score import asset_clip_score

    profile = suite.profile
    gen_dirs, ref_dirs = object_dirs(Path(renders_dir)), object_dirs(Path(reference_dir))
    if not gen_dirs:
        raise FileNotFoundError(f"{renders_dir}: no <id>/NNN.png render directories found")
    if not ref_dirs:
        raise FileNotFoundError(f"{reference_dir}: no <id>/NNN.png reference directories found")
    needs = {get_metric(m).feature for m in profile.metrics}
    failures: list[dict] = []
    per_asset: list[dict] = []
    gen_feats: dict[str, dict[str, np.ndarray]] = {}
    ref_feats: dict[str, dict[str, np.ndarray]] = {}

    def encode(views: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        if "inception" in needs:
            out["inception"] = suite.inception(views)
        if "dinov2" in needs:
            out["dinov2"] = suite.dinov2(views)
        return out

    total = len(gen_dirs) + len(ref_dirs)
    done = 0
    for oid, d in gen_dirs.items():
        done += 1
        entry = prompts.get(oid)
        if entry is None:
            failures.append({"id": oid, "side": "generated", "reason": "no_prompt"})
            continue
        try:
            views = load_object_views(d)
        except (OSError, ValueError) as exc:
            failures.append({"id": oid, "side": "generated", "reason": f"unreadable_views: {exc}"})
            continue
        text = suite.clip.encode_texts([profile.prepare_prompt(entry.prompt)])[0]
        score = asset_clip_score(suite.clip.encode_images(views), text)
        per_asset.append({"id": oid, "clip": score, "n_views": int(len(views)), "category": entry.category})
        gen_feats[oid] = encode(views)
        if progress:
            progress("generated", done, total)
    for oid, d in ref_dirs.items():
        done += 1
        try:
            ref_feats[oid] = encode(load_object_views(d))
        except (OSError, ValueError) as exc:
            failures.append({"id": oid, "side": "reference", "reason": f"unreadable_views: {exc}"})
        if progress:
            progress("reference", done, total)
    if not per_asset:
        raise ValueError("no generated object could be scored; see the failures: " + json.dumps(failures[:5]))

    metrics: dict[str, dict] = {}
    for name in profile.metrics:
        cls = get_metric(name)
        metric = cls()
        if isinstance(metric, ClipScore):
            for row in per_asset:
                metric.update(row["clip"], row["category"])
        elif isinstance(metric, SetDistanceMetric):  # KD/FD: the generated set vs the reference set
            for oid in sorted(gen_feats):
                metric.update(feats_gen=gen_feats[oid][cls.feature])
            for oid in sorted(ref_feats):
                metric.update(feats_ref=ref_feats[oid][cls.feature])
        else:  # per-object pairing (the authors' script's RBF similarity)
            paired = sorted(set(gen_feats) & set(ref_feats))
            for oid in sorted(set(gen_feats) - set(ref_feats)):
                failures.append({"id": oid, "side": "reference", "reason": f"no_reference_for_{name}"})
            if not paired:
                continue
            for oid in paired:
                metric.update(gen_feats[oid][cls.feature], ref_feats[oid][cls.feature])
        metrics[name] = {**metric.compute().to_dict(), **{"higher_is_better": cls.higher_is_better}}
    return {
        "profile": profile.name,
        "leaderboard_eligible": profile.leaderboard_eligible,
        "n_assets": len(per_asset),
        "n_reference": len(ref_feats),
        "metrics": metrics,
        "per_asset": per_asset,
        "failures": failures,
        "card": suite.card(),
    }
