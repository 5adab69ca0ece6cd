"""The scoring core: features + sample records + metric definitions → the ``results`` block.

The one module every published number passes through. ``mme3dr evaluate`` (one run or each shard),
``mme3dr merge`` and ``mme3dr score`` (existing renders) all call it:

- :func:`asset_metrics`: one sample's per-asset scores from its features: ``clip`` (the generated views
  against the prompt), ``reference_clip`` (the reference views against the same prompt: the ceiling,
  recorded whenever the reference rendered, whatever the generation gave) and, for the profiles that
  have it, the authors' script's per-object RBF similarity.
- :func:`results_block`: the ``results`` mapping of ``results.json``: per-asset means with a percentile
  bootstrap CI overall and per category, and the set metrics (KD, FD) overall.
- :func:`add_judge_rows`: the VLM judge's rows (``judge``, its CI, ``judge_n``, ``judge_n_failed``).
- :func:`metric_card`: the metric card, from the feature suite's card and the metric classes' facts.

Metric facts (direction, scale, KD subsets and seed, bootstrap resamples and seed) are read from the
classes in :mod:`mme3dr.metrics.definitions`, never restated. Ordering is fixed (samples by case id then
sample index; references by case id) so that KD's random subsets, and therefore every number, are
identical however the run was split or resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mme3dr.harness.feature_store import SetMetricMemo, load_feature_file
from mme3dr.results import MetricCard, SampleRecord

__all__ = ["FeatureLookup", "add_judge_rows", "asset_metrics", "features_from_dirs", "metric_card",
           "results_block", "round_value"]

#: ``render sha256 -> {encoder name: (V, d) float64}``: where the set metrics find a render's features.
FeatureLookup = Callable[[str], dict[str, np.ndarray]]
#: Metric names aggregated by their own rules (the judge: :func:`add_judge_rows`), not as per-asset means.
_OWN_ROWS = ("judge",)


def round_value(x: float) -> float:
    """12 significant digits: exact enough for every report, and stable across BLAS summation orders."""
    return float(f"{x:.12g}")


def features_from_dirs(dirs: Sequence, suite_id: str) -> FeatureLookup:
    """A :data:`FeatureLookup` over the ``.npz`` files of one or more ``features/`` folders."""
    return lambda render_sha: load_feature_file(list(dirs), render_sha, suite_id)


def asset_metrics(metrics: Sequence[str], text: np.ndarray, gen: dict[str, np.ndarray] | None,
                  ref: dict[str, np.ndarray] | None) -> dict[str, float]:
    """Per-asset scores of one sample, rounded (:func:`round_value`).

    Args:
        metrics: the profile's metric names (``script_kd_dinov2_rbf`` is computed only when listed).
        text: ``(d,)`` CLIP text feature of the case's prompt (unit norm).
        gen: the generated render's features (``clip`` ``(V, d)``, ``dinov2``), or None when it failed.
        ref: the reference render's features, or None when the reference did not render.

    Returns:
        ``reference_clip`` whenever ``ref`` is given, ``clip`` whenever ``gen`` is, the RBF similarity
        when both are.
    """
    from mme3dr.metrics import ClipScore, ReferenceClip, ScriptRbfSimilarity, asset_clip_score
    from mme3dr.metrics import object_rbf_similarity as rbf

    out: dict[str, float] = {}
    if ref is not None:
        out[ReferenceClip.name] = asset_clip_score(ref[ReferenceClip.feature], text)
    if gen is not None:
        out[ClipScore.name] = asset_clip_score(gen[ClipScore.feature], text)
        if ref is not None and ScriptRbfSimilarity.name in metrics:
            f = ScriptRbfSimilarity.feature
            out[ScriptRbfSimilarity.name] = rbf(gen[f], ref[f])
    return {k: round_value(v) for k, v in out.items()}


def _bootstrap_rows(name: str, samples: Sequence[SampleRecord]) -> tuple[dict, dict[str, dict]]:
    """Mean and percentile-bootstrap CI of per-asset metric ``name`` over the samples that have it:
    ``(overall keys, {category: keys})``."""
    from mme3dr.metrics import ClipScore, aggregate_clip_scores

    scored = [(s.category, s.metrics[name]) for s in samples if s.metrics.get(name) is not None]
    agg = aggregate_clip_scores([v for _, v in scored], [c for c, _ in scored],
                                n_boot=ClipScore.bootstrap_resamples, seed=ClipScore.bootstrap_seed)

    def keys(a: dict) -> dict[str, float]:
        return {name: round_value(a["mean"]), f"{name}_ci95_low": round_value(a["ci95"][0]),
                f"{name}_ci95_high": round_value(a["ci95"][1])}

    return keys(agg), {cat: keys(a) for cat, a in agg["per_category"].items()}


def _set_metrics(names: Sequence[str], ok: Sequence[SampleRecord], references: dict[str, str],
                 features: FeatureLookup, memo: SetMetricMemo | None) -> dict[str, float]:
    """KD/FD between the scored samples' features and every reference's, memoised by exact inputs."""
    from mme3dr.metrics import get_metric

    gen = [features(s.render_sha256) for s in ok]
    ref = [features(references[k]) for k in sorted(references)]
    # Each feature's arrays once, shared by its KD and FD (and their memo keys).
    stacked = {f: (np.concatenate([g[f] for g in gen]), np.concatenate([r[f] for r in ref]))
               for f in dict.fromkeys(get_metric(m).feature for m in names)}
    out: dict[str, float] = {}
    for name in names:
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
        out[name] = round_value(value["value"])
        if value["std"] is not None:
            out[f"{name}_std"] = round_value(value["std"])
    return out


def results_block(samples: Sequence[SampleRecord], references: dict[str, str], features: FeatureLookup, *,
                  metrics: Sequence[str], categories: Sequence[str], task: str,
                  memo: SetMetricMemo | None = None) -> dict[str, dict[str, Any]]:
    """The ``results`` mapping of ``results.json``: ``{task: overall, "task/category": row, ...}``.

    Args:
        samples: sample records in canonical order (case id, sample index); each ``ok`` one carries its
            per-asset ``metrics`` and ``render_sha256``.
        references: ``case id -> reference render sha256`` for every evaluated case whose reference
            rendered (the reference side of KD/FD).
        features: where a render's features are (:func:`features_from_dirs`, or in memory).
        metrics: the profile's metric names; the set metrics among them are computed here.
        categories: category ids present, in report order (one row each).
        task: the overall row's key (the benchmark name).
        memo: KD/FD values remembered by their exact inputs (None: always compute).

    Each row has ``n`` (scored samples) and ``n_failed``; each per-asset metric ``m`` found on the
    samples gives ``m``, ``m_ci95_low``, ``m_ci95_high`` (mean over the samples that have it; 95 %
    percentile bootstrap, resamples and seed from :class:`mme3dr.metrics.ClipScore`); set metrics give
    ``m`` and ``m_std`` in the overall row only.
    """
    from mme3dr.metrics import SetDistanceMetric, get_metric

    ok = [s for s in samples if s.status == "ok"]
    overall: dict[str, Any] = {"alias": task, "n": len(ok), "n_failed": len(samples) - len(ok)}
    rows: dict[str, dict[str, Any]] = {}
    for cat in categories:
        n_cat = sum(1 for s in samples if s.category == cat)
        n_ok = sum(1 for s in ok if s.category == cat)
        rows[f"{task}/{cat}"] = {"alias": cat, "n": n_ok, "n_failed": n_cat - n_ok}
    per_asset = sorted({k for s in samples for k, v in s.metrics.items() if v is not None} - set(_OWN_ROWS))
    for name in per_asset:
        top, per_cat = _bootstrap_rows(name, samples)
        overall.update(top)
        for cat, keys in per_cat.items():
            rows.setdefault(f"{task}/{cat}", {"alias": cat}).update(keys)
    set_names = [m for m in metrics if issubclass(get_metric(m), SetDistanceMetric)]
    if set_names and ok:
        overall.update(_set_metrics(set_names, ok, references, features, memo))
    return {task: overall, **rows}


def add_judge_rows(block: dict[str, dict[str, Any]], judgements: Sequence, task: str) -> None:
    """Add the judge's keys (``judge``, ``judge_ci95_low``/``_high``, ``judge_n``, ``judge_n_failed``)
    to the overall row and each category's row of ``block``, in place, from the judgements
    (``mme3dr.judge.evaluation.CaseJudgement``; the bootstrap is the judge module's ``summarise``)."""
    from mme3dr.judge.evaluation import summarise

    for group, row in summarise(judgements).items():
        key = task if group == "" else f"{task}/{group}"
        block.setdefault(key, {"alias": group} if group else {}).update(row)


def metric_card(suite_card: dict[str, Any], rig: Any, renderer: dict[str, Any],
                judge: dict[str, Any] | None = None) -> MetricCard:
    """The metric card: the feature suite's card (``FeatureSuite.card()``), the render rig, the renderer
    record, the KD and bootstrap settings read from the metric classes, and the judge's card if any."""
    from mme3dr.metrics import ClipScore, KernelDistance

    kd = {"scale": KernelDistance.scale, "subsets": KernelDistance.subsets,
          "subset_size_max": KernelDistance.subset_size, "seed": KernelDistance.seed}
    boot = {"resamples": ClipScore.bootstrap_resamples, "seed": ClipScore.bootstrap_seed,
            "level": ClipScore.bootstrap_level}
    card = {**suite_card, "rig": rig.name, "rig_hash": rig.hash, "render_size": [rig.width, rig.height],
            "n_views": rig.n_views, "kd": kd, "clip_bootstrap": boot, "renderer": renderer, "judge": judge}
    return MetricCard.model_validate(card)
