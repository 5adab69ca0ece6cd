"""``cmd:PROGRAM ARGS...``: any program, in any environment, as an adapter (standard library only).

The program never imports this project. For each batch of requests the adapter runs::

    PROGRAM ARGS... --requests REQUESTS.jsonl --out-dir DIR

in the directory ``mme3dr evaluate`` was started from (so relative paths in the command work). Each
batch has its own folder, ``<run>/work/cmd-batches/<NNNNN>/``, which keeps ``requests.jsonl``,
``stdout.txt``, ``stderr.txt`` and ``report.json`` (command, exit status, seconds, what was missing or
ignored) after the run; ``DIR`` is its ``out/`` sub-folder.

- Each line of ``REQUESTS.jsonl`` is ``{"id", "prompt", "seed", "case_id", "sample_index"}``; ``id`` is
  ``<case_id>_<sample_index>``.
- The program writes ``DIR/<id>.<ext>`` (``<ext>`` one of :data:`mme3dr.models.folder.EXTENSIONS`), its
  side files (MTL, textures, buffers) beside it or in ``DIR/<id>/``, and optionally ``DIR/<id>.json``
  ``{"up_axis": "y"|"z", "seconds": float}`` (``up_axis`` defaults to the ``up_axis`` model argument,
  ``seconds`` to the batch's wall time shared equally).
- Exit 0 with some files missing: those samples fail as ``missing_output``. A non-zero exit, a death by
  signal or a hang past the harness's ``--timeout`` (seconds per request, times the batch's size) raises
  :class:`CommandFailed`, which the harness records for every sample of the batch (``adapter_error``)
  with the program's last stderr lines. The program's whole process group is killed on a timeout.
- A file the program writes into the batch's folder outside ``DIR`` is ignored and reported
  (``report.json`` and the missing samples' detail); a symlink in ``DIR`` that leads outside it, or two
  files for one id, are refused (``asset_refused``), as for ``folder:DIR``.

``--model-args``: ``batch_size`` (default 8), ``name`` / ``revision`` (recorded in the results; the name
defaults to ``cmd:<program name>``), ``up_axis`` (``y`` default, or ``z``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mme3dr.models.folder import EXTENSIONS, FolderModel
from mme3dr.models.protocol import UP_AXES, Asset, GenerationRequest, ModelInfo
from mme3dr.process_lifetime import _set_pdeathsig  # the child's preexec_fn: never import after a fork

__all__ = ["CommandFailed", "CommandModel", "request_id", "tail"]

#: Lines of the program's stderr quoted in a failure's detail.
TAIL_LINES = 8
_OWN_FILES = {"requests.jsonl", "stdout.txt", "stderr.txt", "report.json", "out"}


class CommandFailed(RuntimeError):
    """The program exited non-zero, died by a signal or ran past its time; the message quotes stderr."""


def request_id(request: GenerationRequest) -> str:
    """The file stem the program must use for ``request``: ``<case_id>_<sample_index>``."""
    return f"{request.case_id}_{request.sample_index}"


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a text file, joined by `` | `` (``""`` if none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join([ln.strip() for ln in text.splitlines() if ln.strip()][-lines:])


class CommandModel:
    """Any program in its own environment: ``PROGRAM ARGS... --requests FILE --out-dir DIR`` per batch."""

    requirements = {"extra": "-", "weights": "the program's own", "gpu": "the program's own"}

    def __init__(self, command: str, batch_size: str | int = 8, name: str | None = None,
                 revision: str = "unknown", up_axis: str = "y") -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("--model cmd: needs a program: --model 'cmd:/path/to/python generate.py'")
        program = shutil.which(self.argv[0])
        if program is None:
            raise FileNotFoundError(f"--model cmd:{command}: program {self.argv[0]!r} not found (give a path "
                                    "or a name on $PATH)")
        self.argv[0] = str(Path(program).absolute())
        try:
            self.max_batch_size = int(batch_size)
        except ValueError:
            self.max_batch_size = 0
        if self.max_batch_size < 1:
            raise ValueError(f"--model-args batch_size must be a positive integer, got {batch_size!r}")
        if up_axis not in UP_AXES:
            raise ValueError(f"--model-args up_axis must be 'y' or 'z', got {up_axis!r}")
        self.up_axis = up_axis
        self.info = ModelInfo(name=name or f"cmd:{Path(self.argv[0]).name}", revision=revision,
                              output_format="mixed")
        self.request_timeout: float | None = None

    def set_request_timeout(self, seconds: float | None) -> None:
        """Called by the harness before each batch: its ``--timeout`` (seconds per request; None = none)."""
        self.request_timeout = seconds

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Asset]:
        requests = list(requests)
        batch = _new_batch_dir(Path(requests[0].output_dir).parent / "cmd-batches")
        out_dir = batch / "out"
        out_dir.mkdir()
        with open(batch / "requests.jsonl", "w", encoding="utf-8") as f:
            for r in requests:
                f.write(json.dumps({"id": request_id(r), "prompt": r.prompt, "seed": r.seed,
                                    "case_id": r.case_id, "sample_index": r.sample_index}) + "\n")
        argv = [*self.argv, "--requests", str(batch / "requests.jsonl"), "--out-dir", str(out_dir)]
        limit = None if not self.request_timeout else self.request_timeout * len(requests)
        seconds, status = _run(argv, batch, limit)
        report = {"command": argv, "status": status, "seconds": round(seconds, 3),
                  "ids": [request_id(r) for r in requests]}
        if status != 0:
            _write_report(batch, report)
            raise CommandFailed(f"{_describe(status, limit)} (batch {batch.name}); last stderr: "
                                f"{tail(batch / 'stderr.txt') or '(empty)'}")
        ignored = sorted(p.relative_to(batch).as_posix() for p in batch.rglob("*")
                         if p.relative_to(batch).parts[0] not in _OWN_FILES)
        assets = [self._asset(out_dir, r, seconds / len(requests), ignored) for r in requests]
        report.update(missing=[request_id(r) for r, a in zip(requests, assets, strict=True)
                               if "missing" in a.meta], ignored_outside_out_dir=ignored)
        _write_report(batch, report)
        return assets

    def _asset(self, out_dir: Path, request: GenerationRequest, share: float, ignored: list[str]) -> Asset:
        rid = request_id(request)
        folder = FolderModel(out_dir, up_axis=self.up_axis)
        found = [p for p in folder.candidates(request.case_id, request.sample_index) if p.stem == rid
                 and p.parent == out_dir]
        if not found:
            outside = f"; ignored files written outside --out-dir: {', '.join(ignored)}" if ignored else ""
            return Asset(path=out_dir / f"{rid}.glb", seconds=share, meta={
                "missing": f"the program exited 0 but wrote no {rid}.<ext> in --out-dir (<ext> one of "
                           f"{', '.join(EXTENSIONS)}){outside}"})
        asset = Asset(path=found[0], seconds=share, up_axis=self.up_axis)
        refused = folder.refusal(found[0], found[1:])
        if refused:
            return replace(asset, meta={"refused": refused})
        return _apply_side_json(asset, out_dir / f"{rid}.json")


def _apply_side_json(asset: Asset, path: Path) -> Asset:
    """``asset`` with the ``up_axis`` / ``seconds`` of the optional ``<id>.json``; refused if it is bad."""
    if not path.is_file():
        return asset
    try:
        side = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
        if not isinstance(side, dict):
            raise ValueError("not a JSON object")
        up_axis = side.get("up_axis", asset.up_axis)
        if up_axis not in UP_AXES:
            raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
        seconds = side.get("seconds", asset.seconds)
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                    or not math.isfinite(seconds) or seconds < 0):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    except ValueError as e:
        return replace(asset, meta={"refused": f"{path.name} is not valid: {e}"})
    return replace(asset, up_axis=up_axis, seconds=None if seconds is None else float(seconds))


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's pairs as a dict; ValueError on a repeated key (which one counts is ambiguous)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears more than once")
        out[key] = value
    return out


def _new_batch_dir(root: Path) -> Path:
    """``root/<NNNNN>``: the next free number, so a resumed run keeps the earlier batches' logs."""
    root.mkdir(parents=True, exist_ok=True)
    n = len(list(root.iterdir()))
    while True:
        try:
            path = root / f"{n:05d}"
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def _run(argv: list[str], logs: Path, limit: float | None) -> tuple[float, int | str]:
    """Run ``argv`` (its own session, dying with us), its output into ``logs``;
    ``(seconds, exit status | "timeout")``."""
    t0 = time.perf_counter()
    with open(logs / "stdout.txt", "wb") as out, open(logs / "stderr.txt", "wb") as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, preexec_fn=_set_pdeathsig)
        except OSError as e:
            err.write(f"could not start {argv[0]}: {e}\n".encode())
            return time.perf_counter() - t0, 127
        try:
            status: int | str = proc.wait(limit)
        except subprocess.TimeoutExpired:
            status = "timeout"
        finally:
            _kill_group(proc)
    return time.perf_counter() - t0, status


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the program's process group (its own children included) and reap the program."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _describe(status: int | str, limit: float | None) -> str:
    if status == "timeout":
        return f"the program ran past --timeout ({limit:g} s for this batch) and was killed"
    if isinstance(status, int) and status < 0:
        try:
            return f"the program died by signal {signal.Signals(-status).name}"
        except ValueError:
            return f"the program died by signal {-status}"
    return f"the program exited with status {status}"


def _write_report(batch: Path, report: dict) -> None:
    (batch / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
