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

**One run per directory.** A fresh run (no ``resume``) refuses an ``output_dir`` that already holds a
run's steps (``metrics.jsonl``, a checkpoint or ``final/``: :func:`prepare_output_dir`), as HF and TRL
do; ``overwrite_output_dir`` deletes that run's files (:data:`RUN_FILES` and the checkpoints, nothing
else) first. Without it a second run would append its steps to the first's log (1, 2, 1, 2), add
TensorBoard events beside the old ones and replace the old checkpoints one by one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

PREFIX = "checkpoint-"
_COMPLETE = re.compile(r"^checkpoint-(\d+)$")
#: What a Hi-GRPO run writes into its output_dir besides its checkpoints (``overwrite_output_dir`` and a
#: resume without a checkpoint delete these; anything else in the directory is left alone).
RUN_FILES = ("metrics.jsonl", "reward_failures.jsonl", "tb", "final", "reward_curve.png", "config.yaml")


class OutputDirError(ValueError):
    """``output_dir`` already holds a run and neither ``resume`` nor ``overwrite_output_dir`` is set."""


class ResumeError(ValueError):
    """A checkpoint cannot continue this run: another process count, or other data or batch settings."""


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
    """Write ``checkpoint-<step>`` for ``trainer`` (a :class:`ar3d_r1.engine.trainer.HiGRPOTrainer`); every
    process must call it. Returns the final path.

    Raises:
        CheckpointDiskFullError: the disk filled up (ar3d_r1/engine/disk_full.py); the ``.partial`` directory
            is removed and the previous checkpoint is left as it was.
    """
    from ar3d_r1.engine.disk_full import disk_full, disk_full_error

    out = Path(trainer.config.output_dir)
    previous = latest_checkpoint(out)
    try:
        return _write_checkpoint(trainer, step)
    except Exception as exc:
        full = disk_full(exc, out)
        if trainer.accelerator.is_main_process:
            shutil.rmtree(out / f".{PREFIX}{step}.partial", ignore_errors=True)
        if full:
            raise disk_full_error(out, f"{PREFIX}{step}", previous) from exc
        raise


