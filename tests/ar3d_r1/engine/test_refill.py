"""DAPO dynamic sampling with refill (issue 21, Build 3 / Must-show 3) on a scripted task where half of
the prompts always get constant rewards: with enough rounds every step trains ``prompts_per_step``
informative groups; with too few it trains the kept ones and logs it; a resumed run is bit-exact."""

from __future__ import annotations

import shutil

import pytest
import torch

pytest.importorskip("accelerate")

from trainer_parts import ScriptedTask, make_trainer, records  # noqa: E402

CONSTANT = {0, 1}  # of 4 prompts: these always score (0.5, 0.5), whatever the sample
P = 2  # prompts per step: 2 completions × 2 accumulation steps / G 2


def _rule(prompt, row, call):
    return (0.5, 0.5) if prompt in CONSTANT else (float(row), float(row % 3))


def _trainer(tiny_parts, out, **overrides):
    settings = dict(num_prompts=4, num_generations=2, per_device_train_batch_size=2,
                    gradient_accumulation_steps=2, dynamic_sampling="refill", learning_rate=1e-3, max_steps=3)
    trainer = make_trainer(tiny_parts, out, **{**settings, **overrides})
    trainer.task = ScriptedTask(trainer.task.prompts, _rule)
    assert trainer.prompts_per_step == P
    return trainer


def test_enough_rounds_fill_every_step_with_informative_groups(tiny_parts, tmp_path):
    trainer = _trainer(tiny_parts, tmp_path / "run", max_refill_rounds=4)
    trainer.train()
    recs = records(tmp_path / "run")
    assert len(recs) == 3
    for r in recs:
        assert r["refill/groups_kept"] == P and r["refill/short"] == 0 and r["kept_groups/step1"] == P
        assert r["refill/groups_generated"] == P * (1 + r["refill/rounds"])
        assert r["step1/tokens"] > 0 and r["skipped"] == 0
    # half the prompts are constant: some step needed a second round
    assert any(r["refill/rounds"] > 0 for r in recs)
    assert trainer.task.calls == sum(1 + r["refill/rounds"] for r in recs)  # one score call per round


def test_too_few_rounds_train_the_kept_groups_and_say_so(tiny_parts, tmp_path, capsys):
    trainer = _trainer(tiny_parts, tmp_path / "run", max_refill_rounds=0, max_steps=2)
    trainer.train()
    recs = records(tmp_path / "run")
    # one epoch = two steps of two prompts: the two constant prompts fall in it, so some step is short
    short = [r for r in recs if r["refill/short"] > 0]
    assert short and all(r["refill/rounds"] == 0 for r in recs)
    for r in recs:
        assert r["kept_groups/step1"] == r["refill/groups_kept"] == P - r["refill/short"]
    assert "refill ran out after 0 extra rounds; training on" in capsys.readouterr().out
    # the short step's batch: the kept groups train, the fillers' loss mask is cleared
    trainer = _trainer(tiny_parts, tmp_path / "again", max_refill_rounds=0)
    for _ in range(2):  # one epoch: a short step within two
        batch = trainer.generate_and_score(0)
        if batch["refill"]["refill/short"]:
            break
    assert batch["refill"]["refill/short"]
    mask = batch["tensors"]["step1"]["mask"].view(P, 2, -1).sum(dim=(1, 2))
    kept = batch["refill"]["refill/groups_kept"]
    assert (mask[:kept] > 0).all() and (mask[kept:] == 0).all()
    assert [t in CONSTANT for t in _prompt_indices(trainer, batch)[kept:]] == [True] * (P - kept)


def _prompt_indices(trainer, batch):
    index = trainer.task.index
    return [index[p] for p in batch["rollout"].prompts[::2]]


def test_resume_mid_refill_is_bit_exact(tiny_parts, tmp_path):
    out = tmp_path / "run"
    trainer = _trainer(tiny_parts, out, max_refill_rounds=4, save_steps=1)
    trainer.train()
    full = [{k: v for k, v in r.items() if k != "seconds"} for r in records(out)]
    final = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert any(r["refill/rounds"] > 0 for r in full[1:])  # a resumed step refills
    for name in ("checkpoint-2", "checkpoint-3", "final"):
        shutil.rmtree(out / name)
    again = _trainer(tiny_parts, out, max_refill_rounds=4, save_steps=1, resume=True)
    again.train()
    assert again.start_step == 1
    resumed = [{k: v for k, v in r.items() if k != "seconds"} for r in records(out)]
    assert resumed == full
    for n, p in again.model.named_parameters():
        assert torch.equal(p.detach(), final[n]), n
