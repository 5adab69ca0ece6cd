"""The trainer's mechanics on a random tiny policy (shapes kept well-formed by the mesh grammar):
logs, checkpoints, the plot, parameters moving; ρ ≡ 1 on-policy and explicit old log-probs with μ = 2."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

pytest.importorskip("accelerate")


from trainer_parts import make_trainer as _trainer  # noqa: E402


def _run(root, out, **overrides):
    trainer = _trainer(root, out, **overrides)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    final = trainer.train()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    moved = any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
    return final, records, moved


def test_train_logs_checkpoints_plots_and_moves_the_policy(tiny_parts, tmp_path):
    final, records, moved = _run(tiny_parts, tmp_path / "run", learning_rate=1e-3)
    assert len(records) == 2 and moved
    for r in records:
        assert r["step1/malformed"] == 0.0 and r["step2/malformed"] == 0.0  # the grammar holds
        assert 0.0 <= r["reward/r_high"] <= 1.0 and 0.0 <= r["reward/r_low"] <= 1.0
        # μ = 1: old log-probs are the current ones detached, so ρ ≡ 1 and nothing is clipped
        assert r["step1/ratio_mean"] == pytest.approx(1.0, abs=1e-6) and r["step1/clip_region"] == 0.0
        assert r["step1/tokens"] > 0 and r["step1/share_mesh"] > 0.9
    assert records[1]["step1/kl"] > 0.0  # the policy left the reference after one update
    assert (final / "model.safetensors").is_file() and (tmp_path / "run" / "checkpoint-1").is_dir()
    assert (tmp_path / "run" / "reward_curve.png").stat().st_size > 1000
    assert any((tmp_path / "run" / "tb").iterdir())


def test_mu_two_computes_old_logprobs_and_clips(tiny_parts, tmp_path):
    _, records, _ = _run(tiny_parts, tmp_path / "mu2", learning_rate=3e-2, num_iterations=2, max_steps=2)
    first, second = records  # one generated batch, two updates
    assert first["step1/ratio_mean"] == pytest.approx(1.0, abs=1e-6)  # before any update: π_θ = π_old
    assert abs(second["step1/ratio_mean"] - 1.0) > 1e-3  # after one: the explicit π_old differs
    assert second["step1/clip_region"] > 0.0 or second["step2/clip_region"] > 0.0


def test_warmup_schedule_sets_each_steps_learning_rate_and_survives_resume(tiny_parts, tmp_path):
    # transformers' constant_with_warmup: lr_k = lr · min(1, k / W) for the k-th optimizer step (0-based).
    out = tmp_path / "warm"
    _, records, _ = _run(tiny_parts, out, learning_rate=1e-3, lr_scheduler_type="constant_with_warmup",
                         warmup_steps=2, max_steps=3)
    assert [r["learning_rate"] for r in records] == pytest.approx([0.0, 5e-4, 1e-3])
    # A resumed run continues the schedule from its checkpoint (saved with the optimizer by accelerate).
    # final/ goes too: a run whose final/ is at max_steps is finished and a resume does nothing.
    shutil.rmtree(out / "checkpoint-3")
    shutil.rmtree(out / "checkpoint-2")
    shutil.rmtree(out / "final")
    _, again, _ = _run(tiny_parts, out, learning_rate=1e-3, lr_scheduler_type="constant_with_warmup",
                       warmup_steps=2, max_steps=3, resume=True)
    assert [r["learning_rate"] for r in again] == pytest.approx([0.0, 5e-4, 1e-3])


def _steps(out) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_second_fresh_run_into_a_run_directory_is_refused_unless_overwritten(tiny_parts, tmp_path):
    from ar3d_r1.engine.checkpoint import OutputDirError

    out = tmp_path / "run"
    _run(tiny_parts, out, max_steps=1)
    events = sorted((out / "tb").iterdir())
    message = (r"run already holds a run \(metrics\.jsonl\); pass --resume true to continue it or "
               r"--overwrite_output_dir true to start over")
    with pytest.raises(OutputDirError, match=message):
        _trainer(tiny_parts, out, max_steps=1).train()
    assert _steps(out) == [1] and sorted((out / "tb").iterdir()) == events  # nothing was touched
    (out / "notes.txt").write_text("mine")
    (out / "tb" / "old-events").write_text("")
    _, records, _ = _run(tiny_parts, out, max_steps=1, overwrite_output_dir=True)
    assert [r["step"] for r in records] == [1] and _steps(out) == [1]  # not 1, 1
    assert not (out / "tb" / "old-events").exists() and len(list((out / "tb").iterdir())) == 1
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are deleted


def test_resuming_a_finished_run_does_nothing_and_says_so(tiny_parts, tmp_path, capsys):
    from ar3d_r1.cli.train import dry_run_summary

    out = tmp_path / "run"
    _run(tiny_parts, out, max_steps=1)
    state = (out / "final" / "trainer_state.json").read_text()
    trainer = _trainer(tiny_parts, out, max_steps=1, resume=True)
    assert trainer.train() == out / "final"
    assert "nothing to do: the run already finished at step 1" in capsys.readouterr().out
    assert trainer.start_step == 1 and _steps(out) == [1]
    assert (out / "final" / "trainer_state.json").read_text() == state
    summary = dry_run_summary(trainer.config, trainer.history, trainer.start_step)
    assert summary.startswith("dry run: nothing to do: the run already finished at step 1")
    # continued to step 2: only this invocation's step is its own
    trainer = _trainer(tiny_parts, out, max_steps=2, resume=True)
    trainer.train()
    assert trainer.start_step == 1 and _steps(out) == [1, 2]
    assert dry_run_summary(trainer.config, trainer.history, trainer.start_step).startswith(
        "dry run: 1 optimizer steps of the 'geometry' task on tiny stand-ins")


def test_resume_without_a_checkpoint_starts_over_cleanly(tiny_parts, tmp_path, capsys):
    out = tmp_path / "run"
    _run(tiny_parts, out, max_steps=1, save_steps=0)
    shutil.rmtree(out / "final")  # as if killed before the end, with no checkpoint written
    _run(tiny_parts, out, max_steps=1, save_steps=0, resume=True)
    assert "no checkpoint" in capsys.readouterr().out and _steps(out) == [1]
