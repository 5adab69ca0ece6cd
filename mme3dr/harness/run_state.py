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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["RunState", "RunStateError", "atomic_write_text", "fingerprint"]


class RunStateError(RuntimeError):
    """The output directory cannot be used as asked (the message says why and which flag to use)."""


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


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
            if overwrite:
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
