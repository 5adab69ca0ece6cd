"""Voxels (Must show 3): mesh -> 64^3 -> mesh keeps volumetric IoU >= 0.9; the authors' frame by hand."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

pytest.importorskip("skimage")

from ar3d_r1.policy.voxels import devoxelise, normalise_vertices, voxel_iou, voxelise  # noqa: E402


def _winding_inside(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Independent inside test: generalised winding number > 1/2 (Jacobson et al. 2013), per triangle
    solid angle by Van Oosterom & Strackee (1983):
    tan(Omega/2) = a.(b x c) / (abc + (a.b)c + (b.c)a + (c.a)b)."""
    tri = mesh.triangles
    total = np.zeros(len(points))
    for s in range(0, len(tri), 4096):
        t = tri[s:s + 4096]
        a, b, c = (t[None, :, i, :] - points[:, None, :] for i in range(3))
        la, lb, lc = (np.linalg.norm(v, axis=2) for v in (a, b, c))
        det = np.einsum("pij,pij->pi", a, np.cross(b, c))
        den = la * lb * lc + np.einsum("pij,pij->pi", a, b) * lc + np.einsum("pij,pij->pi", b, c) * la \
            + np.einsum("pij,pij->pi", c, a) * lb
        total += 2 * np.arctan2(det, den).sum(1)
    return total / (4 * np.pi) > 0.5


def _samples(n: int = 60000) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.5, 0.5, (n, 3))


