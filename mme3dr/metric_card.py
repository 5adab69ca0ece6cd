"""The metric card of ``results.json`` (``results.metric_card``) and the renderer record, as typed models.

Light module (pydantic only), part of the results schema (``mme3dr.results`` re-exports every name):
the card records everything that decides a number besides the assets (encoders and their weights,
render settings, each metric's facts, the KD and bootstrap settings, the judge), and the leaderboard
checks it field by field against the profile a run claims (``leaderboard.content_checks``).
``mme3dr.harness.scoring.metric_card`` makes it from the feature suite's card and the metric classes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer

__all__ = ["BootstrapCard", "EncoderCard", "JudgeCard", "KdCard", "MetricCard", "MetricFacts", "RendererInfo"]

_SHA256 = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RendererInfo(_Strict):
    backend: str = Field(description="'egl' (moderngl, headless EGL); 'osmesa' before issue 12")
    versions: dict[str, str] = Field(description="library versions (moderngl, glcontext, trimesh, numpy)")
    rig: str
    rig_hash: str = Field(pattern=_SHA256)
    width: int
    height: int
    n_views: int
    shading: str



class _OmitNone(_Strict):
    """A card whose optional entries are left out (not written as null) when absent."""

    _OMIT: tuple[str, ...] = ()

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler):
        data = handler(self)
        return {k: v for k, v in data.items() if not (k in self._OMIT and v is None)}


class EncoderCard(_OmitNone):
    """One feature encoder as the metric card records it (``FeatureSuite.card()['encoders'][name]``)."""

    _OMIT = ("feature", "context_length", "text_truncation")
    model_id: str = Field(description="weights id, e.g. 'open_clip:ViT-B-32/openai'; 'smoke:...' for smoke")
    weights_sha256: str | None = None
    input_size: int
    resize: str
    normalise: dict[str, list[float]] | str
    feature: str | None = None
    context_length: int | None = None
    text_truncation: str | None = None


class MetricFacts(_Strict):
    """``mme3dr.metrics.Metric.facts()``: the class-level facts of one metric."""

    name: str
    title: str
    higher_is_better: bool
    scale: float
    feature: str
    lower_bound: float | None
    upper_bound: float | None
    leaderboard_eligible: bool


class KdCard(_Strict):
    """Kernel distance settings, read from ``mme3dr.metrics.KernelDistance``."""

    scale: float
    subsets: int
    subset_size_max: int
    seed: int


class BootstrapCard(_Strict):
    """The percentile bootstrap of every per-asset mean, read from ``mme3dr.metrics.Metric``."""

    resamples: int
    seed: int
    level: float


class JudgeCard(_Strict):
    """The VLM judge's settings (``mme3dr.judge.evaluation.judge_card``)."""

    model: str
    server_profile: str
    template: dict[str, Any]
    decoding: dict[str, Any]
    checklist_rules: str
    views: list[int]
    image_format: str
    score: str
    ci: str


class MetricCard(_OmitNone):
    """``results.metric_card``: everything that decides a number besides the assets (encoders and their
    weights, render settings, metric facts, KD and bootstrap settings, the judge). The leaderboard checks
    it field by field against the profile the run claims."""

    _OMIT = ("prompt_source", "judge")
    profile: str
    leaderboard_eligible: bool
    prompt_rule: str
    prompt_source: str | None = None
    render_size: list[int] = Field(min_length=2, max_length=2, description="[width, height] px")
    shading: str
    background: str
    encoders: dict[str, EncoderCard]
    metrics: dict[str, MetricFacts]
    rig: str
    rig_hash: str = Field(pattern=_SHA256)
    n_views: int
    kd: KdCard
    clip_bootstrap: BootstrapCard
    renderer: RendererInfo
    judge: JudgeCard | None = None