def _write_checkpoint(trainer, step: int) -> Path:
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

    Raises ResumeError (a ValueError) when the checkpoint was written by a different number of processes
    (each process restores its own RNG file) or by a run whose data settings differ.
    """
    import torch

    path = Path(path)
    acc = trainer.accelerator
    state = json.loads((path / "trainer_state.json").read_text("utf-8"))
    if state["num_processes"] != acc.num_processes:
        raise ResumeError(f"{path} was written by {state['num_processes']} processes, this run has "
                         f"{acc.num_processes}: launch with --num_processes {state['num_processes']} "
                         "to resume it")
    saved, now = state["config"], trainer.config
    for key in ("seed", "num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
                "num_prompts", "prompt_seed", "task", "prompts_file"):
        if key in saved and saved[key] != getattr(now, key):
            raise ResumeError(f"{path} was written with {key}={saved[key]!r}, this run has "
                             f"{getattr(now, key)!r}; resuming would not continue the same run")
    acc.load_state(str(path))
    trainer.resume_notes = apply_changed_rates(trainer, saved) + changed_settings(saved, now)
    trainer.rng.bit_generator.state = state["data_rng"]
    trainer._queue = list(state.get("data_queue", []))
    cache = path / "reward_cache.pt"
    if cache.is_file() and hasattr(trainer.task, "load_state_dict"):
        # weights_only=True: a checkpoint folder from elsewhere must not run code on --resume (the cache
        # holds only strings, ints and tensors, see Reward6Renderer.state_dict)
        trainer.task.load_state_dict(torch.load(cache, map_location="cpu", weights_only=True))
    return int(state["step"])


def apply_changed_rates(trainer, saved: dict) -> list[str]:
    """After ``load_state``: the restored optimizer and scheduler hold the checkpoint run's
    ``learning_rate`` and ``weight_decay``; set this run's instead, so that what ``config.yaml`` says is
    what runs (the schedule's step and shape are kept: lr = new base rate × the schedule's factor at its
    step). Returns a note per changed field."""
    cfg, sched = trainer.config, trainer.scheduler
    groups = sched.optimizer.param_groups
    notes = []
    if saved.get("learning_rate", cfg.learning_rate) != cfg.learning_rate:
        sched.base_lrs = [cfg.learning_rate for _ in sched.base_lrs]
        for group, factor in zip(groups, (f(sched.last_epoch) for f in sched.lr_lambdas), strict=True):
            group["initial_lr"], group["lr"] = cfg.learning_rate, cfg.learning_rate * factor
        sched._last_lr = [group["lr"] for group in groups]
        notes.append(f"learning_rate {cfg.learning_rate:g} (the checkpoint's run had "
                     f"{saved['learning_rate']:g})")
    if saved.get("weight_decay", cfg.weight_decay) != cfg.weight_decay:
        for group in groups:
            group["weight_decay"] = cfg.weight_decay
        notes.append(f"weight_decay {cfg.weight_decay:g} (the checkpoint's run had "
                     f"{saved['weight_decay']:g})")
    return notes


#: Fields a resume may change without a note: where and how the run is started, and the two rates that
#: :func:`apply_changed_rates` notes itself.
_UNNOTED = ("output_dir", "resume", "overwrite_output_dir", "learning_rate", "weight_decay")


def changed_settings(saved: dict, now) -> list[str]:
    """A note per config field whose value differs from the checkpoint's run (``temperature 1 (the
    checkpoint's run had 0.7)``), so that the resume line says every way the continued run differs;
    values are compared as the checkpoint stored them (``dataclasses.asdict``, JSON)."""
    current = json.loads(json.dumps(dataclasses.asdict(now), default=str))
    return [f"{key} {current[key]!r} (the checkpoint's run had {saved[key]!r})"
            for key in sorted(saved) if key in current and key not in _UNNOTED and saved[key] != current[key]]


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


def saved_step(directory: str | Path) -> int | None:
    """The step a checkpoint or ``final/`` directory holds (its ``trainer_state.json``), or None."""
    try:
        return int(json.loads((Path(directory) / "trainer_state.json").read_text("utf-8"))["step"])
    except (OSError, ValueError, KeyError):
        return None


def existing_run(output_dir: str | Path) -> str | None:
    """What shows that ``output_dir`` holds a run's steps: ``"metrics.jsonl"``, ``"final"`` or the newest
    ``"checkpoint-<step>"``; None when it holds none (a run that logged no step leaves no mark)."""
    root = Path(output_dir)
    for name in ("metrics.jsonl", "final"):
        if (root / name).exists():
            return name
    found = checkpoints(root)
    return found[-1][1].name if found else None


def clear_run(output_dir: str | Path) -> list[Path]:
    """Delete a run's files from ``output_dir``: :data:`RUN_FILES`, ``checkpoint-<step>`` and the
    ``.partial`` directories of a killed save. Returns what was deleted."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    gone = [root / n for n in RUN_FILES if (root / n).exists()] + [p for _, p in checkpoints(root)]
    for path in gone:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return gone + remove_partials(root)


def output_dir_problem(output_dir: str | Path, *, resume: bool, overwrite: bool) -> str | None:
    """Why a run may not start in ``output_dir`` (one line), or None: a fresh run (``resume`` False)
    without ``overwrite`` into a directory that :func:`existing_run` says holds a run."""
    marker = None if resume or overwrite else existing_run(output_dir)
    if marker is None:
        return None
    return (f"{output_dir} already holds a run ({marker}); pass --resume true to continue it or "
            "--overwrite_output_dir true to start over")


