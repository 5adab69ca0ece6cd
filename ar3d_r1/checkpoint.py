"""Checkpoints a killed Hi-GRPO run resumes from exactly: ``output_dir/checkpoint-<step>/``.

What one holds, and who writes it:

- model, optimizer, every registered LR scheduler, and every RNG state (python ``random``, numpy's
  global generator, torch CPU and CUDA) of each process (``random_states_<rank>.pkl``):
  ``Accelerator.save_state`` (DeepSpeed engines save their own ZeRO partitions through it);
- ``trainer_state.json`` (main process): the optimizer ``step``, the data cursor (the state of the
  trainer's prompt-drawing ``numpy.random.Generator`` and the rest of the current epoch's prompt
  order), the run's config, and how many metric records the run had written; with ``config.json`` and
  the tokenizer files beside accelerate's ``model.safetensors`` the directory also loads as a policy;
- ``reward_cache.pt``: the task's ``state_dict()`` when it has one (rewards cached in memory). The served
  rewards' response cache (``mme3dr.judge.ResponseCache``) is an append-only directory keyed by request
  content, so it is shared by all checkpoints, never rolled back: a resumed run asks nothing twice.

**Atomic.** Everything is written into ``.checkpoint-<step>.partial/``, every file is fsynced, then the
directory is renamed to ``checkpoint-<step>`` (a rename is atomic on POSIX) and its parent fsynced. A
``kill -9`` mid-save leaves only a ``.partial`` directory, which :func:`latest_checkpoint` ignores and
the next save or resume deletes.

**Logs.** :func:`truncate_metrics` drops the ``metrics.jsonl`` records past the checkpoint's step (and a
torn last line), so a resumed run appends each later step exactly once; TensorBoard is reopened with
``purge_step`` = step + 1, which discards the killed run's later events.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

PREFIX = "checkpoint-"
_COMPLETE = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``output_dir`` as ``(step, path)``, oldest first."""
    root = Path(output_dir)
    found = []
    for p in root.glob(f"{PREFIX}*") if root.is_dir() else []:
        m = _COMPLETE.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint under ``output_dir``, or None."""
    found = checkpoints(output_dir)
    return found[-1][1] if found else None


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_partials(output_dir: str | Path) -> list[Path]:
    """Delete the ``.checkpoint-*.partial`` directories a killed save left; returns them."""
    root = Path(output_dir)
    gone = sorted(root.glob(f".{PREFIX}*.partial")) if root.is_dir() else []
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def save_checkpoint(trainer, step: int) -> Path:
    """Write ``checkpoint-<step>`` for ``trainer`` (a :class:`ar3d_r1.trainer.HiGRPOTrainer`); every
    process must call it. Returns the final path."""
    import dataclasses

    import torch

    acc = trainer.accelerator
    out = Path(trainer.config.output_dir)
    final, tmp = out / f"{PREFIX}{step}", out / f".{PREFIX}{step}.partial"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))  # model, optimizer, schedulers, RNG states of every process
    if acc.is_main_process:
        state = {"step": step, "data_rng": trainer.rng.bit_generator.state,
                 "data_queue": [int(i) for i in getattr(trainer, "_queue", [])],
                 "metrics_records": len(trainer.history), "config": dataclasses.asdict(trainer.config),
                 "num_processes": acc.num_processes}
        if hasattr(trainer.task, "state_dict"):
            torch.save(trainer.task.state_dict(), tmp / "reward_cache.pt")
        # config.json + tokenizer beside accelerate's model.safetensors: the directory loads as a policy
        acc.unwrap_model(trainer.model).config.save_pretrained(tmp)
        trainer.processor.save_pretrained(tmp)
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    acc.wait_for_everyone()
    if acc.is_main_process:
        _fsync_tree(tmp)
        if final.exists():  # a re-run of the same step (resumed from an older checkpoint): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(out)
    acc.wait_for_everyone()
    return final


def load_checkpoint(trainer, path: str | Path) -> int:
    """Restore ``trainer`` from checkpoint ``path`` (every process calls it); returns its step.

    Raises ValueError when the checkpoint was written by a different number of processes (each process
    restores its own RNG file) or by a run whose data settings differ.
    """
    import torch

    path = Path(path)
    acc = trainer.accelerator
    state = json.loads((path / "trainer_state.json").read_text("utf-8"))
    if state["num_processes"] != acc.num_processes:
        raise ValueError(f"{path} was written by {state['num_processes']} processes, this run has "
                         f"{acc.num_processes}: launch with --num_processes {state['num_processes']} "
                         "to resume it")
    saved, now = state["config"], trainer.config
    for key in ("seed", "num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
                "num_prompts", "prompt_seed", "task", "prompts_file"):
        if key in saved and saved[key] != getattr(now, key):
            raise ValueError(f"{path} was written with {key}={saved[key]!r}, this run has "
                             f"{getattr(now, key)!r}; resuming would not continue the same run")
    acc.load_state(str(path))
    trainer.rng.bit_generator.state = state["data_rng"]
    trainer._queue = list(state.get("data_queue", []))
    cache = path / "reward_cache.pt"
    if cache.is_file() and hasattr(trainer.task, "load_state_dict"):
        trainer.task.load_state_dict(torch.load(cache, weights_only=False))
    return int(state["step"])


def truncate_metrics(path: str | Path, step: int) -> list[dict]:
    """Keep the records of ``metrics.jsonl`` at ``path`` with ``record["step"] <= step`` (and drop a
    torn last line); rewrite the file atomically; return the kept records."""
    path = Path(path)
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text("utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # the torn line of a write cut by kill -9
        if rec.get("step", 0) <= step:
            kept.append(rec)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return kept
