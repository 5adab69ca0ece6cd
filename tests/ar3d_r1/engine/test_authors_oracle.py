"""Must-show 1 (loss): the ``3dgen-r1`` preset's trainer step against the authors' released loss,
re-derived here in numpy from their formula (3DGen-R1 at 290cb73, grpo_3d_trainer.py ``_compute_loss_
single_stage``), on 4 prompts × G 8 with ragged reasoning lengths and mesh completions that stop early
(post-EOS positions):

- one advantage per sample, ``(r − mean_g) / (std_g + 1e-4)`` with the unbiased std over the G samples of
  one prompt on one process, shared by the reasoning and the mesh turn;
- per micro-batch (one prompt × G, their local batch): the reasoning log-probs masked up to the end of
  sequence and the mesh log-probs masked ``ones_like`` (every generated position of the micro-batch),
  concatenated along time; ``per_token = −(exp(logp − logp.detach())·A − β·k3)``,
  ``k3 = exp(ref − logp) − (ref − logp) − 1``; ``loss = Σ per_token·mask / Σ mask``;
- the step's loss and gradient: the mean over micro-batches (transformers' Trainer divides by the
  accumulation steps; DDP averages processes).

The log-probs are inputs of the formula: the test takes them from its own forward pass of a copy of the
policy (and of the reference), computes the loss and dL/dlogp in numpy, and turns dL/dlogp into a
parameter gradient by one backward of ``Σ logp · dL/dlogp``. The trainer runs its own step
(``HiGRPOTrainer.optimise``: micro-batched, through ``ar3d_r1.loss``); its loss and its gradient (read
when the optimizer steps) must agree within 1e-6.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")

from trainer_parts import ScriptedTask  # noqa: E402

P, G, BETA = 4, 8, 0.01
REWARDS = np.random.default_rng(7).normal(size=P * G).round(3)  # r_low per row: the final mesh's reward


def _trainer(root, out):
    from ar3d_r1.cli.train import build_trainer
    from ar3d_r1.config import preset

    # the preset, with tiny inputs: one process holds the 4 prompts as 4 micro-batches of one prompt × G
    cfg = preset("3dgen-r1", policy=str(root / "policy"), vqvae=str(root / "vqvae"), output_dir=str(out),
                 task="geometry", num_prompts=P, gradient_accumulation_steps=P, max_plan_tokens=12,
                 max_mesh_tokens=0, constrain=True, top_k=0, mixed_precision="no", max_grad_norm=1e9,
                 frozen_modules="visual,lm_head", save_steps=0)
    assert (cfg.advantage_mode, cfg.loss_segments, cfg.loss_normaliser, cfg.mesh_mask, cfg.clip_ratio) == (
        "shared", "joint", "micro-batch", "all", False)
    assert cfg.per_device_train_batch_size == G and cfg.beta == BETA
    return build_trainer(cfg)


def _ragged(real):
    """Cut completions early by different amounts: reasoning lengths differ within a group, and mesh
    completions end before the group's longest (their tail is post-EOS padding)."""
    def run(*args, **kwargs):
        rollout = real(*args, **kwargs)
        for i, o in enumerate(rollout.step1):
            o.completion_ids = o.completion_ids[: max(1, len(o.completion_ids) - (i * 5) % 11)]
        for i, o in enumerate(rollout.step2):
            o.completion_ids = o.completion_ids[: len(o.completion_ids) - 3 * (i % 4)]
        return rollout
    return run


def _logp(model, ids, att, width) -> torch.Tensor:
    """``(B, width)`` log-probs of the last ``width`` tokens, from a plain forward (float32)."""
    logits = model(input_ids=ids, attention_mask=att).logits[:, -width - 1:-1].float()
    return torch.gather(logits.log_softmax(-1), 2, ids[:, -width:, None])[..., 0]


