"""Steps nothing can poison, in the trainer (issue 21, Build 5): a step without signal changes no
parameter, optimizer or scheduler state and is logged as skipped; a run of them stops with one line;
the authors' loss switches (shared advantage, joint token-mean over the local batch, the ``ones_like``
mesh mask) reach the trainer's step and match a direct computation."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("accelerate")

from trainer_parts import ScriptedTask, make_trainer, records  # noqa: E402


def _spread(prompt, row, call):  # every group informative: rewards differ within a group
    return float(row), float(row % 3)


def _state(trainer):
    opt = copy.deepcopy(trainer.optimizer.state_dict())
    return ({n: p.detach().clone() for n, p in trainer.model.named_parameters()}, opt,
            copy.deepcopy(trainer.scheduler.state_dict()))


def _equal_states(a, b) -> bool:
    params_a, opt_a, sched_a = a
    params_b, opt_b, sched_b = b
    same = all(torch.equal(params_a[n], params_b[n]) for n in params_a)
    for key, s in opt_a["state"].items():
        same &= all(torch.equal(v, opt_b["state"][key][k]) for k, v in s.items())
    return same and opt_a["state"].keys() == opt_b["state"].keys() and sched_a == sched_b


def _step(trainer, step):
    batch = trainer.generate_and_score(step)
    ref = trainer.logprobs(batch, grad=False, model=trainer.ref_model) if trainer.ref_model else None
    return trainer.optimise(batch, None, ref)


@pytest.mark.parametrize("case", ["every group dropped", "every sample failed (mask)",
                                  "every sample failed (zero, no KL)"])
def test_a_step_without_signal_changes_no_parameter_optimizer_or_scheduler_state(tiny_parts, tmp_path, case):
    settings = {"every group dropped": dict(dynamic_sampling="mask"),
                "every sample failed (mask)": dict(malformed_reward="mask"),
                "every sample failed (zero, no KL)": dict(malformed_reward="zero", beta=0.0)}[case]
    trainer = make_trainer(tiny_parts, tmp_path / "run", learning_rate=1e-3, weight_decay=0.1,
                           lr_scheduler_type="linear", warmup_steps=1, max_steps=5, **settings)

    def rule(prompt, row, call):
        if call == 0:
            return _spread(prompt, row, call)
        return (0.5, 0.5) if case == "every group dropped" else (float("nan"), float("nan"))

    trainer.task = ScriptedTask(trainer.task.prompts, rule)
    first = _step(trainer, 0)
    assert first["skipped"] == 0 and trainer.optimizer.state_dict()["state"]  # AdamW has moments now
    before = _state(trainer)
    second = _step(trainer, 1)
    assert second["skipped"] == 1 and np.isnan(second["grad_norm"]) and second["loss"] == 0.0
    assert _equal_states(before, _state(trainer))  # parameters, AdamW moments and step, LR schedule
    assert second["learning_rate"] == trainer.scheduler.get_last_lr()[0]


def test_consecutive_skipped_steps_end_the_run_with_one_line(tiny_parts, tmp_path):
    from ar3d_r1.engine import NoSignalError

    out = tmp_path / "run"
    trainer = make_trainer(tiny_parts, out, max_steps=6, max_skipped_steps=2, dynamic_sampling="mask",
                           save_steps=0)
    trainer.task = ScriptedTask(trainer.task.prompts, lambda p, r, c: (1.0, 1.0))
    with pytest.raises(NoSignalError, match=r"stopped at step 2: 2 steps in a row had no token carrying "
                                            r"signal") as err:
        trainer.train()
    assert "\n" not in str(err.value)
    recs = records(out)
    assert [(r["step"], r["skipped"], r["kept_groups/step1"]) for r in recs] == [(1, 1, 0), (2, 1, 0)]


def test_shared_advantage_is_the_group_z_score_of_r_low_for_both_segments():
    from ar3d_r1.engine.batch import advantages_of, keep_masks

    cfg = SimpleNamespace(advantage_mode="shared", adv_eps=1e-4, scale_rewards="unbiased", two_step=True,
                          lam=1.0, dynamic_sampling="mask", dynamic_sampling_tol=1e-6)
    r_high, r_low = np.array([9.0, -3.0, 0.0, 0.0]), np.array([1.0, 3.0, 2.0, 2.0])
    a1, a2 = advantages_of(cfg, r_high, r_low, 2)
    std = np.std([1.0, 3.0], ddof=1)  # unbiased, + 1e-4 (the authors' (r − mean) / (std + 1e-4))
    torch.testing.assert_close(a1, torch.tensor([-1 / (std + 1e-4), 1 / (std + 1e-4), 0.0, 0.0],
                                                dtype=torch.float64))
    assert a2 is a1
    keep1, keep2 = keep_masks(cfg, r_high, r_low, 2)
    assert keep1.tolist() == keep2.tolist() == [True, True, False, False]  # R_high plays no part


def test_ones_like_mesh_mask_covers_every_position_up_to_the_groups_longest(tiny_parts, tmp_path,
                                                                            monkeypatch):
    import ar3d_r1.engine.batch as batch_module

    real = batch_module.two_step_rollout

    def ragged(*args, **kwargs):  # completions that stop early, by different amounts (the grammar's never do)
        rollout = real(*args, **kwargs)
        for i, o in enumerate(rollout.step1 + rollout.step2):
            o.completion_ids = o.completion_ids[: len(o.completion_ids) - 7 * (i % 5)]
        return rollout

    monkeypatch.setattr(batch_module, "two_step_rollout", ragged)
    trainer = make_trainer(tiny_parts, tmp_path / "run", mesh_mask="all", num_generations=4,
                           per_device_train_batch_size=4, gradient_accumulation_steps=2, num_prompts=2,
                           max_plan_tokens=6)
    trainer.task = ScriptedTask(trainer.task.prompts, _spread)
    batch = trainer.generate_and_score(0)
    for name, eos_only in (("step1", True), ("step2", False)):
        t = batch["tensors"][name]
        outs = getattr(batch["rollout"], name)
        lengths = [len(o.completion_ids) for o in outs]
        width = t["mask"].shape[1]
        for i, n in enumerate(lengths):
            longest = max(lengths[(i // 4) * 4:(i // 4) * 4 + 4])
            expected = n if eos_only else longest
            assert t["mask"][i].tolist() == [1] * expected + [0] * (width - expected), (name, i)
            assert t["att"][i, -width:].tolist() == t["mask"][i].tolist()
    assert len(set(len(o.completion_ids) for o in batch["rollout"].step2)) > 1  # padding was covered


def test_micro_batch_normaliser_joint_and_shared_match_the_authors_formula(tiny_parts, tmp_path):
    """loss = mean over micro-batches of Σ(−(ρ·A − β·k3)·mask) / Σ mask over [reasoning ; mesh]."""
    from ar3d_r1.logprobs import completion_logprobs

    trainer = make_trainer(tiny_parts, tmp_path / "run", advantage_mode="shared", loss_segments="joint",
                           loss_normaliser="micro-batch", mesh_mask="all", clip_ratio=False,
                           per_device_train_batch_size=2, gradient_accumulation_steps=2, beta=0.01,
                           malformed_reward="mask")
    # no R_high at all (the authors' reasoning step has no mesh): shared mode reads R_low alone
    trainer.task = ScriptedTask(trainer.task.prompts, lambda p, row, c: (float("nan"), float(row % 3)))
    batch = trainer.generate_and_score(0)
    lengths = [len(o.completion_ids) for o in batch["rollout"].step1]
    assert batch["tensors"]["step1"]["mask"].sum(1).tolist() == lengths
    ref = trainer.logprobs(batch, grad=False, model=trainer.ref_model)
    model = copy.deepcopy(trainer.accelerator.unwrap_model(trainer.model)).train()
    total = 0.0
    for rows in (slice(0, 2), slice(2, 4)):
        num, den = 0.0, 0.0
        for name, t in batch["tensors"].items():
            logp = completion_logprobs(model, t["ids"][rows], t["att"][rows], t["mask"].shape[1],
                                       temperature=1.0, chunk=1024)
            delta = ref[name][rows] - logp
            per_token = -(torch.exp(logp - logp.detach()) * t["advantages"][rows, None]
                          - 0.01 * (torch.exp(delta) - delta - 1))
            num = num + (per_token * t["mask"][rows]).sum()
            den += float(t["mask"][rows].sum())
        total = total + num / den / 2
    total.backward()
    from ar3d_r1.engine.step import backward_micro_batches  # the trainer's own micro-batched step

    ours = backward_micro_batches(trainer.accelerator, trainer.model, batch["tensors"], None, ref,
                                  trainer.config, max_len=trainer.max_len)
    assert ours["loss"] == pytest.approx(total.item(), abs=1e-6)
    mine = dict(trainer.accelerator.unwrap_model(trainer.model).named_parameters())
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(mine[n].grad, p.grad, rtol=0, atol=1e-6, msg=n)
