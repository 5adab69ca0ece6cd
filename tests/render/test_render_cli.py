"""`mme3dr render`: failure reasons per asset, partial batches, exit codes, cache, --transforms, workers."""

from __future__ import annotations

import json

import numpy as np
from mesh_factory import (
    TOO_MANY_FACES_LIMIT,
    write_broken_assets,
    write_marker_glb,
    write_vertex_coloured_ply,
)
from typer.testing import CliRunner

from mme3dr.assets.mesh import MeshFailure
from mme3dr.cli import app
from mme3dr.render.cameras import Rig, look_at, rig_from_transforms

WIDE = {"COLUMNS": "250"}  # keep rich from wrapping the failure table


def invoke(*args: str):
    return CliRunner().invoke(app, ["render", *map(str, args)], env=WIDE)


def test_every_failure_kind_is_reported_and_the_rest_still_renders(tmp_path):
    broken = write_broken_assets(tmp_path)
    good = write_marker_glb(tmp_path)
    out = tmp_path / "out"
    result = invoke(good, *broken.values(), "--size", "32", "--out", out, "--max-faces", TOO_MANY_FACES_LIMIT)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "marker").iterdir()) == [f"{i:03d}.png" for i in range(24)] + [
        "transforms.json"
    ]
    report = json.loads((out / "render_report.json").read_text())
    by_asset = {r["asset"]: r for r in report["assets"]}
    assert by_asset[str(good)]["ok"] and by_asset[str(good)]["output"] == "marker"
    for kind, path in broken.items():
        assert by_asset[str(path)]["failure"] == kind
        assert kind in result.output and path.name in result.output  # listed at the end
    assert set(broken) == {k.value for k in MeshFailure}
    assert f"{len(broken)} asset(s) failed" in result.output


def test_exit_code_is_non_zero_only_when_every_asset_failed(tmp_path):
    broken = write_broken_assets(tmp_path)
    result = invoke(broken["empty_file"], broken["corrupt_file"], "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "empty_file" in result.output and "corrupt_file" in result.output


def test_second_run_comes_from_the_cache_and_shading_is_part_of_the_key(tmp_path):
    asset = write_vertex_coloured_ply(tmp_path)
    out = tmp_path / "out"
    first = invoke(asset, "--size", "32", "--rig", "reward6", "--out", out)
    assert first.exit_code == 0 and "(0 from cache)" in first.output
    before = (out / "red" / "000.png").read_bytes()
    second = invoke(asset, "--size", "32", "--rig", "reward6", "--out", out)
    assert "(1 from cache)" in second.output
    assert (out / "red" / "000.png").read_bytes() == before
    white = invoke(asset, "--size", "32", "--rig", "reward6", "--out", out, "--shading", "plain_white")
    assert "(0 from cache)" in white.output
    assert (out / "red" / "000.png").read_bytes() != before  # white, not red
    assert len(list((out / ".render-cache").glob("??/*/render.json"))) == 2


def test_transforms_mode_uses_the_file_cameras_and_the_asset_frame(tmp_path):
    asset = write_marker_glb(tmp_path)
    cams = Rig("mine", np.stack([look_at(np.array(e)) for e in ([0, 0, 3.0], [3.0, 0, 0])]), 30.0, 40, 40)
    cams.write_transforms(tmp_path / "transforms.json")
    out = tmp_path / "out"
    result = invoke(asset, "--transforms", tmp_path / "transforms.json", "--out", out)
    assert result.exit_code == 0, result.output
    written = rig_from_transforms(out / "marker" / "transforms.json")
    np.testing.assert_allclose(written.c2w, cams.c2w)
    assert written.hash == cams.hash
    assert len(list((out / "marker").glob("*.png"))) == 2


def test_duplicate_stems_get_distinct_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = write_marker_glb(tmp_path / "a", name="x.glb")
    two = write_vertex_coloured_ply(tmp_path / "b", name="x.ply")
    result = invoke(one, two, "--size", "16", "--rig", "reward6", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert len([p for p in (tmp_path / "out").iterdir() if p.name.startswith("x-")]) == 2


def test_bad_options_get_clear_errors(tmp_path):
    asset = write_marker_glb(tmp_path)
    result = invoke(asset, "--rig", "eval99", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "unknown rig" in result.output
    result = invoke(asset, "--backend", "vulkan", "--out", tmp_path / "out")
    assert result.exit_code == 2


def test_help_explains_the_command():
    result = CliRunner().invoke(app, ["render", "--help"], env=WIDE)
    assert result.exit_code == 0
    for flag in ("--rig", "--transforms", "--workers", "--backend", "--out"):
        assert flag in result.output


def test_workers_render_the_batch_and_report_failures(tmp_path):
    broken = write_broken_assets(tmp_path)
    goods = [write_marker_glb(tmp_path, name=f"m{i}.glb") for i in range(3)]
    out = tmp_path / "out"
    result = invoke(*goods, broken["corrupt_file"], "--size", "32", "--workers", "2", "--out", out)
    assert result.exit_code == 0, result.output
    assert all((out / f"m{i}" / "023.png").is_file() for i in range(3))
    assert "corrupt_file" in result.output


def test_rerendering_with_fewer_views_leaves_no_stale_views(tmp_path):
    asset = write_marker_glb(tmp_path)
    out = tmp_path / "out"
    assert invoke(asset, "--size", "16", "--rig", "eval24", "--out", out).exit_code == 0
    assert invoke(asset, "--size", "16", "--rig", "reward6", "--out", out).exit_code == 0
    assert sorted(p.name for p in (out / "marker").glob("*.png")) == [f"{i:03d}.png" for i in range(6)]


def test_bad_transforms_files_are_refused_before_rendering(tmp_path):
    asset = write_marker_glb(tmp_path)
    rig = tmp_path / "rig"
    rig.mkdir()
    frame = {"transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]]}
    escape = {**frame, "file_path": "../../../etc/passwd"}
    cases = {"escape.json": {"camera_angle_x": 0.7, "frames": [escape]},
             "zero.json": {"camera_angle_x": 0.0, "frames": [frame]}}
    for name, doc in cases.items():
        (rig / name).write_text(json.dumps(doc))
        result = invoke(asset, "--transforms", rig / name, "--out", tmp_path / "out")
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "--transforms" in result.output
        assert not (tmp_path / "out" / "marker").exists()
