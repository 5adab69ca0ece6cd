"""RenderPool: one set of spawned workers for many submissions, results in completion order, views
handed back equal to the PNGs written, failures reported against their asset."""

from __future__ import annotations

import numpy as np
import pytest
from mesh_factory import write_broken_assets, write_uncoloured_obj, write_vertex_coloured_ply

from mme3dr.cameras import get_rig
from mme3dr.render import load_views
from mme3dr.render_batch import RenderPool

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("workers", [1, 2])
def test_pool_yields_every_item_with_its_views_then_serves_the_cache(tmp_path, workers):
    rig = get_rig("eval24").with_size(32)
    items = [("grey", write_uncoloured_obj(tmp_path), "y"),
             ("red", write_vertex_coloured_ply(tmp_path), "y"),
             ("broken", write_broken_assets(tmp_path)["corrupt_file"], "y")]
    # More items than the 4 x workers window, so the pool must refill while results are consumed.
    items += [(f"grey{i}", write_uncoloured_obj(tmp_path, f"g{i}.obj", (1.0, 0.5 + 0.1 * i, 1.0)), "z")
              for i in range(8)]
    cache = tmp_path / "cache"
    with RenderPool(rig, cache, workers=workers, keep_views=True) as pool:
        first = dict(pool.completed(items))
        again = dict(pool.completed(items))
    assert sorted(first) == sorted(k for k, _, _ in items)
    assert first["broken"].reason == "corrupt_file" and first["broken"].views is None
    for key, outcome in first.items():
        if key == "broken":
            continue
        assert outcome.ok and not outcome.cached
        # The views handed back are the pixels of the PNGs the entry holds.
        assert outcome.views.shape == (rig.n_views, 32, 32, 4)
        assert np.array_equal(outcome.views, load_views(outcome.render_dir))
        assert again[key].cached and again[key].views is None
        assert again[key].render_dir == outcome.render_dir
