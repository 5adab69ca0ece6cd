"""Shared helpers for the render tests: silhouette agreement, an independent pinhole projection, and a
small front view of one asset (``render``, ``centre``) for colour checks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mme3dr.assets.mesh import load_mesh
from mme3dr.render.cameras import Rig, look_at
from mme3dr.render.renderer import get_renderer


def silhouette_agreement(ours: np.ndarray, ref: np.ndarray, tolerance_px: int = 1) -> tuple[float, float]:
    """(tolerant agreement, plain IoU) of two (H, W) bool masks.

    A pixel in one mask but not the other counts as a disagreement only if it lies more than
    ``tolerance_px`` pixels (8-neighbourhood, i.e. chessboard distance) from the other mask.
    Agreement = 1 - disagreements / |union|.
    """
    union = ours | ref
    if not union.any():
        return 1.0, 1.0
    structure = np.ones((3, 3), bool)
    near_ref = ndimage.binary_dilation(ref, structure, iterations=tolerance_px)
    near_ours = ndimage.binary_dilation(ours, structure, iterations=tolerance_px)
    disagree = (ours & ~near_ref) | (ref & ~near_ours)
    return 1.0 - disagree.sum() / union.sum(), (ours & ref).sum() / union.sum()


def project(points: np.ndarray, c2w: np.ndarray, fov_y_deg: float, width: int, height: int) -> np.ndarray:
    """(n, 3) world points -> (n, 2) pixel coordinates (x right, y down; pixel centres at +0.5).

    Written from the pinhole model, independent of the renderer: world -> camera by the inverse of the
    OpenGL camera-to-world (camera looks down -Z, +Y up), then x_pix = W/2 + f x / (-z),
    y_pix = H/2 - f y / (-z) with f = (H/2) / tan(fov_y / 2).
    """
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    f = (height / 2.0) / np.tan(np.radians(fov_y_deg) / 2.0)
    depth = -cam[:, 2]
    return np.stack([width / 2.0 + f * cam[:, 0] / depth, height / 2.0 - f * cam[:, 1] / depth], axis=1)


def face_on_pixel(base_rgb_linear, vertex_rgb_linear=(1.0, 1.0, 1.0), ambient=0.3, light=0.7):
    """Expected 8-bit colour of a surface seen face-on under the protocol headlight (docs/rendering.md):
    n·l = 1, so rgb = base · vertex · (ambient + light), then the sRGB encoding (IEC 61966-2-1) x 255."""
    c = np.clip(np.asarray(base_rgb_linear, np.float64) * np.asarray(vertex_rgb_linear, np.float64)
                * (ambient + light), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055) * 255.0


RENDER_SIZE = 64


def front_rig(eye=(0.0, 0.0, 2.0), size=RENDER_SIZE) -> Rig:
    return Rig("front", look_at(np.array(eye, np.float64))[None], 40.0, size, size)


def render(path, rig=None, **kw) -> np.ndarray:
    renderer = get_renderer(RENDER_SIZE, RENDER_SIZE)
    return renderer.render(load_mesh(path, **kw), rig or front_rig(), depth=False).rgba[0]


def centre(img, dx=0, dy=0, r=3) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = h // 2 + dy, w // 2 + dx
    return img[y - r: y + r, x - r: x + r].reshape(-1, 4).astype(np.float64).mean(0)
