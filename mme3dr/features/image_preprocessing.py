"""Image preprocessing shared by the encoders: validation, PIL resize + centre crop, normalisation.

Resizing goes through PIL (``Image.resize`` with the named filter) because that is what open_clip's
and Hugging Face's reference transforms do for PIL inputs, and PIL's filters are deterministic across
machines, which keeps features reproducible to the byte on one library version.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}

#: ImageNet statistics (DINOv2's preprocessor_config.json).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: OpenAI CLIP statistics (open_clip.constants.OPENAI_DATASET_MEAN/STD).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def check_images(images: np.ndarray) -> np.ndarray:
    """Validate ``(N, H, W, 3) uint8`` RGB (already composited on white) and return it as an array.

    A single ``(H, W, 3)`` image is accepted and given a batch axis. RGBA input is refused: compositing
    onto the protocol background is the caller's job (``mme3dr.render.composite_on_white``).
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(
            f"expected RGB images shaped (N, H, W, 3), got {arr.shape}; "
            "composite RGBA renders onto white first"
        )
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {arr.dtype}")
    return arr


def resize_center_crop(
    image: np.ndarray, resize_to: int, crop: int, resample: str = "bicubic", offset: str = "round"
) -> np.ndarray:
    """Resize ``(H, W, 3) uint8`` so its shorter side is ``resize_to`` (PIL filter), then crop ``crop²``.

    Returns ``(crop, crop, 3) uint8``. The crop offset is ``round((size − crop) / 2)`` with
    ``offset="round"`` (torchvision's ``CenterCrop``, used by open_clip) or ``(size − crop) // 2`` with
    ``offset="floor"`` (Hugging Face's ``center_crop``, used by the DINOv2 processor); they differ by one
    pixel when ``size − crop`` is odd, which square renders never are.
    """
    h, w = image.shape[:2]
    if (h, w) != (resize_to, resize_to) or h != w:
        # Long side = int(resize_to · long / short), truncated as in torchvision's Resize and HF's
        # get_resize_output_image_size (rounding instead gives a 1 px different size on e.g. 296×416).
        new_w, new_h = (resize_to, int(resize_to * h / w)) if w <= h else (int(resize_to * w / h), resize_to)
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), _FILTERS[resample]))
    h, w = image.shape[:2]
    if offset == "round":
        top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    else:
        top, left = (h - crop) // 2, (w - crop) // 2
    return image[top : top + crop, left : left + crop]


def to_normalised_tensor(images: np.ndarray, mean: tuple, std: tuple):
    """``(N, S, S, 3) uint8`` → ``(N, 3, S, S) float32`` torch tensor, ``(x/255 − mean)/std``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def batches(n: int, size: int):
    """``range`` slices covering ``0..n`` in steps of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
