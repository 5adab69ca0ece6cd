"""``mme3dr compare``'s engine: read finished runs, refuse incomparable ones, pair samples, compute deltas.

Light module (numpy, pydantic; no torch, no renderer). The first run is the baseline; every other run is
compared with it on the same cases:

- per-sample metrics (``clip``, ``judge``, … every key of ``samples.jsonl``'s ``metrics`` except
  ``reference_clip``, a property of the references): samples paired by ``(case_id, sample_index)``
  where both runs scored them; mean difference, paired bootstrap CI over cases and sign-flip p-value
  (:mod:`mme3dr.compare.paired`), with the resamples, seed and level of the metric's class
  (:mod:`mme3dr.metrics.definitions`; ``judge`` has no class and uses the base class's);
- set metrics (KD, FD): the difference of the protocol values with a CI from resampling cases jointly
  (:mod:`mme3dr.compare.sets`), from the feature files the runs stored under ``features/``;
- overall and per category; with more than two runs the p-values of each (metric, group) are
  Holm-adjusted across the comparisons with the baseline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mme3dr.compare.paired import case_sums, holm, paired_bootstrap, sign_flip_pvalue
from mme3dr.compare.sets import SetSide, set_metric_delta
from mme3dr.results import Results, SampleRecord, load_results, read_samples

__all__ = ["CompareError", "RunData", "check_comparable", "compare_runs", "load_run"]

OVERALL = "overall"
#: Per-sample keys that are not a property of the generated asset.
_NOT_COMPARED = ("reference_clip",)


class CompareError(ValueError):
    """Runs that cannot be compared; the message names the run and what differs."""


@dataclass
class RunData:
    path: Path
    results: Results
    samples: list[SampleRecord]
    label: str

    @property
    def task(self) -> str:
        return self.results.benchmark.name


def load_run(path: str | Path) -> RunData:
    """Read ``results.json`` and ``samples.jsonl`` of a finished run folder; ``CompareError`` if unusable."""
    p = Path(path)
    if not p.is_dir():
        raise CompareError(f"{p}: no such run folder")
    try:
        results = load_results(p / "results.json")
        samples = read_samples(p / results.samples_file)
    except (OSError, ValueError) as e:
        raise CompareError(f"{p}: {str(e).splitlines()[0]}") from None
    return RunData(p, results, samples, results.model_info.name)


def _identity(run: RunData) -> dict[str, Any]:
    r = run.results
    return {"manifest hash": r.benchmark.manifest_sha256, "protocol": r.protocol_version,
            "profile": r.profile, "rig": r.rig_hash,
            "feature encoders": json.dumps(r.metric_card.model_dump(mode="json")["encoders"], sort_keys=True)}


def check_comparable(runs: list[RunData]) -> None:
    """Raise ``CompareError`` naming the first difference in manifest hash, protocol, profile, rig or
    feature encoders between a run and the baseline (``runs[0]``)."""
    if len(runs) < 2:
        raise CompareError("compare needs at least two runs: the baseline first, then the others")
    def short(v: str) -> str:
        return v[:12] + "…" if len(v) > 16 else v

    base = _identity(runs[0])
    for run in runs[1:]:
        for key, value in _identity(run).items():
            if value != base[key]:
                raise CompareError(f"{run.path}: {key} {short(value)!r} differs from the baseline "
                                   f"{runs[0].path}'s {short(base[key])!r}; only runs of the same benchmark, "
                                   "protocol, profile and rig can be compared")
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        for r in runs:
            r.label = str(r.path)


def _metric_class(name: str):
    from mme3dr.metrics.definitions import METRICS, Metric

    return METRICS.get(name, Metric)


def _higher_is_better(run: RunData, name: str) -> bool:
    hib = run.results.higher_is_better.get(run.task, {})
    return bool(hib.get(name, _metric_class(name).__dict__.get("higher_is_better", True)))


def _per_sample_stats(name: str, pairs: list[tuple[str, float]]) -> dict[str, Any]:
    cls = _metric_class(name)
    cases, sums, counts = case_sums([c for c, _ in pairs], np.array([d for _, d in pairs]))
    delta, low, high = paired_bootstrap(sums, counts, n=cls.bootstrap_resamples, seed=cls.bootstrap_seed,
                                        level=cls.bootstrap_level)
    p = sign_flip_pvalue(sums, counts, permutations=cls.permutations, seed=cls.bootstrap_seed)
    return {"delta": delta, "ci95_low": low, "ci95_high": high, "p_value": p, "n_pairs": len(pairs),
            "n_cases": len(cases)}


def _per_sample(base: RunData, other: RunData) -> tuple[dict[str, dict[str, Any]], int]:
    """``{metric: {group: stats}}`` and the number of (case, sample) keys scored in both runs."""
    a = {(s.case_id, s.sample_index): s for s in base.samples if s.status == "ok"}
    b = {(s.case_id, s.sample_index): s for s in other.samples if s.status == "ok"}
    keys = sorted(set(a) & set(b))
    names = sorted({m for k in keys for m in a[k].metrics if m in b[k].metrics} - set(_NOT_COMPARED))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        rows = [(a[k].category, k[0], b[k].metrics[name] - a[k].metrics[name]) for k in keys
                if a[k].metrics.get(name) is not None and b[k].metrics.get(name) is not None]
        if not rows:
            continue
        groups = {OVERALL: rows, **{cat: [r for r in rows if r[0] == cat] for cat in _categories(base)}}
        out[name] = {g: _per_sample_stats(name, [(c, d) for _, c, d in rs]) for g, rs in groups.items() if rs}
    return out, len(keys)


def _categories(run: RunData) -> list[str]:
    present = {s.category for s in run.samples}
    return [c for c in run.results.benchmark.categories if c in present]


def _suite_id(run: RunData) -> str:
    from mme3dr.harness.feature_store import suite_hash

    shard = run.path / "shard.json"
    if shard.is_file():
        sid = json.loads(shard.read_text(encoding="utf-8")).get("suite_id")
        if sid:
            return sid
    return suite_hash(run.results.metric_card.model_dump(mode="json"))[:16]


class _Features:
    """The stored per-render feature arrays of one run (``RUN/features/<render sha>.<suite>.npz``)."""

    def __init__(self, run: RunData) -> None:
        self.run, self.dirs, self.suite_id = run.path, [run.path / "features"], _suite_id(run)

    def rows(self, render_sha: str, feature: str) -> np.ndarray:
        from mme3dr.harness.feature_store import load_feature_file

        try:
            return load_feature_file(self.dirs, render_sha, self.suite_id)[feature]
        except FileNotFoundError:
            raise CompareError(
                f"{self.run}: the feature file of render {render_sha[:12]}… is not in {self.dirs[0]}; KD/FD "
                "differences need the features evaluate stored (a merged run keeps them in its shard "
                "folders: compare a single-folder run, or copy the shards' features/ into it)") from None


def _side(run: RunData, feats: _Features, feature: str, case_index: dict[str, int]) -> SetSide:
    rows, cases = [], []
    for s in run.samples:
        if s.status == "ok" and s.render_sha256 and s.case_id in case_index:
            x = feats.rows(s.render_sha256, feature)
            rows.append(x)
            cases.append(np.full(x.shape[0], case_index[s.case_id]))
    if not rows:
        return SetSide(np.zeros((0, 1)), np.zeros(0, np.int64), len(case_index))
    return SetSide(np.concatenate(rows), np.concatenate(cases), len(case_index))


def _set_metrics(base: RunData, other: RunData, progress: Callable[[str], None] | None = None
                 ) -> dict[str, dict[str, Any]]:
    from mme3dr.metrics.definitions import METRICS, SetDistanceMetric

    task = base.task
    names = [m for m in base.results.results[task]
             if m in METRICS and issubclass(METRICS[m], SetDistanceMetric)
             and m in other.results.results[other.task]]
    if not names:
        return {}
    fa, fb = _Features(base), _Features(other)
    refs = {s.case_id: (s.category, s.reference_render_sha256) for s in base.samples
            if s.reference_render_sha256}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        cls = METRICS[name]
        out[name] = {}
        for group in [OVERALL, *_categories(base)]:
            cases = sorted(c for c, (cat, _) in refs.items() if group in (OVERALL, cat))
            index = {c: i for i, c in enumerate(cases)}
            ref_rows = [fa.rows(refs[c][1], cls.feature) for c in cases]
            ref_cases = np.repeat(np.arange(len(cases)), [len(r) for r in ref_rows])
            ref = SetSide(np.concatenate(ref_rows), ref_cases, len(cases))
            ga, gb = _side(base, fa, cls.feature, index), _side(other, fb, cls.feature, index)
            if min(ga.feats.shape[0], gb.feats.shape[0], ref.feats.shape[0]) < 2:
                continue
            if progress is not None:  # each group resamples the cases jointly: seconds to minutes
                progress(f"{name} ({group}, {len(cases)} cases): {other.label} against {base.label}")
            delta, low, high, used = set_metric_delta(cls, ga, gb, ref)
            out[name][group] = {"delta": delta, "ci95_low": low, "ci95_high": high, "p_value": None,
                                "n_pairs": len(cases), "n_cases": len(cases), "resamples": used}
    return out


def compare_runs(paths: list[str | Path], progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Compare every run of ``paths[1:]`` with the baseline ``paths[0]``; the ``--json`` document.
    ``progress`` is called with one line before each set metric's group is resampled (the slow part).

    Returns ``{"baseline", "correction", "comparisons": [{"run", "label", "paired", "baseline_samples",
    "run_samples", "higher_is_better": {metric: bool}, "metrics": {metric: {group: {"delta",
    "ci95_low", "ci95_high", "p_value", "n_pairs", ...}}}}]}``. ``delta`` is run − baseline.
    """
    runs = [load_run(p) for p in paths]
    check_comparable(runs)
    base = runs[0]
    comparisons = []
    for other in runs[1:]:
        per_sample, paired = _per_sample(base, other)
        metrics = {**per_sample, **_set_metrics(base, other, progress)}
        comparisons.append({
            "run": str(other.path), "label": other.label, "paired": paired,
            "baseline_samples": len(base.samples), "run_samples": len(other.samples),
            "higher_is_better": {m: _higher_is_better(base, m) for m in metrics},
            "metrics": metrics,
        })
    correction = None
    if len(comparisons) > 1:
        correction = "holm"
        _apply_holm(comparisons)
    return {"baseline": str(base.path), "baseline_label": base.label, "correction": correction,
            "comparisons": comparisons}


def _apply_holm(comparisons: list[dict[str, Any]]) -> None:
    """Holm-adjust each (metric, group)'s p-values across the comparisons; keeps the raw one too."""
    families: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for comp in comparisons:
        for metric, groups in comp["metrics"].items():
            for group, stats in groups.items():
                if stats["p_value"] is not None:
                    families.setdefault((metric, group), []).append(stats)
    for members in families.values():
        for stats, adjusted in zip(members, holm([m["p_value"] for m in members]), strict=True):
            stats["p_value_raw"], stats["p_value"] = stats["p_value"], adjusted
