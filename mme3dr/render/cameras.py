"""Camera rigs of protocol v1 (``eval24``, ``reward6``), the ``video6`` reward rig of the authors' released
trainer, and NeRF-style ``transforms.json`` I/O.

Light module: numpy only. Poses are 4x4 camera-to-world matrices with OpenGL camera axes (the camera
looks down its -Z axis, +Y is up in the image), the convention of OpenGL, Blender and the TRELLIS
``transforms.json`` files. Rig positions are in the canonical Y-up frame (design.md §3).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

RIG_RADIUS = 2.0  # design.md §3: cameras at radius 2 around the [-0.5, 0.5]^3 asset
RIG_FOV_DEG = 40.0  # vertical fov; TRELLIS camera_angle_x = 0.698 rad = 40 deg on square images
RIG_SIZE = 512


@dataclass(frozen=True, eq=False)
class Rig:
    """A set of V cameras sharing intrinsics.

    c2w: (V, 4, 4) float64 camera-to-world, OpenGL camera axes; fov_y_deg: vertical field of view;
    width, height: image size in pixels.
    """

    name: str
    c2w: np.ndarray
    fov_y_deg: float
    width: int
    height: int

    def __post_init__(self) -> None:
        c2w = np.array(self.c2w, dtype=np.float64)
        if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or len(c2w) == 0:
            raise ValueError(f"c2w must have shape (V, 4, 4) with V >= 1, got {c2w.shape}")
        if not np.isfinite(c2w).all():
            raise ValueError("c2w contains NaN or inf")
        c2w.setflags(write=False)
        object.__setattr__(self, "c2w", c2w)

    @property
    def n_views(self) -> int:
        return len(self.c2w)

    @property
    def fov_x_rad(self) -> float:
        """Horizontal fov in radians (``camera_angle_x``): tan(fx/2) = tan(fy/2) * width / height."""
        return 2.0 * math.atan(math.tan(math.radians(self.fov_y_deg) / 2.0) * self.width / self.height)

    def canonical(self) -> dict:
        """Geometry only (not the name): values rounded to 1e-9 so libm differences in the last ulp of
        cos/sin across platforms do not change the hash."""
        return {
            "c2w": [[f"{v:.9f}" for v in m.ravel()] for m in self.c2w],
            "fov_y_deg": f"{self.fov_y_deg:.9f}",
            "width": int(self.width),
            "height": int(self.height),
        }

    @property
    def hash(self) -> str:
        """sha256 of the rig's canonical JSON (sorted keys, no whitespace)."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def with_size(self, width: int, height: int | None = None) -> Rig:
        """The same cameras at another image size (same vertical fov)."""
        return replace(self, width=int(width), height=int(width if height is None else height))

    def to_transforms(self) -> dict:
        """NeRF / TRELLIS-style dict: ``camera_angle_x`` and one frame per view (``NNN.png``)."""
        fov_x = self.fov_x_rad
        return {
            "camera_angle_x": fov_x,
            "w": int(self.width),
            "h": int(self.height),
            "frames": [
                {"file_path": f"{i:03d}.png", "camera_angle_x": fov_x, "transform_matrix": m.tolist()}
                for i, m in enumerate(self.c2w)
            ],
            "mme3dr": {"rig": self.name, "rig_hash": self.hash, "fov_y_deg": self.fov_y_deg},
        }

    def write_transforms(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_transforms(), indent=2) + "\n")
        return path


