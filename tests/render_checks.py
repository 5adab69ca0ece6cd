"""Shared helpers for the render tests: silhouette agreement and an independent pinhole projection."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


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

    Written from the pinhole model, independent of pyrender: world -> camera by the inverse of the
    OpenGL camera-to-world (camera looks down -Z, +Y up), then x_pix = W/2 + f x / (-z),
    y_pix = H/2 - f y / (-z) with f = (H/2) / tan(fov_y / 2).
    """
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    f = (height / 2.0) / np.tan(np.radians(fov_y_deg) / 2.0)
    depth = -cam[:, 2]
    return np.stack([width / 2.0 + f * cam[:, 0] / depth, height / 2.0 - f * cam[:, 1] / depth], axis=1)


def face_on_pixel(base_rgb_linear, vertex_rgb_linear=(1.0, 1.0, 1.0), intensity=3.0, ambient=0.3):
    """Expected 8-bit colour of a surface seen face-on under the protocol headlight.

    Independent re-derivation of pyrender's metallic-roughness shader for n = v = l (so n.l = n.v =
    n.h = v.h = 1) with metallic 0, roughness 1: F = f0 = 0.04, G = 1, D = 1/pi,
    c_diff = base (1 - 0.04); colour = I ((1 - F) c_diff / pi + F G D / (4 + 0.001)) + ambient base,
    times the vertex colour, then gamma 1/2.2.
    """
    base = np.asarray(base_rgb_linear, np.float64)
    f0 = 0.04
    c_diff = base * (1.0 - 0.04)
    lit = intensity * ((1.0 - f0) * c_diff / np.pi + f0 * (1.0 / np.pi) / (4.0 + 0.001))
    colour = (lit + ambient * base) * np.asarray(vertex_rgb_linear, np.float64)
    return np.clip(colour, 0.0, 1.0) ** (1.0 / 2.2) * 255.0
