"""The served reward models of AR3D-R1, as plain callables over (prompts, views).

Each asks an OpenAI-compatible server through ``mme3dr.judge`` (one client, concurrency, retries,
response cache) with a versioned template, and returns a :class:`RewardBatch` in the paper's ranges
(paper-facts.md, "Rewards"):

- ``UnifiedThinkGeometry`` (step 1): UnifiedReward-Think qwen-7b, each view, max;
  ``geometric_alignment`` 1–5.
- ``UnifiedReward2`` (step 2): UnifiedReward-2.0 qwen-7b, each view, max per dimension;
  ``alignment``, ``coherence``, ``style`` 1–5 each.
- ``CategoryMatch`` (step 1): Qwen2.5-VL-7B-Instruct, the 6 views jointly; ``category_match`` {0, 1}.
- ``Consistency`` (step 2): Qwen2.5-VL-7B-Instruct, jointly; ``colour``, ``material``, ``texture``
  [0, 1] each.
- ``PartCompleteness`` (step 2): Qwen2.5-VL-7B-Instruct, jointly; ``part_existence`` and
  ``part_completeness`` [0, 1] each (means over the caption's parts; their sum is the paper's 0–2).

Part completeness: the paper asks ShapeLLM about a coloured point cloud. We ask a VLM over the same
six rendered views instead: the views carry the colour the point cloud would, the request goes
through the same client, cache and failure handling as every other reward, and a served
ShapeLLM-Omni would see only occupancy tokens (no colour) and is a generator, not a trained judge.
Parts and counts come from the caption (``mme3dr.judge.prompt_parts``); a caption that names no
part is judged on one part, the object itself (the paper does not say; this is our choice).

A sample whose request fails or whose reply does not parse (for any of its views, in the per-view
rewards) is a failure: NaN in this reward's dimensions and the reason in ``failures``. Nothing is
defaulted, clipped or taken from the views that happened to parse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ar3d_r1.rewards.endpoints import Endpoint
from ar3d_r1.rewards.outputs import RewardBatch
from mme3dr.judge import (
    JudgeRequest,
    JudgeResult,
    ResponseCache,
    ask_all_sync,
    encode_image,
    load_template,
    numbered,
    prompt_parts,
)
from mme3dr.judge.checklist import object_phrase


class VLMReward:
    """Base class: ``template`` asked per view (``per_view``) or once over all views."""

    name = ""
    template_name = ""
    dimensions: tuple[str, ...] = ()
    ranges: dict[str, tuple[float, float]] = {}
    per_view = False

    def __init__(self, endpoint: Endpoint, cache: ResponseCache | None = None):
        self.endpoint, self.cache = endpoint, cache
        self.template = load_template(self.template_name, endpoint.templates.get(self.template_name))

    def variables(self, prompt: str) -> dict:
        return {"prompt": prompt}

    def values(self, parsed, variables: dict) -> dict[str, float]:
        return dict(parsed.values)

    def card(self) -> dict:
        ep = self.endpoint
        return {"model": ep.judge.model, "template": self.template.card(), "decoding": ep.decoding.card(),
                "image_format": ep.image_format, "per_view": self.per_view}

    def requests(self, prompts: Sequence[str], views: Sequence[np.ndarray]) -> list[list[JudgeRequest]]:
        """Per sample, its requests: one per view (``per_view``) or one with every view."""
        if len(prompts) != len(views):
            raise ValueError(f"{len(prompts)} prompts but {len(views)} view sets")
        out = []
        for prompt, sample in zip(prompts, views, strict=True):
            images = [encode_image(np.asarray(v), self.endpoint.image_format) for v in sample]
            variables = self.variables(prompt)
            groups = [[im] for im in images] if self.per_view else [images]
            decoding = self.endpoint.decoding
            out.append([JudgeRequest(self.template, tuple(g), variables, decoding) for g in groups])
        return out

    def __call__(self, prompts: Sequence[str], views: Sequence[np.ndarray], **columns) -> RewardBatch:
        """``prompts``: ``(N,)`` captions; ``views[i]``: ``(V, H, W, 3|4) uint8`` → RewardBatch."""
        per_sample = self.requests(prompts, views)
        flat = [r for rs in per_sample for r in rs]
        results = iter(ask_all_sync(self.endpoint.judge, flat, self.cache))
        grouped = [[next(results) for _ in rs] for rs in per_sample]
        return self.collect(per_sample, grouped)

    def collect(self, requests: list[list[JudgeRequest]], results: list[list[JudgeResult]]) -> RewardBatch:
        """Turn each sample's results into its dimensions (max over views per dimension) or a failure.

        ``meta[name]["counts"]``: requests asked, answered from the response cache, answered but not
        parsed, and failed (no reply after the retries)."""
        values = {d: np.full(len(results), np.nan) for d in self.dimensions}
        failures: list[str | None] = []
        for i, (reqs, res) in enumerate(zip(requests, results, strict=True)):
            problems = [f"view {k}: {_reason(r)}" if self.per_view else _reason(r)
                        for k, r in enumerate(res) if not r.ok]
            if problems:
                failures.append(f"{self.name}: " + "; ".join(problems))
                continue
            per_view = [self.values(r.parsed, q.variables) for q, r in zip(reqs, res, strict=True)]
            for d in self.dimensions:
                values[d][i] = max(v[d] for v in per_view)
            failures.append(None)
        keys = [[r.key for r in res] for res in results]
        flat = [r for res in results for r in res]
        counts = {"requests": len(flat), "cached": sum(r.cached for r in flat),
                  # a reply the server cut short (finish_reason "length") arrived but is not parsed
                  "unparsed": sum(not r.ok and (r.failure is None or r.failure.reason == "incomplete")
                                  for r in flat),
                  "failed": sum(r.failure is not None and r.failure.reason != "incomplete" for r in flat)}
        meta = {**self.card(), "cache_keys": keys, "counts": counts}
        return RewardBatch(values, failures, {self.name: meta})


def _reason(result: JudgeResult) -> str:
    if result.failure is not None:
        f = result.failure
        return f"request failed ({f.reason}, {f.attempts} attempt(s)): {f.detail}"
    return f"unparsed reply ({result.parsed.reason}): {result.reply[:120]!r}"


class UnifiedThinkGeometry(VLMReward):
    """Step 1: UnifiedReward-Think geometric alignment, 1–5, max over views (our prompt; the paper's
    pointwise prompt is not public)."""

    name, template_name, per_view = "unified_think", "unifiedreward-think-geometry", True
    dimensions, ranges = ("geometric_alignment",), {"geometric_alignment": (1.0, 5.0)}


class UnifiedReward2(VLMReward):
    """Step 2: UnifiedReward-2.0 alignment, coherence, style, each 1–5, max over views per dimension."""

    name, template_name, per_view = "unified2", "unifiedreward2-pointwise", True
    dimensions = ("alignment", "coherence", "style")
    ranges = dict.fromkeys(dimensions, (1.0, 5.0))


class CategoryMatch(VLMReward):
    """Step 1: Qwen2.5-VL, does the shape match the caption's object category, {0, 1}, all views jointly."""

    name, template_name = "category", "qwen-category-match"
    dimensions, ranges = ("category_match",), {"category_match": (0.0, 1.0)}