def look_at(eye: np.ndarray, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """(4, 4) float64 camera-to-world for a camera at ``eye`` looking at ``target`` (OpenGL axes).

    The camera's +Z points from the target to the eye (it looks down -Z); +X = up x Z; +Y = Z x X.
    """
    eye = np.asarray(eye, np.float64)
    z = eye - np.asarray(target, np.float64)
    z = z / np.linalg.norm(z)
    x = np.cross(np.asarray(up, np.float64), z)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("camera looks along its up vector; pick another up direction")
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def orbit_position(yaw: float, pitch: float, radius: float = RIG_RADIUS) -> np.ndarray:
    """Camera position in the Y-up frame: r (cos p cos y, sin p, -cos p sin y).

    This is TRELLIS's Blender-frame position r (cos p cos y, cos p sin y, sin p) carried into Y up by
    (x, y, z) -> (x, z, -y) (design.md §3).
    """
    return radius * np.array(
        [math.cos(pitch) * math.cos(yaw), math.sin(pitch), -math.cos(pitch) * math.sin(yaw)]
    )


def radical_inverse_base2(i: int) -> float:
    """Van der Corput radical inverse: the bits of i mirrored about the binary point.

    0, 0.5, 0.25, 0.75, ... for i = 0, 1, 2, 3, ...
    """
    result, f = 0.0, 0.5
    while i:
        result += f * (i & 1)
        i >>= 1
        f /= 2.0
    return result


def hammersley_yaw_pitch(n: int) -> list[tuple[float, float]]:
    """(yaw, pitch) of TRELLIS's sphere-Hammersley rig with its random offset fixed to (0.5, 0).

    u = (i + 0.5) / n, v = radical_inverse_base2(i); yaw = 2 pi v, pitch = arccos(1 - 2u) - pi/2.
    """
    out = []
    for i in range(n):
        u = (i + 0.5) / n
        v = radical_inverse_base2(i)
        out.append((2.0 * math.pi * v, math.acos(1.0 - 2.0 * u) - math.pi / 2.0))
    return out


def _orbit_rig(name: str, yaw_pitch: list[tuple[float, float]]) -> Rig:
    c2w = np.stack([look_at(orbit_position(y, p)) for y, p in yaw_pitch])
    return Rig(name=name, c2w=c2w, fov_y_deg=RIG_FOV_DEG, width=RIG_SIZE, height=RIG_SIZE)


def eval24() -> Rig:
    """The evaluation rig: 24 Hammersley views, radius 2, fov 40 deg, 512x512 (design.md §3)."""
    return _orbit_rig("eval24", hammersley_yaw_pitch(24))


def reward6() -> Rig:
    """The reward rig: 6 views at pitch 15 deg, yaw 0, 60, ..., 300 deg, radius 2, fov 40, 512 px."""
    return _orbit_rig("reward6", [(math.radians(60.0 * k), math.radians(15.0)) for k in range(6)])


#: TRELLIS ``render_utils.render_video``'s orbit: its angles run over ``linspace(0, 2 * 3.1415, F)`` (the
#: literal 3.1415, not pi), radius 2, fov 40 deg on both axes, 512 px.
TRELLIS_VIDEO_TWO_PI = 2 * 3.1415


def video_frame_indices(num_frames: int, num_views: int = 6) -> list[int]:
    """The frames the authors' released trainer keeps as reward views: ``int(j * (F - 1) / (V - 1))`` for
    j = 0..V-1, or every frame when F < V (``grpo_3d_trainer.py``, 3DGen-R1 at 290cb73)."""
    if num_frames < num_views:
        return list(range(num_frames))
    return [int(j * (num_frames - 1) / (num_views - 1)) for j in range(num_views)]


def trellis_video_yaw_pitch(num_frames: int = 60, num_views: int = 6) -> list[tuple[float, float]]:
    """(yaw, pitch) in our :func:`orbit_position` convention of the frames :func:`video_frame_indices`
    picks from TRELLIS's orbit video of ``num_frames`` frames.

    Derivation. TRELLIS's frame f has ``t_f = f * 2 * 3.1415 / (F - 1)``, yaw_T = t_f, pitch = 0.25 + 0.5
    sin(t_f) (radians), and its camera sits at r (sin yaw_T cos p, cos yaw_T cos p, sin p) in TRELLIS's
    Z-up frame, looking at the origin with +Z up (``yaw_pitch_r_fov_to_extrinsics_intrinsics``). Carried
    into our Y-up frame by (x, y, z) -> (x, z, -y) (design.md §3; TRELLIS's ``to_glb`` does the same turn)
    this is r (sin yaw_T cos p, sin p, -cos yaw_T cos p). :func:`orbit_position` places a camera at
    r (cos p cos y, sin p, -cos p sin y), so y = pi/2 - yaw_T and the pitch is the same.
    """
    out = []
    for f in video_frame_indices(num_frames, num_views):
        t = f * TRELLIS_VIDEO_TWO_PI / (num_frames - 1) if num_frames > 1 else 0.0
        out.append((math.pi / 2.0 - t, 0.25 + 0.5 * math.sin(t)))
    return out


def video6() -> Rig:
    """The reward views of the authors' released trainer: frames 0, 11, 23, 35, 47, 59 of TRELLIS's
    60-frame orbit video (:func:`trellis_video_yaw_pitch`), radius 2, fov 40 deg, 512 px."""
    return _orbit_rig("video6", trellis_video_yaw_pitch(60, 6))


RIGS = {"eval24": eval24, "reward6": reward6, "video6": video6}


def get_rig(name: str) -> Rig:
    """A built-in rig by name (``eval24``, ``reward6``, ``video6``)."""
    try:
        return RIGS[name]()
    except KeyError:
        raise ValueError(f"unknown rig {name!r}; choose one of {', '.join(RIGS)}") from None


def _image_size(transforms: Path, name: str) -> tuple[int, int] | None:
    """(width, height) of frame image ``name`` of a transforms file, found by the asset reference
    rules (:func:`mme3dr.assets.references.resolve`: inside the transforms file's folder only); None
    when the file is absent. Raises ``ValueError`` for a path leaving the folder or a file that is
    not a readable image."""
    from PIL import Image, UnidentifiedImageError

    from mme3dr.assets.references import ClosureError, resolve

    try:
        real = resolve(transforms, name)[1]
    except ClosureError:
        raise ValueError(f"{transforms}: frame file_path {name!r} is not a file inside the transforms "
                         "file's folder (absolute, a URI, '..' or a symlink out); only such files are "
                         "read") from None
    if not real.is_file():
        return None
    try:
        with Image.open(real) as im:
            return im.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{transforms}: frame file_path {name!r} is not a readable image "
                         f"({type(exc).__name__}); give w and h in the file instead") from None


