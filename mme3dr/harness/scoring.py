"""Features per render and the benchmark's numbers from them (the last two stages of evaluate).

- ``ViewFeatures`` computes (or loads from ``features/``) one feature array per encoder for the views of
  one render directory, keyed by the render's content hash and the suite's card hash, so a re-run or a
  resumed run never encodes the same images twice.
- ``score_samples`` turns per-sample records (with per-asset CLIP already filled in) and the stored
  feature arrays into the ``results`` mapping: CLIP overall and per category with a bootstrap CI, and the
  set metrics (KD/FD) overall. It is numpy only, so ``mme3dr merge`` can run it without any encoder.
  KD/FD values are memoised by a hash of their exact inputs (``SetMetricMemo``): a resumed or re-merged
  run with the same features skips ~10 s of KD subsets and FD matrix square roots at 249 cases.

Ordering is fixed (samples by case id then sample index; references by case id) so that KD's random
subsets, and therefore every number, are identical however the run was split or resumed.
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

from mme3dr.harness.run_state import atomic_write_text
from mme3dr.hashing import file_sha256

__all__ = ["SetMetricMemo", "ViewFeatures", "render_content_sha256", "sample_record", "score_samples",
           "suite_hash"]


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
        feats: dict[str, np.ndarray] = {}
        for name, encoder in self.suite.encoders().items():
            fn = encoder.encode_images if name == "clip" else encoder
            feats[name] = np.asarray(fn(rgb), dtype=np.float64)
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


def _round(x: float) -> float:
    # 12 significant digits: exact enough for every report, and stable across BLAS summation orders.
    return float(f"{x:.12g}")


def score_samples(
    samples: list[dict[str, Any]],
    references: dict[str, str],
    *,
    metrics: tuple[str, ...],
    categories: list[str],
    features_dirs: list[Path],
    suite_id: str,
    task: str,
    memo: SetMetricMemo | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``results`` mapping of ``results.json``.

    Args:
        samples: sample records (``SampleRecord`` dicts) in canonical order; ``metrics["clip"]`` set for
            every ``status == "ok"`` one.
        references: ``case_id -> reference render sha256`` for every evaluated case with a reference.
        metrics: metric names of the profile (``mme3dr.metrics.METRICS`` keys).
        categories: category ids in report order.
        features_dirs: where the ``.npz`` feature files are.
        task: the benchmark name (the overall task key).
        memo: where KD/FD values are remembered by their exact inputs (None: always compute).
    """
    from mme3dr.metrics import get_metric
    from mme3dr.metrics.clip_score import aggregate_clip_scores
    from mme3dr.metrics.definitions import SetDistanceMetric

    ok = [s for s in samples if s["status"] == "ok"]
    out: dict[str, dict[str, Any]] = {}
    overall: dict[str, Any] = {"alias": task, "n": len(ok), "n_failed": len(samples) - len(ok)}
    for cat in categories:
        n_cat = sum(1 for s in samples if s["category"] == cat)
        n_ok = sum(1 for s in ok if s["category"] == cat)
        out[f"{task}/{cat}"] = {"alias": cat, "n": n_ok, "n_failed": n_cat - n_ok}
    # Per-asset metrics (CLIP, the reference renders' CLIP, the script's RBF similarity): mean over assets
    # with a 95% bootstrap CI, overall and per category (design.md §3).
    per_asset = sorted({k for s in ok for k, v in s["metrics"].items() if v is not None})
    for name in per_asset:
        scored = [(s["category"], s["metrics"][name]) for s in ok if s["metrics"].get(name) is not None]
        agg = aggregate_clip_scores([v for _, v in scored], [c for c, _ in scored])
        overall.update({name: _round(agg["mean"]), f"{name}_ci95_low": _round(agg["ci95"][0]),
                        f"{name}_ci95_high": _round(agg["ci95"][1])})
        for cat, a in agg["per_category"].items():
            out.setdefault(f"{task}/{cat}", {"alias": cat}).update(
                {name: _round(a["mean"]), f"{name}_ci95_low": _round(a["ci95"][0]),
                 f"{name}_ci95_high": _round(a["ci95"][1])})
    set_metrics = [m for m in metrics if issubclass(get_metric(m), SetDistanceMetric)]
    if set_metrics and ok:
        gen = [load_feature_file(features_dirs, s["render_sha256"], suite_id) for s in ok]
        ref = [load_feature_file(features_dirs, references[k], suite_id) for k in sorted(references)]
        # Each feature's arrays once, shared by its KD and FD (and their memo keys).
        stacked = {f: (np.concatenate([g[f] for g in gen]), np.concatenate([r[f] for r in ref]))
                   for f in dict.fromkeys(get_metric(m).feature for m in set_metrics)}
        for name in set_metrics:
            metric = get_metric(name)()
            feats_gen, feats_ref = stacked[metric.feature]
            key = memo.key(name, feats_gen, feats_ref) if memo is not None else None
            value = memo.get(key) if memo is not None else None
            if value is None:
                metric.update(feats_gen, feats_ref)
                computed = metric.compute()
                value = {"value": computed.value, "std": computed.std}
                if memo is not None:
                    memo.put(key, value)
            overall[name] = _round(value["value"])
            if value["std"] is not None:
                overall[f"{name}_std"] = _round(value["std"])
    return {task: overall, **out}


