"""mme3dr.render: shading and colours, geometry placement, determinism, compositing."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as PolyPath
from mesh_factory import (
    box,
    write_marker_glb,
    write_quad_obj,
    write_textured_glb,
    write_vertex_coloured_quad_ply,
)
from render_checks import face_on_pixel, project, silhouette_agreement
from scipy.spatial import ConvexHull

from mme3dr.assets.mesh import load_mesh
from mme3dr.render import composite_on_white, get_renderer, render_asset, unpremultiply
from mme3dr.render.cameras import Rig, eval24, look_at

SIZE = 96


def front_rig(eye=(0.0, 0.0, 2.0), size=SIZE) -> Rig:
    return Rig("front", look_at(np.array(eye))[None], 40.0, size, size)


@pytest.fixture(scope="module")
def renderer():
    # backend=None: the one EGL context of this process.
    return get_renderer(SIZE, SIZE, None)


def _centre(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2].reshape(-1, img.shape[-1]).mean(0)


def test_uncoloured_mesh_renders_0_8_grey_shaded(renderer, tmp_path):
    res = renderer.render(load_mesh(write_quad_obj(tmp_path)), front_rig())
    rgba = _centre(res.rgba[0])
    assert rgba[3] == 255
    np.testing.assert_allclose(rgba[:3], face_on_pixel([0.8] * 3), atol=2.0)
    white = renderer.render(load_mesh(write_quad_obj(tmp_path)), front_rig(), shading="plain_white")
    np.testing.assert_allclose(_centre(white.rgba[0])[:3], face_on_pixel([1.0] * 3), atol=2.0)


def test_vertex_colours_survive(renderer, tmp_path):
    res = renderer.render(load_mesh(write_vertex_coloured_quad_ply(tmp_path, (255, 0, 0, 255))), front_rig())
    np.testing.assert_allclose(_centre(res.rgba[0])[:3], face_on_pixel([1.0] * 3, [1.0, 0.0, 0.0]), atol=1.0)
    assert _centre(res.rgba[0])[1] < 5  # the vertex colour multiplies the lit colour: no green at all


def test_texture_survives(renderer, tmp_path):
    res = renderer.render(load_mesh(write_textured_glb(tmp_path, rgb=(0, 0, 255))), front_rig())
    # base colour = texel (blue, linear 1) x factor 1; the specular highlight is white, so r = g > 0.
    np.testing.assert_allclose(_centre(res.rgba[0])[:3], face_on_pixel([0.0, 0.0, 1.0]), atol=2.0)
    plain = renderer.render(load_mesh(write_textured_glb(tmp_path, rgb=(0, 0, 255))), front_rig(),
                            shading="plain_white")
    assert abs(_centre(plain.rgba[0])[0] - _centre(plain.rgba[0])[2]) < 2  # texture dropped: white


def test_texture_orientation_is_kept(renderer, tmp_path):
    # Texture with a red top half and a blue bottom half: the red half must be at the top of the image.
    import trimesh
    from PIL import Image

    tex = np.zeros((8, 8, 3), np.uint8)
    tex[:4] = (255, 0, 0)
    tex[4:] = (0, 0, 255)
    v = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    mat = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(tex))
    mesh = trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 3]], process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [1, 1], [0, 1]], material=mat)
    mesh.export(tmp_path / "half.glb")
    img = renderer.render(load_mesh(tmp_path / "half.glb"), front_rig()).rgba[0]
    top, bottom = img[SIZE // 2 - 20, SIZE // 2], img[SIZE // 2 + 20, SIZE // 2]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def test_back_faces_are_drawn_and_lit_like_front_faces(renderer, tmp_path):
    # The quad faces +Z; seen from -Z only its back is visible, which culling would hide. Two-sided
    # lighting: the back is shaded as if its normal faced the viewer, like Blender does.
    res = renderer.render(load_mesh(write_quad_obj(tmp_path)), front_rig(eye=(0.0, 0.0, -2.0)))
    assert (res.rgba[0, ..., 3] > 127).mean() > 0.2
    np.testing.assert_allclose(_centre(res.rgba[0])[:3], face_on_pixel([0.8] * 3), atol=2.0)


def test_marker_cubes_land_where_the_geometry_says(renderer, tmp_path):
    mesh = load_mesh(write_marker_glb(tmp_path))
    front = renderer.render(mesh, front_rig()).rgba[0]
    red = (front[..., 0] > 150) & (front[..., 1] < 80) & (front[..., 2] < 80)
    green = (front[..., 1] > 150) & (front[..., 0] < 80) & (front[..., 2] < 80)
    ys, xs = np.nonzero(red)
    assert xs.mean() > SIZE * 0.6  # +X marker on the image's right when looking down -Z
    ys, xs = np.nonzero(green)
    assert ys.mean() < SIZE * 0.4  # +Y marker at the top
    back = renderer.render(mesh, front_rig(eye=(0.0, 0.0, -2.0))).rgba[0]
    ys, xs = np.nonzero((back[..., 0] > 150) & (back[..., 1] < 80) & (back[..., 2] < 80))
    assert xs.mean() < SIZE * 0.4  # from behind, +X is on the left


def test_eval24_marker_projects_where_renderer_draws_it(renderer, tmp_path):
    # Every eval24 view: the red marker's centroid in the image matches an independent projection.
    mesh = load_mesh(write_marker_glb(tmp_path))
    red_part = next(p for p in mesh.parts if tuple(p.colors[0][:3]) == (1.0, 0.0, 0.0))
    rig = eval24().with_size(128)
    res = renderer.render(mesh, rig)
    checked = 0
    for i in range(rig.n_views):
        img = res.rgba[i]
        red = (img[..., 0] > 120) & (img[..., 1] < 60) & (img[..., 2] < 60)
        if red.sum() < 40:  # hidden behind the body from this view
            continue
        ys, xs = np.nonzero(red)
        hull = ConvexHull(project(red_part.positions.astype(np.float64), rig.c2w[i], 40.0, 128, 128))
        assert abs(xs.mean() + 0.5 - hull.points[hull.vertices, 0].mean()) < 12
        assert abs(ys.mean() + 0.5 - hull.points[hull.vertices, 1].mean()) < 12
        checked += 1
    assert checked >= 12


def test_silhouette_matches_independent_projection(renderer, tmp_path):
    # A box seen from several eval24 cameras: its rendered alpha equals the convex hull of its
    # projected corners (filled at pixel centres), up to the 1-px boundary tolerance.
    path = tmp_path / "slab.stl"
    box((1.0, 0.5, 0.25)).export(path)
    mesh = load_mesh(path)
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.25, 0.25) for z in (-0.125, 0.125)])
    rig = eval24().with_size(128)
    res = renderer.render(mesh, rig)
    yy, xx = np.mgrid[0:128, 0:128]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1)
    for i in range(0, rig.n_views, 3):
        pts = project(corners, rig.c2w[i], 40.0, 128, 128)
        hull = ConvexHull(pts)
        expected = PolyPath(pts[hull.vertices]).contains_points(centres).reshape(128, 128)
        agreement, iou = silhouette_agreement(res.rgba[i, ..., 3] > 127, expected)
        assert agreement >= 0.999 and iou > 0.95, (i, agreement, iou)


def test_depth_is_distance_along_the_view_axis(renderer, tmp_path):
    res = renderer.render(load_mesh(write_quad_obj(tmp_path)), front_rig())
    assert _centre(res.depth[0][..., None])[0] == pytest.approx(2.0, abs=1e-3)
    assert res.depth[0][0, 0] == 0.0


def test_same_asset_twice_gives_identical_png_bytes(tmp_path):
    path = write_marker_glb(tmp_path)
    rig = eval24().with_size(SIZE)
    a = render_asset(path, rig, tmp_path / "cache_a")
    b = render_asset(path, rig, tmp_path / "cache_b")
    assert a.ok and b.ok and not a.cached and not b.cached
    names = sorted(p.name for p in (tmp_path / "cache_a").rglob("*.png"))
    assert len(names) == 24
    for name in names:
        assert (a.render_dir and (tmp_path / a.render_dir / name).read_bytes()) == (
            tmp_path / b.render_dir / name
        ).read_bytes()


def test_composite_on_white_matches_float_reference():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    a = rgba[..., 3:4] / 255.0
    ref = np.round(rgba[..., :3] * a + 255.0 * (1 - a))
    out = composite_on_white(rgba)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    assert np.abs(out.astype(int) - ref).max() <= 1
    assert (composite_on_white(np.zeros((2, 2, 4), np.uint8)) == 255).all()


def test_composite_on_white_is_the_exact_integer_formula_for_every_value_and_alpha():
    v, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([v, v, v, a], axis=-1).astype(np.uint8)
    want = (v * a + 255 * (255 - a) + 127) // 255  # round((v*a + 255*(255-a)) / 255), in Python ints
    out = composite_on_white(rgba)
    assert (out == want[..., None]).all()


def test_composite_on_white_fast_path_gives_the_formula_for_binary_and_mixed_alpha():
    """Alpha 0/255 takes the no-arithmetic path (colour under alpha 0 need not be 0); partial alphas the
    formula; a non-contiguous view and a render-shaped (V, H, W, 4) batch give the formula's bytes too."""
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (3, 16, 16, 4), dtype=np.uint8)
    rgba[0, ..., 3] = rng.choice(np.array([0, 255], np.uint8), (16, 16))  # binary alpha, any colour
    rgba[1, ..., 3] = 255
    v = rgba[..., :3].astype(np.int64)
    a = rgba[..., 3:4].astype(np.int64)
    want = (v * a + 255 * (255 - a) + 127) // 255
    assert (composite_on_white(rgba) == want).all()
    assert (composite_on_white(rgba[:, ::2, ::3]) == want[:, ::2, ::3]).all()


