"""mme3dr.render.cameras: protocol v1 rigs against a direct computation, transforms.json round trip, hash."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mme3dr.render.cameras import (
    Rig,
    eval24,
    get_rig,
    look_at,
    radical_inverse_base2,
    reward6,
    rig_from_transforms,
)


def _bit_reverse(i: int, bits: int = 32) -> float:
    # Independent reference: reverse the 32-bit binary string of i and read it as a fraction.
    return int(format(i, f"0{bits}b")[::-1], 2) / 2**bits


def test_radical_inverse_is_bit_reversal():
    assert [radical_inverse_base2(i) for i in range(4)] == [0.0, 0.5, 0.25, 0.75]
    for i in range(100):
        assert radical_inverse_base2(i) == _bit_reverse(i)


def test_eval24_positions_follow_design_formula():
    rig = eval24()
    assert rig.n_views == 24 and rig.width == rig.height == 512 and rig.fov_y_deg == 40.0
    for i in range(24):
        u, v = (i + 0.5) / 24, _bit_reverse(i)
        yaw, pitch = 2 * np.pi * v, np.arccos(1 - 2 * u) - np.pi / 2
        # TRELLIS Blender-frame position, then Blender (x, y, z) -> Y-up (x, z, -y).
        bx, by, bz = np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)
        np.testing.assert_allclose(rig.c2w[i, :3, 3], 2.0 * np.array([bx, bz, -by]), atol=1e-12)
    pitches = np.degrees(np.arcsin(rig.c2w[:, 1, 3] / 2.0))
    assert np.abs(pitches).max() < 77  # no camera near a pole


def test_cameras_look_at_origin_with_y_up():
    for rig in (eval24(), reward6()):
        for c2w in rig.c2w:
            rot, eye = c2w[:3, :3], c2w[:3, 3]
            np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
            assert np.linalg.det(rot) == pytest.approx(1.0)
            # OpenGL axes: the camera looks down -Z, so -Z points from the eye to the origin.
            np.testing.assert_allclose(-rot[:, 2], -eye / np.linalg.norm(eye), atol=1e-12)
            assert rot[1, 1] > 0  # image-up has a positive world-Y component
            assert abs(rot[1, 0]) < 1e-12  # camera X stays horizontal (no roll)


def test_reward6_is_six_views_at_pitch_15():
    rig = reward6()
    eyes = rig.c2w[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(eyes, axis=1), 2.0)
    np.testing.assert_allclose(np.degrees(np.arcsin(eyes[:, 1] / 2.0)), 15.0)
    yaws = np.degrees(np.arctan2(-eyes[:, 2], eyes[:, 0])) % 360
    np.testing.assert_allclose(yaws, [0, 60, 120, 180, 240, 300], atol=1e-9)


def test_transforms_round_trip_and_hash(tmp_path):
    rig = eval24()
    path = rig.write_transforms(tmp_path / "transforms.json")
    data = json.loads(path.read_text())
    assert data["frames"][5]["file_path"] == "005.png"
    assert data["camera_angle_x"] == pytest.approx(math.radians(40))
    back = rig_from_transforms(path)
    np.testing.assert_allclose(back.c2w, rig.c2w)
    assert back.hash == rig.hash and (back.width, back.height) == (512, 512)


def test_hash_is_stable_and_sensitive():
    assert eval24().hash == eval24().hash
    assert eval24().hash != reward6().hash
    assert eval24().with_size(299).hash != eval24().hash
    moved = eval24().c2w.copy()
    moved[0, 0, 3] += 1e-6
    assert Rig("eval24", moved, 40.0, 512, 512).hash != eval24().hash


def test_non_square_fov_x(tmp_path):
    rig = Rig("wide", look_at(np.array([0, 0, 2.0]))[None], 40.0, 640, 320)
    back = rig_from_transforms(rig.write_transforms(tmp_path / "t.json"))
    assert back.fov_y_deg == pytest.approx(40.0) and (back.width, back.height) == (640, 320)


def test_bad_inputs_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown rig"):
        get_rig("eval25")
    bad = tmp_path / "bad.json"
    bad.write_text('{"frames": []}')
    with pytest.raises(ValueError, match="transforms"):
        rig_from_transforms(bad)
    with pytest.raises(ValueError, match="no such"):
        rig_from_transforms(tmp_path / "missing.json")


@pytest.mark.shared
def test_reads_trellis_transforms(trellis_rose):
    path = next((trellis_rose / "renders").glob("*/transforms.json"))
    rig = rig_from_transforms(path)
    assert rig.n_views == 24 and (rig.width, rig.height) == (512, 512)
    assert rig.fov_y_deg == pytest.approx(40.0)
    np.testing.assert_allclose(np.linalg.norm(rig.c2w[:, :3, 3], axis=1), 2.0, atol=1e-5)


def test_video6_is_the_frames_the_authors_trainer_picks_from_trellis_orbit_video():
    """TRELLIS render_video(num_frames=60): yaw_f = linspace(0, 2*3.1415, 60)[f], pitch 0.25 + 0.5 sin(yaw_f),
    camera at 2 (sin y cos p, cos y cos p, sin p) in its Z-up frame looking at the origin, +Z up; their
    trainer keeps frames int(j * 59 / 5). Carried into Y up by (x, y, z) -> (x, z, -y)."""
    from mme3dr.render.cameras import video6, video_frame_indices

    assert video_frame_indices(60) == [0, 11, 23, 35, 47, 59]
    assert video_frame_indices(4) == [0, 1, 2, 3]  # fewer frames than views: every frame
    rig = video6()
    assert get_rig("video6").hash == rig.hash and rig.n_views == 6 and rig.fov_y_deg == 40.0
    t = np.linspace(0, 2 * 3.1415, 60, dtype=np.float64)[[0, 11, 23, 35, 47, 59]]
    p = 0.25 + 0.5 * np.sin(t)
    z_up = 2 * np.stack([np.sin(t) * np.cos(p), np.cos(t) * np.cos(p), np.sin(p)], axis=1)
    y_up = np.stack([z_up[:, 0], z_up[:, 2], -z_up[:, 1]], axis=1)
    np.testing.assert_allclose(rig.c2w[:, :3, 3], y_up, atol=1e-6)  # float32 linspace in torch: 1e-7 off
    for m, eye in zip(rig.c2w, y_up, strict=True):
        np.testing.assert_allclose(-m[:3, 2], -eye / np.linalg.norm(eye), atol=1e-6)  # looks at the origin
        assert m[1, 1] > 0  # image up has a positive world-Y part (TRELLIS's +Z up)


def _transforms(directory, **fields):
    frame = {"transform_matrix": np.eye(4).tolist()}
    frame.update(fields.pop("frame", {}))
    path = directory / "transforms.json"
    path.write_text(json.dumps({"camera_angle_x": 0.7, **fields, "frames": [frame]}))
    return path


@pytest.mark.parametrize("angle", ["NaN", 0.0, -0.5, math.pi, 4.0])
def test_a_camera_angle_that_is_not_an_angle_is_refused(tmp_path, angle):
    path = tmp_path / "t.json"
    matrix = json.dumps(np.eye(4).tolist())
    path.write_text(f'{{"camera_angle_x": {angle}, "frames": [{{"transform_matrix": {matrix}}}]}}')
    with pytest.raises(ValueError, match="camera_angle_x must be a finite angle"):
        rig_from_transforms(path)


def test_frame_image_paths_stay_inside_the_transforms_folder(tmp_path):
    inside = tmp_path / "rig"
    inside.mkdir()
    from PIL import Image

    Image.new("RGB", (40, 20)).save(tmp_path / "outside.png")
    for name in ("../outside.png", str(tmp_path / "outside.png"), "file:///etc/passwd"):
        with pytest.raises(ValueError, match="not a file inside the transforms file's folder"):
            rig_from_transforms(_transforms(inside, frame={"file_path": name}))
    (inside / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(ValueError, match="not a file inside"):
        rig_from_transforms(_transforms(inside, frame={"file_path": "link.png"}))
    (inside / "sub").mkdir()
    Image.new("RGB", (40, 20)).save(inside / "sub" / "f.png")
    rig = rig_from_transforms(_transforms(inside, frame={"file_path": "sub\\f.png"}))
    assert (rig.width, rig.height) == (40, 20)
    assert (rig_from_transforms(_transforms(inside, frame={"file_path": "absent.png"})).width) == 512


def test_an_unreadable_frame_image_is_a_one_line_error(tmp_path):
    (tmp_path / "f.png").write_text("not an image")
    with pytest.raises(ValueError, match="'f.png' is not a readable image") as info:
        rig_from_transforms(_transforms(tmp_path, frame={"file_path": "f.png"}))
    assert "\n" not in str(info.value)
