"""Images for a judge request: encode once, hash the exact bytes sent, wrap as a base64 data URL.

The hash that keys the response cache is the sha256 of the encoded bytes (PNG or JPEG), so the same
pixels sent in another format or JPEG quality are a different question, as they are to the model.
RGBA renders are composited onto white first (the protocol's background for every metric,
``design.md`` §3), because JPEG has no alpha and servers differ in how they flatten PNG alpha.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Formats a data URL may carry. JPEG quality 95 follows UnifiedReward's own client.
FORMATS = {"png": "image/png", "jpeg": "image/jpeg"}
DEFAULT_JPEG_QUALITY = 95


@dataclass(frozen=True)
class EncodedImage:
    """One image as sent: ``data`` (PNG/JPEG bytes), ``mime`` and ``sha256`` (hex, of ``data``)."""

    data: bytes
    mime: str
    sha256: str

    def data_url(self) -> str:
        """``data:<mime>;base64,<payload>``, the form OpenAI's ``image_url`` content part accepts."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4) uint8`` RGBA → ``(H, W, 3) uint8`` composited over white (straight alpha).

    ``out = rgb·a + 255·(1 − a)`` with ``a = alpha/255``, rounded half up. (Same maths as
    ``mme3dr.render.composite_on_white``, repeated here because the judge must not import the renderer.)
    """
    rgb = rgba[..., :3].astype(np.float32)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.floor(rgb * a + 255.0 * (1.0 - a) + 0.5).astype(np.uint8)


def encode_image(
    image: np.ndarray | Image.Image | bytes | str | Path,
    fmt: str = "png",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> EncodedImage:
    """Encode one image for a request.

    Args:
        image: ``(H, W, 3|4) uint8`` array, a PIL image, a path to an image file, or already-encoded
            PNG/JPEG ``bytes`` (sent unchanged, whatever ``fmt`` says).
        fmt: ``"png"`` or ``"jpeg"``.
        jpeg_quality: 1–95, JPEG only.

    Raises:
        ValueError: unknown format, or an array that is not ``(H, W, 3|4) uint8``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"image format must be one of {sorted(FORMATS)}, got {fmt!r}")
    if isinstance(image, bytes):
        return _from_bytes(image)
    if isinstance(image, (str, Path)):
        return encode_image(np.asarray(Image.open(image)), fmt, jpeg_quality)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3|4) uint8 image, got {arr.shape} {arr.dtype}")
    if arr.shape[-1] == 4:
        arr = flatten_on_white(arr)
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(arr).save(buf, format="PNG", compress_level=1)  # level 1: fast, still lossless
    else:
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(jpeg_quality))
    data = buf.getvalue()
    return EncodedImage(data=data, mime=FORMATS[fmt], sha256=hashlib.sha256(data).hexdigest())


def _from_bytes(data: bytes) -> EncodedImage:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        mime = FORMATS["png"]
    elif data[:3] == b"\xff\xd8\xff":
        mime = FORMATS["jpeg"]
    else:
        raise ValueError("encoded image bytes are neither PNG nor JPEG (checked the file signature)")
    return EncodedImage(data=data, mime=mime, sha256=hashlib.sha256(data).hexdigest())
