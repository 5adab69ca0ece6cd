"""Score already-rendered views (TRELLIS layout) with a feature suite: ``mme3dr score``.

Input layout: ``<renders_dir>/<id>/NNN.png`` (RGBA or RGB) for generated objects and the same under the
reference directory for ground truth; every view is composited onto white (protocol v1) before any
encoder sees it. Prompts come from a CSV (``id``/``case_id``/``sha256`` + ``prompt`` [+ ``category``]
columns, e.g. TRELLIS's ``eval_list.csv``), a JSONL file with the same keys, or a JSON ``{id: prompt}``.

Bad objects (no views, unreadable PNG, no prompt) are skipped and listed under ``failures`` with a reason;
they never stop the run. The views become features through the same function as in ``mme3dr evaluate``
(``mme3dr.harness.feature_store.encode_views``) and the numbers come from the scoring core
(``mme3dr.harness.scoring``), so scoring a finished run's renders gives the run's own results block.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mme3dr.results import SampleRecord

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


def _encode_side(dirs: dict[str, Path], side: str, suite, failures: list[dict], progress, done: list[int],
                 total: int) -> dict[str, tuple[str, dict[str, np.ndarray], int]]:
    """``{id: (render sha256, features, n_views)}`` for each readable object folder of one side."""
    from mme3dr.harness.feature_store import encode_views, render_content_sha256

    out = {}
    for oid, d in dirs.items():
        done[0] += 1
        try:
            views = load_object_views(d)
            out[oid] = (render_content_sha256(d), encode_views(suite, views), int(len(views)))
        except (OSError, ValueError) as exc:
            failures.append({"id": oid, "side": side, "reason": f"unreadable_views: {exc}"})
        if progress:
            progress(side, done[0], total)
    return out


def score_renders(
    renders_dir: str | Path,
    reference_dir: str | Path,
    prompts: dict[str, PromptEntry],
    suite,
    progress: Callable[[str, int, int], None] | None = None,
    task: str = "renders",
) -> dict:
    """Score generated renders against reference renders with ``suite`` (a :class:`FeatureSuite`).

    Each generated object with a prompt is one sample (``case_id`` its folder name, category from the
    prompts file or ``uncategorised``); each reference folder is one reference (paired by name for
    ``reference_clip`` and the RBF similarity).

    Returns a JSON-ready dict: ``profile``, ``leaderboard_eligible``, ``note`` (the smoke profile's
    "pipeline only" line, else null), ``results`` (the ``results`` block of ``results.json`` under
    ``task``), ``higher_is_better``, ``n_assets``, ``n_reference``, ``per_asset`` (id, clip,
    reference_clip, n_views, category), ``failures`` (id, side, reason) and ``card``.
    Raises ``FileNotFoundError`` / ``ValueError`` for unusable folders or nothing scorable.
    """
    from mme3dr.benchmark.captions import prompt_sha256
    from mme3dr.features.profiles import pipeline_check_note
    from mme3dr.harness.scoring import asset_metrics, results_block

    profile = suite.profile
    gen_dirs, ref_dirs = object_dirs(Path(renders_dir)), object_dirs(Path(reference_dir))
    if not gen_dirs:
        raise FileNotFoundError(f"{renders_dir}: no <id>/NNN.png render directories found")
    if not ref_dirs:
        raise FileNotFoundError(f"{reference_dir}: no <id>/NNN.png reference directories found")
    failures = [{"id": oid, "side": "generated", "reason": "no_prompt"}
                for oid in gen_dirs if oid not in prompts]
    done, total = [0], len(gen_dirs) + len(ref_dirs)
    done[0] = len(failures)
    gen = _encode_side({k: d for k, d in gen_dirs.items() if k in prompts}, "generated", suite, failures,
                       progress, done, total)
    ref = _encode_side(ref_dirs, "reference", suite, failures, progress, done, total)
    if not gen:
        raise ValueError("no generated object could be scored; see the failures: " + json.dumps(failures[:5]))
    features = {sha: feats for sha, feats, _ in (*gen.values(), *ref.values())}
    samples, per_asset = [], []
    for oid, (sha, feats, n_views) in sorted(gen.items()):
        entry = prompts[oid]
        text = suite.clip.encode_texts([profile.prepare_prompt(entry.prompt)])[0]
        scores = asset_metrics(profile.metrics, text, feats, ref[oid][1] if oid in ref else None)
        category = entry.category or "uncategorised"
        samples.append(SampleRecord(case_id=oid, category=category, sample_index=0, seed=0,
                                    prompt=entry.prompt, prompt_sha256=prompt_sha256(entry.prompt),
                                    render_sha256=sha, status="ok", metrics=scores))
        per_asset.append({"id": oid, **scores, "n_views": n_views, "category": entry.category})
    block = results_block(samples, {oid: sha for oid, (sha, _, _) in ref.items()}, features.__getitem__,
                          metrics=profile.metrics, task=task,
                          categories=list(dict.fromkeys(s.category for s in samples)))
    names = {k for row in block.values() for k in row}
    return {
        "profile": profile.name,
        "leaderboard_eligible": profile.leaderboard_eligible,
        "note": pipeline_check_note(profile.name),
        "results": block,
        "higher_is_better": _directions(names),
        "n_assets": len(per_asset),
        "n_reference": len(ref),
        "per_asset": per_asset,
        "failures": failures,
        "card": suite.card(),
    }


def _directions(names: set[str]) -> dict[str, bool]:
    from mme3dr.metrics import METRICS

    return {m: cls.higher_is_better for m, cls in METRICS.items() if m in names}