class Consistency(VLMReward):
    """Step 2: Qwen2.5-VL cross-view colour, material, texture consistency, each [0, 1], jointly."""

    name, template_name = "consistency", "qwen-consistency"
    dimensions = ("colour", "material", "texture")
    ranges = dict.fromkeys(dimensions, (0.0, 1.0))


class PartCompleteness(VLMReward):
    """Step 2: per caption part, existence {0,1} and completeness [0,1]; each averaged over parts."""

    name, template_name = "parts", "part-completeness"
    dimensions = ("part_existence", "part_completeness")
    ranges = dict.fromkeys(dimensions, (0.0, 1.0))

    def variables(self, prompt: str) -> dict:
        parts = [p.describe() for p in prompt_parts(prompt)] or [object_phrase(prompt)]
        return {"prompt": prompt, "parts": numbered(parts), "n_items": len(parts)}

    def values(self, parsed, variables: dict) -> dict[str, float]:
        items = parsed.items
        return {"part_existence": float(np.mean([it["exists"] for it in items])),
                "part_completeness": float(np.mean([it["completeness"] for it in items]))}


#: Reward name → (class, endpoint name in the endpoints file).
VLM_REWARDS = {
    "unified_think": (UnifiedThinkGeometry, "unifiedreward_think"),
    "unified2": (UnifiedReward2, "unifiedreward2"),
    "category": (CategoryMatch, "qwen_vl"),
    "consistency": (Consistency, "qwen_vl"),
    "parts": (PartCompleteness, "qwen_vl"),
}
