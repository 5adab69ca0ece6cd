"""What ``ar3d-r1 train --preset 3dgen-r1 --dry-run`` exercised (task ``hps-unified2``), from its metric
records: the reasoning-then-mesh rollout, the summed HPS + UnifiedReward-2.0 rewards and their failure
handling, the frozen parameters, the loss switches and the positions they trained
(:func:`authors_dry_run_lines`)."""

from __future__ import annotations


def authors_dry_run_lines(config, records: list[dict], frozen: int | None = None) -> list[str]:
    """Lines (indented, for the dry-run summary) over ``records``, this invocation's metric records."""
    def total(key: str) -> float:
        return float(sum(r.get(key) or 0 for r in records))

    def mean(key: str) -> float:
        vals = [r[key] for r in records if isinstance(r.get(key), int | float)]
        return sum(vals) / len(vals) if vals else float("nan")

    rows = config.per_device_train_batch_size * config.gradient_accumulation_steps * len(records)
    template = config.reasoning_prompt_file or "ours (ar3d_r1/rollout/reasoning_prompt.txt)"
    asked, cached = int(total("requests/unified/asked")), int(total("requests/unified/cached"))
    unparsed, failed = int(total("requests/unified/unparsed")), int(total("requests/unified/failed"))
    raised = {name: int(total(f"rewards/raised/{name}")) for name in ("hps", "unified")}
    lines = [
        f"  rollout {config.rollout_style!r}, over {len(records)} optimizer steps ({rows} samples, one "
        f"process's share of a step): the reasoning turn from the reasoning prompt {template}, then the "
        f"mesh turn from '{{prompt}}. {{reasoning}}' + <mesh-start>; mesh turns that failed to parse: "
        f"{mean('step2/malformed'):.0%} (mesh_pad={config.mesh_pad!r})",
        f"  rewards: HPS v2.1 (max over the {config.reward_rig} views, from 0) + UnifiedReward-2.0 (one "
        f"request per view; alignment + coherence + style, each clamped to [1, 5], max over views), summed: "
        f"{asked} UnifiedReward requests to the served stand-in ({cached} answered from the response cache, "
        f"{unparsed} did not parse: their missing scores count 1, {failed} failed: 1 + 1 + 1); mean "
        f"reward/final/hps {mean('reward/final/hps'):.4f}, reward/final/unified "
        f"{mean('reward/final/unified'):.2f}",
        f"  reward functions that raised: hps {raised['hps']}, unified {raised['unified']} time(s) "
        f"(malformed_reward={config.malformed_reward!r}: a raise fills its column with 0.5); samples "
        f"without views: {int(total('samples/no_views'))} (scored 0)",
    ]
    if frozen is not None:
        lines.append(f"  frozen: {frozen} parameter tensors matching "
                     f"frozen_modules={config.frozen_modules!r}")
    lines.append(f"  loss: advantage_mode {config.advantage_mode!r}, loss_segments {config.loss_segments!r}, "
                 f"loss_normaliser {config.loss_normaliser!r}, mesh_mask {config.mesh_mask!r}, clip_ratio "
                 f"{config.clip_ratio}; trained positions: reasoning {int(total('step1/tokens'))}, mesh "
                 f"{int(total('step2/tokens'))}; skipped steps {int(total('skipped'))}")
    lines.append(f"  optimisation: lr {config.learning_rate:g} ({config.lr_scheduler_type}), beta "
                 f"{config.beta:g}, G {config.num_generations}, temperature {config.temperature:g}, "
                 f"mixed_precision {config.mixed_precision or 'no'!r}")
    lines.append("  the served judge is a tiny Qwen2.5-VL that writes one fixed reply "
                 "(ar3d_r1.rewards.stand_ins): its UnifiedReward scores are constants, and the samples of a "
                 "group differ only by HPS (a tiny random open_clip).")
    return lines
