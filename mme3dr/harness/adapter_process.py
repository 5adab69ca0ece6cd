"""The adapter in a child process, so that an adapter that dies costs only the requests it held.

Python cannot survive ``os._exit`` or a segfault in its own process, and cannot stop a hung thread. The
harness therefore loads and calls the adapter in a spawned child process and talks to it over a pipe:

- the child dies (``os._exit(3)``, SIGSEGV, the OOM killer): the requests in flight are recorded as
  ``adapter_crashed`` with the exit status or signal, a fresh child is started (the model is loaded
  again) for the remaining requests, and the run goes on. The record is kept like any other failure,
  so a deterministic crash does not make every ``--resume`` die at the same case;
- no answer within ``timeout`` seconds per request: the child is killed (which a thread never could be)
  and the batch is recorded as ``adapter_timeout``;
- an exception, a wrong count, a bad return value or a missing file: classified exactly as
  :func:`mme3dr.harness.generation.classify_return` does for an in-process call.

The child never outlives the evaluate process, and neither does anything the adapter starts, detached
or not: the child is a keeper (a child subreaper, :func:`mme3dr.process_lifetime.keep_tree`) that runs
the adapter in a process of its own and kills whatever is left below it when that process ends or the
harness stops it. Every path handed to the adapter is absolute (``output_dir``, the oracle's
references), and a relative path it returns is made absolute in the child, against the directory it
is in then: an adapter that calls ``os.chdir`` changes nothing for the harness or later requests.
Returned files are checked in the parent: both see the same file system.

Light module (standard library; the adapter's own imports happen in the child).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mme3dr.harness.generation import GenerationOutcome, classify_return
from mme3dr.models.protocol import Asset, GenerationRequest
from mme3dr.models.registry import ModelSpecError

__all__ = ["AdapterProcess", "BadItem", "TIMEOUT_GRACE_S", "describe_exit"]

#: Extra seconds the parent waits for an adapter that enforces ``--timeout`` itself (it has a
#: ``set_request_timeout(seconds)`` method, like ``cmd:``), so its own failure, with its reason, arrives
#: before the parent kills it.
TIMEOUT_GRACE_S = 5.0


@dataclass(frozen=True)
class BadItem:
    """Stands in for a returned element that is neither an ``Asset`` nor a path (it may not pickle)."""

    type_name: str


@dataclass
class AdapterProcess:
    """``load_model(spec, model_args)`` in a child process; ``generate(requests, timeout)`` never raises
    for adapter misbehaviour. Mirrors the parts of ``LoadedModel`` the harness reads: ``spec``, ``kind``,
    ``target``, ``model_args``, ``file_sha256``, ``source_record()``, ``model.info``,
    ``max_batch_size``.

    Raises ``ModelSpecError`` when the model cannot be loaded (the message says why), including when the
    child dies while loading it.
    """

    spec: str
    model_args: dict[str, str] | str | None = None
    restarts: int = 0
    _proc: Any = field(default=None, repr=False)
    _conn: Any = field(default=None, repr=False)
    _references: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._start()

    # --- the LoadedModel view ----------------------------------------------------------------------
    def source_record(self) -> dict[str, Any]:
        return dict(self._source)

    @property
    def max_batch_size(self) -> int:
        return self._max_batch_size

    @property
    def wants_references(self) -> bool:
        return self._wants_references

    # --- lifecycle ----------------------------------------------------------------------------------
    def _start(self) -> None:
        from mme3dr.process_lifetime import spawn_context

        ctx: Any = spawn_context()
        parent_conn, child_conn = ctx.Pipe()
        from mme3dr.process_lifetime import run_in_kept_tree

        # The child forks its keeper before it imports this module (numpy's BLAS threads and the like).
        proc = ctx.Process(target=run_in_kept_tree, name="mme3dr-adapter", daemon=True,
                           args=(os.getpid(), f"{__name__}:_child_main", child_conn, self.spec,
                                 self.model_args))
        proc.start()
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        reply = self._receive(None)
        if reply is None:
            self.close()
            raise ModelSpecError(f"--model {self.spec!r}: the adapter process died while loading the model "
                                 f"({describe_exit(proc)}); run the adapter on its own to see why")
        kind, payload = reply
        if kind != "ready":
            self.close()
            raise ModelSpecError(payload)
        self._source = payload["source"]
        self.kind, self.target = payload["source"]["kind"], payload["source"]["target"]
        self.model_args = payload["source"]["model_args"]
        self.file_sha256 = payload["source"]["file_sha256"]
        self.model = SimpleNamespace(info=SimpleNamespace(**payload["info"]))
        self._max_batch_size = payload["max_batch_size"]
        self._wants_references = payload["wants_references"]
        self._takes_timeout = payload.get("takes_timeout", False)
        if self._references is not None:
            self._call(("bind", self._references), None)

    def close(self) -> None:
        """Stop the child (politely, then by force); safe to call twice."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            conn.send(("stop", None))
        proc.join(5)
        _end(proc)
        conn.close()

    def __enter__(self) -> AdapterProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- calls --------------------------------------------------------------------------------------
    def _receive(self, timeout: float | None):
        """The child's next message; ``None`` if it died first; ``"timeout"`` if none came in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([self._conn, self._proc.sentinel], left)
            if self._conn in ready:  # data (or EOF) first: a child may answer and then exit
                try:
                    return self._conn.recv()
                except (EOFError, OSError):
                    self._proc.join()
                    return None
            if self._proc.sentinel in ready:
                self._proc.join()
                return None
            if not ready:
                return "timeout"

    def _call(self, message, timeout: float | None):
        if self._proc is None:
            self.restarts += 1
            self._start()
        self._conn.send(message)
        return self._receive(timeout)

    def bind_references(self, references: Mapping[str, tuple[Path, str]]) -> None:
        """Hand the oracle its references (kept, and handed again to a restarted child)."""
        self._references = {k: (os.path.abspath(p), axis) for k, (p, axis) in references.items()}
        self._call(("bind", self._references), None)

    def generate(self, requests: Sequence[GenerationRequest],
                 timeout: float | None) -> list[GenerationOutcome]:
        """One ``generate`` call in the child, classified; ``timeout`` is seconds per request."""
        requests = [dataclasses.replace(r, output_dir=Path(os.path.abspath(r.output_dir))) for r in requests]
        limit = None if timeout is None else timeout * len(requests)
        if limit is not None and self._takes_timeout:  # it stops its own work first and says why
            limit += TIMEOUT_GRACE_S
        t0 = time.perf_counter()
        try:
            reply = self._call(("generate", (requests, timeout)), limit)
        except (OSError, ValueError):  # the pipe broke while sending: the child is gone
            reply = None
        share = (time.perf_counter() - t0) / max(1, len(requests))
        if reply == "timeout":
            self._kill()
            detail = (f"no assets after {timeout:g} s per request; the adapter process was stopped (raise "
                      "--timeout if the model is slow)")
            return [GenerationOutcome(r, None, "adapter_timeout", detail, None) for r in requests]
        if reply is None:
            how = describe_exit(self._proc)
            self._kill()
            detail = (f"the adapter process died ({how}) while generating this request; it was restarted "
                      "for the remaining ones")
            return [GenerationOutcome(r, None, "adapter_crashed", detail, share) for r in requests]
        kind, payload = reply
        if kind == "error":
            return classify_return(requests, error=payload, share=share)
        return classify_return(requests, items=payload, share=share)

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is not None:
            _end(proc)
            conn.close()


def _end(proc) -> None:
    """End the child: SIGTERM first (its keeper then kills the adapter and everything below it), SIGKILL
    if it is still there after 5 s."""
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    if proc.is_alive():
        proc.kill()
    proc.join()


def describe_exit(proc) -> str:
    """``"exit status 3"`` or ``"signal SIGSEGV"`` for a finished ``multiprocessing.Process``."""
    code = proc.exitcode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


# --- the child -------------------------------------------------------------------------------------


def _portable(assets: object) -> object:
    """The adapter's return value in a form that pickles: a list of Asset / path / BadItem, or the
    ``BadItem`` of a value that is not a list at all. Relative paths are made absolute here, against
    the adapter's working directory now (it may have changed it)."""
    try:
        items = list(assets)  # type: ignore[arg-type]
    except TypeError:
        return BadItem(type(assets).__name__)
    out: list[object] = []
    for item in items:
        if isinstance(item, Asset):
            out.append(dataclasses.replace(item, path=Path(os.path.abspath(item.path))))
        elif isinstance(item, (str, Path)):
            out.append(type(item)(os.path.abspath(item)) if str(item) else item)
        else:
            out.append(BadItem(type(item).__name__))
    return out