def test_the_preset_step_equals_the_authors_loss_in_numpy(tiny_parts, tmp_path, monkeypatch):
    import ar3d_r1.engine.batch as batch_module

    monkeypatch.setattr(batch_module, "reasoning_then_mesh_rollout",
                        _ragged(batch_module.reasoning_then_mesh_rollout))
    trainer = _trainer(tiny_parts, tmp_path / "run")
    with torch.no_grad():  # a reference that differs from the policy, so the KL term carries gradient
        gen = torch.Generator().manual_seed(1)
        for p in trainer.ref_model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    trainer.task = ScriptedTask(trainer.task.prompts, lambda prompt, row, call: (0.0, REWARDS[row]))
    batch = trainer.generate_and_score(0)
    rollout = batch["rollout"]
    assert len(set(rollout.prompts)) == P and all(len(set(rollout.prompts[g * G:(g + 1) * G])) == 1
                                                   for g in range(P))
    assert len({len(o.completion_ids) for o in rollout.step1}) > 3  # ragged reasoning
    policy = copy.deepcopy(trainer.accelerator.unwrap_model(trainer.model)).train()
    ref_model = trainer.ref_model

    # ---- the authors' formula, in numpy
    r = REWARDS.reshape(P, G)
    adv = ((r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-4)).reshape(-1)
    logp, grads_wrt, loss = {}, {}, 0.0
    masks = {}
    for name, outs in (("step1", rollout.step1), ("step2", rollout.step2)):
        t = batch["tensors"][name]
        width = t["mask"].shape[1]
        lengths = np.array([len(o.completion_ids) for o in outs])
        if name == "step2":  # ones_like over the micro-batch's generated tensor: the group's longest
            lengths = np.repeat(lengths.reshape(P, G).max(1), G)
        masks[name] = (np.arange(width)[None, :] < lengths[:, None]).astype(np.float64)
        logp[name] = _logp(policy, t["ids"], t["att"], width)
        with torch.no_grad():
            ref = _logp(ref_model, t["ids"], t["att"], width).double().numpy()
        lp = logp[name].detach().double().numpy()
        grads_wrt[name] = (lp, ref)
    assert (masks["step2"].sum(1) > np.array([len(o.completion_ids) for o in rollout.step2])).any()
    dlogp = {name: np.zeros_like(m) for name, m in masks.items()}
    for g in range(P):  # one micro-batch = one prompt × G (per_device_train_batch_size = G)
        rows = slice(g * G, (g + 1) * G)
        per_token, mask = [], []
        for name in ("step1", "step2"):  # concatenated along time: [reasoning ; mesh]
            lp, ref = grads_wrt[name][0][rows], grads_wrt[name][1][rows]
            k3 = np.exp(ref - lp) - (ref - lp) - 1.0
            per_token.append(-(np.exp(lp - lp) * adv[rows, None] - BETA * k3))
            mask.append(masks[name][rows])
            # d/dlogp of −(exp(logp − sg(logp))·A − β·k3) = −A + β·(1 − exp(ref − logp))
            dlogp[name][rows] = (-adv[rows, None] + BETA * (1.0 - np.exp(ref - lp))) * masks[name][rows]
        per_token, mask = np.concatenate(per_token, 1), np.concatenate(mask, 1)
        loss += (per_token * mask).sum() / mask.sum() / P
        for name in dlogp:
            dlogp[name][rows] /= mask.sum() * P
    # the test tells the authors' choices apart: their ones_like mesh mask and per-micro-batch mean matter
    def alt_loss(mesh_lengths_own: bool, one_mean: bool) -> float:
        num = den = 0.0
        parts = []
        for g in range(P):
            rows = slice(g * G, (g + 1) * G)
            pt, mk = [], []
            for name in ("step1", "step2"):
                lp, ref = grads_wrt[name][0][rows], grads_wrt[name][1][rows]
                m = masks[name][rows]
                if name == "step2" and mesh_lengths_own:
                    own = np.array([len(o.completion_ids) for o in rollout.step2[rows]])
                    m = (np.arange(m.shape[1])[None, :] < own[:, None]).astype(np.float64)
                pt.append(-(adv[rows, None] - BETA * (np.exp(ref - lp) - (ref - lp) - 1.0)))
                mk.append(m)
            pt, mk = np.concatenate(pt, 1), np.concatenate(mk, 1)
            num, den = num + (pt * mk).sum(), den + mk.sum()
            parts.append((pt * mk).sum() / mk.sum())
        return num / den if one_mean else float(np.mean(parts))

    # (10x the tolerance below: the comparison at 1e-6 would catch either)
    assert abs(alt_loss(True, False) - loss) > 1e-5 and abs(alt_loss(False, True) - loss) > 1e-5
    surrogate = sum((logp[n] * torch.as_tensor(dlogp[n], dtype=logp[n].dtype)).sum() for n in logp)
    surrogate.backward()

    # ---- the trainer's own step (micro-batched, through ar3d_r1.loss); gradients read at the update
    seen = {}
    step = trainer.optimizer.step

    def capture(*args, **kwargs):
        seen.update({n: None if p.grad is None else p.grad.detach().clone()
                     for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()})
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", capture)
    ref_logp = trainer.logprobs(batch, grad=False, model=trainer.ref_model)
    stats = trainer.optimise(batch, None, ref_logp)
    assert stats["skipped"] == 0
    assert stats["loss"] == pytest.approx(loss, abs=1e-6)
    checked = 0
    for n, p in policy.named_parameters():
        if p.grad is None:
            assert seen[n] is None, n
            continue
        np.testing.assert_allclose(seen[n].double().numpy(), p.grad.double().numpy(), rtol=0, atol=1e-6,
                                   err_msg=n)
        checked += 1
    assert checked and any("visual" in n for n, g in seen.items() if g is None)  # frozen: no gradient
    assert all(seen[n] is None for n in seen if "lm_head" in n)