def test_unpremultiply_inverts_premultiplication():
    rgb = np.array([[200, 100, 50]], np.float64)
    for alpha in (64, 128, 191, 255):
        premult = np.round(rgb * alpha / 255.0)
        color = np.concatenate([premult, [[alpha]]], axis=1).astype(np.uint8)
        straight = unpremultiply(color)
        np.testing.assert_allclose(straight[0, :3], rgb[0], atol=255.0 / alpha)
        assert straight[0, 3] == alpha


def test_png_encoder_round_trips_through_pillow():
    from io import BytesIO

    from PIL import Image

    from mme3dr.render.cache import encode_png

    rng = np.random.default_rng(1)
    for shape in ((1, 1, 4), (7, 13, 4), (64, 32, 4)):
        rgba = rng.integers(0, 256, shape, dtype=np.uint8)
        with Image.open(BytesIO(encode_png(rgba))) as im:
            assert im.mode == "RGBA" and im.size == (shape[1], shape[0])
            np.testing.assert_array_equal(np.asarray(im), rgba)
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 3), np.uint8))


def test_one_context_per_process_and_clear_errors(renderer, tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'osmesa'"):
        get_renderer(SIZE, SIZE, "osmesa")
    assert get_renderer(SIZE, SIZE, "egl") is renderer and get_renderer(SIZE, SIZE, "auto") is renderer
    with pytest.raises(ValueError, match="unknown shading"):
        renderer.render(load_mesh(write_quad_obj(tmp_path)), front_rig(), shading="phong")


def _srgb_to_linear(c):
    # IEC 61966-2-1 decoding, written out here independently of mme3dr.assets.materials.
    c = np.asarray(c, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def test_mid_tone_texture_and_vertex_colours_are_srgb_decoded(renderer, tmp_path):
    colour = (128, 64, 200)
    tex = renderer.render(load_mesh(write_textured_glb(tmp_path, rgb=colour)), front_rig()).rgba[0]
    np.testing.assert_allclose(_centre(tex)[:3], face_on_pixel(_srgb_to_linear(colour)), atol=1.0)
    ply = write_vertex_coloured_quad_ply(tmp_path, (*colour, 255))
    vc = renderer.render(load_mesh(ply), front_rig()).rgba[0]
    # A vertex-coloured part's base colour is white x its colours (never the uncoloured 0.8 grey).
    np.testing.assert_allclose(_centre(vc)[:3], face_on_pixel([1.0] * 3, _srgb_to_linear(colour)), atol=1.0)


def test_torch_imported_after_rendering_does_not_crash(tmp_path, backend="egl"):
    """Mesa's llvmpipe and triton (pulled in by torch) each carry LLVM; torch imported after a render
    used to segfault the process (render, then score). The renderer loads triton first to prevent it."""
    import subprocess
    import sys
    import textwrap

    pytest.importorskip("torch")
    script = textwrap.dedent(
        f"""
        import trimesh
        from mme3dr.render import cameras, renderer as render
        from mme3dr.assets.mesh import load_mesh
        trimesh.creation.box().export({str(tmp_path / "box.ply")!r})
        out = render.get_renderer(64, 64, {backend!r}).render(
            load_mesh({str(tmp_path / "box.ply")!r}), cameras.reward6())
        assert out.rgba[..., 3].any()
        import torch
        print("torch-after-render", float(torch.ones(3).sum()))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch-after-render 3.0" in proc.stdout


def test_no_egl_names_the_system_packages(monkeypatch):
    """Without a usable libEGL the error says which Debian packages to install."""
    import moderngl

    from mme3dr.render import renderer as render

    def fail(**kwargs):
        raise RuntimeError("libEGL.so: cannot open shared object file")

    monkeypatch.setattr(moderngl, "create_context", fail)
    with pytest.raises(RuntimeError, match="libegl1 libgl1 libgl1-mesa-dri"):
        render.Renderer(8, 8)