def _child_main(conn, spec: str, model_args) -> None:
    """The adapter process (below its keeper, :func:`mme3dr.process_lifetime.run_in_kept_tree`)."""
    from mme3dr.models.registry import load_model
    from mme3dr.results import ModelInfoRecord

    try:
        loaded = load_model(spec, model_args)
    except ModelSpecError as e:
        conn.send(("spec_error", str(e)))
        return
    except BaseException as e:  # noqa: BLE001 - the adapter's own import or constructor failed
        where = traceback.extract_tb(e.__traceback__)[-1]
        conn.send(("load_error", f"--model {spec!r}: loading the adapter failed with {type(e).__name__}: "
                                 f"{e} ({Path(where.filename).name}:{where.lineno})"))
        return
    model = loaded.model
    info = {k: getattr(model.info, k) for k in ModelInfoRecord.model_fields if hasattr(model.info, k)}
    conn.send(("ready", {"source": loaded.source_record(), "info": info,
                         "max_batch_size": max(1, int(getattr(model, "max_batch_size", 1) or 1)),
                         "wants_references": hasattr(model, "bind_references"),
                         "takes_timeout": hasattr(model, "set_request_timeout")}))
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        if kind == "bind":
            model.bind_references({k: (Path(p), axis) for k, (p, axis) in payload.items()})
            conn.send(("ok", None))
            continue
        requests, timeout = payload
        try:
            if hasattr(model, "set_request_timeout"):  # e.g. cmd:, which kills its program in time
                model.set_request_timeout(timeout)
            reply = ("assets", _portable(model.generate(requests)))
        except BaseException as e:  # noqa: BLE001 - any adapter failure is recorded, not raised
            reply = ("error", f"{type(e).__name__}: {e}"[:2000])
        conn.send(reply)
