"""Metric profiles: which models, which metrics, and how the evaluate stage must prepare its inputs.

Light module (no torch): the evaluate stage, reports and the leaderboard read a :class:`MetricProfile` to
know what a profile reports, at what render size and shading, how prompts are prepared and whether its
results may go on the leaderboard, instead of hard-coding profile names.

- ``paper``: protocol v1 (design.md §3): OpenAI CLIP ViT-B/32, FID Inception-v3 pool3, DINOv2-base CLS.
- ``smoke``: tiny random-initialised encoders built offline from configs (seeded), for tests and demos;
  never leaderboard-eligible.
- ``ar3d-r1-script``: the authors' released eval script's definitions (299 px, plain white material,
  CLIP on the caption's first sentence, DINOv2 images first resized to 224×224 with PIL, "KD" = mean
  RBF similarity of DINOv2-base CLS); never leaderboard-eligible. The script's ``main()`` also passes
  the CSV's raw ``captions`` column (an unparsed JSON list) as the prompt, so its CLIP text begins with
  ``["``; that is available as ``prompt_source="raw_captions_column"`` (``--prompt-source``), off by
  default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mme3dr.errors import UserError


class ProfileError(UserError, ValueError):
    """An option a profile does not allow (the message names it and the profile that does)."""


#: What every place showing a pipeline-check profile's numbers says beside them (terminal tables, the
#: report's banner, ``mme3dr score``); which profiles are such is :attr:`MetricProfile.pipeline_check_only`.
PIPELINE_CHECK_NOTE = ("smoke profile: tiny random encoders. These numbers only test the pipeline; they are "
                       "not scores and compare with nothing.")


def pipeline_check_note(profile: str) -> str | None:
    """:data:`PIPELINE_CHECK_NOTE` when the profile named ``profile`` is ``pipeline_check_only``, else None
    (also None for a profile this version does not know: no banner, no guess)."""
    known = PROFILES.get(profile)
    return PIPELINE_CHECK_NOTE if known is not None and known.pipeline_check_only else None


@dataclass(frozen=True)
class MetricProfile:
    """What a metric profile needs and reports."""

    name: str
    description: str
    #: Metric names (keys of :data:`mme3dr.metrics.METRICS`) in report order.
    metrics: tuple[str, ...]
    #: Weight keys (:data:`mme3dr.features.weights.CATALOGUE`) or ``smoke-*`` tiny-model ids.
    clip: str
    inception: str | None
    dinov2: str | None
    #: Render size in px the profile scores (None: the rig's own, 512 for eval24).
    render_size: int | None = None
    #: Renderer shading mode: "protocol" (asset materials) or "plain_white" (the script's override).
    shading: str = "protocol"
    #: Background every view is composited onto before any encoder sees it.
    background: str = "white"
    #: How the case prompt becomes the CLIP text: "full" or "first_sentence".
    prompt_rule: str = "full"
    #: Where the CLIP text comes from: "case" (the case's prompt) or "raw_captions_column" (the captions
    #: CSV's unparsed JSON-list string, as the authors' eval.py main() passes it; see PROMPT_SOURCES).
    prompt_source: str = "case"
    #: DINOv2 images are first resized to this square size with PIL (bicubic, PIL's default filter)
    #: before DINOv2's own image processor, as the authors' eval.py does (None: no extra resize).
    dinov2_pre_resize: int | None = None
    leaderboard_eligible: bool = True
    #: True when the numbers only show that the pipeline runs (random encoders): every place that shows
    #: them (terminal, report, `mme3dr score`) says so beside them.
    pipeline_check_only: bool = False
    #: Seed of the tiny random-initialised encoders (smoke only).
    seed: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def prepare_prompt(self, text: str) -> str:
        """The CLIP text for a case prompt under this profile (truncation to 77 tokens happens later)."""
        return prepare_prompt(text, self.prompt_rule)

    def clip_text(self, prompt: str, raw_captions: str | None = None) -> str:
        """The CLIP text of a case: its prompt, or under ``prompt_source="raw_captions_column"`` the raw
        captions column of its CSV row (``raw_captions``), each through the profile's prompt rule.

        >>> p = replace(PROFILES["ar3d-r1-script"], prompt_source="raw_captions_column")
        >>> p.clip_text("A red rose.", '["A deep red rose. It has thorns.", "A red rose."]')
        '["A deep red rose'

        Raises ``ValueError`` when the raw column is needed but missing (a benchmark without a CSV).
        """
        if self.prompt_source == "raw_captions_column":
            if not raw_captions:
                raise ProfileError("prompt source 'raw_captions_column' needs the captions CSV's raw column "
                                   "for every case; use a Toys4K benchmark with --captions, or drop "
                                   "--prompt-source")
            return prepare_prompt(raw_captions, self.prompt_rule)
        return self.prepare_prompt(prompt)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "metrics": list(self.metrics),
            "clip": self.clip,
            "inception": self.inception,
            "dinov2": self.dinov2,
            "render_size": self.render_size,
            "shading": self.shading,
            "background": self.background,
            "prompt_rule": self.prompt_rule,
            **({"prompt_source": self.prompt_source} if self.prompt_source != "case" else {}),
            **({"dinov2_pre_resize": self.dinov2_pre_resize} if self.dinov2_pre_resize else {}),
            "leaderboard_eligible": self.leaderboard_eligible,
        }


def prepare_prompt(text: str, rule: str = "full") -> str:
    """Apply a prompt rule. ``first_sentence`` keeps the text before the first '.', as the authors'
    script does (``caption.split('.')[0]``); an empty result falls back to the whole stripped text.

    >>> prepare_prompt("A red rose. It has thorns.", "first_sentence")
    'A red rose'
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("prompt text must be a non-empty string")
    if rule == "full":
        return text.strip()
    if rule == "first_sentence":
        first = text.split(".")[0].strip()
        return first or text.strip()
    raise ValueError(f"unknown prompt rule {rule!r}; use 'full' or 'first_sentence'")


