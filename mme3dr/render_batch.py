"""Render many assets through the cache, over worker processes, with a rich progress bar.

Each worker is a fresh *spawned* process with its own renderer (an OpenGL context must not cross a
fork, and under EGL renderers cannot be shared or deleted). The parent resolves the backend once and
hands it to the workers, so ``auto`` probes EGL only once. With ``workers=1`` everything runs in the
calling process. Outcomes come back in input order; a bad asset never stops the batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from mme3dr.cameras import Rig
from mme3dr.mesh import DEFAULT_MAX_FACES
from mme3dr.render_cache import RenderOutcome, render_asset


def _init_worker(backend: str, gl_threads: int | None) -> None:
    # Runs before the worker imports OpenGL: fix the platform, and cap llvmpipe's rasteriser threads
    # so N workers on N cores do not each spawn N threads (oversubscription slows every worker).
    os.environ["PYOPENGL_PLATFORM"] = backend
    if gl_threads is not None:
        os.environ.setdefault("LP_NUM_THREADS", str(gl_threads))


def _render_one(path: str, rig: Rig, cache_root: str, options: dict) -> RenderOutcome:
    try:
        return render_asset(path, rig, cache_root, **options)
    except Exception as exc:  # the environment failed in this worker; report it against this asset
        return RenderOutcome(str(path), error=f"{type(exc).__name__}: {exc}", detail=str(exc))


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
    from mme3dr.render import resolve_backend

    paths = [str(p) for p in paths]
    axes = [up_axis] * len(paths) if isinstance(up_axis, str) else list(up_axis)
    if len(axes) != len(paths):
        raise ValueError(f"up_axis has {len(axes)} entries for {len(paths)} assets")
    chosen = resolve_backend(backend)
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    base = {"shading": shading, "backend": chosen, "normalise": normalise, "max_faces": max_faces}
    results: list[RenderOutcome | None] = [None] * len(paths)
    with _progress(progress) as bar:
        task = bar.add_task(description, total=len(paths), failed=0) if bar else None

        n_failed = 0

        def advance(outcome: RenderOutcome) -> None:
            nonlocal n_failed
            n_failed += not outcome.ok
            if bar:
                bar.update(task, advance=1, failed=n_failed)

        if workers <= 1 or len(paths) <= 1:
            for i, (p, ax) in enumerate(zip(paths, axes, strict=True)):
                results[i] = _render_one(p, rig, str(cache_root), dict(base, up_axis=ax))
                advance(results[i])
        else:
            import multiprocessing as mp

            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(
                max_workers=workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=(chosen, threads),
            ) as pool:
                futures = {
                    pool.submit(_render_one, p, rig, str(cache_root), dict(base, up_axis=ax)): i
                    for i, (p, ax) in enumerate(zip(paths, axes, strict=True))
                }
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except Exception as exc:  # a worker died (e.g. killed by the OS)
                        results[i] = RenderOutcome(paths[i], error=f"{type(exc).__name__}: {exc}")
                    advance(results[i])
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
