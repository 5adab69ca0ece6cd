"""HPS v2.1 (Human Preference Score), in process: open_clip ViT-H-14 + the HPS v2.1 checkpoint.

Source: Wu et al. 2023, "Human Preference Score v2" (github.com/tgxs002/HPSv2, ``hpsv2/img_score.py``);
facts in shapellm-facts.md. What we reproduce:

- **Model:** the open_clip ``ViT-H-14`` architecture with every weight from ``HPS_v2.1_compressed.pt``
  (a torch pickle ``{"state_dict": ...}``, half precision; hub ``xswu/HPSv2``), loaded strictly
  through ``mme3dr.features`` (local dir / HF cache / download; offline, the error names the file and
  where to put it). The ``hpsv2`` package is not used: it defaults to v2.0, downloads on first use and
  its 1.2.0 wheel lacks the tokenizer vocabulary.
- **Preprocessing:** open_clip's eval transform with ``resize_mode="longest"``: the longer side resized
  to the model's input size (224) with PIL bicubic, zero-padded (black) to a square, centred
  (left/top pad = ⌊pad/2⌋), then ``(x/255 − mean)/std`` with OpenAI's statistics. Renders are RGBA
  and are composited onto white first (the protocol's background).
- **Score:** the cosine of the L2-normalised image and text features, no logit scale, so in [−1, 1]
  (≈ 0.2–0.35 for real images). The text is open_clip's tokenizer output (77 tokens, truncated).
- **Reward:** the max over a sample's views (6 reward views in the paper).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ar3d_r1.rewards.outputs import RewardBatch
from mme3dr.features.image_preprocessing import OPENAI_MEAN, OPENAI_STD
from mme3dr.features.weights import WeightSpec, resolve_weights
from mme3dr.judge.images import flatten_on_white

HPS_V21 = WeightSpec(
    key="hps-v2.1",
    kind="open_clip",
    model_id="xswu/HPSv2:HPS_v2.1_compressed.pt (open_clip ViT-H-14)",
    arch="ViT-H-14",
    files=("HPS_v2.1_compressed.pt",),
    hub_repo="xswu/HPSv2",
    description="HPS v2.1 human-preference reward (AR3D-R1 step-1 and step-2 reward)",
)


class HPSLoadError(ValueError):
    """HPS cannot load: its device is not a torch device or is not there (CUDA without a GPU), or the
    checkpoint does not fit the architecture. The message says which and what to change."""


def check_device(device: str, where: str = "device") -> None:
    """Raise :class:`HPSLoadError` unless ``device`` parses as a torch device that this machine has
    (``cuda``/``cuda:N`` need ``torch.cuda.is_available()`` and N below the GPU count). ``where`` names
    the setting in the message."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise HPSLoadError(f"{where} {device!r} is not a torch device ({str(exc).splitlines()[0]}); "
                           "use cuda, cuda:N or cpu") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HPSLoadError(f"{where} {device!r}: CUDA is not available on this machine "
                           "(torch.cuda.is_available() is False); use cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise HPSLoadError(f"{where} {device!r}: this machine has {torch.cuda.device_count()} GPU(s)")


class HPSReward:
    """HPS v2.1 as a reward callable; dimension ``hps``, range [−1, 1] (cosine).

    Args:
        weights_dir: a weights directory (``<dir>/hps-v2.1/HPS_v2.1_compressed.pt``), else the usual
            resolution order of ``mme3dr.features.weights``.
        device: torch device.
        spec: the weight spec (tests pass a tiny architecture with an HPS-format checkpoint).
        batch_size: images per forward pass.

        dir_option: how the user sets ``weights_dir``, for the missing-file message (default: the
            ``--weights-dir`` of mme3dr's CLI).

    Raises:
        WeightsNotFoundError: the checkpoint is not found (the message says where to put it).
        HPSLoadError (a ValueError): the device is not there (CUDA without a GPU), or the checkpoint does
            not fit the architecture.
    """

    name = "hps"
    dimensions = ("hps",)
    ranges = {"hps": (-1.0, 1.0)}

    def __init__(self, weights_dir: str | Path | None = None, device: str = "cpu",
                 spec: WeightSpec = HPS_V21, batch_size: int = 12, dir_option: str | None = None):
        from open_clip.transform import image_transform

        from mme3dr.features.clip import build_clip_from_weights

        check_device(device, "HPS device")  # before the checkpoint: a missing GPU is not a bad file
        resolved = resolve_weights(spec, weights_dir, dir_option=dir_option)
        try:
            self.encoder = build_clip_from_weights(resolved, device=device, batch_size=batch_size)
        except RuntimeError as exc:
            if "size mismatch" not in str(exc):  # only a shape mismatch on load_state_dict is the file's
                raise
            raise HPSLoadError(f"{resolved.path()} does not fit open_clip {spec.arch}: "
                               f"{str(exc).splitlines()[0]}; is it the HPS v2.1 checkpoint?") from exc
        self.input_size = self.encoder.input_size
        self.transform = image_transform(self.input_size, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD,
                                         resize_mode="longest", interpolation="bicubic", fill_color=0)
        self.device, self.batch_size = device, batch_size

    def card(self) -> dict:
        return {**self.encoder.card(), "resize": f"longest side to {self.input_size}, PIL bicubic, "
                f"zero-pad to square", "score": "cosine of L2-normalised features, no logit scale"}

    def preprocess(self, images: np.ndarray):
        """``(N, H, W, 3|4) uint8`` → ``(N, 3, S, S) float32`` tensor (RGBA composited onto white)."""
        import torch
        from PIL import Image

        arr = np.asarray(images)
        if arr.ndim != 4 or arr.shape[-1] not in (3, 4) or arr.dtype != np.uint8:
            raise ValueError(f"expected (N, H, W, 3|4) uint8 views, got {arr.shape} {arr.dtype}")
        if arr.shape[-1] == 4:
            arr = flatten_on_white(arr)
        return torch.stack([self.transform(Image.fromarray(im)) for im in arr]).to(self.device)

    def image_features(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3|4) uint8`` → ``(N, D) float64`` unit rows."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = self.preprocess(images[start:start + self.batch_size])
                feats = self.encoder.model.encode_image(pixels)
                out.append(feats.to(torch.float64).cpu().numpy())
        feats = np.concatenate(out)
        return feats / np.linalg.norm(feats, axis=1, keepdims=True)

    def scores(self, prompts: Sequence[str], views: Sequence[np.ndarray]) -> np.ndarray:
        """Per-view HPS: ``(G,)`` prompts, ``(G, V, H, W, 3|4) uint8`` views → ``(G, V) float64`` cosines."""
        if len(prompts) != len(views):
            raise ValueError(f"{len(prompts)} prompts but {len(views)} view sets")
        texts = self.encoder.encode_texts(list(prompts))  # (G, D), unit rows
        counts = [len(v) for v in views]
        feats = self.image_features(np.concatenate([np.asarray(v) for v in views]))
        rows = np.split(feats, np.cumsum(counts)[:-1])
        return np.stack([r @ t for r, t in zip(rows, texts, strict=True)])

    def __call__(self, prompts: Sequence[str], views: Sequence[np.ndarray], **columns) -> RewardBatch:
        """HPS reward per sample: the max over its views. ``views[i]`` is ``(V, H, W, 3|4) uint8``."""
        per_view = self.scores(prompts, views)
        return RewardBatch({"hps": per_view.max(axis=1)}, [None] * len(prompts),
                           {"hps": self.card(), "per_view": per_view.tolist()})


def process_device(device: str | None) -> str:
    """``"cuda"`` → ``"cuda:<LOCAL_RANK>"`` when a launcher (accelerate, torchrun) set ``LOCAL_RANK``, so
    every process puts its copy on its own GPU; anything else unchanged (None → ``"cpu"``)."""
    device = str(device or "cpu")
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def hps_from_options(options: dict) -> HPSReward:
    """The HPS reward an endpoints file's ``hps`` block describes (keys ``weights_dir``, ``device``,
    ``batch_size``, ``arch``; all optional).

    ``device: cuda`` becomes ``cuda:<LOCAL_RANK>`` under a multi-process launcher, so each process keeps its
    copy on its own GPU. ``arch`` other than ``ViT-H-14`` loads an ``HPS_v2.1_compressed.pt``-format
    checkpoint of that open_clip architecture (the dry run's tiny stand-in, ``mme3dr-tiny-clip``).

    Raises:
        HPSLoadError: the device is not there (``hps.device: cuda`` without a GPU) or the checkpoint does
            not fit; WeightsNotFoundError: no checkpoint (the message says to set ``hps.weights_dir``).
    """
    opts = dict(options)
    device = process_device(opts.pop("device", "cpu"))
    check_device(device, "hps.device")
    spec = HPS_V21
    arch = opts.pop("arch", None)
    if arch and arch != HPS_V21.arch:
        from mme3dr.features.smoke import TINY_CLIP_ARCH, register_tiny_clip_config

        if arch == TINY_CLIP_ARCH:
            register_tiny_clip_config()
        spec = dataclasses.replace(HPS_V21, arch=arch)
    return HPSReward(weights_dir=opts.pop("weights_dir", None), device=device, spec=spec,
                     batch_size=int(opts.pop("batch_size", 12)),
                     dir_option="hps.weights_dir in the endpoints YAML")
