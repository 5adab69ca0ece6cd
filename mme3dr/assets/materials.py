"""The one material model every reader fills and the renderer draws (protocol v1, docs/rendering.md).

Light module (numpy + Pillow). It holds what the glTF 2.0 metallic-roughness model says about a
surface's *colour and coverage*, which is all protocol v1 shades with:

- base colour = ``base_color_factor`` x base-colour texture (sRGB-decoded) x vertex colour (linear),
  glTF 2.0 §3.9.2 ("The base color ... MUST be multiplied by the base color factor ... COLOR_0 ...
  multiplies the base color");
- the texture's coordinate set (``texCoord``) and ``KHR_texture_transform`` as a 3x3 UV matrix;
- ``alphaMode`` OPAQUE / MASK (``alphaCutoff``) / BLEND (glTF 2.0 §3.9.4);
- ``doubleSided`` (back faces culled when False, glTF 2.0 §3.9.5);
- ``KHR_materials_unlit`` (the base colour is shown without lighting).

Readers turn everything else they meet into ``unsupported_feature`` failures or ignore it where the
protocol shading has no use for it (metallic/roughness: every surface is shaded as a diffuse dielectric).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ALPHA_MODES",
    "UNCOLOURED",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "ImageTooLarge",
    "Material",
    "Texture",
    "decode_image",
    "linear_to_srgb",
    "srgb_to_linear",
    "uv_transform_matrix",
]

ALPHA_MODES = ("OPAQUE", "MASK", "BLEND")
UNCOLOURED_GREY = 0.8  # design.md §3: an asset that says nothing about colour renders 0.8 grey (linear)

# GL sampler enums as glTF stores them (glTF 2.0 §5.26).
NEAREST, LINEAR = 9728, 9729
NEAREST_MIPMAP_NEAREST, LINEAR_MIPMAP_NEAREST = 9984, 9985
NEAREST_MIPMAP_LINEAR, LINEAR_MIPMAP_LINEAR = 9986, 9987
CLAMP_TO_EDGE, MIRRORED_REPEAT, REPEAT = 33071, 33648, 10497


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1 decoding); float32, same shape."""
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] (clipped) -> sRGB-encoded (IEC 61966-2-1 encoding); float64."""
    c = np.clip(np.asarray(c, np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)


@dataclass
class Texture:
    """A decoded base-colour image: ``rgba`` (h, w, 4) uint8, sRGB-encoded colour, linear alpha, row 0
    = the image's top (glTF UV (0, 0) is the image's top-left corner). Sampler fields are glTF enums."""

    rgba: np.ndarray
    mag_filter: int = LINEAR
    min_filter: int = LINEAR_MIPMAP_LINEAR
    wrap_s: int = REPEAT
    wrap_t: int = REPEAT
    source: str = ""  # where it came from (file name or "image 3"), for error messages and notes


@dataclass
class Material:
    """One surface's colour and coverage. ``base_color_factor`` (4,) float32 is linear RGBA.

    ``uv_transform`` (3, 3) float32 maps (u, v, 1) of the texture's coordinate set ``tex_coord`` to the
    sampling coordinates (KHR_texture_transform: T · R · S). ``uncoloured`` marks the protocol's grey
    default for assets that give no colour at all (never set when a file gives any colour).
    """

    base_color_factor: np.ndarray = field(default_factory=lambda: np.ones(4, np.float32))
    texture: Texture | None = None
    tex_coord: int = 0
    uv_transform: np.ndarray = field(default_factory=lambda: np.eye(3, dtype=np.float32))
    alpha_mode: str = "OPAQUE"
    alpha_cutoff: float = 0.5
    double_sided: bool = True
    unlit: bool = False
    uncoloured: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        self.base_color_factor = np.asarray(self.base_color_factor, np.float32).reshape(4)
        if self.alpha_mode not in ALPHA_MODES:
            raise ValueError(f"alpha_mode must be one of {ALPHA_MODES}, not {self.alpha_mode!r}")

    @classmethod
    def grey(cls) -> Material:
        """The protocol's material for a surface whose file says nothing about colour."""
        return cls(base_color_factor=np.array([UNCOLOURED_GREY] * 3 + [1.0], np.float32), uncoloured=True)


UNCOLOURED = Material.grey


