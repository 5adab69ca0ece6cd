"""DINOv2 CLS features through Hugging Face transformers (protocol default: facebook/dinov2-base).

Preprocessing is the model's own ``preprocessor_config.json`` (BitImageProcessor), which the authors'
script used through ``AutoImageProcessor``: PIL bicubic resize of the shorter side to 256, centre crop
224, ``(x/255 − mean)/std`` with ImageNet statistics. The feature is the CLS token after the final layer
norm (``pooler_output``), 768-d for base, 1024-d for large.

``pre_resize`` (the ``ar3d-r1-script`` profile: 224) first resizes every image to that square size with
PIL's bicubic filter, before the processor, as the authors' ``eval.py`` does
(``Image.open(p).resize((224, 224))``, whose default filter is bicubic for RGB images).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mme3dr.features.image_preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    batches,
    check_images,
    resize_center_crop,
    to_normalised_tensor,
)
from mme3dr.features.weights import ResolvedWeights, WeightSpec, resolve_weights

RESIZE_TO = 256
CROP = 224


@dataclass
class Dinov2Encoder:
    """CLS features: ``__call__(images (N, H, W, 3) uint8) -> (N, D) float64``."""

    model: object
    model_id: str
    weights_sha256: str
    device: str = "cpu"
    batch_size: int = 32
    input_size: int = CROP
    resize_to: int = RESIZE_TO
    resize_filter: str = "bicubic"
    kind: str = "dinov2"
    pre_resize: int | None = None

    def preprocess(self, images: np.ndarray):
        arr = check_images(images)
        if self.pre_resize:
            side = (self.pre_resize, self.pre_resize)
            bicubic = Image.Resampling.BICUBIC
            arr = np.stack([np.asarray(Image.fromarray(im).resize(side, bicubic)) for im in arr])
        size, crop = self.resize_to, self.input_size
        crops = np.stack([resize_center_crop(im, size, crop, self.resize_filter, "floor") for im in arr])
        return to_normalised_tensor(crops, IMAGENET_MEAN, IMAGENET_STD).to(self.device)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        arr = check_images(images)
        out = []
        with torch.inference_mode():
            for sl in batches(len(arr), self.batch_size):
                cls = self.model(pixel_values=self.preprocess(arr[sl])).pooler_output
                out.append(cls.to(torch.float64).cpu().numpy())
        return np.concatenate(out)

    def card(self) -> dict:
        pre = f"PIL bicubic to {self.pre_resize}x{self.pre_resize}, then " if self.pre_resize else ""
        return {
            "model_id": self.model_id,
            "weights_sha256": self.weights_sha256,
            "input_size": self.input_size,
            "resize": f"{pre}PIL {self.resize_filter}, shorter side to {self.resize_to}, "
            f"centre crop {self.input_size}",
            "normalise": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "feature": "CLS token after the final layer norm (pooler_output)",
        }


def build_dinov2_from_weights(
    resolved: ResolvedWeights, device: str = "cpu", batch_size: int = 32, pre_resize: int | None = None
) -> Dinov2Encoder:
    """``Dinov2Model.from_pretrained`` on the resolved directory (config.json + model.safetensors)."""
    from transformers import Dinov2Model

    model = Dinov2Model.from_pretrained(str(resolved.directory), local_files_only=True)
    return Dinov2Encoder(
        model=model.to(device).eval(),
        model_id=resolved.spec.model_id,
        weights_sha256=resolved.sha256(),
        device=device,
        batch_size=batch_size,
        pre_resize=pre_resize,
    )


def load_dinov2(
    spec: WeightSpec | str = "dinov2-base",
    device: str = "cpu",
    weights_dir: str | Path | None = None,
    batch_size: int = 32,
    pre_resize: int | None = None,
) -> Dinov2Encoder:
    """Resolve the DINOv2 weights (local dir / HF cache / download) and build the encoder."""
    return build_dinov2_from_weights(resolve_weights(spec, weights_dir), device=device, batch_size=batch_size,
                                     pre_resize=pre_resize)
