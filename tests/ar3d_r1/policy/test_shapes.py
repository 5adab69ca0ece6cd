"""Procedural shapes: specs validate, render to meshes of the stated proportions, voxelise reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from ar3d_r1.policy.shapes import (
    PART_NAMES,
    SHAPE_KINDS,
    ShapeSpec,
    sample_shape_spec,
    shape_grids,
    voxelise_shape,
)


@pytest.mark.parametrize("kind", SHAPE_KINDS)
def test_every_kind_renders_with_its_proportions(kind):
    parts = PART_NAMES[kind][1] if kind in PART_NAMES else 1
    spec = ShapeSpec(kind, (0.8, 0.5, 0.6), parts)
    mesh = spec.to_mesh()
    lo, hi = mesh.bounds
    np.testing.assert_allclose(hi - lo, (0.8, 0.5, 0.6), atol=1e-9)
    np.testing.assert_allclose((hi + lo) / 2, 0, atol=1e-9)
    occ = voxelise_shape(spec, 16)
    assert occ.shape == (16, 16, 16) and occ.any()


def test_part_counts_change_the_shape_and_the_description():
    three = ShapeSpec("table", (1, 0.7, 1), 3)
    five = ShapeSpec("table", (1, 0.7, 1), 5)
    assert three.describe() == "a table with 3 legs" and five.describe() == "a table with 5 legs"
    assert not np.array_equal(voxelise_shape(three, 32), voxelise_shape(five, 32))
    assert ShapeSpec("box", (1, 2, 1)).describe() == "a tall box"
    assert ShapeSpec("arch", (1, 1, 1)).describe() == "an arch"


def test_specs_validate_and_round_trip():
    with pytest.raises(ValueError, match="unknown shape kind"):
        ShapeSpec("teapot")
    with pytest.raises(ValueError, match="3..6 parts"):
        ShapeSpec("table", parts=9)
    with pytest.raises(ValueError, match="no counted parts"):
        ShapeSpec("box", parts=2)
    with pytest.raises(ValueError, match="positive"):
        ShapeSpec("box", (1, 0, 1))
    spec = sample_shape_spec(np.random.default_rng(3))
    assert ShapeSpec.from_dict(spec.to_dict()) == spec


def test_grids_are_deterministic_in_the_seed():
    specs_a, grids_a = shape_grids(6, 16, seed=4)
    specs_b, grids_b = shape_grids(6, 16, seed=4)
    assert specs_a == specs_b and np.array_equal(grids_a, grids_b)
    assert grids_a.dtype == bool and grids_a.shape == (6, 16, 16, 16)
    assert shape_grids(6, 16, seed=5)[0] != specs_a