def uv_transform_matrix(offset=(0.0, 0.0), rotation: float = 0.0, scale=(1.0, 1.0)) -> np.ndarray:
    """(3, 3) float32 KHR_texture_transform matrix T(offset) · R(rotation) · S(scale).

    From the extension's reference (KHR_texture_transform README): rotation is counter-clockwise in UV
    space, R = [[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]], applied to column vectors (u, v, 1).
    """
    c, s = np.cos(rotation), np.sin(rotation)
    t = np.array([[1, 0, offset[0]], [0, 1, offset[1]], [0, 0, 1]], np.float64)
    r = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], np.float64)
    sc = np.array([[scale[0], 0, 0], [0, scale[1], 0], [0, 0, 1]], np.float64)
    return (t @ r @ sc).astype(np.float32)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Integer samples of any bit depth -> uint8 by rounding v * 255 / max (exact for 8 bits)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    top = 65535.0 if a.dtype in (np.uint16, np.int32, np.int64, np.uint32) else float(np.iinfo(a.dtype).max)
    return np.clip(np.rint(a.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


#: Pixels a texture may declare: 8192 x 8192 (256 MB as RGBA). Checked from the image header before any
#: pixel is decoded, so a 13,000 x 13,000 image (or a small PNG that inflates to it) costs nothing.
MAX_IMAGE_PIXELS = 8192 * 8192
#: Pixels a texture may have along either side: 16384, the smallest GL_MAX_TEXTURE_SIZE that OpenGL 4.1+
#: guarantees (and llvmpipe's). A wider or taller image is refused (``image_too_large``) rather than
#: resampled or handed to a driver that would sample it as black, so a score never depends on the driver.
MAX_IMAGE_SIDE = 16384


class ImageTooLarge(ValueError):
    """An image declares more than ``MAX_IMAGE_PIXELS`` pixels, or a side longer than ``MAX_IMAGE_SIDE``
    (``str`` gives its size and the cap)."""


def decode_image(data: bytes, source: str = "") -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, WebP, any bit depth and channel count) -> (h, w, 4) uint8 RGBA.

    Grey is replicated to RGB; missing alpha is 255; a palette with transparency keeps it. Samples
    deeper than 8 bits (16-bit PNG, opened by Pillow as mode I;16 or I) are rounded to 8 bits, v·255/65535
    (so 32896 -> 128). Colour-management data (ICC profiles, gamma chunks) is ignored, as glTF 2.0 §3.8.4
    requires. Raises :class:`ImageTooLarge` when the header declares more than ``MAX_IMAGE_PIXELS``
    pixels or a side longer than ``MAX_IMAGE_SIDE`` (nothing is decoded), ``ValueError`` naming
    ``source`` if Pillow cannot decode it.
    """
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap decides
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # Pillow's own limit (2 x 89 M pixels) came first
        raise ImageTooLarge(f"image {source or '(embedded)'}: {exc}") from exc
    except Exception as exc:
        raise ValueError(f"image {source or '(embedded)'} could not be decoded ({type(exc).__name__}: "
                         f"{exc})") from exc
    width, height = im.size
    if width * height > MAX_IMAGE_PIXELS:
        im.close()
        raise ImageTooLarge(f"image {source or '(embedded)'} declares {width:,} x {height:,} pixels, more "
                            f"than the {MAX_IMAGE_PIXELS:,} the loader decodes; downscale the texture")
    if max(width, height) > MAX_IMAGE_SIDE:
        im.close()
        raise ImageTooLarge(f"image {source or '(embedded)'} is {width:,} x {height:,} pixels, a side longer "
                            f"than the {MAX_IMAGE_SIDE:,} every renderer can sample; downscale the texture")
    try:
        with im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                grey = _to_uint8(np.asarray(im).astype(np.int64).clip(0, 65535).astype(np.uint16))
                rgba = np.empty((*grey.shape, 4), np.uint8)
                rgba[..., :3] = grey[..., None]
                rgba[..., 3] = 255
                return rgba
            if mode == "F":
                raise ValueError("floating-point images are not a glTF image format")
            if mode == "P":
                im = im.convert("RGBA")
            elif mode in ("L", "1"):
                im = im.convert("L").convert("RGBA")
            elif mode == "LA" or mode == "La":
                im = im.convert("RGBA")
            elif mode != "RGBA":
                im = im.convert("RGB").convert("RGBA")  # CMYK, YCbCr, RGB, RGBa, ...
            return np.ascontiguousarray(np.asarray(im, np.uint8))
    except Exception as exc:
        where = source or "(embedded)"
        raise ValueError(f"image {where} could not be decoded ({type(exc).__name__}: {exc})") from exc
