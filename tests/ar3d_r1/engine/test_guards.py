"""Issue 26, kind 5: the trainer guards its folder and its numbers. A step that is not finite stops the
run and keeps the last good checkpoint; a resume with a changed learning rate applies it (and says so);
a corrupt newest checkpoint falls back to the one before; a full disk during a checkpoint is one line and
leaves the previous checkpoint intact; two runs on one folder: the second is refused, also after a
``kill -9`` of the first leaves its lock behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

try:  # the engine tests' shared parts: tiny_parts comes from tests/ar3d_r1/engine/conftest.py
    from trainer_parts import make_trainer as _trainer
except ImportError:  # before those existed, test_trainer.py held them
    import test_trainer

    tiny_parts = test_trainer.tiny_parts  # the tiny policy and VQVAE of the trainer's tests (a fixture)
    _trainer = test_trainer._trainer

REPO = Path(__file__).resolve().parents[3]


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_step_that_is_not_finite_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_parts, tmp_path):
    from ar3d_r1.engine.guards import NonFiniteStepError

    out = tmp_path / "run"
    # a real overflow: Adam moves every weight by ~lr, so the next forward pass overflows float32
    trainer = _trainer(tiny_parts, out, learning_rate=1e30, max_steps=4, save_steps=1)
    with pytest.raises(NonFiniteStepError) as info:
        trainer.train()
    message = str(info.value)
    bad = int(message.split()[1])
    assert message.startswith(f"step {bad} is not finite (") and "the run stops without saving it" in message
    assert not (out / "final").exists()
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert saved == list(range(1, bad)) and [r["step"] for r in _records(out)] == saved
    if saved:
        assert f"the last good checkpoint is {out / f'checkpoint-{saved[-1]}'}" in message
        from safetensors.torch import load_file

        weights = load_file(out / f"checkpoint-{saved[-1]}" / "model.safetensors")
        assert all(torch.isfinite(w).all() for w in weights.values())


def test_resume_applies_a_changed_learning_rate_and_skips_a_corrupt_checkpoint(tiny_parts, tmp_path, capsys):
    from ar3d_r1.engine.checkpoint import ResumeError

    out = tmp_path / "run"
    _trainer(tiny_parts, out, learning_rate=1e-3, max_steps=3, save_steps=1).train()
    shutil.rmtree(out / "final")
    weights = out / "checkpoint-3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a torn write
    capsys.readouterr()
    trainer = _trainer(tiny_parts, out, learning_rate=5e-4, max_steps=3, save_steps=1, resume=True)
    trainer.train()
    err = capsys.readouterr().err
    assert f"warning: checkpoint {out / 'checkpoint-3'} cannot be read" in err
    assert trainer.start_step == 2
    assert [r["step"] for r in _records(out)] == [1, 2, 3]
    # applied, not just written to config.yaml: the step after the resume ran at the new rate
    assert [r["learning_rate"] for r in _records(out)] == pytest.approx([1e-3, 1e-3, 5e-4])
    assert "learning_rate: 0.0005" in (out / "config.yaml").read_text()
    # nothing intact: one error naming each checkpoint
    shutil.rmtree(out / "final")
    for path in out.glob("checkpoint-*"):
        (path / "trainer_state.json").write_text("{")
    with pytest.raises(ResumeError, match=r"no intact checkpoint in .*checkpoint-3 \(JSONDecodeError"):
        _trainer(tiny_parts, out, max_steps=3, resume=True).train()


def _namespace_prefix() -> list[str] | None:
    """An ``unshare`` command line in which ``mount -t tmpfs`` works, or None (as tests/harness)."""
    unshare = shutil.which("unshare")
    options = ([unshare, "--user", "--map-root-user", "--mount"], [unshare, "--mount"]) if unshare else ()
    for prefix in options:
        if subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                          capture_output=True).returncode == 0:
            return prefix
    return None


def _train_cmd(parts: Path, out: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "ar3d_r1", "train", "--policy", str(parts / "policy"), "--vqvae",
            str(parts / "vqvae"), "--output_dir", str(out), "--num_prompts", "2", "--num_generations", "2",
            "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "2", "--max_plan_tokens",
            "4", "--render_size", "32", "--constrain", "true", "--dynamic_sampling", "off", *flags]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(tiny_parts, tmp_path):
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (unshare not permitted)")
    disk = tmp_path / "disk"
    disk.mkdir()
    first = " ".join(f"'{a}'" for a in _train_cmd(tiny_parts, disk / "run", "--max_steps", "1",
                                                   "--save_steps", "1"))
    second = " ".join(f"'{a}'" for a in _train_cmd(tiny_parts, disk / "run", "--max_steps", "3",
                                                    "--save_steps", "1", "--resume", "true"))
    # checkpoint-1 (~700 KB) fits; then the disk is filled up to 300 KB, less than checkpoint-2 needs
    script = f"""
        set -u
        mount -t tmpfs -o size=16m tmpfs '{disk}'
        {first} > '{tmp_path}/first.out' 2>&1 || exit 3
        dd if=/dev/zero of='{disk}/filler' bs=64k 2>/dev/null
        truncate -s -300K '{disk}/filler'
        {second} > '{tmp_path}/second.out' 2> '{tmp_path}/second.err'; echo $? > '{tmp_path}/second.rc'
        cp -a '{disk}/run' '{tmp_path}/saved'
    """
    done = subprocess.run([*prefix, "sh", "-c", script], env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, (done.stderr[-2000:], (tmp_path / "first.out").read_text()[-2000:])
    assert (tmp_path / "second.rc").read_text().strip() == "1"
    lines = (tmp_path / "second.err").read_text().strip().splitlines()
    run = disk / "run"
    assert lines[-1] == (f"error: disk full: no space left on the device while writing checkpoint-2 in "
                         f"{run}; the previous checkpoint {run / 'checkpoint-1'} is intact. Free some space, "
                         "then run the same command with --resume true")
    assert "Traceback" not in "\n".join(lines)
    saved = tmp_path / "saved"
    assert not list(saved.glob(".checkpoint-*")) and not (saved / "checkpoint-2").exists()
    from safetensors.torch import load_file

    assert json.loads((saved / "checkpoint-1" / "trainer_state.json").read_text())["step"] == 1
    weights = load_file(saved / "checkpoint-1" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_two_runs_on_one_folder_the_second_is_refused_and_a_killed_runs_lock_is_no_obstacle(tiny_parts,
                                                                                            tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(_train_cmd(tiny_parts, out, "--max_steps", "200", "--save_steps", "1"),
                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (out / "checkpoint-1").is_dir(), first)
        second = subprocess.run(_train_cmd(tiny_parts, out, "--max_steps", "2", "--resume", "true"),
                                env=_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 1
        assert second.stderr.strip() == (
            f"error: {out} is in use by another ar3d-r1 train (PID {first.pid}); wait for it to finish "
            "(then --resume true), or choose another --output_dir")
        steps = [r["step"] for r in _records(out)]
        assert steps == sorted(set(steps))  # one run's steps, never interleaved
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # the lock file stays behind with the dead PID in it; the kernel dropped the lock with the process
    assert (out / ".lock").read_text().strip() == str(first.pid)
    last = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    third = subprocess.run(_train_cmd(tiny_parts, out, "--max_steps", str(last + 1), "--save_steps", "1",
                                      "--resume", "true"), env=_env(), capture_output=True, text=True,
                           timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    assert [r["step"] for r in _records(out)] == list(range(1, last + 2))


@pytest.mark.slow
def test_sigterm_during_training_exits_promptly_through_the_finally_blocks(tiny_parts, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(tiny_parts, out, "--max_steps", "200", "--save_steps", "1",
                                       "--max_plan_tokens", "32"),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (out / "checkpoint-1").is_dir(), proc)
        time.sleep(0.5)  # inside a later step's rollout (most of a step's time)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143 and waited < 10, (proc.returncode, waited)
    assert not (out / "final").exists()


def test_non_finite_parameters_are_named():
    from ar3d_r1.engine.guards import non_finite_parameters

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert non_finite_parameters(model) == []
    with torch.no_grad():
        model[1].bias[0] = float("nan")
        model[0].weight[1, 1] = float("inf")
    assert non_finite_parameters(model) == ["0.weight", "1.bias"]
