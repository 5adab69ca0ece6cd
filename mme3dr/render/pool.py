"""Render many assets through the cache, over worker processes, with a rich progress bar.

Each worker is a fresh *spawned* process with its own renderer (an OpenGL context must not cross a
fork, and under EGL renderers cannot be shared or deleted). The parent resolves the backend once and
hands it to the workers, so ``auto`` probes EGL only once. With ``workers=1`` everything runs in the
calling process. Outcomes come back in input order; a bad asset never stops the batch.

:class:`RenderPool` keeps one set of workers for a whole run (``mme3dr evaluate`` renders the references
and the generated assets through one pool, and encodes each finished render while the others draw): a
worker's start-up (interpreter, triton, moderngl, an OpenGL context and its first shader compile) costs
≈ 3 s, which a pool per batch of 32 assets paid 16 times in a 249-case run.

Every render has a deadline (``timeout``, :data:`RENDER_TIMEOUT_S` by default), counted from when the
pool hands the asset to a worker (the executor queues at most one asset ahead of each worker, so the
count may start up to one render early). A worker that stops (SIGSTOP, a debugger, a GL driver stuck in
the kernel) would otherwise hang the run without a word: past the deadline the pool writes to stderr
which assets were waiting and what each worker was doing (its /proc state: ``stopped``, ``running``,
``sleeping``, ``disk wait``), records those assets as ``render_timeout``, kills its workers, starts fresh
ones and renders the other assets that were in flight again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from mme3dr.assets.mesh import DEFAULT_MAX_FACES
from mme3dr.render.cache import RenderOutcome, render_asset
from mme3dr.render.cameras import Rig

#: Seconds one render may take once a worker has it (a 2,000,000-face asset at 512² x 24 views on
#: llvmpipe takes about a minute).
RENDER_TIMEOUT_S = 600.0

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def reuse_freed_memory() -> bool:
    """Keep freed large blocks in this process's heap for reuse (glibc; elsewhere a no-op, False).

    Rendering and encoding one asset allocate and free many 10–40 MB buffers (views, composites,
    encoder inputs and activations, pickled results). Left to itself glibc hands many of them back to
    the kernel (mmap'd blocks, trimmed heap tops) and faults them in again page by page: encoding one
    24-view render took ≈ 80,000 minor faults and 0.28 s of kernel time here, 0.93 s in all; with the
    blocks kept, ≈ 3,700 faults and 0.52 s. A 40-case evaluate spent 21.5 of 193 CPU seconds in the
    kernel before, 4.1 s after (docs/benchmarks.md). The cost: the process keeps its peak heap until it
    exits. Pixels and features are unchanged (only where memory comes from changes).
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    settings = ((_M_MMAP_THRESHOLD, 256 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def _init_worker(backend: str, gl_threads: int | None, parent_pid: int | None = None) -> None:
    # Runs before the worker loads OpenGL: cap llvmpipe's rasteriser threads
    # so N workers on N cores do not each spawn N threads (oversubscription slows every worker).
    # First of all, die with the parent: a kill -9 of `evaluate` must not leave workers behind.
    from mme3dr.process_lifetime import die_with_parent

    die_with_parent(parent_pid)
    reuse_freed_memory()
    if gl_threads is not None:
        os.environ.setdefault("LP_NUM_THREADS", str(gl_threads))


def _warm_up(width: int, height: int, backend: str) -> None:
    from mme3dr.render.renderer import get_renderer

    # No context here is reported by the first real render, against its asset.
    with contextlib.suppress(Exception):
        get_renderer(width, height, backend)


def _identity(width: int, height: int, backend: str) -> dict[str, str | None]:
    """The renderer this process draws with: ``{"backend", "gl_renderer"}`` (``gl_renderer`` None when
    no context can be made; the first render then reports why)."""
    from mme3dr.render.renderer import get_renderer

    try:
        renderer = get_renderer(width, height, backend)
    except Exception:  # noqa: BLE001 - reported against the first asset instead
        return {"backend": backend, "gl_renderer": None}
    return {"backend": renderer.backend, "gl_renderer": renderer.gl_renderer}


def _render_one(path: str, rig: Rig, cache_root: str, options: dict) -> RenderOutcome:
    from mme3dr.output_files import is_disk_full

    try:
        return render_asset(path, rig, cache_root, **options)
    except Exception as exc:  # the environment failed in this worker; report it against this asset
        if is_disk_full(exc):  # not the asset's fault: the run must stop, not record a failure
            raise
        return RenderOutcome(str(path), error=f"{type(exc).__name__}: {exc}", detail=str(exc))


class RenderPool:
    """Render workers that live as long as the ``with`` block: ``submit`` one asset, get a future.

    ``workers <= 1`` renders in the calling process, at ``submit`` (the future is already done), so a
    caller has one code path for both. Every option but the asset and its up axis is fixed per pool;
    ``keep_views`` sends each fresh render's views back with its outcome (≈ 25 MB for 24 views of
    512²: cheaper through the pipe than decoding the PNGs again, for a caller that encodes them).
    """

    def __init__(
        self,
        rig: Rig,
        cache_root: str | os.PathLike,
        *,
        workers: int = 1,
        shading: str = "protocol",
        backend: str | None = None,
        normalise: bool = True,
        max_faces: int = DEFAULT_MAX_FACES,
        keep_views: bool = False,
        timeout: float | None = RENDER_TIMEOUT_S,
    ) -> None:
        from mme3dr.render.renderer import resolve_backend

        self.rig, self.cache_root, self.workers = rig, str(cache_root), workers
        self.timeout = timeout  # seconds per render with workers (module docstring); None: no deadline
        self.backend = resolve_backend(backend)  # resolved once here: the workers get the answer
        self.options = {"shading": shading, "backend": self.backend, "normalise": normalise,
                        "max_faces": max_faces, "keep_views": keep_views}
        Path(cache_root).mkdir(parents=True, exist_ok=True)
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            self._start()

    def _start(self) -> None:
        import multiprocessing as mp

        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.backend, max(1, (os.cpu_count() or 1) // self.workers), os.getpid()),
        )
        # Start every worker now (the executor spawns on demand): interpreter, moderngl and an OpenGL
        # context take ≈ 3 s each, which then overlap whatever the caller does next.
        for _ in range(self.workers):
            self._pool.submit(_warm_up, self.rig.width, self.rig.height, self.backend)

    def submit(self, path: str | os.PathLike, up_axis: str = "y") -> Future:
        """Queue one asset; the future's result is its :class:`RenderOutcome`. The one exception is a
        full disk (``OSError``, :func:`mme3dr.output_files.is_disk_full`), which ends the run."""
        options = dict(self.options, up_axis=up_axis)
        if self._pool is None:
            done: Future = Future()
            done.set_result(_render_one(str(path), self.rig, self.cache_root, options))
            return done
        try:
            inner = self._pool.submit(_render_one, str(path), self.rig, self.cache_root, options)
        except BrokenProcessPool:
            # A worker died (killed by the OS, a crash in the GL driver): the assets it took down were
            # reported as failed; the rest of the run gets fresh workers.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._start()
            inner = self._pool.submit(_render_one, str(path), self.rig, self.cache_root, options)
        outer: Future = Future()
        outer.inner = inner  # type: ignore[attr-defined] - whether a worker has it: inner.running()

        def settle(fut: Future) -> None:
            from mme3dr.output_files import is_disk_full

            try:
                outer.set_result(fut.result())
            except Exception as exc:  # the worker died (e.g. killed by the OS): the asset's failure
                if is_disk_full(exc):  # ...but a full disk ends the run (the caller's result() raises)
                    outer.set_exception(exc)
                else:
                    outer.set_result(RenderOutcome(str(path), error=f"{type(exc).__name__}: {exc}"))
            except BaseException as exc:  # noqa: BLE001 - a Ctrl-C reaches the workers too (one process
                # group): hand it to the caller. Raised here, it would kill the executor's manager thread
                # (this callback runs on it) and the pool's shutdown would then wait forever.
                outer.set_exception(exc)

        inner.add_done_callback(settle)
        return outer

    def renderer_identity(self) -> dict[str, str | None]:
        """``{"backend", "gl_renderer"}`` of the renderer these workers (or this process) draw with."""
        if self._pool is None:
            return _identity(self.rig.width, self.rig.height, self.backend)
        try:
            return self._pool.submit(_identity, self.rig.width, self.rig.height, self.backend).result()
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._start()
            return self._pool.submit(_identity, self.rig.width, self.rig.height, self.backend).result()

    def completed(
        self, items: Iterable[tuple[Any, str | os.PathLike, str]]
    ) -> Iterator[tuple[Any, RenderOutcome]]:
        """Render ``(key, path, up_axis)`` items; yield ``(key, outcome)`` as each one finishes.

        With workers, up to ``4 × workers`` items are in flight and come back in completion order, so
        the caller can work on one result while the workers draw the next; the window bounds what
        finished results (with ``keep_views``, ~25 MB each) can pile up behind a slow caller.
        In-process, one at a time, in order.
        """
        if self._pool is None:
            for key, path, up_axis in items:
                yield key, self.submit(path, up_axis).result()
            return
        queue = iter(items)
        pending: dict[Future, tuple[Any, str | os.PathLike, str]] = {}
        started: dict[Future, float] = {}

        def refill() -> None:
            for key, path, up_axis in itertools.islice(queue, max(0, 4 * self.workers - len(pending))):
                pending[self.submit(path, up_axis)] = (key, path, up_axis)

        refill()
        while pending:
            done, _ = wait(pending, timeout=self._poll_s(), return_when=FIRST_COMPLETED)
            now = time.monotonic()
            for fut in pending:
                if fut not in started and getattr(fut, "inner", fut).running():
                    started[fut] = now
            for fut in done:
                key, _, _ = pending.pop(fut)
                started.pop(fut, None)
                refill()  # before yielding: the workers keep drawing while the caller works
                yield key, fut.result()
            overdue = [f for f in pending if self.timeout is not None and f in started
                       and now - started[f] > self.timeout and not f.done()]
            if overdue:
                yield from self._time_out(overdue, pending, started)

    def _poll_s(self) -> float | None:
        return None if self.timeout is None else min(1.0, max(0.01, self.timeout / 4))

    def _time_out(self, overdue: list[Future], pending: dict,
                  started: dict) -> Iterator[tuple[Any, RenderOutcome]]:
        """Record ``overdue`` as ``render_timeout``, replace every worker, resubmit the rest in flight."""
        states = self.worker_states()
        waiting = ", ".join(str(pending[f][1]) for f in overdue)
        message = (f"render deadline of {self.timeout:g} s passed; waiting for: {waiting}; workers: "
                   f"{', '.join(f'pid {pid} {state}' for pid, state in states.items()) or 'none'}. The "
                   "workers are replaced and the other renders in flight are started again.")
        print(f"mme3dr: {message}", file=sys.stderr, flush=True)
        in_flight = list(pending.items())
        pending.clear()
        started.clear()
        self._replace_workers()
        for fut, (key, path, up_axis) in in_flight:
            if fut in overdue:
                yield key, RenderOutcome(str(path), error=message, detail=message, timed_out=True)
            else:
                pending[self.submit(path, up_axis)] = (key, path, up_axis)

    def worker_states(self, processes=None) -> dict[int, str]:
        """``{pid: state}`` of the worker processes (or of ``processes``), from ``/proc/<pid>/stat``
        (``"unknown"`` where there is none)."""
        from mme3dr.process_lifetime import process_state

        if processes is None:
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
        return {process.pid: process_state(process.pid) for process in processes}

    def _replace_workers(self) -> None:
        """SIGKILL every worker (a stopped one too: SIGKILL needs no SIGCONT) and start fresh ones."""
        if self._pool is None:
            return
        self._kill(list((getattr(self._pool, "_processes", None) or {}).values()))
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._start()

    def close(self, abort: bool = False) -> None:
        """Stop the workers: let the running renders finish, or with ``abort`` (the ``with`` block ended
        in an exception, e.g. Ctrl-C) kill them first (and a stopped worker always). A Ctrl-C reaches the
        workers too (one process group) and can leave the executor waiting for results that never come,
        so a graceful shutdown would hang; the render cache loses nothing (entries are written to a
        temporary name and renamed).
        """
        if self._pool is None:
            return
        from multiprocessing.connection import wait as wait_for

        # ProcessPoolExecutor has no public handle on its processes; `_processes` is stable CPython.
        processes = {p.sentinel: p for p in (getattr(self._pool, "_processes", None) or {}).values()}
        if abort:
            self._kill(processes.values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        # Wait for the workers by their sentinels (readable once a process has exited; nothing is reaped
        # here, the executor does that). A stopped worker never reads its shutdown request and may hold
        # the task queue's lock, so the others cannot read theirs either: then SIGKILL them all where
        # they stand (SIGTERM would wait for a SIGCONT); so does the deadline.
        deadline = time.monotonic() + (self.timeout if self.timeout is not None else 1e9)
        left = set(processes)
        while left:
            left -= set(wait_for(list(left), timeout=0.25))
            rest = [p for s, p in processes.items() if s in left]
            states = self.worker_states(rest).values()
            if time.monotonic() > deadline or any(state.startswith("stopped") for state in states):
                self._kill(rest)
        self._pool = None

    @staticmethod
    def _kill(processes) -> None:
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill()

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(abort=exc_type is not None)


def render_batch(
    paths: Sequence[str | os.PathLike],
    rig: Rig,
    cache_root: str | os.PathLike,
    *,
    workers: int = 1,
    up_axis: str | Sequence[str] = "y",
    shading: str = "protocol",
    backend: str | None = None,
    normalise: bool = True,
    max_faces: int = DEFAULT_MAX_FACES,
    progress: bool = True,
    description: str = "rendering",
) -> list[RenderOutcome]:
    """Render every asset of ``paths`` with ``rig`` into ``cache_root``; one outcome per path, in order.

    ``up_axis`` is one value for all assets or one per asset. ``workers > 1`` renders in that many
    spawned processes, each with its own renderer.
    """
    paths = [str(p) for p in paths]
    axes = [up_axis] * len(paths) if isinstance(up_axis, str) else list(up_axis)
    if len(axes) != len(paths):
        raise ValueError(f"up_axis has {len(axes)} entries for {len(paths)} assets")
    results: list[RenderOutcome | None] = [None] * len(paths)
    with _progress(progress) as bar, RenderPool(rig, cache_root, workers=workers if len(paths) > 1 else 1,
                                                  shading=shading, backend=backend, normalise=normalise,
                                                  max_faces=max_faces) as pool:
        task = bar.add_task(description, total=len(paths), failed=0) if bar else None
        n_failed = 0
        for i, outcome in pool.completed(zip(range(len(paths)), paths, axes, strict=True)):
            results[i] = outcome
            n_failed += not outcome.ok
            if bar:
                bar.update(task, advance=1, failed=n_failed)
    return [r for r in results if r is not None]


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> None:
        return None


def _progress(enabled: bool):
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
