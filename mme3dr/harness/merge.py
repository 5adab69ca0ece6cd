"""Finishing a run: combine one or more shard directories into ``samples.jsonl`` + ``results.json``.

Light module (numpy for the set metrics; no torch, no renderer). Every evaluate run writes ``shard.json``
(its per-sample records, reference render hashes and results metadata); a plain run is shard 0 of 1 and
finalises itself, a sharded run waits for ``mme3dr merge``. Because ``finalize`` sorts samples and
references canonically before scoring, K shards merged give byte-identical results to one run (apart
from the volatile keys: ``date``, ``execution``, ``timing`` and each sample's ``seconds``).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from mme3dr.harness.run_state import atomic_write_text
from mme3dr.results import FAILURE_REASONS, Results, SampleRecord, dump_results, write_samples

__all__ = ["MergeError", "finalize", "shard_manifest"]

SHARD_FILE = "shard.json"
#: Metadata that must agree across shards (it decides every number).
_MUST_MATCH = ("config", "benchmark", "rig_hash", "profile", "metrics", "protocol_version")


class MergeError(ValueError):
    """Shards that cannot be combined; the message says which and what to do."""


def shard_render_dirs(dirs: list[Path]) -> dict[str, str]:
    """``{asset sha256: render dir}`` from the ``shard.json`` of each run folder in ``dirs`` (later folders
    win; a folder without one adds nothing). Read by the report's thumbnails and by ``mme3dr judge``."""
    found: dict[str, str] = {}
    for d in dirs:
        shard = d / SHARD_FILE
        if shard.is_file():
            found.update(json.loads(shard.read_text(encoding="utf-8")).get("render_dirs", {}))
    return found


def shard_manifest(out: Path, *, meta: dict[str, Any], samples: list[dict[str, Any]],
                   references: dict[str, str], suite_id: str | None, execution: dict[str, Any],
                   timing: dict[str, float], render_dirs: dict[str, str] | None = None) -> Path:
    """Write ``shard.json`` (atomically) into ``out``; ``render_dirs`` (render sha -> view folder) is
    for the report's thumbnails only."""
    data = {"meta": meta, "samples": samples, "references": references, "suite_id": suite_id,
            "execution": execution, "timing": timing, "render_dirs": render_dirs or {}}
    path = Path(out) / SHARD_FILE
    atomic_write_text(path, json.dumps(data, sort_keys=True) + "\n")
    return path


def _load_shards(dirs: list[Path]) -> list[dict[str, Any]]:
    shards = []
    for d in dirs:
        p = Path(d) / SHARD_FILE
        if not p.is_file():
            raise MergeError(f"{d}: no {SHARD_FILE}; is it an `mme3dr evaluate --num-shards` output that "
                             "finished? Re-run that shard with --resume.")
        shards.append(json.loads(p.read_text(encoding="utf-8")))
    first = shards[0]
    for d, s in zip(dirs[1:], shards[1:], strict=True):
        for key in _MUST_MATCH:
            if s["meta"].get(key) != first["meta"].get(key):
                raise MergeError(f"{d}: {key} differs from {dirs[0]}'s; shards must come from the same "
                                 "command with different --shard-index values")
    counts = {s["execution"]["num_shards"] for s in shards}
    indices = sorted(s["execution"]["shard_index"] for s in shards)
    if len(counts) != 1 or indices != list(range(counts.pop())):
        raise MergeError(f"shards cover indices {indices} of {shards[0]['execution']['num_shards']}; pass "
                         "every shard directory exactly once")
    return shards


def finalize(dirs: list[Path], out: Path, *, date: str | None = None) -> dict[str, Any]:
    """Merge the shards in ``dirs`` and write ``out/samples.jsonl`` and ``out/results.json``.

    Returns the results dict. Raises ``MergeError`` for inconsistent shards.
    """
    import time

    from mme3dr.harness.scoring import SetMetricMemo, score_samples
    from mme3dr.metrics import METRICS, get_metric

    t0 = time.perf_counter()
    dirs = [Path(d) for d in dirs]
    shards = _load_shards(dirs)
    meta = shards[0]["meta"]
    samples = sorted((s for sh in shards for s in sh["samples"]),
                     key=lambda s: (s["case_id"], s["sample_index"]))
    keys = [(s["case_id"], s["sample_index"]) for s in samples]
    if len(set(keys)) != len(keys):
        raise MergeError("the same (case, sample) appears in two shards; pass each shard directory once")
    references: dict[str, str] = {}
    for sh in shards:
        references.update(sh["references"])
    suite_ids = {sh["suite_id"] for sh in shards if sh["suite_id"]}
    if len(suite_ids) > 1:
        raise MergeError("shards used different feature encoders (weights or device); re-run them alike")
    task = meta["benchmark"]["name"]
    categories = list(dict.fromkeys(s["category"] for s in samples))
    order = [c for c in meta["benchmark"]["categories"] if c in categories]
    results = score_samples(samples, references, metrics=tuple(meta["metrics"]), categories=order,
                            features_dirs=[d / "features" for d in dirs],
                            suite_id=suite_ids.pop() if suite_ids else "", task=task,
                            memo=SetMetricMemo(Path(out) / "features" / "set-metrics"))
    failures: dict[str, int] = {}
    for s in samples:
        if s["failure"]:
            failures[s["failure"]] = failures.get(s["failure"], 0) + 1
    failures = {k: failures[k] for k in FAILURE_REASONS if k in failures}

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = [SampleRecord.model_validate(s) for s in samples]
    samples_sha = write_samples(records, out / "samples.jsonl")
    known = set(METRICS) | {"reference_clip"}
    metric_names = sorted({k for v in results.values() for k in v if k in known})
    hib = {m: (True if m == "reference_clip" else get_metric(m).higher_is_better) for m in metric_names}
    cfg = meta["config"]
    reasons = list(meta["ineligible_reasons"])
    timing: dict[str, float] = {}
    for sh in shards:
        for k, v in sh["timing"].items():
            timing[k] = round(timing.get(k, 0.0) + v, 3)
    timing["metrics"] = round(time.perf_counter() - t0, 3)
    doc = {
        "results": results,
        "configs": {task: {k: cfg[k] for k in ("benchmark", "manifest_sha256", "profile", "rig", "rig_hash",
                                                "render_size", "samples_per_prompt", "categories", "limit")}
                    | {"metrics": meta["metrics"]}},
        "versions": {task: meta["protocol_version"]},
        "n-samples": {task: {"original": meta["n_original"], "effective": len(samples)}},
        "higher_is_better": {task: hib},
        "config": cfg,
        "git_hash": meta["git_hash"],
        "date": date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "environment": meta["environment"],
        "mme3dr_version": meta["mme3dr_version"],
        "protocol_version": meta["protocol_version"],
        "profile": meta["profile"],
        "model_info": meta["model_info"],
        "adapter": meta["adapter"],
        "benchmark": meta["benchmark"],
        "rig_hash": meta["rig_hash"],
        "renderer": meta["renderer"],
        "metric_card": meta["metric_card"],
        "leaderboard_eligible": not reasons,
        "ineligible_reasons": reasons,
        "failures": failures,
        "samples_sha256": samples_sha,
        "execution": {"shards": [sh["execution"] for sh in sorted(
            shards, key=lambda s: s["execution"]["shard_index"])]},
        "timing": timing,
    }
    model = Results.model_validate(doc)
    dump_results(model, out / "results.json")
    return model.model_dump(by_alias=True, mode="json")
