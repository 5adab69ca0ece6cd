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

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mme3dr import PROTOCOL_VERSION, __version__
from mme3dr.assets.store import AssetStore, ClosureError
from mme3dr.harness.inputs import BENCHMARKS, BenchmarkInputs, load_benchmark_inputs
from mme3dr.harness.run_state import RunLock, RunState
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
    #: Resume even though this machine's renderer differs from the one that started the run.
    allow_renderer_change: bool = False
    #: ``case`` or ``raw_captions_column`` (ar3d-r1-script only; see MetricProfile.prompt_source).
    prompt_source: str = "case"

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.samples_per_prompt < 1:
            raise ValueError("--samples-per-prompt must be at least 1")
        if self.num_shards < 1:
            raise ValueError(f"--num-shards must be at least 1, got {self.num_shards}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"--shard-index must be in 0..{self.num_shards - 1}, got {self.shard_index}")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if self.timeout is not None and self.timeout < 0:
            raise ValueError(f"--timeout must be 0 (no limit) or more seconds, got {self.timeout}")
        if self.render_size is not None and not 16 <= self.render_size <= 4096:
            raise ValueError(f"--render-size must be in 16..4096 px, got {self.render_size}")
        if self.resume and self.overwrite:
            raise ValueError("--resume continues the run in --out and --overwrite discards it; pass only "
                             "one of them")


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
    extra = {"prompt_source": profile.prompt_source} if profile.prompt_source != "case" else {}
    return {
        **extra,
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
    """Generate every missing (case, sample) through the adapter process (``loaded``) and record it."""
    from mme3dr.output_files import is_disk_full

    if loaded.wants_references:  # the oracle: the only adapter allowed to see references
        loaded.bind_references({k: (r.path, r.up_axis) for k, r in inputs.references.items() if r.path})
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
    batch_size = loaded.max_batch_size
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        for outcome in loaded.generate(batch, cfg.timeout):
            r = outcome.request
            record: dict[str, Any] = {"seed": r.seed, "seconds": outcome.seconds}
            if outcome.asset is None:
                record.update(failure=outcome.failure, detail=outcome.detail)
            else:
                try:
                    stored = store.put(outcome.asset.path, outcome.asset.resolved_format)
                    record.update(asset_sha256=stored.sha256, asset_format=stored.format,
                                  up_axis=outcome.asset.up_axis)
                except ClosureError as e:  # it references a file outside its folder
                    record.update(failure="asset_refused", detail=str(e))
                except OSError as e:
                    if is_disk_full(e):  # not the adapter's fault: stop, record nothing, --resume redoes it
                        raise
                    record.update(failure="missing_output", detail=f"could not copy the asset: {e}")
                except Exception as e:  # noqa: BLE001 - whatever storing one asset raises is its failure
                    record.update(failure="asset_refused",
                                  detail=f"could not store the asset ({type(e).__name__}: {str(e)[:500]})")
            state.put(r.case_id, r.sample_index, record)
            counters["generated"] += 1
            done += 1
        progress("generate", done, total)


def _cache_dir(cfg: EvalConfig) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else cfg.out / "cache"


def evaluate(cfg: EvalConfig, progress: Progress | None = None) -> EvalSummary:
    """Run the pipeline; returns a summary (``results`` is ``None`` for a shard: merge finishes it).

    Before anything is written: ``--out`` (and ``--cache-dir``) must be usable folders, the device
    must exist, and no other process may hold the run folder (``RunLock``, held to the end). Raises
    ``ValueError`` / ``RunStateError`` / ``ModelSpecError`` / ``BenchmarkInputError`` for unusable
    input, and an ``OSError`` for a full disk (``mme3dr.output_files.is_disk_full``): every file
    written until then is complete, and ``--resume`` continues once there is space.
    """
    from mme3dr.harness.run_guards import check_device
    from mme3dr.output_files import prepare_output_dir

    prepare_output_dir(cfg.out, "--out")
    if cfg.cache_dir is not None:
        prepare_output_dir(cfg.cache_dir, "--cache-dir")
    check_device(cfg.device)
    with RunLock(cfg.out):
        return _evaluate(cfg, progress or (lambda stage, done, total: None))


def _evaluate(cfg: EvalConfig, progress: Progress) -> EvalSummary:
    from mme3dr.audit import record_frame_audit
    from mme3dr.features.profiles import get_profile, with_options
    from mme3dr.harness.adapter_process import AdapterProcess
    from mme3dr.harness.merge import finalize, shard_manifest
    from mme3dr.harness.render_features import render_and_encode
    from mme3dr.harness.run_guards import check_folder_matches
    from mme3dr.harness.scoring import ViewFeatures, sample_record
    from mme3dr.render.cameras import get_rig
    from mme3dr.render.pool import RenderPool

    timing: dict[str, float] = {}
    counters = dict.fromkeys(("generated", "generation_skipped", "renders_done", "renders_cached",
                              "features_computed", "features_cached"), 0)
    t0 = time.perf_counter()
    profile = with_options(get_profile(cfg.profile), prompt_source=cfg.prompt_source)
    rig = get_rig("eval24")
    size = cfg.render_size or profile.render_size
    if size and size != rig.width:
        rig = rig.with_size(size)
    inputs = load_benchmark_inputs(cfg.benchmark, toys4k=cfg.toys4k, toys4k_kind=cfg.toys4k_kind,
                                   captions=cfg.captions, cache_dir=_cache_dir(cfg))
    # Eligibility looks at the whole run's cases, not this shard's, so every shard writes the same meta.
    whole = select_cases(inputs, replace(cfg, num_shards=1, shard_index=0))
    cases = whole[cfg.shard_index :: cfg.num_shards]
    check_folder_matches(cfg.model, [(c.case_id, i) for c in cases for i in range(cfg.samples_per_prompt)])
    clip_texts = {c.case_id: profile.clip_text(c.prompt, inputs.raw_captions.get(c.case_id))
                  for c in cases if c.prompt}
    with contextlib.ExitStack() as stack:
        loaded = stack.enter_context(AdapterProcess(cfg.model, cfg.model_args))  # the adapter's own process
        run_config = _run_config(cfg, loaded, inputs, rig, profile)
        state = RunState(cfg.out)
        resumed = state.open({**run_config, "num_shards": cfg.num_shards, "shard_index": cfg.shard_index},
                             resume=cfg.resume, overwrite=cfg.overwrite)
        store = AssetStore(cfg.out / "assets")
        # The render workers start here, so their start-up (≈ 3 s each) overlaps building the encoders and
        # generating; the pool lives until the last render is encoded.
        pool = stack.enter_context(RenderPool(rig, _cache_dir(cfg) / "renders", workers=cfg.workers,
                                              shading=profile.shading, backend=cfg.backend, keep_views=True))
        # Build the encoders before anything renders: importing torch (triton) after Mesa's EGL is loaded
        # into the process segfaults on these machines, so torch must come first.
        from mme3dr.features import load_feature_suite

        suite = load_feature_suite(profile, device=cfg.device, weights_dir=cfg.weights_dir)
        state.check_renderer(pool.renderer_identity(), allow_change=cfg.allow_renderer_change)
        timing["setup"] = time.perf_counter() - t0

        t = time.perf_counter()
        _generate_stage(cfg, state, store, loaded, inputs, cases, progress, counters)
        loaded.close()  # the adapter's memory (a GPU model) is free for the encoders from here on
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

    prompts = sorted(set(clip_texts.values()))
    # One prompt per call: a batch's floating-point result depends on the batch's size and company, and
    # a case's score must not depend on which other cases share its run (shards, --limit, resume).
    text = {p: suite.clip.encode_texts([p])[0] for p in prompts}
    ref_shas = {k: sha for (side, k), sha in rendered.render_sha256.items() if side == "references"}
    text = {case_id: text[clip_text] for case_id, clip_text in clip_texts.items()}  # case id -> feature
    samples = [sample_record(case, i, records[(case.case_id, i)], rendered, text, profile,
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
    results = record_frame_audit(cfg.out, results)  # mme3dr.audit: warns, never changes a score
    timing["total"] = time.perf_counter() - t0
    return EvalSummary(cfg.out, cfg.out / "results.json", n_ok, len(samples) - n_ok, failures, counters,
                       timing, results)


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