#: Values of ``MetricProfile.prompt_source``.
PROMPT_SOURCES = ("case", "raw_captions_column")

_PROTOCOL_METRICS = ("clip", "kd_incep", "kd_dinov2", "fd_incep", "fd_dinov2")

PROFILES: dict[str, MetricProfile] = {
    p.name: p
    for p in (
        MetricProfile(
            name="paper",
            description="Protocol v1: CLIP ViT-B/32 (OpenAI), FID Inception-v3 pool3, DINOv2-base CLS",
            metrics=_PROTOCOL_METRICS,
            clip="clip-vit-b-32-openai",
            inception="inception-v3-fid",
            dinov2="dinov2-base",
        ),
        MetricProfile(
            name="smoke",
            description="Tiny random-initialised encoders built offline (pipeline checks, not scores)",
            metrics=_PROTOCOL_METRICS,
            clip="smoke-clip",
            inception="smoke-inception",
            dinov2="smoke-dinov2",
            leaderboard_eligible=False,
            pipeline_check_only=True,
        ),
        MetricProfile(
            name="ar3d-r1-script",
            description="The AR3D-R1 authors' eval script's definitions, for comparison with its numbers",
            metrics=("clip", "script_kd_dinov2_rbf"),
            clip="clip-vit-b-32-openai",
            inception=None,
            dinov2="dinov2-base",
            render_size=299,
            shading="plain_white",
            prompt_rule="first_sentence",
            dinov2_pre_resize=224,
            leaderboard_eligible=False,
            notes=(
                "generated meshes scored untextured (plain white material), rendered at 299 px",
                "both sides composited on white (the script used black for ground truth; we do not)",
                "'KD' here is a similarity (higher = closer), not the kernel distance",
                "DINOv2 inputs resized to 224x224 with PIL before the image processor, as the script does",
            ),
        ),
    )
}


def get_profile(name: str | MetricProfile) -> MetricProfile:
    """The profile called ``name`` (``paper``, ``smoke``, ``ar3d-r1-script``)."""
    if isinstance(name, MetricProfile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown metric profile {name!r}; choose one of: {', '.join(PROFILES)}") from None


def with_options(profile: MetricProfile, clip: str | None = None, dinov2: str | None = None,
                 prompt_source: str | None = None) -> MetricProfile:
    """A copy of ``profile`` with another CLIP or DINOv2 model (e.g. ``clip-vit-l-14-openai``) or another
    ``prompt_source``. Raises ``ValueError`` for an unknown prompt source, or for ``raw_captions_column``
    under a leaderboard-eligible profile (it reproduces a script's quirk, not the protocol)."""
    if prompt_source is not None and prompt_source != profile.prompt_source:
        if prompt_source not in PROMPT_SOURCES:
            raise ProfileError(f"unknown prompt source {prompt_source!r}; choose one of: "
                             f"{', '.join(PROMPT_SOURCES)}")
        if profile.leaderboard_eligible:
            raise ProfileError(f"prompt source {prompt_source!r} reproduces the authors' script; use it with "
                             f"--profile ar3d-r1-script, not {profile.name}")
    changes = {k: v for k, v in (("clip", clip), ("dinov2", dinov2), ("prompt_source", prompt_source)) if v}
    return replace(profile, **changes) if changes else profile
