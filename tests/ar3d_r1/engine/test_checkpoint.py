"""Checkpoints: atomic layout, metric-log truncation, and kill -9 at a random step then --resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest
from scale_fixtures import run_env, scale_cmd

from ar3d_r1.engine.checkpoint import checkpoints, latest_checkpoint, remove_partials, truncate_metrics


def test_latest_checkpoint_ignores_partial_and_incomplete_directories(tmp_path):
    for step in (2, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-11").mkdir()  # no trainer_state.json: not complete
    (tmp_path / ".checkpoint-12.partial").mkdir()  # a save cut by kill -9
    assert [s for s, _ in checkpoints(tmp_path)] == [2, 10]  # numeric, not lexical, order
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert remove_partials(tmp_path) == [tmp_path / ".checkpoint-12.partial"]
    assert not (tmp_path / ".checkpoint-12.partial").exists()
    assert latest_checkpoint(tmp_path / "missing") is None


def test_truncate_metrics_keeps_steps_up_to_the_checkpoint_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = "".join(json.dumps({"step": s, "x": s * 0.5}) + "\n" for s in range(1, 6))
    path.write_text(records + '{"step": 6, "x')
    kept = truncate_metrics(path, 3)
    assert [r["step"] for r in kept] == [1, 2, 3]
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2, 3]
    assert truncate_metrics(tmp_path / "none.jsonl", 3) == []


def _wait_for_records(path, n, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before step {n}")
        if path.exists() and len([x for x in path.read_text().splitlines() if x.endswith("}")]) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no step {n} within {timeout} s")


@pytest.mark.slow
def test_kill_9_at_a_random_step_then_resume_equals_the_uninterrupted_run(stand_ins, reference_run, tmp_path):
    """Must-show 2: SIGKILL once step k (random, 2..3 of 4) is logged; ``--resume`` continues from the
    latest complete checkpoint; the final parameters equal the uninterrupted run's within 1e-6 and
    metrics.jsonl holds steps 1..4 once each."""
    import torch

    k = random.Random(int(time.time())).choice([2, 3])
    out = tmp_path / "killed"
    cmd = scale_cmd(stand_ins, out, "--per_device_train_batch_size", "2",
                    "--gradient_accumulation_steps", "4")
    proc = subprocess.Popen(cmd, env=run_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_records(out / "metrics.jsonl", k, proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and int(ckpt.name.split("-")[1]) >= k - 1
    assert not (out / "params.pt").exists()  # it really died before the end
    done = subprocess.run(cmd + ["--resume", "true"], env=run_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from step {int(ckpt.name.split('-')[1])}" in done.stderr + done.stdout
    ref, got = torch.load(reference_run / "params.pt"), torch.load(out / "params.pt")
    worst = max(float((ref[n] - got[n]).abs().max()) for n in ref)
    assert worst <= 1e-6, worst
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    ref_recs = [json.loads(x) for x in (reference_run / "metrics.jsonl").read_text().splitlines()]
    got_recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    want = [r["reward/total"] for r in ref_recs]
    assert [r["reward/total"] for r in got_recs] == pytest.approx(want, abs=1e-12)
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["num_processes"] == 1
    assert (out / "checkpoint-4" / "random_states_0.pkl").is_file()


def test_resume_refuses_another_process_count_or_batch(tmp_path):
    from types import SimpleNamespace

    from ar3d_r1.config import preset
    from ar3d_r1.engine.checkpoint import load_checkpoint

    cfg = preset("tiny-cpu", "train")
    ckpt = tmp_path / "checkpoint-3"
    ckpt.mkdir()
    state = {"step": 3, "num_processes": 2, "config": {"seed": 0, "num_generations": 8}}
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    trainer = SimpleNamespace(accelerator=SimpleNamespace(num_processes=1), config=cfg)
    with pytest.raises(ValueError, match="--num_processes 2"):
        load_checkpoint(trainer, ckpt)
    state.update(num_processes=1, config={"seed": 0, "num_generations": 4})
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="num_generations=4"):
        load_checkpoint(trainer, ckpt)


def test_reward_render_cache_round_trips_through_a_checkpoint_state(tmp_path):
    import numpy as np
    import torch

    from ar3d_r1.rewards.geometry import Reward6Renderer

    grid = np.zeros((8, 8, 8), bool)
    grid[2:6, 2:6, 1:7] = True
    first = Reward6Renderer(32)
    views = first(grid)
    torch.save(first.state_dict(), tmp_path / "reward_cache.pt")
    second = Reward6Renderer(32)
    second.load_state_dict(torch.load(tmp_path / "reward_cache.pt", weights_only=True))
    again = second(grid)
    np.testing.assert_array_equal(again, views)
    assert len(second._cache) == 1
    with pytest.raises(ValueError, match="32 px"):
        Reward6Renderer(64).load_state_dict(first.state_dict())


class _Evil:
    def __reduce__(self):
        import os

        return (os.mkdir, ("PWNED_DIR",))


def test_resume_never_unpickles_code_from_a_reward_cache(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import torch

    from ar3d_r1.config import preset
    from ar3d_r1.engine.checkpoint import load_checkpoint

    monkeypatch.chdir(tmp_path)
    cfg = preset("tiny-cpu", "train")
    ckpt = tmp_path / "checkpoint-3"
    ckpt.mkdir()
    state = {"step": 3, "num_processes": 1, "config": {}, "data_rng": None}
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    torch.save({"render": _Evil()}, ckpt / "reward_cache.pt")
    rng = SimpleNamespace(bit_generator=SimpleNamespace(state=None))
    trainer = SimpleNamespace(accelerator=SimpleNamespace(num_processes=1, load_state=lambda p: None),
                              config=cfg, rng=rng, task=SimpleNamespace(load_state_dict=lambda s: None))
    monkeypatch.setattr("ar3d_r1.engine.checkpoint.apply_changed_rates", lambda t, s: [])
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        load_checkpoint(trainer, ckpt)
    assert not (tmp_path / "PWNED_DIR").exists()


def test_a_resume_notes_every_setting_that_differs_from_the_checkpoints_run():
    import dataclasses

    from ar3d_r1.config import preset
    from ar3d_r1.engine.checkpoint import changed_settings

    cfg = preset("tiny-cpu", "train")
    saved = json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert changed_settings(saved, cfg) == []
    now = dataclasses.replace(cfg, temperature=1.0, beta=0.02, output_dir="elsewhere", resume=True)
    assert changed_settings(saved, now) == ["beta 0.02 (the checkpoint's run had 0.01)",
                                            "temperature 1.0 (the checkpoint's run had 0.7)"]
