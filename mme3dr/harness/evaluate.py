"""The ``mme3dr evaluate`` pipeline, top to bottom (design.md §1):

generate (adapter, per-request timeout) → content-addressed asset store → validate/normalise + render
(the generated assets and the reference objects, same rig, render cache) → features (cached per render)
→ per-asset scores → ``samples.jsonl`` → set metrics and ``results.json`` (``mme3dr.harness.merge.finalize``).

Every stage is keyed by content hashes, so a re-run or ``--resume`` skips finished work, and a killed run
loses at most the sample in flight. A sharded run (``--num-shards K --shard-index i``) stops before the
set metrics and writes ``shard.json``; ``mme3dr merge`` combines the shards into the same results as one
run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mme3dr import PROTOCOL_VERSION, __version__
from mme3dr.assets.store import AssetStore
from mme3dr.harness.generation import generate_batch
from mme3dr.harness.inputs import BENCHMARKS, BenchmarkInputs, load_benchmark_inputs
from mme3dr.harness.run_state import RunState
from mme3dr.models.protocol import GenerationRequest, derive_seed

__all__ = ["EvalConfig", "EvalSummary", "evaluate", "select_cases"]


@dataclass
class EvalConfig:
    """Everything ``mme3dr evaluate`` takes (the CLI flags, one to one)."""

    model: str
    out: Path
    model_args: str = ""
    benchmark: str = "demo"
    profile: str = "smoke"
    toys4k: Path | None = None
    toys4k_kind: str | None = None
    captions: Path | None = None
    limit: int | None = None
    samples_per_prompt: int = 1
    categories: tuple[str, ...] = ()
    resume: bool = False
    overwrite: bool = False
    workers: int = 1
    num_shards: int = 1
    shard_index: int = 0
    device: str = "cpu"
    timeout: float | None = 600.0
    cache_dir: Path | None = None
    render_size: int | None = None
    weights_dir: Path | None = None
    backend: str | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.samples_per_prompt < 1:
            raise ValueError("--samples-per-prompt must be at least 1")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"--shard-index must be in 0..{self.num_shards - 1}, got {self.shard_index}")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")


@dataclass
class EvalSummary:
    out: Path
    results_path: Path | None
    n_ok: int
    n_failed: int
    failures: dict[str, int]
    counters: dict[str, int]
    timing: dict[str, float]
    results: dict[str, Any] | None = None
    shard_only: bool = False


def select_cases(inputs: BenchmarkInputs, cfg: EvalConfig) -> list:
    """The cases this run evaluates: ``--categories``, then ``--limit`` (first N), then the shard."""
    cases = list(inputs.manifest.cases)
    if cfg.categories:
        unknown = sorted(set(cfg.categories) - {c.category for c in cases})
        if unknown:
            raise ValueError(f"--categories: {', '.join(unknown)} not in {inputs.manifest.name}; "
                             f"categories there: {', '.join(inputs.manifest.counts())}")
        cases = [c for c in cases if c.category in cfg.categories]
    if cfg.limit is not None:
        cases = cases[: cfg.limit]
    return cases[cfg.shard_index :: cfg.num_shards]


def _ineligible_reasons(cfg: EvalConfig, inputs: BenchmarkInputs, profile, selected: list[str]) -> list[str]:
    reasons = list(inputs.ineligible_reasons)
    if not profile.leaderboard_eligible:
        reasons.append(f"profile {profile.name!r} is never leaderboard-eligible")
    if cfg.benchmark not in BENCHMARKS:
        reasons.append(f"benchmark {cfg.benchmark!r} is not a built-in benchmark")
    if cfg.limit is not None:
        reasons.append(f"--limit {cfg.limit}: a partial run is not comparable")
    if cfg.categories:
        reasons.append(f"--categories {','.join(cfg.categories)}: a partial run is not comparable")
    if cfg.render_size is not None:
        reasons.append(f"--render-size {cfg.render_size} overrides the protocol's render size")
    missing = [k for k in selected if inputs.references.get(k) is None or inputs.references[k].path is None]
    if missing and not inputs.ineligible_reasons:
        reasons.append(f"{len(missing)} reference object(s) missing: the reference set is incomplete")
    return reasons


def _run_config(cfg: EvalConfig, loaded, inputs: BenchmarkInputs, rig, profile) -> dict[str, Any]:
    """The output-determining configuration: the run fingerprint, and ``results.config``."""
    return {
        "model": cfg.model,
        "model_args": loaded.model_args,
        "adapter_target": loaded.target,
        "adapter_file_sha256": loaded.file_sha256,
        "benchmark": inputs.manifest.name,
        "manifest_sha256": inputs.manifest.sha256,
        "profile": profile.name,
        "rig": rig.name,
        "rig_hash": rig.hash,
        "render_size": rig.width,
        "samples_per_prompt": cfg.samples_per_prompt,
        "categories": list(cfg.categories),
        "limit": cfg.limit,
        "timeout": cfg.timeout,
        "device": cfg.device,
    }


Progress = Callable[[str, int, int], None]


def _generate_stage(cfg, state, store, loaded, inputs, cases, progress: Progress, counters) -> None:
    model = loaded.model
    if hasattr(model, "bind_references"):  # the oracle: the only adapter allowed to see references
        model.bind_references({k: (r.path, r.up_axis) for k, r in inputs.references.items() if r.path})
    pending: list[GenerationRequest] = []
    total = len(cases) * cfg.samples_per_prompt
    done = 0
    for case in cases:
        ref = inputs.references.get(case.case_id)
        for i in range(cfg.samples_per_prompt):
            seed = derive_seed(inputs.manifest.name, case.case_id, i)
            if state.get(case.case_id, i) is not None:
                counters["generation_skipped"] += 1
                done += 1
            elif ref is None or ref.path is None or not case.prompt:
                detail = (ref.error if ref else None) or "the case has no reference object or prompt"
                state.put(case.case_id, i, {"seed": seed, "failure": "reference_missing", "detail": detail})
                done += 1
            else:
                pending.append(GenerationRequest(case.case_id, case.prompt, seed, i,
                                                 state.work_dir(case.case_id, i)))
    progress("generate", done, total)
    batch_size = max(1, int(getattr(model, "max_batch_size", 1) or 1))
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        for outcome in generate_batch(model, batch, cfg.timeout):
            r = outcome.request
            record: dict[str, Any] = {"seed": r.seed, "seconds": outcome.seconds}
            if outcome.asset is None:
                record.update(failure=outcome.failure, detail=outcome.detail)
            else:
                try:
                    stored = store.put(outcome.asset.path, outcome.asset.resolved_format)
                    record.update(asset_sha256=stored.sha256, asset_format=stored.format,
                                  up_axis=outcome.asset.up_axis)
                except OSError as e:
                    record.update(failure="missing_output", detail=f"could not copy the asset: {e}")
            state.put(r.case_id, r.sample_index, record)
            counters["generated"] += 1
            done += 1
        progress("generate", done, total)


def _cache_dir(cfg: EvalConfig) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else cfg.out / "cache"


def evaluate(cfg: EvalConfig, progress: Progress | None = None) -> EvalSummary:
    """Run the pipeline; returns a summary (``results`` is ``None`` for a shard: merge finishes it)."""
    from mme3dr.features.profiles import get_profile
    from mme3dr.harness.merge import finalize, shard_manifest
    from mme3dr.harness.render_features import render_and_encode
    from mme3dr.harness.scoring import ViewFeatures
    from mme3dr.models.registry import load_model
    from mme3dr.render.cameras import get_rig
    from mme3dr.render.pool import RenderPool

    progress = progress or (lambda stage, done, total: None)
    timing: dict[str, float] = {}
    counters = dict.fromkeys(("generated", "generation_skipped", "renders_done", "renders_cached",
                              "features_computed", "features_cached"), 0)
    t0 = time.perf_counter()
    profile = get_profile(cfg.profile)
    rig = get_rig("eval24")
    size = cfg.render_size or profile.render_size
    if size and size != rig.width:
        rig = rig.with_size(size)
    inputs = load_benchmark_inputs(cfg.benchmark, toys4k=cfg.toys4k, toys4k_kind=cfg.toys4k_kind,
                                   captions=cfg.captions, cache_dir=_cache_dir(cfg))
    # Eligibility looks at the whole run's cases, not this shard's, so every shard writes the same meta.
    whole = select_cases(inputs, replace(cfg, num_shards=1, shard_index=0))
    cases = whole[cfg.shard_index :: cfg.num_shards]
    loaded = load_model(cfg.model, cfg.model_args)
    run_config = _run_config(cfg, loaded, inputs, rig, profile)
    state = RunState(cfg.out)
    resumed = state.open({**run_config, "num_shards": cfg.num_shards, "shard_index": cfg.shard_index},
                         resume=cfg.resume, overwrite=cfg.overwrite)
    store = AssetStore(cfg.out / "assets")
    # The render workers start here, so their start-up (≈ 3 s each) overlaps building the encoders and
    # generating; the pool lives until the last render is encoded.
    with RenderPool(rig, _cache_dir(cfg) / "renders", workers=cfg.workers, shading=profile.shading,
                    backend=cfg.backend, keep_views=True) as pool:
        # Build the encoders before anything renders: importing torch (triton) after OSMesa/EGL is loaded
        # into the process segfaults on these machines, so torch must come first.
        from mme3dr.features import load_feature_suite

        suite = load_feature_suite(profile, device=cfg.device, weights_dir=cfg.weights_dir)
        timing["setup"] = time.perf_counter() - t0

        t = time.perf_counter()
        _generate_stage(cfg, state, store, loaded, inputs, cases, progress, counters)
        timing["generate"] = time.perf_counter() - t

        # Render (references first, then the generated assets, one pool of workers) and encode each render
        # as it finishes (mme3dr.harness.render_features).
        ref_items = [(c.case_id, inputs.references[c.case_id].path, inputs.references[c.case_id].up_axis)
                     for c in cases if c.case_id in inputs.references and inputs.references[c.case_id].path]
        keys = [(c, i) for c in cases for i in range(cfg.samples_per_prompt)]
        records = {(c.case_id, i): state.get(c.case_id, i) or {} for c, i in keys}
        gen_items = []
        for case, i in keys:
            rec = records[(case.case_id, i)]
            path = store.get(rec["asset_sha256"], rec["asset_format"]) if rec.get("asset_sha256") else None
            if path is not None:
                gen_items.append(((case.case_id, i), path, rec.get("up_axis", "y")))
        vf = ViewFeatures(suite, cfg.out / "features")
        rendered = render_and_encode(pool, ref_items, gen_items, features=vf, counters=counters,
                                     progress=progress, timing=timing)

    # Per-asset scores.
    t = time.perf_counter()
    from mme3dr.metrics import asset_clip_score, object_rbf_similarity

    prompts = sorted({profile.prepare_prompt(c.prompt) for c in cases if c.prompt})
    # One prompt per call: a batch's floating-point result depends on the batch's size and company, and
    # a case's score must not depend on which other cases share its run (shards, --limit, resume).
    text = {p: suite.clip.encode_texts([p])[0] for p in prompts}
    ref_shas = {k: sha for (side, k), sha in rendered.render_sha256.items() if side == "references"}
    samples = [_sample_record(case, i, records[(case.case_id, i)], rendered, text, profile,
                              asset_clip_score, object_rbf_similarity) for case, i in keys]
    timing["features"] += time.perf_counter() - t

    meta = _results_meta(cfg, loaded, inputs, rig, profile, run_config, suite, [c.case_id for c in whole])
    execution = {"workers": cfg.workers, "num_shards": cfg.num_shards, "shard_index": cfg.shard_index,
                 "resumed": resumed, "counters": counters}
    render_dirs = {sha: str(rendered.references[k].render_dir) for k, sha in ref_shas.items()}
    for s in samples:
        if s["render_sha256"]:
            gen_out = rendered.generated[(s["case_id"], s["sample_index"])]
            render_dirs[s["render_sha256"]] = str(gen_out.render_dir)
    shard_manifest(cfg.out, meta=meta, samples=samples, references=ref_shas, render_dirs=render_dirs,
                   suite_id=vf.suite_id, execution=execution, timing=timing)
    failures: dict[str, int] = {}
    for s in samples:
        if s["failure"]:
            failures[s["failure"]] = failures.get(s["failure"], 0) + 1
    n_ok = sum(s["status"] == "ok" for s in samples)
    if cfg.num_shards > 1:
        return EvalSummary(cfg.out, None, n_ok, len(samples) - n_ok, failures, counters, timing, None, True)
    t = time.perf_counter()
    results = finalize([cfg.out], cfg.out)
    timing["metrics"] = time.perf_counter() - t
    timing["total"] = time.perf_counter() - t0
    return EvalSummary(cfg.out, cfg.out / "results.json", n_ok, len(samples) - n_ok, failures, counters,
                       timing, results)


def _sample_record(case, i, rec, rendered, text, profile, asset_clip_score,
                   object_rbf_similarity) -> dict[str, Any]:
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
    elif ref is None:
        detail = ref_out.detail if ref_out is not None else "no reference object"
        record.update(failure="reference_missing",
                      failure_detail=f"reference could not be rendered: {detail}")
    else:
        feats = rendered.features[("generated", (case.case_id, i))]
        t = text[profile.prepare_prompt(prompt)]
        metrics = {"clip": asset_clip_score(feats["clip"], t),
                   "reference_clip": asset_clip_score(ref["clip"], t)}
        if "script_kd_dinov2_rbf" in profile.metrics:
            metrics["script_kd_dinov2_rbf"] = object_rbf_similarity(feats["dinov2"], ref["dinov2"])
        rounded = {k: float(f"{v:.12g}") for k, v in metrics.items()}
        record.update(render_sha256=rendered.render_sha256[("generated", (case.case_id, i))], status="ok",
                      metrics=rounded)
    return record


def _info_record(info: Any) -> dict[str, Any]:
    """The adapter's ``info`` as ``results.model_info`` (any object with ModelInfo's attributes)."""
    from mme3dr.results import ModelInfoRecord

    return {k: getattr(info, k) for k in ModelInfoRecord.model_fields if hasattr(info, k)}


def _results_meta(cfg, loaded, inputs, rig, profile, run_config, suite, selected) -> dict[str, Any]:
    """Everything in results.json except the metrics, samples hash and volatile keys."""
    from mme3dr.harness.provenance import environment_info, git_hash, renderer_info

    manifest = inputs.manifest
    reasons = _ineligible_reasons(cfg, inputs, profile, selected)
    renderer = renderer_info(cfg.backend, rig, profile.shading)
    card = suite.card() if suite is not None else {"profile": profile.name}
    card.update({"rig": rig.name, "rig_hash": rig.hash, "render_size": [rig.width, rig.height],
                 "n_views": rig.n_views, "shading": profile.shading,
                 "kd": {"scale": 100.0, "subsets": 100, "subset_size_max": 1000, "seed": 0},
                 "clip_bootstrap": {"resamples": 1000, "seed": 0, "level": 0.95},
                 "renderer": renderer})
    categories = list(dict.fromkeys(c.category for c in manifest.cases))
    return {
        "protocol_version": PROTOCOL_VERSION,
        "mme3dr_version": __version__,
        "profile": profile.name,
        "metrics": list(profile.metrics),
        "model_info": _info_record(loaded.model.info),
        "adapter": loaded.source_record(),
        "benchmark": {"name": manifest.name, "version": manifest.version, "manifest_sha256": manifest.sha256,
                      "seed_namespace": manifest.name, "n_cases": len(manifest.cases),
                      "categories": categories},
        "rig_hash": rig.hash,
        "renderer": renderer,
        "metric_card": card,
        "ineligible_reasons": reasons,
        "config": run_config,
        "n_original": (len(manifest.cases)) * cfg.samples_per_prompt,
        "git_hash": git_hash(),
        "environment": environment_info(),
    }