def sample_record(case, i, rec, rendered, text, profile, asset_clip_score,
                  object_rbf_similarity) -> dict[str, Any]:
    """One ``samples.jsonl`` record: the generation record ``rec`` of (``case``, sample ``i``) with its
    render outcomes and per-asset scores from ``rendered``; ``text`` maps case id -> CLIP text feature."""
    from mme3dr.benchmark.captions import prompt_sha256

    prompt = case.prompt or ""
    ref_out, gen_out = rendered.references.get(case.case_id), rendered.generated.get((case.case_id, i))
    ref = rendered.features.get(("references", case.case_id))
    ref_sha = rendered.render_sha256.get(("references", case.case_id))
    record: dict[str, Any] = {
        "case_id": case.case_id, "category": case.category, "sample_index": i,
        "seed": rec.get("seed", 0), "prompt": prompt, "prompt_sha256": prompt_sha256(prompt),
        "reference_sha256": ref_out.asset_sha256 if ref_out is not None else None,
        "asset_sha256": rec.get("asset_sha256"), "asset_format": rec.get("asset_format"),
        "render_sha256": None, "reference_render_sha256": ref_sha,
        "metrics": {}, "status": "failed", "failure": rec.get("failure"),
        "failure_detail": rec.get("detail"), "seconds": rec.get("seconds"),
    }
    if record["failure"] is not None:  # generation already failed; recorded as is
        return record
    if gen_out is None:
        record.update(failure="missing_output",
                      failure_detail="the stored asset is missing; re-run with --resume")
    elif not gen_out.ok:
        record.update(failure=gen_out.reason, failure_detail=gen_out.detail or gen_out.error)
    elif ("generated", (case.case_id, i)) in rendered.nonfinite:
        names = ", ".join(rendered.nonfinite[("generated", (case.case_id, i))])
        record.update(failure="non_finite_features",
                      failure_detail=f"the {names} features of this render hold NaN or infinity")
    elif ref is None:
        detail = ref_out.detail if ref_out is not None else "no reference object"
        detail = f"reference could not be rendered: {detail}"
        if ("references", case.case_id) in rendered.nonfinite:
            names = ", ".join(rendered.nonfinite[("references", case.case_id)])
            detail = f"the reference render's {names} features hold NaN or infinity"
        record.update(failure="reference_missing", failure_detail=detail)
    elif not np.isfinite(text[case.case_id]).all():
        record.update(failure="non_finite_features",
                      failure_detail="the CLIP text feature of the prompt holds NaN or infinity")
    else:
        feats = rendered.features[("generated", (case.case_id, i))]
        t = text[case.case_id]
        metrics = {"clip": asset_clip_score(feats["clip"], t),
                   "reference_clip": asset_clip_score(ref["clip"], t)}
        if "script_kd_dinov2_rbf" in profile.metrics:
            metrics["script_kd_dinov2_rbf"] = object_rbf_similarity(feats["dinov2"], ref["dinov2"])
        rounded = {k: float(f"{v:.12g}") for k, v in metrics.items()}
        record.update(render_sha256=rendered.render_sha256[("generated", (case.case_id, i))], status="ok",
                      metrics=rounded)
    return record
