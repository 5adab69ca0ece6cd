"""Issue 26, kind 1: a file outside the asset is never read, however the reference is spelled.

One parser (mme3dr.assets.references) serves the closure and the loaders: for every spelling below,
either the closure refuses the asset and the loader fails with ``asset_refused`` (nothing outside is
read), or the reference is inside, the closure holds the file and the loader draws its texture."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from gltf_factory import GltfBuilder, png_bytes

from mme3dr.assets.closure import ClosureError, asset_closure
from mme3dr.assets.mesh import MeshError, MeshFailure, load_mesh
from mme3dr.assets.references import parse_map, resolve

RED, BLUE = (200, 30, 30), (20, 20, 220)
TRIANGLE = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\n"


def _png(rgb) -> bytes:
    return png_bytes(np.full((4, 4, 3), rgb, np.uint8))


def _assert_refused(path: Path) -> None:
    """Both readers refuse ``path``: the closure raises, the loader fails with ``asset_refused``."""
    with pytest.raises(ClosureError):
        asset_closure(path)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.reason is MeshFailure.asset_refused


@pytest.fixture()
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``tmp/asset/`` (the asset's folder, with ``tex/my red.png`` inside) and ``tmp/secret.png``
    (blue, outside it)."""
    asset = tmp_path / "asset"
    (asset / "tex").mkdir(parents=True)
    (asset / "tex" / "my red.png").write_bytes(_png(RED))
    (asset / "tex" / "red.png").write_bytes(_png(RED))
    (tmp_path / "secret.png").write_bytes(_png(BLUE))
    return asset, tmp_path / "secret.png"


def _obj(asset: Path, map_line: str, mtllib: str = "a.mtl") -> Path:
    (asset / "a.mtl").write_text(f"newmtl m\nKd 1 1 1\n{map_line}\n")
    path = asset / "a.obj"
    path.write_text(f"mtllib {mtllib}\n{TRIANGLE}")
    return path


OUTSIDE_SPELLINGS = [
    'map_Kd "{secret}"',  # the example: a quoted absolute path
    "map_Kd -o 1e-9 1e-9 1e-9 {secret}",  # the example: options in exponent notation
    "map_Kd -bm -0.5 {secret}",
    "map_Kd -clamp on {secret}",
    "map_Kd -o 1E+2 -s .5 +2 -t 0 0 0 {secret}",
    "map_Kd -imfchan r -type sphere -mm 0 1 {secret}",
    "map_Kd -blendu off -blendv on -cc off -boost 2 -texres 512 {secret}",
    "map_Kd ../secret.png",
    "map_Kd tex/../../secret.png",
    "map_Kd '../secret.png'",
    "map_Kd ..\\secret.png",  # a Windows exporter's folder separator
    "map_Kd tex\\..\\..\\secret.png",
    "map_Kd file://{secret}",
    "map_Kd file:../secret.png",
    "MAP_KD ../secret.png",  # keys in any case
    "map_Kd -s 1 1 1 ../secret.png",
]


@pytest.mark.parametrize("spelling", OUTSIDE_SPELLINGS)
def test_an_mtl_texture_outside_the_folder_is_refused_by_closure_and_loader(layout, spelling):
    asset, secret = layout
    path = _obj(asset, spelling.format(secret=secret))
    with pytest.raises(ClosureError, match="outside"):
        asset_closure(path)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.reason is MeshFailure.asset_refused
    assert "outside the asset's folder" in info.value.detail


def test_a_windows_drive_and_a_unc_path_are_absolute(layout):
    asset, _ = layout
    for name in ("C:\\secret.png", "c:/secret.png", "\\\\server\\share\\secret.png", "//server/x.png"):
        with pytest.raises(ClosureError, match="absolute"):
            resolve(asset / "a.obj", name)


@pytest.mark.parametrize("mtllib", ['"{mtl}"', "{mtl}", "../outside.mtl", "file://{mtl}", "..\\outside.mtl"])
def test_an_mtllib_outside_the_folder_is_refused(layout, mtllib):
    asset, secret = layout
    outside_mtl = asset.parent / "outside.mtl"
    outside_mtl.write_text(f"newmtl m\nmap_Kd {secret}\n")
    path = _obj(asset, "", mtllib=mtllib.format(mtl=outside_mtl))
    _assert_refused(path)


