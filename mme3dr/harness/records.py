"""The typed records ``mme3dr evaluate`` makes between its stages (models in :mod:`mme3dr.results`):

- :func:`run_config`: the output-determining configuration (the run fingerprint, ``results.config``);
- :func:`run_meta`: the :class:`~mme3dr.results.RunMeta` (everything in ``results.json`` besides the
  metrics, the samples' hash and the volatile keys), with the metric card;
- :func:`sample_record`: one :class:`~mme3dr.results.SampleRecord` from a
  :class:`~mme3dr.results.GenerationRecord`, its render outcomes and per-asset scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mme3dr import PROTOCOL_VERSION, __version__
from mme3dr.harness.inputs import BENCHMARKS, BenchmarkInputs
from mme3dr.results import GenerationRecord, ModelInfoRecord, RunMeta, SampleRecord

__all__ = ["ineligible_reasons", "run_config", "run_meta", "sample_record"]


def ineligible_reasons(cfg, inputs: BenchmarkInputs, profile, selected: list[str]) -> list[str]:
    """Why the run cannot be on the leaderboard (empty: eligible). ``selected``: the whole run's cases."""
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


def run_config(cfg, loaded, inputs: BenchmarkInputs, rig, profile) -> dict[str, Any]:
    """The output-determining configuration: the run fingerprint, and ``results.config``."""
    extra = {"prompt_source": profile.prompt_source} if profile.prompt_source != "case" else {}
    return {
        **extra,
        "model": loaded.source_record()["spec"],  # no local path (a file adapter: its name and hash)
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


def run_meta(cfg, loaded, inputs: BenchmarkInputs, rig, profile, config: dict[str, Any], suite,
             selected: list[str]) -> RunMeta:
    """The run's :class:`RunMeta` (``selected``: the whole run's case ids, for eligibility)."""
    from mme3dr.harness.provenance import environment_info, git_hash, renderer_info
    from mme3dr.harness.scoring import metric_card

    manifest = inputs.manifest
    renderer = renderer_info(cfg.backend, rig, profile.shading)
    info = loaded.model.info
    return RunMeta(
        protocol_version=PROTOCOL_VERSION, mme3dr_version=__version__, profile=profile.name,
        metrics=list(profile.metrics),
        model_info={k: getattr(info, k) for k in ModelInfoRecord.model_fields if hasattr(info, k)},
        adapter=loaded.source_record(),
        benchmark={"name": manifest.name, "version": manifest.version, "manifest_sha256": manifest.sha256,
                   "seed_namespace": manifest.name, "n_cases": len(manifest.cases),
                   "categories": list(dict.fromkeys(c.category for c in manifest.cases))},
        rig_hash=rig.hash, renderer=renderer, metric_card=metric_card(suite.card(), rig, renderer),
        ineligible_reasons=ineligible_reasons(cfg, inputs, profile, selected), config=config,
        n_original=len(manifest.cases) * cfg.samples_per_prompt, git_hash=git_hash(),
        environment=environment_info(),
    )


def _failure(gen: GenerationRecord, key: tuple[str, int], rendered, text) -> tuple[str | None, str | None]:
    """Why the sample has no score (``(None, None)``: it is scored). NaN or infinity in a render's
    features (``rendered.nonfinite``) or in the prompt's CLIP text feature fails the sample here, so it
    never reaches an aggregate."""
    ref_out, gen_out = rendered.references.get(key[0]), rendered.generated.get(key)
    if gen.failure is not None:  # generation already failed; recorded as is
        return gen.failure, gen.detail
    if gen_out is None:
        return "missing_output", "the stored asset is missing; re-run with --resume"
    if not gen_out.ok:
        return gen_out.reason, gen_out.detail or gen_out.error
    if ("generated", key) in rendered.nonfinite:
        names = ", ".join(rendered.nonfinite[("generated", key)])
        return "non_finite_features", f"the {names} features of this render hold NaN or infinity"
    if ("references", key[0]) not in rendered.features:
        detail = ref_out.detail if ref_out is not None else "no reference object"
        detail = f"reference could not be rendered: {detail}"
        if ("references", key[0]) in rendered.nonfinite:
            names = ", ".join(rendered.nonfinite[("references", key[0])])
            detail = f"the reference render's {names} features hold NaN or infinity"
        return "reference_missing", detail
    if text is not None and not np.isfinite(text).all():
        return "non_finite_features", "the CLIP text feature of the prompt holds NaN or infinity"
    return None, None


def sample_record(case, i: int, gen: GenerationRecord, rendered, text: dict, metrics) -> SampleRecord:
    """One ``samples.jsonl`` record: generation record ``gen`` of (``case``, sample ``i``) with its render
    outcomes and per-asset scores (:func:`mme3dr.harness.scoring.asset_metrics`) from ``rendered``;
    ``text`` maps case id -> CLIP text feature; ``metrics``: the profile's metric names."""
    from mme3dr.benchmark.captions import prompt_sha256
    from mme3dr.harness.scoring import asset_metrics

    prompt = case.prompt or ""
    key = (case.case_id, i)
    ref_out = rendered.references.get(case.case_id)
    ref = rendered.features.get(("references", case.case_id))
    t = text.get(case.case_id)
    usable_text = t is not None and bool(np.isfinite(t).all())
    failure, detail = _failure(gen, key, rendered, t)
    gen_feats = rendered.features[("generated", key)] if failure is None else None
    scores = asset_metrics(metrics, t, gen_feats, ref) if usable_text else {}
    return SampleRecord(
        case_id=case.case_id, category=case.category, sample_index=i, seed=gen.seed, prompt=prompt,
        prompt_sha256=prompt_sha256(prompt),
        reference_sha256=ref_out.asset_sha256 if ref_out is not None else None,
        asset_sha256=gen.asset_sha256, asset_format=gen.asset_format,
        render_sha256=rendered.render_sha256[("generated", key)] if failure is None else None,
        reference_render_sha256=rendered.render_sha256.get(("references", case.case_id)),
        metrics=scores, status="ok" if failure is None else "failed", failure=failure,
        failure_detail=detail, seconds=gen.seconds,
    )
