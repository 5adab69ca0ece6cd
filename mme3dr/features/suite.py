"""The feature suite of a metric profile: its CLIP, Inception and DINOv2 encoders and their card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mme3dr.features.profiles import MetricProfile, get_profile, with_options


@dataclass
class FeatureSuite:
    """The encoders a profile uses; an encoder the profile does not need is ``None``.

    - ``clip.encode_images(images (N, H, W, 3) uint8) -> (N, D) float64`` unit rows;
      ``clip.encode_texts(list[str]) -> (N, D) float64`` unit rows;
    - ``inception(images) -> (N, 2048) float64``; ``dinov2(images) -> (N, D) float64``.
    """

    profile: MetricProfile
    clip: object
    inception: object | None
    dinov2: object | None
    device: str = "cpu"

    def encoders(self) -> dict:
        pairs = (("clip", self.clip), ("inception", self.inception), ("dinov2", self.dinov2))
        return {k: v for k, v in pairs if v is not None}

    def card(self) -> dict:
        """The metric-card fragment: profile, model ids, weight sha256s, input sizes, resize filters."""
        from mme3dr.metrics.definitions import get_metric

        return {
            "profile": self.profile.name,
            "leaderboard_eligible": self.profile.leaderboard_eligible,
            "prompt_rule": self.profile.prompt_rule,
            **({"prompt_source": self.profile.prompt_source} if self.profile.prompt_source != "case" else {}),
            "render_size": self.profile.render_size,
            "shading": self.profile.shading,
            "background": self.profile.background,
            "encoders": {name: enc.card() for name, enc in self.encoders().items()},
            "metrics": {name: get_metric(name).facts() for name in self.profile.metrics},
        }


def _pre_resized(encoder, prof: MetricProfile):
    encoder.pre_resize = prof.dinov2_pre_resize
    return encoder


def load_feature_suite(
    profile: str | MetricProfile,
    *,
    device: str = "cpu",
    weights_dir: str | Path | None = None,
    clip: str | None = None,
    dinov2: str | None = None,
    batch_size: int = 32,
) -> FeatureSuite:
    """Build the encoders of ``profile`` (``paper``, ``smoke``, ``ar3d-r1-script``).

    Args:
        profile: profile name or object.
        device: ``"cpu"`` or ``"cuda"`` (or any torch device string).
        weights_dir: local weights directory (else ``$MME3DR_WEIGHTS_DIR``, then the caches), see
            :mod:`mme3dr.features.weights`. Unused by ``smoke``.
        clip, dinov2: optional weight keys replacing the profile's (``clip-vit-l-14-openai``,
            ``dinov2-large``).

    Raises:
        WeightsNotFoundError: a paper/script weight file is missing and cannot be fetched.
    """
    prof = with_options(get_profile(profile), clip=clip, dinov2=dinov2)
    if prof.clip.startswith("smoke-"):
        from mme3dr.features.smoke import smoke_clip, smoke_dinov2, smoke_inception

        return FeatureSuite(
            profile=prof,
            clip=smoke_clip(prof.seed, device, batch_size),
            inception=smoke_inception(prof.seed, device, batch_size) if prof.inception else None,
            dinov2=_pre_resized(smoke_dinov2(prof.seed, device, batch_size), prof) if prof.dinov2 else None,
            device=device,
        )
    from mme3dr.features.clip import load_clip
    from mme3dr.features.dinov2 import load_dinov2
    from mme3dr.features.inception import load_inception

    return FeatureSuite(
        profile=prof,
        clip=load_clip(prof.clip, device, weights_dir, batch_size),
        inception=load_inception(prof.inception, device, weights_dir, batch_size) if prof.inception else None,
        dinov2=load_dinov2(prof.dinov2, device, weights_dir, batch_size, pre_resize=prof.dinov2_pre_resize)
        if prof.dinov2 else None,
        device=device,
    )
