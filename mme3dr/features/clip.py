"""CLIP image and text encoders through open_clip (protocol default: OpenAI ViT-B/32).

Preprocessing is open_clip's for OpenAI weights: PIL bicubic resize of the shorter side to the model's
input size (224 for ViT-B/32 and ViT-L/14), centre crop, ``(x/255 − mean)/std`` with OpenAI's statistics.
Text is tokenised by open_clip's tokenizer, which truncates to the 77-token context (keeping the
end-of-text token) instead of failing on long captions.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mme3dr.features.image_preprocessing import (
    OPENAI_MEAN,
    OPENAI_STD,
    batches,
    check_images,
    resize_center_crop,
    to_normalised_tensor,
)
from mme3dr.features.weights import ResolvedWeights, WeightSpec, resolve_weights


@dataclass
class ClipEncoder:
    """A CLIP model ready to embed images and texts. Outputs are L2-normalised ``float64``.

    Attributes: ``model_id`` (stable id for the metric card), ``input_size`` (px), ``weights_sha256``,
    ``device``, ``batch_size``.
    """

    model: object
    tokenizer: object
    model_id: str
    input_size: int
    weights_sha256: str
    device: str = "cpu"
    batch_size: int = 32
    mean: tuple = OPENAI_MEAN
    std: tuple = OPENAI_STD
    resize_filter: str = "bicubic"
    kind: str = "clip"

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", 77))

    def preprocess(self, images: np.ndarray):
        """``(N, H, W, 3) uint8`` → ``(N, 3, S, S) float32`` tensor on the encoder's device."""
        arr = check_images(images)
        s = self.input_size
        crops = np.stack([resize_center_crop(im, s, s, self.resize_filter) for im in arr])
        return to_normalised_tensor(crops, self.mean, self.std).to(self.device)

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3) uint8`` RGB → ``(N, D) float64``, each row unit-norm."""
        import torch

        arr = check_images(images)
        out = []
        with torch.inference_mode():
            for sl in batches(len(arr), self.batch_size):
                feats = self.model.encode_image(self.preprocess(arr[sl]))
                out.append(feats.to(torch.float64).cpu().numpy())
        return _unit(np.concatenate(out) if out else np.zeros((0, 0)))

    def tokenize(self, texts: list[str]):
        """``list[str]`` → ``(N, context_length) int64`` tokens, truncated to the context."""
        if isinstance(texts, str):
            texts = [texts]
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("CLIP texts must be strings")
        return self.tokenizer(list(texts))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """``list[str]`` → ``(N, D) float64``, each row unit-norm; texts over 77 tokens are truncated."""
        import torch

        texts = [texts] if isinstance(texts, str) else list(texts)
        out = []
        with torch.inference_mode():
            for sl in batches(len(texts), self.batch_size):
                tokens = self.tokenize(texts[sl]).to(self.device)
                out.append(self.model.encode_text(tokens).to(torch.float64).cpu().numpy())
        return _unit(np.concatenate(out))

    def card(self) -> dict:
        return {
            "model_id": self.model_id,
            "weights_sha256": self.weights_sha256,
            "input_size": self.input_size,
            "resize": f"PIL {self.resize_filter}, shorter side to {self.input_size}, centre crop",
            "normalise": {"mean": list(self.mean), "std": list(self.std)},
            "context_length": self.context_length,
            "text_truncation": "open_clip tokenizer, truncated to the context keeping end-of-text",
        }


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def read_state_dict(path: Path) -> dict:
    """A state dict from ``.safetensors`` or a torch pickle (``weights_only=True``: no code execution)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def build_clip_from_weights(
    resolved: ResolvedWeights, device: str = "cpu", batch_size: int = 32
) -> ClipEncoder:
    """Build the open_clip architecture ``spec.arch`` and load the resolved weight file (strict)."""
    import open_clip

    spec = resolved.spec
    with quiet_open_clip():
        model = open_clip.create_model(spec.arch, pretrained=None, force_quick_gelu=spec.quick_gelu)
    state = read_state_dict(resolved.path())
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Buffers open_clip recreates (e.g. attention masks) may be absent from a checkpoint; weights may not.
    bad = [k for k in missing if not k.endswith("attn_mask")] + list(unexpected)
    if bad:
        raise ValueError(
            f"{resolved.path()} does not fit open_clip {spec.arch}: {len(bad)} mismatched keys "
            f"(first: {bad[:3]}); is it the right file for {spec.model_id}?"
        )
    model = model.to(device).eval()
    return ClipEncoder(
        model=model,
        tokenizer=open_clip.get_tokenizer(spec.arch),
        model_id=spec.model_id,
        input_size=_input_size(model),
        weights_sha256=resolved.sha256(),
        device=device,
        batch_size=batch_size,
    )


def load_clip(
    spec: WeightSpec | str, device: str = "cpu", weights_dir: str | Path | None = None, batch_size: int = 32
) -> ClipEncoder:
    """Resolve ``spec``'s weights (local dir / HF cache / download) and build the encoder."""
    return build_clip_from_weights(resolve_weights(spec, weights_dir), device=device, batch_size=batch_size)


@contextmanager
def quiet_open_clip():
    """Silence open_clip's "No pretrained weights loaded" warning: we load (or seed) weights ourselves."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _input_size(model) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)
