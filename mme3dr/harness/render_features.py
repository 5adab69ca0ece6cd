"""The render and features stages of ``mme3dr evaluate``, overlapped on one pool of render workers.

Every reference object and every generated asset is queued on one :class:`~mme3dr.render.pool.RenderPool`
(references first); as each render finishes, this process encodes its views (:class:`ViewFeatures`, cached
per render, on one or more threads: :func:`encoder_plan`) while the workers draw the next ones. On a
CPU-only machine rendering and encoding then share the cores instead of taking turns, and a run pays
the workers' start-up once; with ``--device cuda`` the encoders run on the GPU while the CPU renders.

Nothing here depends on the order in which renders finish: each render's features come from its own
views alone, and everything downstream is keyed by case. The stage timings overlap, so each is reported
as the wall time from the end of the previous stage to the end of its own (they add up to the phase).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mme3dr.harness.feature_store import ViewFeatures
from mme3dr.render.cache import RenderOutcome
from mme3dr.render.pool import RenderPool

__all__ = ["RenderedRun", "render_and_encode"]

#: Features kept in memory for the per-asset scores (the CLIP score, the script's DINOv2 RBF similarity);
#: the rest (Inception, …) is read back from ``features/`` by the set metrics.
PER_ASSET_FEATURES = ("clip", "dinov2")

Item = tuple[Any, Path, str]  # (key, asset path, up axis)


@dataclass
class RenderedRun:
    """What the phase produced, keyed like its inputs: case id for references, (case id, sample) for
    generated assets. ``features`` holds the per-asset features of every render that encoded."""

    references: dict[Any, RenderOutcome] = field(default_factory=dict)
    generated: dict[Any, RenderOutcome] = field(default_factory=dict)
    render_sha256: dict[tuple[str, Any], str] = field(default_factory=dict)
    features: dict[tuple[str, Any], dict[str, np.ndarray]] = field(default_factory=dict)
    #: Renders whose features hold NaN or infinity: the encoder names, per key. Such a render has no
    #: entry in ``features``/``render_sha256``, so it never reaches a score or a set metric.
    nonfinite: dict[tuple[str, Any], list[str]] = field(default_factory=dict)

    def record(self, side_key: tuple[str, Any], sha: str, feats: dict[str, np.ndarray]) -> None:
        """Keep one encoded render: its sha256 and per-asset features, or, when any feature array holds
        NaN or infinity, only the names of those encoders in ``nonfinite`` (caught here, per render, not
        at the run's aggregate)."""
        bad = sorted(k for k, v in feats.items() if not np.isfinite(v).all())
        if bad:
            self.nonfinite[side_key] = bad
        else:
            self.render_sha256[side_key] = sha
            self.features[side_key] = {k: feats[k] for k in PER_ASSET_FEATURES if k in feats}


def encoder_plan(workers: int, device: str, cores: int | None = None) -> tuple[int, int | None]:
    """How this process encodes while ``workers`` render processes draw: ``(encoder threads, torch
    intra-op threads or None to leave torch alone)``.

    torch's intra-op threads spin-wait between operations; next to busy render workers they steal the
    CPU the rasteriser needs (measured on 2 cores, 2 workers, 40 cases: 1.67 s a render with torch's
    default 2 threads, 1.34 s with 1). So when the workers leave at least two cores, one encoder uses
    those cores' worth of torch threads. When they leave fewer (2 cores, 2 workers), torch runs on one
    thread and ``workers`` renders are encoded at once, each wholly on its own Python thread (torch,
    numpy and PIL release the GIL): with a single encoder thread, encoding (≈ 0.6 s a 24-view render on
    the smoke profile) was slower than two workers drawing (≈ 0.4 s each), so the encoder was the
    bottleneck and a core sat idle a fifth of the time (docs/benchmarks.md). On a GPU, one encoder.

    Every render's features are computed by one thread with fixed torch settings, so they do not depend
    on how many renders are encoded at once or when they finished.
    """
    cores = cores or os.cpu_count() or 1
    if workers <= 1 or device != "cpu":
        return 1, None
    if cores - workers >= 2:
        return 1, cores - workers
    return workers, 1


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def render_and_encode(
    pool: RenderPool,
    references: list[Item],
    generated: list[Item],
    *,
    features: ViewFeatures,
    counters: dict[str, int],
    progress: Callable[[str, int, int], None],
    timing: dict[str, float],
) -> RenderedRun:
    """Render ``references`` and ``generated`` on ``pool`` (made with ``keep_views=True``) and encode
    every successful render with ``features`` (on :func:`encoder_plan`'s threads); fills ``counters``
    (renders and features, done or cached) and ``timing`` (``render_references``, ``render_generated``,
    ``features``)."""
    run = RenderedRun()
    sides = {"references": (run.references, references, "render references"),
             "generated": (run.generated, generated, "render generated")}
    left = {side: len(items) for side, (_, items, _) in sides.items()}
    for _, items, stage in sides.values():
        progress(stage, 0, len(items))
    n_ok = sum(len(items) for _, items, _ in sides.values())
    encoded = 0
    progress("features", 0, n_ok)
    t0 = time.perf_counter()
    finished = {side: t0 for side in sides}
    queue = [((side, key), path, axis) for side, (_, items, _) in sides.items() for key, path, axis in items]
    n_threads, torch_threads = encoder_plan(pool.workers, getattr(features.suite, "device", "cpu"))
    encoding: dict[Future, tuple[str, Any]] = {}

    def encode(render_dir: str, views: np.ndarray | None) -> tuple[str, dict[str, np.ndarray]]:
        sha = features.render_sha(render_dir)
        return sha, features.get(render_dir, sha, views=views)

    def collect(until: int) -> None:
        # Wait until at most ``until`` renders are being encoded; record the ones that finished. At most
        # ``n_threads`` renders' views (≈ 25 MB each) wait here, so a slow encoder holds back the pool
        # (its own window is bounded too) instead of piling views up in memory.
        nonlocal encoded
        while len(encoding) > until:
            done, _ = wait(encoding, return_when=FIRST_COMPLETED)
            for fut in done:
                side_key = encoding.pop(fut)
                run.record(side_key, *fut.result())
                encoded += 1
                progress("features", encoded, n_ok)

    with _torch_threads(torch_threads), ThreadPoolExecutor(n_threads, "encode") as encoders:
        for (side, key), outcome in pool.completed(queue):
            outcomes, items, stage = sides[side]
            views, outcome.views = outcome.views, None  # 25 MB a render: held only while it is encoded
            outcomes[key] = outcome
            counters["renders_cached" if outcome.cached else "renders_done"] += 1
            left[side] -= 1
            progress(stage, len(items) - left[side], len(items))
            if not left[side]:
                finished[side] = time.perf_counter()
            if not outcome.ok:
                n_ok -= 1
                progress("features", encoded, n_ok)
                continue
            collect(n_threads - 1)
            encoding[encoders.submit(encode, outcome.render_dir, views)] = (side, key)
            del views
        collect(0)
    features.save()
    counters["features_computed"], counters["features_cached"] = features.computed, features.cached
    end = time.perf_counter()
    refs_end = finished["references"]
    gens_end = max(refs_end, finished["generated"])
    timing["render_references"] = refs_end - t0
    timing["render_generated"] = gens_end - refs_end
    timing["features"] = end - gens_end
    return run
