"""Geometric rewards of the tiny task against hand-computed grids, masks and their callables' contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ar3d_r1.rewards.ensemble import dimension_normalised
from ar3d_r1.rewards.geometry import (
    STEP1_REWARDS,
    STEP2_REWARDS,
    TargetShape,
    enclosed_holes,
    global_geometry,
    holes_score,
    layer_component_counts,
    local_geometry,
    mirror_iou,
    part_count_score,
    proportions_score,
    silhouette_iou,
    symmetry_score,
)
from ar3d_r1.rewards.tasks import ensemble, resolve_failures


def box(r=8, lo=(0, 0, 0), hi=(2, 2, 2)) -> np.ndarray:
    g = np.zeros((r, r, r), bool)
    g[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return g


def test_proportions_score_is_exp_of_summed_log_ratio():
    # extents (4, 2, 2) → (1, .5, .5) against a cube (1, 1, 1): exp(−(0 + ln 2 + ln 2)) = 1/4
    assert proportions_score(box(hi=(4, 2, 2)), box(hi=(2, 2, 2))) == pytest.approx(0.25)
    assert proportions_score(box(hi=(3, 3, 3)), box(hi=(5, 5, 5))) == pytest.approx(1.0)  # scale-free
    assert proportions_score(np.zeros((8, 8, 8), bool), box()) == 0.0


def test_silhouette_iou_is_mean_view_iou_of_alpha():
    a = np.zeros((2, 4, 4, 4), np.uint8)
    b = np.zeros_like(a)
    a[0, :2, :, 3] = 255  # view 0: 8 px vs 4 px inside them → IoU 4/8
    b[0, :1, :, 3] = 10
    a[1, 0, 0, 3] = b[1, 3, 3, 3] = 255  # view 1: disjoint → 0
    assert silhouette_iou(a, b) == pytest.approx((0.5 + 0.0) / 2)
    with pytest.raises(ValueError, match="shape"):
        silhouette_iou(a, b[:1])


def test_part_counts_per_layer_and_score():
    legs = box(lo=(0, 0, 0), hi=(1, 3, 1)) | box(lo=(3, 0, 3), hi=(4, 3, 4))
    table = legs | box(lo=(0, 3, 0), hi=(4, 4, 4))  # two legs under a top
    assert layer_component_counts(table)[:5].tolist() == [2, 2, 2, 1, 0]
    slab = box(lo=(0, 0, 0), hi=(4, 4, 4))
    # layers 0-3 occupied in either: counts (2,2,2,1) vs (1,1,1,1) → 1 of 4 agree
    assert part_count_score(table, slab) == pytest.approx(0.25)
    assert part_count_score(table, table) == 1.0


def test_mirror_symmetry_and_holes():
    sym = box(lo=(2, 0, 2), hi=(6, 2, 6))
    assert mirror_iou(sym, 0) == 1.0
    ell = box(lo=(0, 0, 0), hi=(4, 1, 1)) | box(lo=(0, 0, 0), hi=(1, 3, 1))  # an L in x-y
    # L: x run of 4 plus a column at x=0 (cells 6); its x-mirror moves the column to x=3: overlap 4, union 8
    assert mirror_iou(ell, 0) == pytest.approx(4 / 8)
    assert symmetry_score(ell, sym) == pytest.approx(1 - (0.5 + 0.0) / 2)  # z-mirror of both is exact
    ring = box(lo=(1, 0, 1), hi=(6, 1, 6)) & ~box(lo=(3, 0, 3), hi=(4, 1, 4))
    assert enclosed_holes(ring.any(1)) == 1 and enclosed_holes(sym.any(1)) == 0
    assert holes_score(ring, sym) == pytest.approx(2 / 3)  # the top view differs, the side views agree


def test_reward_callables_return_named_dimensions_and_nan_for_missing_shapes():
    t = TargetShape(grid=box(hi=(2, 2, 2)), views=np.full((6, 4, 4, 4), 255, np.uint8))
    grids = [box(hi=(4, 2, 2)), None]
    views = [np.full((6, 4, 4, 4), 255, np.uint8), None]
    high = global_geometry(["a", "b"], views, grids=grids, targets=[t, t])
    assert set(high.values) == {"proportions", "silhouette"} == set(global_geometry.dimensions)
    assert high.values["proportions"][0] == pytest.approx(0.25) and high.values["silhouette"][0] == 1.0
    assert math.isnan(high.values["proportions"][1]) and high.failures[1] and high.failures[0] is None
    low = local_geometry(["a", "b"], [None, None], grids=grids, targets=[t, t])
    assert set(low.values) == set(local_geometry.dimensions) and low.ok.tolist() == [True, False]
    # dimension normalisation: R_high = (proportions + silhouette) / 2
    r = ensemble(high.values, STEP1_REWARDS)
    assert r[0] == pytest.approx((0.25 + 1.0) / 2) and math.isnan(r[1])
    assert r[0] == pytest.approx(dimension_normalised(high.values, STEP1_REWARDS["geometry_global"])[0])
    assert ensemble(low.values, STEP2_REWARDS)[0] <= 1.0


def test_resolve_failures_zero_or_mask():
    r = np.array([1.0, np.nan, 3.0, 0.0, np.nan, np.nan, np.nan, np.nan])
    zero, valid = resolve_failures(r, 4, "zero")
    assert zero.tolist() == [1.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0] and valid.all()
    masked, valid = resolve_failures(r, 4, "mask")
    assert masked[:4].tolist() == [1.0, 4 / 3, 3.0, 0.0] and masked[4:].tolist() == [0.0] * 4
    assert valid.tolist() == [True, False, True, True, False, False, False, False]


def test_reward6_renderer_draws_silhouettes_and_caches():
    pytest.importorskip("skimage")
    from ar3d_r1.rewards.geometry import Reward6Renderer

    render = Reward6Renderer(size=32, cache_size=2)
    grid = box(r=16, lo=(4, 4, 4), hi=(12, 12, 12))
    views = render(grid)
    assert views.shape == (6, 32, 32, 4) and views.dtype == np.uint8
    cover = (views[..., 3] > 0).mean((1, 2))
    assert (cover > 0.05).all() and (cover < 0.9).all()
    assert render(grid.copy()) is views  # same grid → cached
    assert silhouette_iou(views, views) == 1.0


def test_a_z_up_grid_is_stood_up_before_the_reward_views():
    """The authors' VQVAE decodes grids in TRELLIS's Z-up frame: rendered with up_axis 'z' they look as the
    same shape turned into Y up, (x, y, z) -> (x, z, -y), rendered as it is (index (i, j, k) ->
    (i, k, R-1-j))."""
    from ar3d_r1.rewards.geometry import Reward6Renderer

    r = 12
    grid = np.zeros((r, r, r), bool)
    grid[3:9, 4:6, 2:10] = True   # a slab, long along z (the Z-up grid's height)
    grid[3:5, 6:9, 2:4] = True    # and an asymmetric bump
    turned = np.zeros_like(grid)
    i, j, k = np.nonzero(grid)
    turned[i, k, r - 1 - j] = True
    for rig in ("reward6", "video6"):
        z_up = Reward6Renderer(32, rig=rig, up_axis="z")(grid)
        y_up = Reward6Renderer(32, rig=rig)(turned)
        alpha_z, alpha_y = z_up[..., 3] > 0, y_up[..., 3] > 0
        assert (alpha_z & alpha_y).sum() / (alpha_z | alpha_y).sum() > 0.97, rig
        assert (alpha_z != (Reward6Renderer(32, rig=rig)(grid)[..., 3] > 0)).any()  # the turn matters
    with pytest.raises(ValueError, match="up_axis must be 'y' or 'z'"):
        Reward6Renderer(32, up_axis="x")