def test_a_symlinked_texture_or_folder_pointing_out_is_refused(layout):
    asset, secret = layout
    os.symlink(secret, asset / "link.png")
    os.symlink(secret.parent, asset / "up")  # a folder symlink on the way
    for spelling in ("map_Kd link.png", "map_Kd up/secret.png"):
        path = _obj(asset, spelling)
        with pytest.raises(ClosureError, match="symlink"):
            asset_closure(path)
        with pytest.raises(MeshError) as info:
            load_mesh(path)
        assert info.value.reason is MeshFailure.asset_refused


INSIDE_SPELLINGS = [
    'map_Kd "tex/my red.png"',
    "map_Kd -o 1e-9 1e-9 1e-9 tex/my red.png",
    "map_Kd -bm -0.5 -clamp on 'tex/my red.png'",
    "map_Kd tex\\red.png",
    "map_Kd ./tex/../tex/red.png",
    "map_Kd -s 1 1 tex/red.png",
]


@pytest.mark.parametrize("spelling", INSIDE_SPELLINGS)
def test_an_inside_texture_is_in_the_closure_and_is_what_the_loader_draws(layout, spelling):
    asset, _ = layout
    path = _obj(asset, spelling)
    names = [n for n, _ in asset_closure(path)]
    assert names[:2] == ["a.obj", "a.mtl"] and len(names) == 3 and names[2].startswith("tex/")
    mesh = load_mesh(path)
    texture = mesh.parts[0].material.texture
    assert texture is not None and tuple(texture.rgba[0, 0, :3]) == RED


def test_texture_names_are_relative_to_the_mtl_that_gives_them(tmp_path):
    # Both the closure and the loader resolve a map beside its MTL (mtl/ here), as Blender does.
    (tmp_path / "mtl").mkdir()
    (tmp_path / "mtl" / "red.png").write_bytes(_png(RED))
    (tmp_path / "mtl" / "a.mtl").write_text("newmtl m\nmap_Kd red.png\n")
    path = tmp_path / "a.obj"
    path.write_text(f"mtllib mtl/a.mtl\n{TRIANGLE}")
    assert [n for n, _ in asset_closure(path)] == ["a.obj", "mtl/a.mtl", "mtl/red.png"]
    assert tuple(load_mesh(path).parts[0].material.texture.rgba[0, 0, :3]) == RED


def test_option_arguments_are_read_in_any_numeric_notation():
    assert parse_map("-o 1e-9 -2.5E+1 .5 -s 2 tex.png") == ("tex.png", {"-o": ["1e-9", "-2.5E+1", ".5"],
                                                                      "-s": ["2"]})
    assert parse_map("-clamp on -imfchan l 'a b.png'") == ("a b.png", {"-clamp": ["on"], "-imfchan": ["l"]})
    assert parse_map("-o 1 2 3 4.png") == ("4.png", {"-o": ["1", "2", "3"]})  # at most three numbers
    assert parse_map("-bm nan.png") == ("nan.png", {"-bm": []})  # "nan" is a name, not a number


def _gltf_with_image_uri(asset: Path, uri: str, buffer_uri: str | None = None) -> Path:
    b = GltfBuilder()
    tex = b.texture(b.image(_png(RED)))
    mat = b.material(pbrMetallicRoughness={"baseColorTexture": {"index": tex}})
    b.node(mesh=b.mesh(b.box_primitive(mat)))
    path = b.write_gltf(asset / "scene.gltf", image_dir="img")
    doc = json.loads(path.read_text())
    doc["images"][0]["uri"] = uri
    if buffer_uri is not None:
        doc["buffers"][0]["uri"] = buffer_uri
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("uri", ["{secret}", "file://{secret}", "../secret.png", "%2E%2E/secret.png",
                                 "img/%2e%2e/../secret.png", "..%5Csecret.png", "img\\..\\..\\secret.png",
                                 "https://example.com/secret.png"])
def test_a_gltf_image_outside_the_folder_is_refused(layout, uri):
    asset, secret = layout
    path = _gltf_with_image_uri(asset, uri.format(secret=secret))
    _assert_refused(path)


def test_a_gltf_buffer_outside_the_folder_is_refused(layout):
    asset, _ = layout
    path = _gltf_with_image_uri(asset, "img/image0.png", buffer_uri="%2E%2E/scene.bin")
    (asset.parent / "scene.bin").write_bytes((asset / "scene.bin").read_bytes())
    _assert_refused(path)


def test_a_percent_encoded_inside_uri_is_in_the_closure_and_drawn(layout):
    asset, _ = layout
    path = _gltf_with_image_uri(asset, "tex/my%20red.png")
    assert "tex/my red.png" in [n for n, _ in asset_closure(path)]
    assert tuple(load_mesh(path).parts[0].material.texture.rgba[0, 0, :3]) == RED
