"""Alpha handling of rendered views: un-premultiplying read-backs and compositing onto white.

Pure numpy (no OpenGL): metrics import :func:`composite_on_white` without a renderer.
"""

from __future__ import annotations

import numpy as np

__all__ = ["composite_on_white", "unpremultiply"]


def unpremultiply(color: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 premultiplied RGBA (what multisample resolve yields at edges) -> straight alpha.

    rgb_straight = round(rgb * 255 / a) for 0 < a < 255, clipped to 255; a = 0 gives rgb 0.
    """
    # Fast path (views without BLEND surfaces): alpha only 0 or 255. (a - 1) wraps 0 -> 255 and
    # 255 -> 254, so partial alphas 1..254 are exactly the values below 254. Uncovered pixels hold the
    # clear colour 0.
    if not ((color[..., 3] - np.uint8(1)) < 254).any():
        return np.ascontiguousarray(color)
    alpha = color[..., 3:4].astype(np.uint32)
    rgb = color[..., :3].astype(np.uint32)
    straight = np.where(alpha > 0, (rgb * 255 + alpha // 2) // np.maximum(alpha, 1), 0)
    return np.concatenate([np.minimum(straight, 255), alpha], axis=-1).astype(np.uint8)


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(..., H, W, 4) uint8 straight-alpha RGBA -> (..., H, W, 3) uint8 over a white background.

    out = round((rgb * a + 255 * (255 - a)) / 255), in integers so it is exact and platform-free.
    """
    rgba = np.asarray(rgba)
    if rgba.dtype != np.uint8 or rgba.shape[-1] != 4:
        raise ValueError(f"expected (..., H, W, 4) uint8 RGBA, got {rgba.shape} {rgba.dtype}")
    # Alpha 0 or 255 (every pixel not on a BLEND surface) needs no arithmetic: the
    # formula gives rgb at 255 and white at 0. OR-ing 0x00FFFFFF into the little-endian RGBA word of
    # each transparent pixel makes it white; the partial-alpha pixels, if any, then get the formula.
    # ~2.5x faster than the formula everywhere on a 24-view render; same bytes (tested).
    rgba = np.ascontiguousarray(rgba)
    words = rgba.view("<u4")[..., 0]
    alpha = rgba[..., 3]
    whitened = (words | np.where(alpha == 0, np.uint32(0x00FFFFFF), np.uint32(0))).astype("<u4", copy=False)
    out = np.ascontiguousarray(whitened.view(np.uint8).reshape(rgba.shape)[..., :3])
    partial = (alpha - np.uint8(1)) < 254  # 1..254; uint8 wrap-around sends 0 to 255
    if partial.any():
        out[partial] = _composite_formula(rgba[partial])
    return out


def _composite_formula(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 -> (..., 3): round((rgb * a + 255 * (255 - a)) / 255) in integers."""
    rgb = rgba[..., :3].astype(np.uint16)
    a = rgba[..., 3:4].astype(np.uint16)
    # x = rgb*a + 255*(255-a) + 127 <= 65,152 fits uint16, and for 0 <= x < 65,535 the exact floor(x / 255)
    # is (x + 1 + (x >> 8)) >> 8 (<= 65,407, no overflow): ~2.5x faster here than numpy's uint32 division,
    # same bytes (checked over all 65,536 (value, alpha) pairs in the tests).
    x = rgb * a + 255 * (255 - a) + 127
    return ((x + 1 + (x >> 8)) >> 8).astype(np.uint8)