# Primitives already in the canonical frame (longest side 1, centred), with analytic inside tests.
PRIMITIVES = {
    "sphere": (lambda: trimesh.creation.icosphere(subdivisions=4, radius=0.5),
               lambda p: np.linalg.norm(p, axis=1) <= 0.5),
    "box": (lambda: trimesh.creation.box(extents=(1.0, 0.62, 0.37)),
            lambda p: (np.abs(p) <= [0.5, 0.31, 0.185]).all(1)),
    "cylinder": (lambda: trimesh.creation.cylinder(radius=0.5, height=0.8, sections=96),
                 lambda p: (np.hypot(p[:, 0], p[:, 1]) <= 0.5) & (np.abs(p[:, 2]) <= 0.4)),
    "cone": (lambda: trimesh.creation.cone(0.5, 0.8, sections=96).apply_translation([0, 0, -0.4]),
             lambda p: (np.abs(p[:, 2]) <= 0.4) & (np.hypot(p[:, 0], p[:, 1]) <= (0.4 - p[:, 2]) / 1.6)),
    "torus": (lambda: trimesh.creation.torus(major_radius=0.35, minor_radius=0.15, major_sections=96,
                                             minor_sections=48),
              lambda p: np.hypot(np.hypot(p[:, 0], p[:, 1]) - 0.35, p[:, 2]) <= 0.15),
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_round_trip_through_64_cubed_keeps_volumetric_iou(name):
    """Cube-face devoxelising is exact (the mesh is the union of the occupied cubes, checked below), so the
    mesh's volumetric IoU with the analytic solid is the grid's, measured at uniform samples."""
    build, inside = PRIMITIVES[name]
    mesh = build()
    assert np.allclose(normalise_vertices(mesh.vertices), mesh.vertices, atol=1e-3)  # already canonical
    occ = voxelise(mesh, 64, solid=True)
    back = devoxelise(occ, method="cubes", fill=False)
    assert back.is_watertight and back.volume == pytest.approx(occ.sum() / 64 ** 3)
    p = _samples()
    idx = np.clip(np.floor((p + 0.5) * 64).astype(int), 0, 63)
    in_grid = occ[idx[:, 0], idx[:, 1], idx[:, 2]]
    truth = inside(p)
    assert (in_grid & truth).sum() / (in_grid | truth).sum() >= 0.9
    # The surface rule (the authors') keeps the same shapes too, thickened by about half a voxel.
    surface = voxelise(mesh, 64, fill=True)
    assert occ[~surface].sum() == 0  # every centre-inside voxel is also a touched-or-enclosed one


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cone", "torus"])
def test_marching_cubes_round_trip_keeps_volumetric_iou(name):
    build, inside = PRIMITIVES[name]
    back = devoxelise(voxelise(build(), 64, solid=True), method="marching-cubes")
    assert back.is_watertight
    p = _samples(1500)
    got, truth = _winding_inside(back, p), inside(p)
    assert (got & truth).sum() / (got | truth).sum() >= 0.9


def test_cube_faces_enclose_exactly_the_occupied_voxels():
    from ar3d_r1.policy.voxels import manifold_occupancy

    rng = np.random.default_rng(1)
    occ = rng.random((8, 8, 8)) > 0.5
    mesh = devoxelise(occ, method="cubes", fill=False)
    # Random grids touch along bare edges and corners: those contacts are joined first (the mesh stays a
    # closed manifold), and the volume is exactly that of the joined voxels.
    joined = manifold_occupancy(occ)
    assert mesh.is_watertight and mesh.volume == pytest.approx(joined.sum() / 8 ** 3)
    solid = np.zeros((8, 8, 8), dtype=bool)
    solid[2:6, 1:7, 3:5] = True  # no ambiguous contact: nothing is added, the volume is the voxels'
    assert devoxelise(solid, method="cubes", fill=False).volume == pytest.approx(solid.sum() / 8 ** 3)
    assert np.all(np.abs(mesh.face_normals).max(1) == 1)  # axis-aligned faces only


def test_surface_voxels_cover_every_surface_point_and_nothing_far_from_it():
    mesh = trimesh.Trimesh(normalise_vertices(trimesh.creation.capsule(height=0.8, radius=0.3).vertices),
                           trimesh.creation.capsule(height=0.8, radius=0.3).faces)
    occ = voxelise(mesh, 32)
    pts = trimesh.sample.sample_surface(mesh, 20000, seed=0)[0]
    idx = np.clip(np.floor((pts + 0.5) * 32).astype(int), 0, 31)
    assert occ[idx[:, 0], idx[:, 1], idx[:, 2]].all()
    # Every occupied voxel's cube lies within half a diagonal of the surface.
    centres = (np.argwhere(occ) + 0.5) / 32 - 0.5
    dense = trimesh.sample.sample_surface(mesh, 200000, seed=1)[0]
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(dense).query(centres)
    assert dist.max() <= np.sqrt(3) / 2 / 32 + 0.004


def test_authors_normalisation_on_a_hand_checked_asymmetric_box():
    # A box x in [0, 4], y in [1, 2], z in [-1, 0]: one scalar min -1 and max 4 over all coordinates,
    # so v' = (v + 1) / 5 - 0.5: x -> [-0.3, 0.5), y -> [-0.1, 0.1], z -> (-0.5, -0.3].
    box = trimesh.creation.box(bounds=[[0, 1, -1], [4, 2, 0]])
    v = normalise_vertices(box.vertices, "authors")
    assert v.min(0) == pytest.approx([-0.3, -0.1, -0.5 + 1e-6])
    assert v.max(0) == pytest.approx([0.5 - 1e-6, 0.1, -0.3])
    # In voxel units (v + 0.5) * 64: x [12.8, 64), y [25.6, 38.4], z [0, 12.8] -> the voxels below.
    expected = np.zeros((64, 64, 64), dtype=bool)
    expected[12:64, 25:39, 0:13] = True
    np.testing.assert_array_equal(voxelise(box, 64, frame="authors", fill=True), expected)
    shell = expected.copy()
    shell[13:63, 26:38, 1:12] = False
    np.testing.assert_array_equal(voxelise(box, 64, frame="authors"), shell)
    # The app's +90 degrees about x: (i, j, k) -> (i, 63 - k, j).
    rotated = np.zeros_like(expected)
    rotated[12:64, 63 - 12:64, 25:39] = True
    np.testing.assert_array_equal(voxelise(box, 64, frame="authors-rotated", fill=True), rotated)
    # The canonical frame centres it instead: x fills the grid, y and z are centred.
    canon = voxelise(box, 64, frame="canonical", fill=True)
    xs, ys, zs = (np.flatnonzero(canon.any(axis=tuple(a for a in range(3) if a != i))) for i in range(3))
    assert (xs.min(), xs.max()) == (0, 63)
    assert ys.min() + ys.max() == zs.min() + zs.max() == 63


def test_iou_helper_and_bad_input():
    a = np.zeros((2, 4, 4, 4), dtype=bool)
    b = a.copy()
    a[0, :2], b[0, 1:3] = True, True
    np.testing.assert_allclose(voxel_iou(a, b), [1 / 3, 1.0])  # two empty grids agree
    with pytest.raises(ValueError, match="empty"):
        devoxelise(np.zeros((4, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="frame"):
        voxelise(trimesh.creation.box(), 8, frame="blender")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="zero extent"):
        normalise_vertices(np.zeros((3, 3)))


def _asymmetric_shapes(r: int = 10) -> dict[str, np.ndarray]:
    """Shapes with no symmetry to hide a wrongly wound axis, ambiguous contacts, a cavity, the grid's edge."""
    rng = np.random.default_rng(3)
    ell = np.zeros((r, r, r), dtype=bool)
    ell[1:7, 1, 1] = ell[1, 1:5, 1] = ell[1, 1, 1:3] = True  # arms of 6, 4 and 2 voxels along x, y, z
    contacts = np.zeros((r, r, r), dtype=bool)
    contacts[2, 2, 2] = contacts[3, 3, 2] = contacts[4, 4, 3] = contacts[6, 2, 5] = True  # edge, corner
    shell = np.zeros((r, r, r), dtype=bool)
    shell[1:8, 2:7, 1:6] = True
    shell[3:6, 3:5, 2:4] = False
    edge = np.zeros((r, r, r), dtype=bool)
    edge[0:3, :, 0:2] = True
    edge[r - 1, r - 1, r - 1] = True
    shapes = {"ell": ell, "contacts": contacts, "shell": shell, "grid-edge": edge,
              "noise": rng.random((r, r, r)) < 0.12}
    # every axis: the same shapes turned so each arm lies along each axis
    for name in list(shapes):
        for perm in ((1, 2, 0), (2, 0, 1), (0, 2, 1)):
            shapes[f"{name}-{perm}"] = np.ascontiguousarray(np.transpose(shapes[name], perm))
    return shapes


@pytest.mark.parametrize("method", ["cubes", "marching-cubes"])
@pytest.mark.parametrize("fill", [True, False])
def test_every_decoded_mesh_is_closed_consistently_wound_and_faces_out_of_the_solid(method, fill):
    from scipy.ndimage import binary_fill_holes, map_coordinates

    from ar3d_r1.policy.voxels import manifold_occupancy

    for name, occ in _asymmetric_shapes().items():
        mesh = devoxelise(occ, method=method, fill=fill)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0, (name, method, fill)
        solid = manifold_occupancy(binary_fill_holes(occ) if fill else occ)
        assert (solid | ~occ).all()  # joining ambiguous contacts only adds voxels
        r = occ.shape[0]
        # every face: just behind it is solid, just in front of it is not (a face points out of the solid)
        step = 0.25 / r
        for sign, want in ((-1, True), (1, False)):
            p = (mesh.triangles_center + sign * step * mesh.face_normals + 0.5) * r  # voxel units
            if method == "cubes":
                idx = np.floor(p).astype(int)
                ok = (idx >= 0).all(1) & (idx < r).all(1)
                val = np.zeros(len(p), dtype=bool)
                val[ok] = solid[tuple(idx[ok].T)]
            else:  # the level-0.5 surface of the trilinear field through the voxel centres
                val = map_coordinates(np.pad(solid, 1).astype(float), (p - 0.5 + 1).T, order=1) > 0.5
            assert (val == want).all(), (name, method, fill, sign, int((val != want).sum()))