def rig_from_transforms(
    path: str | os.PathLike, *, width: int | None = None, height: int | None = None
) -> Rig:
    """Read a NeRF-style transforms.json (``camera_angle_x`` + 4x4 ``transform_matrix`` per frame).

    The image size comes from ``width``/``height``, else the file's ``w``/``h``, else the first
    frame's image (its ``file_path``, resolved inside the file's folder only, as asset references
    are), else 512x512 (TRELLIS renders). Raises ``ValueError`` (one line, naming the file) for an
    unreadable file, a ``camera_angle_x`` that is not a finite angle in (0, π) radians, or a frame
    image path that leaves the folder or is not a readable image.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        frames = data["frames"]
        c2w = np.array([f["transform_matrix"] for f in frames], dtype=np.float64)
        fov_x = float(data.get("camera_angle_x", frames[0].get("camera_angle_x")))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such transforms file") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(
            f"{path}: not a NeRF-style transforms.json (need camera_angle_x and frames[].transform_matrix): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not (math.isfinite(fov_x) and 0.0 < fov_x < math.pi):
        raise ValueError(f"{path}: camera_angle_x must be a finite angle in radians with 0 < angle < π, "
                         f"got {fov_x}")
    if width is None:
        if "w" in data and "h" in data:
            width, height = int(data["w"]), int(data["h"])
        else:
            first = frames[0].get("file_path", "")
            size = _image_size(path, str(first)) if first else None
            width, height = size if size else (RIG_SIZE, RIG_SIZE)
    height = width if height is None else height
    fov_y = 2.0 * math.degrees(math.atan(math.tan(fov_x / 2.0) * height / width))
    return Rig(name=f"transforms:{path.parent.name}", c2w=c2w, fov_y_deg=fov_y, width=width, height=height)
