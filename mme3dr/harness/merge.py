"""Finishing a run: one or more shard records → ``samples.jsonl`` + ``results.json``.

Light module (numpy for the set metrics; no torch, no renderer). Every evaluate run makes a
:class:`~mme3dr.results.ShardRecord` (its per-sample records, reference render hashes and results
metadata) and writes it as ``shard.json`` (the record ``mme3dr merge``, ``mme3dr judge`` and the report
read later). A plain run hands its record to :func:`finish` in memory; a sharded run waits for
``mme3dr merge``, which reads every shard's file (:func:`finalize`). Because :func:`finish` sorts samples
and references canonically before scoring, K shards merged give byte-identical results to one run
(apart from the volatile keys: ``date``, ``execution``, ``timing`` and each sample's ``seconds``).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mme3dr.errors import UserError
from mme3dr.output_files import atomic_write_text
from mme3dr.results import (
    FAILURE_REASONS,
    SHARD_FILE,
    Results,
    ShardRecord,
    dump_results,
    shard_render_dirs,
    write_samples,
)

__all__ = ["SHARD_FILE", "MergeError", "finalize", "finish", "load_shards", "shard_render_dirs",
           "write_shard"]

#: Metadata that must agree across shards (it decides every number).
_MUST_MATCH = ("config", "benchmark", "rig_hash", "profile", "metrics", "protocol_version")
#: ``results.configs[task]``: the keys of ``results.config`` that decide the task's numbers.
_TASK_CONFIG = ("benchmark", "manifest_sha256", "profile", "rig", "rig_hash", "render_size",
                "samples_per_prompt", "categories", "limit")


class MergeError(UserError, ValueError):
    """Shards that cannot be combined; the message says which and what to do."""


def write_shard(out: Path, shard: ShardRecord) -> Path:
    """Write ``shard.json`` (atomically) into ``out``."""
    path = Path(out) / SHARD_FILE
    atomic_write_text(path, json.dumps(shard.model_dump(mode="json"), sort_keys=True) + "\n")
    return path


def load_shards(dirs: Sequence[Path]) -> list[ShardRecord]:
    """The ``shard.json`` of each folder; raises ``MergeError`` when one is missing."""
    shards = []
    for d in dirs:
        p = Path(d) / SHARD_FILE
        if not p.is_file():
            raise MergeError(f"{d}: no {SHARD_FILE}; is it an `mme3dr evaluate --num-shards` output that "
                             "finished? Re-run that shard with --resume.")
        shards.append(ShardRecord.model_validate_json(p.read_text(encoding="utf-8")))
    return shards


def _check_compatible(dirs: Sequence[Path], shards: Sequence[ShardRecord]) -> None:
    first = shards[0].meta.model_dump(mode="json")
    for d, s in zip(dirs[1:], shards[1:], strict=True):
        meta = s.meta.model_dump(mode="json")
        for key in _MUST_MATCH:
            if meta.get(key) != first.get(key):
                raise MergeError(f"{d}: {key} differs from {dirs[0]}'s; shards must come from the same "
                                 "command with different --shard-index values")
    counts = {s.execution["num_shards"] for s in shards}
    indices = sorted(s.execution["shard_index"] for s in shards)
    if len(counts) != 1 or indices != list(range(counts.pop())):
        raise MergeError(f"shards cover indices {indices} of {shards[0].execution['num_shards']}; pass "
                         "every shard directory exactly once")
    keys = [(r.case_id, r.sample_index) for s in shards for r in s.samples]
    if len(set(keys)) != len(keys):
        raise MergeError("the same (case, sample) appears in two shards; pass each shard directory once")
    if len({s.suite_id for s in shards if s.suite_id}) > 1:
        raise MergeError("shards used different feature encoders (weights or device); re-run them alike")


def finalize(dirs: list[Path], out: Path, *, date: str | None = None) -> dict[str, Any]:
    """``mme3dr merge``: read the shards in ``dirs`` and :func:`finish` them into ``out``.

    Returns the results dict. Raises ``MergeError`` for missing or inconsistent shards.
    """
    dirs = [Path(d) for d in dirs]
    shards = load_shards(dirs)
    _check_compatible(dirs, shards)
    results = finish(shards, [d / "features" for d in dirs], out, date=date)
    return results.model_dump(by_alias=True, mode="json")


def finish(shards: Sequence[ShardRecord], features_dirs: Sequence[Path], out: Path, *,
           date: str | None = None, judge: tuple[Sequence, dict[str, Any]] | None = None,
           frame_audit: bool = False) -> Results:
    """Score the shards' samples (:func:`mme3dr.harness.scoring.results_block`) and write
    ``out/samples.jsonl`` and ``out/results.json``.

    ``judge`` is ``(judgements, judge card)`` when the run's judge stage ran (its per-sample scores are
    already in the samples' metrics). ``frame_audit``: also run the frame audit (:mod:`mme3dr.audit`;
    a diagnostic, never a score) and record it as ``frame_audit`` and ``timing.audit``. Returns the
    validated results.
    """
    from mme3dr.harness.feature_store import SetMetricMemo
    from mme3dr.harness.scoring import add_judge_rows, features_from_dirs, results_block

    t0 = time.perf_counter()
    meta = shards[0].meta
    samples = sorted((s for sh in shards for s in sh.samples), key=lambda s: (s.case_id, s.sample_index))
    references = {k: v for sh in shards for k, v in sh.references.items()}
    suite_id = next((sh.suite_id for sh in shards if sh.suite_id), "")
    task = meta.benchmark.name
    present = set(s.category for s in samples)
    results = results_block(samples, references, features_from_dirs(features_dirs, suite_id),
                            metrics=meta.metrics, task=task,
                            categories=[c for c in meta.benchmark.categories if c in present],
                            memo=SetMetricMemo(Path(out) / "features" / "set-metrics"))
    card = meta.metric_card
    if judge is not None:
        add_judge_rows(results, judge[0], task)
        card = card.model_copy(update={"judge": judge[1]})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}
    for sh in shards:
        for k, v in sh.timing.items():
            timing[k] = round(timing.get(k, 0.0) + v, 3)
    timing["metrics"] = round(time.perf_counter() - t0, 3)
    doc = _document(meta, results, samples, card, shards, timing, date)
    if frame_audit:
        _record_frame_audit(doc, samples, shards, out)
    doc["samples_sha256"] = write_samples(samples, out / "samples.jsonl")
    model = Results.model_validate(doc)
    dump_results(model, out / "results.json")
    return model


def _document(meta, results, samples, card, shards, timing, date) -> dict[str, Any]:
    """``results.json`` as a dict (lm-eval's keys first, then the 3D provenance); no samples hash yet."""
    from mme3dr.metrics import get_metric

    task = meta.benchmark.name
    names = sorted({k for v in results.values() for k in v if k in _known_metrics()})
    failures: dict[str, int] = {}
    for s in samples:
        if s.failure:
            failures[s.failure] = failures.get(s.failure, 0) + 1
    reasons = list(meta.ineligible_reasons)
    return {
        "results": results,
        "configs": {task: {k: meta.config[k] for k in _TASK_CONFIG} | {"metrics": meta.metrics}},
        "versions": {task: meta.protocol_version},
        "n-samples": {task: {"original": meta.n_original, "effective": len(samples)}},
        "higher_is_better": {task: {m: _higher_is_better(m, get_metric) for m in names}},
        "config": meta.config,
        "git_hash": meta.git_hash,
        "date": date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "environment": meta.environment,
        "mme3dr_version": meta.mme3dr_version,
        "protocol_version": meta.protocol_version,
        "profile": meta.profile,
        "model_info": meta.model_info,
        "adapter": meta.adapter,
        "benchmark": meta.benchmark,
        "rig_hash": meta.rig_hash,
        "renderer": meta.renderer,
        "metric_card": card,
        "leaderboard_eligible": not reasons,
        "ineligible_reasons": reasons,
        "failures": {k: failures[k] for k in FAILURE_REASONS if k in failures},
        "execution": {"shards": sorted((sh.execution for sh in shards), key=lambda e: e["shard_index"])},
        "timing": timing,
    }


def _record_frame_audit(doc: dict[str, Any], samples, shards: Sequence[ShardRecord], out: Path) -> None:
    """``doc["frame_audit"]`` and ``doc["timing"]["audit"]`` (:func:`mme3dr.audit.frame_audit_entry`)."""
    from mme3dr.audit.frame import EVALUATE_MAX_SAMPLES, frame_audit_entry

    render_dirs = {sha: where for sh in shards for sha, where in sh.render_dirs.items()}
    audit, seconds = frame_audit_entry(out, samples, doc["renderer"].rig, render_dirs, EVALUATE_MAX_SAMPLES)
    doc["frame_audit"] = audit
    if seconds is not None:
        doc["timing"]["audit"] = seconds


def _known_metrics() -> set[str]:
    from mme3dr.metrics import METRICS

    return set(METRICS) | {"judge"}


def _higher_is_better(name: str, get_metric) -> bool:
    return True if name == "judge" else get_metric(name).higher_is_better