def prepare_output_dir(trainer) -> None:
    """Before a fresh run (``resume`` False) of ``trainer``: raise :class:`OutputDirError` if its
    ``output_dir`` holds a run and ``overwrite_output_dir`` is False, else delete the old run's files
    (:func:`clear_run`: a run that logged no step may have left TensorBoard events and reward failures).
    Every process checks before the main process deletes anything."""
    cfg, acc = trainer.config, trainer.accelerator
    if cfg.resume:
        return
    problem = output_dir_problem(cfg.output_dir, resume=cfg.resume, overwrite=cfg.overwrite_output_dir)
    acc.wait_for_everyone()
    if problem:
        raise OutputDirError(problem)
    if acc.is_main_process:
        clear_run(cfg.output_dir)
    acc.wait_for_everyone()


def _load_newest_intact(trainer, paths: list[Path]) -> tuple[int, Path]:
    """Load the newest of ``paths`` (oldest first) that every process reads; an unreadable one (a torn
    file, a truncated tensor) is named in a warning on stderr and the one before it is tried.

    Raises:
        ResumeError: a checkpoint of another run's settings (:func:`load_checkpoint`), or none is intact.
    """
    import sys

    from ar3d_r1.engine.distributed import global_sums

    acc, problems = trainer.accelerator, []
    for path in reversed(paths):
        reason = ""
        try:
            step = load_checkpoint(trainer, path)
        except ResumeError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable file: fall back to the one before
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        if global_sums(acc, {"ok": float(not reason)})["ok"] == acc.num_processes:
            return step, path
        problems.append(f"{path.name} ({reason or 'unreadable on another process'})")
        if acc.is_main_process:
            print(f"hi-grpo: warning: checkpoint {path} cannot be read ({reason or 'on another process'}); "
                  "falling back to the one before it", file=sys.stderr, flush=True)
    raise ResumeError(f"no intact checkpoint in {Path(trainer.config.output_dir)}: {'; '.join(problems)}; "
                      "pass --overwrite_output_dir true to start over")


def resume_run(trainer) -> int:
    """Continue ``trainer``'s run in its ``output_dir``; returns the step it starts from (every process
    calls it).

    - ``final/`` at ``max_steps`` or later: the run is finished; nothing is loaded (the caller has
      nothing to do);
    - else the latest complete checkpoint is restored (:func:`load_checkpoint`; an unreadable one is
      named in a warning and the one before it is used) and ``metrics.jsonl`` and
      ``reward_failures.jsonl`` are cut back to its step;
    - no checkpoint: step 0, with the files of a run killed before its first checkpoint deleted
      (:func:`clear_run`), so its steps are not logged twice.

    Raises:
        OutputDirError: ``final/`` holds a run that stopped before ``max_steps`` and no checkpoint is
            left to continue it from exactly.
    """
    acc, out, cfg = trainer.accelerator, Path(trainer.config.output_dir), trainer.config
    metrics = out / "metrics.jsonl"
    done = saved_step(out / "final")
    if done is not None and done >= cfg.max_steps:
        trainer.history = truncate_metrics(metrics, done) if acc.is_main_process else []
        acc.wait_for_everyone()
        return done
    if acc.is_main_process:
        remove_partials(out)
    acc.wait_for_everyone()
    found = checkpoints(out)
    if not found:
        if done is not None:
            raise OutputDirError(f"{out} holds a run that ended at step {done} (final/) with no checkpoint "
                                 f"to continue it to max_steps {cfg.max_steps} from; pass "
                                 "--overwrite_output_dir true to start over")
        if acc.is_main_process:
            clear_run(out)
            print(f"hi-grpo: no checkpoint in {out}: starting from step 0", flush=True)
        acc.wait_for_everyone()
        return 0
    step, path = _load_newest_intact(trainer, [p for _, p in found])
    if acc.is_main_process:
        changed = "".join(f"; with {note}" for note in getattr(trainer, "resume_notes", []))
        print(f"hi-grpo: resumed from step {step} ({path}){changed}", flush=True)
        trainer.history = truncate_metrics(metrics, step)
        truncate_metrics(out / "reward_failures.jsonl", step)
    acc.wait_for_everyone()
    return step
