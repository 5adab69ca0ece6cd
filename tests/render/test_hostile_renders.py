"""Issue 26, kind 2 (render side): whatever goes wrong with one asset in ``render_asset`` comes back as
that asset's outcome with a reason, never as an exception that would stop a batch; the pool's own
behaviour with stopped workers is in ``test_pool.py``."""

from __future__ import annotations

import json

import pytest
from mesh_factory import huge_texture_obj, write_uncoloured_obj

from mme3dr.render import cache as render_cache
from mme3dr.render.cameras import get_rig

RIG = get_rig("eval24").with_size(32)


@pytest.mark.parametrize("error", [MemoryError("cannot allocate 2.7 GB"), RecursionError("too deep"),
                                   ZeroDivisionError("a loader bug")])
def test_any_error_while_loading_is_the_asset_s_failure(tmp_path, monkeypatch, error):
    def explode(*args, **kwargs):
        raise error

    monkeypatch.setattr(render_cache, "load_mesh", explode)
    outcome = render_cache.render_asset(write_uncoloured_obj(tmp_path), RIG, tmp_path / "cache")
    assert not outcome.ok and outcome.reason == "render_error"
    assert type(error).__name__ in outcome.error and str(error) in outcome.error


def test_any_error_while_reading_the_closure_is_the_asset_s_failure(tmp_path, monkeypatch):
    def explode(path):
        raise MemoryError("reading the closure")

    monkeypatch.setattr(render_cache, "asset_closure", explode)
    outcome = render_cache.render_asset(write_uncoloured_obj(tmp_path), RIG, tmp_path / "cache")
    assert not outcome.ok and outcome.reason == "render_error" and "MemoryError" in outcome.error


def test_a_reference_outside_is_asset_refused_and_a_huge_texture_image_too_large(tmp_path):
    (tmp_path / "asset").mkdir()
    (tmp_path / "secret.png").write_bytes(b"not read")
    secret = tmp_path / "secret.png"
    (tmp_path / "asset" / "a.mtl").write_text(f'newmtl m\nmap_Kd -o 1e-9 1e-9 1e-9 "{secret}"\n')
    obj = tmp_path / "asset" / "a.obj"
    obj.write_text("mtllib a.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl m\n"
                   "f 1/1 2/2 3/3\n")
    outcome = render_cache.render_asset(obj, RIG, tmp_path / "cache")
    assert outcome.reason == "asset_refused" and "secret.png" in outcome.detail
    outcome = render_cache.render_asset(huge_texture_obj(tmp_path), RIG, tmp_path / "cache")
    assert outcome.reason == "image_too_large" and "13,000 x 13,000" in outcome.detail


def test_lines_left_out_are_noted_in_the_render_metadata(tmp_path):
    from gltf_factory import UINT, GltfBuilder, box_arrays

    b = GltfBuilder()
    pos, _, _, idx = box_arrays()
    b.node(mesh=b.mesh({"attributes": {"POSITION": b.accessor(pos)}, "indices": b.accessor(idx, UINT)},
                       {"attributes": {"POSITION": b.accessor(pos)}, "indices": b.accessor(idx[:8], UINT),
                        "mode": 1}))
    outcome = render_cache.render_asset(b.write_glb(tmp_path / "lines.glb"), RIG, tmp_path / "cache")
    assert outcome.ok, outcome.error or outcome.detail
    meta = json.loads((tmp_path / "cache" / outcome.render_dir / "render.json").read_text())
    assert any("1 LINES" in note for note in meta["notes"])


def test_a_texture_over_the_driver_s_max_size_is_an_error_not_black(tmp_path):
    # The loader caps texture sides at MAX_IMAGE_SIDE (16384); a driver whose GL_MAX_TEXTURE_SIZE is
    # below a texture's side would sample it as black, so the renderer refuses it by name.
    import numpy as np
    from mesh_factory import obj_with_subfolder_texture

    from mme3dr.assets.mesh import load_mesh
    from mme3dr.render import get_renderer

    renderer = get_renderer(32, 32, None)
    limit = renderer.ctx.info["GL_MAX_TEXTURE_SIZE"]
    mesh = load_mesh(obj_with_subfolder_texture(tmp_path))
    texture = mesh.parts[0].material.texture
    texture.rgba = np.full((1, limit + 1, 4), 128, np.uint8)
    with pytest.raises(ValueError, match="GL_MAX_TEXTURE_SIZE"):
        renderer.render(mesh, RIG)
