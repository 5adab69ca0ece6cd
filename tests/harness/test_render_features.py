"""render_and_encode: renders and their features over a pool, encoded on several threads when the render
workers leave fewer than two cores, with the same bytes as one render encoded alone on one thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mesh_factory import write_broken_assets, write_uncoloured_obj, write_vertex_coloured_ply

import mme3dr.harness.render_features as render_features
from mme3dr.features.suite import load_feature_suite
from mme3dr.harness.feature_store import ViewFeatures
from mme3dr.harness.render_features import encoder_plan, render_and_encode
from mme3dr.render import load_views
from mme3dr.render.cameras import get_rig
from mme3dr.render.pool import RenderPool

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize(
    ("workers", "device", "cores", "plan"),
    [
        (2, "cpu", 2, (2, 1)),  # the workers take every core: two renders encoded at once, torch on 1 thread
        (2, "cpu", 3, (2, 1)),
        (4, "cpu", 4, (4, 1)),
        (2, "cpu", 16, (1, 14)),  # cores to spare: one encoder with the spare cores' torch threads
        (1, "cpu", 2, (1, None)),  # in-process rendering: torch left alone
        (2, "cuda", 2, (1, None)),  # a GPU encodes
    ],
)
def test_encoder_plan(workers, device, cores, plan):
    assert encoder_plan(workers, device, cores) == plan


def test_threaded_encoding_gives_each_render_the_bytes_it_gets_alone(tmp_path, monkeypatch):
    # Force the 2-core plan (two encoder threads) whatever this machine has.
    monkeypatch.setattr(render_features.os, "cpu_count", lambda: 2)
    rig = get_rig("eval24").with_size(48)
    refs = [(f"ref{i}", write_uncoloured_obj(tmp_path, f"r{i}.obj", (1.0, 0.4 + 0.15 * i, 1.0)), "y")
            for i in range(5)]
    gens = [(("c", 0), write_vertex_coloured_ply(tmp_path), "y"),
            (("c", 1), write_broken_assets(tmp_path)["corrupt_file"], "y"),
            (("c", 2), write_uncoloured_obj(tmp_path, "g2.obj", (0.5, 1.0, 0.5)), "z")]
    suite = load_feature_suite("smoke")
    counters = {"renders_done": 0, "renders_cached": 0}
    seen: list[tuple[str, int, int]] = []
    timing: dict[str, float] = {}
    threads_before = torch.get_num_threads()
    with RenderPool(rig, tmp_path / "cache", workers=2, keep_views=True) as pool:
        run = render_and_encode(pool, refs, gens, features=ViewFeatures(suite, tmp_path / "features"),
                                counters=counters, progress=lambda *a: seen.append(a), timing=timing)
    assert torch.get_num_threads() == threads_before  # restored after the phase
    assert counters["renders_done"] == 8 and counters["features_computed"] == 7
    assert not run.generated[("c", 1)].ok and ("generated", ("c", 1)) not in run.features
    assert seen[-1] == ("features", 7, 7)
    assert set(timing) == {"render_references", "render_generated", "features"}
    # Each render alone, in this thread, torch on one thread, from its PNGs: the same arrays, bit for bit.
    alone = ViewFeatures(suite, tmp_path / "alone")
    threaded = ViewFeatures(suite, tmp_path / "features")  # reads what the encoder threads saved
    torch.set_num_threads(1)
    try:
        for side, outcomes in (("references", run.references), ("generated", run.generated)):
            for key, outcome in outcomes.items():
                if not outcome.ok:
                    continue
                feats = alone.get(outcome.render_dir, alone.render_sha(outcome.render_dir),
                                  views=load_views(outcome.render_dir))
                assert run.render_sha256[(side, key)] == alone.render_sha(outcome.render_dir)
                saved = threaded.get(outcome.render_dir, run.render_sha256[(side, key)])
                assert sorted(saved) == sorted(feats) == ["clip", "dinov2", "inception"]
                for name, value in saved.items():
                    np.testing.assert_array_equal(value, feats[name])
                for name, value in run.features[(side, key)].items():
                    np.testing.assert_array_equal(value, feats[name])
    finally:
        torch.set_num_threads(threads_before)
    assert threaded.cached == 7 and threaded.computed == 0
