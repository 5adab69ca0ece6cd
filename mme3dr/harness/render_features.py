"""The render and features stages of ``mme3dr evaluate``, overlapped on one pool of render workers.

Every reference object and every generated asset is queued on one :class:`~mme3dr.render.pool.RenderPool`
(references first); as each render finishes, this process encodes its views (:class:`ViewFeatures`, cached
per render) while the workers draw the next ones. On a CPU-only machine rendering and encoding then
share the cores instead of taking turns, and a run pays the workers' start-up once; with ``--device
cuda`` the encoders run on the GPU while the CPU renders.

Nothing here depends on the order in which renders finish: each render's features come from its own
views alone, and everything downstream is keyed by case. The stage timings overlap, so each is reported
as the wall time from the end of the previous stage to the end of its own (they add up to the phase).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mme3dr.harness.scoring import ViewFeatures
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


@contextlib.contextmanager
def _encoder_threads(workers: int) -> Iterator[None]:
    """While ``workers`` render processes draw, encode with the cores they leave (at least one).

    torch's intra-op threads spin-wait between operations; next to busy render workers they steal the
    CPU the rasteriser needs. Measured on 2 cores, 2 workers, 40 cases: 1.67 s a render with torch's
    default 2 threads, 1.34 s with 1 (docs/benchmarks.md). The count is fixed for the whole phase, never
    changed with timing, so a run's features do not depend on when renders finished.
    """
    if workers <= 1:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))
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
    every successful render with ``features``; fills ``counters`` (renders and features, done or
    cached) and ``timing`` (``render_references``, ``render_generated``, ``features``)."""
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
    with _encoder_threads(pool.workers):
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
            else:
                sha = features.render_sha(outcome.render_dir)
                feats = features.get(outcome.render_dir, sha, views=views)
                run.render_sha256[(side, key)] = sha
                run.features[(side, key)] = {k: feats[k] for k in PER_ASSET_FEATURES if k in feats}
                encoded += 1
            progress("features", encoded, n_ok)
    features.save()
    counters["features_computed"], counters["features_cached"] = features.computed, features.cached
    end = time.perf_counter()
    refs_end = finished["references"]
    gens_end = max(refs_end, finished["generated"])
    timing["render_references"] = refs_end - t0
    timing["render_generated"] = gens_end - refs_end
    timing["features"] = end - gens_end
    return run
