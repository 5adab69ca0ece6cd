"""The on-disk state of one evaluate run, so that a killed run loses nothing and ``--resume`` continues it.

Light module. Layout of ``--out DIR``::

    run.json                  the run's fingerprint: everything that changes its output
    state/generated/*.json    one record per finished (case, sample): asset sha256 or failure reason
    assets/                   content-addressed store of generated files (mme3dr.assets.store)
    work/                     adapter output directories (scratch; safe to delete)
    features/                 per-render feature arrays, keyed by the render's content hash
    samples.jsonl, results.json, shard.json

Each record is written atomically (temp file + rename) *after* its asset is in the store, so a SIGKILL
at any point leaves either a complete record or none; ``--resume`` regenerates only the missing ones.

One run per folder: :class:`RunLock` holds an exclusive ``flock`` on ``OUT/.lock`` (with the holder's
PID written in it) for the whole run; a second ``evaluate`` on the same ``--out`` is refused with that
PID. The kernel drops the lock when the holder dies, even by SIGKILL. ``run.json`` also records the
renderer (backend and GL renderer string): resuming on a machine that renders differently is refused
unless ``allow_renderer_change``, because every render, and so every score, would change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from mme3dr.errors import UserError
from mme3dr.output_files import atomic_write_text

__all__ = ["RunLock", "RunState", "RunStateError", "atomic_write_text", "fingerprint"]

LOCK_NAME = ".lock"


class RunStateError(UserError, RuntimeError):
    """The output directory cannot be used as asked (the message says why and which flag to use)."""


class RunLock:
    """An exclusive lock on a run folder for the life of one process (``with RunLock(out): ...``).

    Raises ``RunStateError`` naming the PID that holds the lock when another process has it. ``command``
    and ``hint`` word that message for other commands (``ar3d-r1 train`` locks its ``output_dir``).
    """

    def __init__(self, out_dir: str | os.PathLike, command: str = "mme3dr evaluate",
                 hint: str = "wait for it to finish (then --resume), or choose another --out") -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self.command, self.hint = command, hint
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunStateError(f"{self.path.parent} is in use by another {self.command} (PID {holder}); "
                                f"{self.hint}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (unlinking it would race)
            self._fd = None


def fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the output-determining configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class RunState:
    """Per-sample generation records of one run directory."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out = Path(out_dir)
        self.generated_dir = self.out / "state" / "generated"

    @property
    def run_file(self) -> Path:
        return self.out / "run.json"

    def open(self, config: dict[str, Any], *, resume: bool, overwrite: bool = False) -> bool:
        """Start or continue the run in ``out``; returns ``True`` when continuing an earlier one.

        - a fresh directory: start;
        - an earlier run with the same fingerprint: continue with ``resume``, else refuse;
        - a different configuration: refuse (``overwrite`` clears the old state and outputs first).
        """
        fp = fingerprint(config)
        if self.run_file.is_file():
            old = json.loads(self.run_file.read_text(encoding="utf-8"))
            if overwrite or not self.has_work():
                # Nothing was generated yet (e.g. the last start stopped at a missing weight or a bad
                # --device): nothing to lose, so any configuration may take the folder over.
                self.clear()
            elif old.get("fingerprint") != fp:
                changed = sorted(k for k in set(config) | set(old.get("config", {}))
                                 if config.get(k) != old.get("config", {}).get(k))
                raise RunStateError(
                    f"{self.out} holds a run with a different configuration (differs in: "
                    f"{', '.join(changed) or 'adapter source'}); choose a new --out, or pass --overwrite "
                    "to discard it"
                )
            elif not resume:
                raise RunStateError(
                    f"{self.out} already holds this run; pass --resume to continue or re-score it, or "
                    "--overwrite to start again"
                )
            else:
                return True
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_file, json.dumps({"fingerprint": fp, "config": config}, sort_keys=True,
                                                    indent=2) + "\n")
        return False

    def has_work(self) -> bool:
        """Whether any sample has been recorded in this folder."""
        return self.generated_dir.is_dir() and any(self.generated_dir.glob("*.json"))

    def check_renderer(self, identity: dict[str, Any], *, allow_change: bool = False) -> None:
        """Record the renderer of this run (``{"backend", "gl_renderer"}``), or, when ``run.json``
        already holds another one, refuse (``RunStateError`` naming both) unless ``allow_change``."""
        doc = json.loads(self.run_file.read_text(encoding="utf-8"))
        old = doc.get("renderer")
        if old is not None and old != identity and not allow_change:
            raise RunStateError(
                f"{self.out} was rendered with {_describe(old)}, and this machine renders with "
                f"{_describe(identity)}: every render and score would change. Resume where the run "
                "started, or pass --allow-renderer-change to re-render everything with this renderer"
            )
        if old != identity:
            doc["renderer"] = identity
            atomic_write_text(self.run_file, json.dumps(doc, sort_keys=True, indent=2) + "\n")

    def clear(self) -> None:
        """Remove the run's state and outputs (never the render cache, which is keyed by content)."""
        for name in ("state", "work", "features", "assets"):
            shutil.rmtree(self.out / name, ignore_errors=True)
        for name in ("run.json", "samples.jsonl", "results.json", "shard.json"):
            (self.out / name).unlink(missing_ok=True)

    def _record_path(self, case_id: str, sample_index: int) -> Path:
        return self.generated_dir / f"{case_id}__{sample_index}.json"

    def get(self, case_id: str, sample_index: int) -> dict[str, Any] | None:
        p = self._record_path(case_id, sample_index)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # cannot happen with atomic writes; be safe and regenerate
            return None

    def put(self, case_id: str, sample_index: int, record: dict[str, Any]) -> None:
        atomic_write_text(self._record_path(case_id, sample_index), json.dumps(record, sort_keys=True) + "\n")

    def work_dir(self, case_id: str, sample_index: int) -> Path:
        """A fresh, empty directory for one generation attempt."""
        d = self.out / "work" / f"{case_id}__{sample_index}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d


def _describe(identity: dict[str, Any]) -> str:
    gl = identity.get("gl_renderer")
    return f"backend {identity.get('backend')!r}" + (f" ({gl})" if gl else "")
