"""Inception-v3 pool3 features with the standard FID network and input handling (torch-fidelity).

The paper profile uses torch-fidelity's ``FeatureExtractorInceptionV3`` — the TensorFlow 2015-12-05 FID
graph ported to PyTorch, the network behind torch-fidelity's and torchmetrics' FID — loaded from a local
weight file (see :mod:`mme3dr.features.weights`). Input handling is that network's own: uint8 RGB,
TF1-compatible bilinear resize to 299×299, ``(x − 128) / 128``; the output is the 2048-d pool3 vector.

The smoke profile's :class:`TinyInceptionLike` keeps exactly that input handling and output size but
replaces the body with four strided convolutions, so it is cheap and needs no weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mme3dr.features.image_preprocessing import batches, check_images
from mme3dr.features.weights import ResolvedWeights, WeightSpec, resolve_weights

INPUT_SIZE = 299
POOL3_DIM = 2048


def resize_bilinear_tf1(x, size: int = INPUT_SIZE):
    """TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centres), the FID input resize.

    Args:
        x: (N, C, H, W) tensor, any real dtype (uint8 renders are cheapest).
        size: output height and width.

    Returns:
        (N, C, size, size) float32, bit-identical to torch-fidelity's
        ``interpolate_bilinear_2d_like_tensorflow1x(method="slow")`` on CPU (tested): the same grid and
        the same lerp order, but each source row and column is gathered once, before the float
        conversion, instead of four double gathers of the float image, and the lerps run in place.
        On CPU the gathers are numpy's ``take``: torch's ``index_select`` along the last axis of a
        uint8 tensor is ≈ 4× slower (24 views of 512²: 0.33 s against 0.10 s a render on one core,
        benchmarks in docs/benchmarks.md); the values gathered, and so the bits, are the same.
    """
    import torch

    def grid(in_size: int):
        g = torch.arange(0, size, 1, dtype=torch.float32) * torch.tensor(in_size / size, dtype=torch.float32)
        lo = g.long()
        return lo, (lo + 1).clamp_max(in_size - 1), g - lo.float()

    y_lo, y_hi, dy = grid(x.shape[2])
    x_lo, x_hi, dx = grid(x.shape[3])
    dx = dx.view(1, 1, 1, size)
    if x.device.type == "cpu":
        arr = x.numpy()

        def take(a, axis: int, index):
            return torch.from_numpy(np.take(a, index.numpy(), axis=axis))

        rows_lo, rows_hi = arr.take(y_lo.numpy(), axis=2), arr.take(y_hi.numpy(), axis=2)
    else:

        def take(a, axis: int, index):
            return a.index_select(axis, index.to(a.device))

        rows_lo, rows_hi = take(x, 2, y_lo), take(x, 2, y_hi)
        dx, dy = dx.to(x.device), dy.to(x.device)

    def lerp_columns(rows):
        left = take(rows, 3, x_lo).to(torch.float32)
        right = take(rows, 3, x_hi).to(torch.float32)
        # left + (right - left) * dx, in place (IEEE + and * commute, so the bits are the same): the
        # fresh 24 x 3 x 299² temporaries of the out-of-place form cost as much as the arithmetic.
        return right.sub_(left).mul_(dx).add_(left)

    top, bottom = lerp_columns(rows_lo), lerp_columns(rows_hi)
    return bottom.sub_(top).mul_(dy.view(1, 1, size, 1)).add_(top)


@dataclass
class InceptionEncoder:
    """Pool3 features: ``__call__(images (N, H, W, 3) uint8) -> (N, 2048) float64``."""

    model: object
    model_id: str
    weights_sha256: str
    device: str = "cpu"
    batch_size: int = 32
    input_size: int = INPUT_SIZE
    resize_filter: str = "tf1-bilinear"
    kind: str = "inception"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        arr = check_images(images)
        out = []
        with torch.inference_mode():
            for sl in batches(len(arr), self.batch_size):
                # Contiguous NCHW: torch-fidelity's resize gathers rows and columns, ~2× slower on a
                # permuted (channels-last) view.
                x = torch.from_numpy(np.ascontiguousarray(arr[sl])).permute(0, 3, 1, 2).contiguous()
                x = x.to(self.device)
                feats = self.model(x)
                feats = feats[0] if isinstance(feats, (tuple, list)) else feats
                out.append(feats.reshape(feats.shape[0], -1).to(torch.float64).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, POOL3_DIM))

    def card(self) -> dict:
        return {
            "model_id": self.model_id,
            "weights_sha256": self.weights_sha256,
            "input_size": self.input_size,
            "resize": "TF1-compatible bilinear to 299x299 (torch-fidelity), no crop",
            "normalise": "(x - 128) / 128 on uint8 RGB",
            "feature": "pool3, 2048-d",
        }


def build_tiny_inception(seed: int):
    """A random-initialised stand-in with the FID network's input handling and 2048-d output."""
    import torch
    from torch import nn

    class TinyInceptionLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            chans = [3, 8, 16, 32, 64]
            layers: list[nn.Module] = []
            for cin, cout in zip(chans[:-1], chans[1:], strict=True):
                layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            # 1×1 projection to the pool3 width, then global average pooling as in Inception's pool3.
            # In-place ReLUs and normalisation: the same bits without fresh 24-view temporaries.
            layers += [nn.Conv2d(chans[-1], POOL3_DIM, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)]
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            x = resize_bilinear_tf1(x, INPUT_SIZE).sub_(128).div_(128)
            return self.body(x).flatten(1)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyInceptionLike()
    return model.eval().requires_grad_(False)


def build_inception_from_weights(
    resolved: ResolvedWeights, device: str = "cpu", batch_size: int = 32
) -> InceptionEncoder:
    """torch-fidelity's FID Inception-v3 with the resolved weight file (a state dict, loaded strictly)."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = resolved.path()
    # Refuse pickles that are not plain state dicts before torch-fidelity unpickles them unrestricted.
    try:
        torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path} is not a readable Inception state dict ({detail})") from exc
    model = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
    )
    return InceptionEncoder(
        model=model.to(device).eval(),
        model_id=resolved.spec.model_id,
        weights_sha256=resolved.sha256(),
        device=device,
        batch_size=batch_size,
    )


def load_inception(
    spec: WeightSpec | str = "inception-v3-fid",
    device: str = "cpu",
    weights_dir: str | Path | None = None,
    batch_size: int = 32,
) -> InceptionEncoder:
    """Resolve the FID Inception weights (local dir / torch hub cache / download) and build the encoder."""
    resolved = resolve_weights(spec, weights_dir)
    return build_inception_from_weights(resolved, device=device, batch_size=batch_size)
