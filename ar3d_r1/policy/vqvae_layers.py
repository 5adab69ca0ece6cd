"""The layers of the 3D VQVAE (shapellm-facts.md): channels-last float32 LayerNorm, residual, down and up
blocks, the encoder and the decoder. :mod:`ar3d_r1.policy.vqvae` assembles them; the module and attribute
names here are the state-dict keys of the authors' ``3DVQVAE.bin``.

Torso precision: ``torso_dtype`` is the dtype of the convs inside ``blocks`` and ``middle_block`` (the
authors' ``use_fp16``); activations are cast to it after ``input_layer`` and back to float32 before
``out_layer``, and every norm computes in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Decoder3d", "DownBlock3d", "Encoder3d", "LayerNorm32", "ResBlock3d", "UpBlock3d", "pixel_shuffle_3d",
]


class LayerNorm32(nn.LayerNorm):
    """LayerNorm over the channel axis of (B, C, X, Y, Z), applied channels-last in float32 (eps 1e-5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float().movedim(1, -1)
        h = F.layer_norm(h, self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        return h.movedim(-1, 1).to(x.dtype)


def _conv(c_in: int, c_out: int) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, kernel_size=3, padding=1)


class ResBlock3d(nn.Module):
    """x + conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))): identity skip, keys norm1/conv1/norm2/conv2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm32(channels, eps=1e-5)
        self.conv1 = _conv(channels, channels)
        self.norm2 = LayerNorm32(channels, eps=1e-5)
        self.conv2 = _conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class DownBlock3d(nn.Module):
    """Conv3d(c_in -> c_out, kernel 2, stride 2): halves each side."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def pixel_shuffle_3d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, C*f^3, X, Y, Z) -> (B, C, fX, fY, fZ): channel c*f^3 + a*f^2 + b*f + d -> channel c at
    offset (a, b, d).

    The 3-D analogue of ``torch.nn.functional.pixel_shuffle`` (facts file: "channel c·8 + a·4 + b·2 + d
    goes to output channel c at offset (a, b, d)").
    """
    b, c8, x_, y_, z_ = x.shape
    c = c8 // factor ** 3
    h = x.reshape(b, c, factor, factor, factor, x_, y_, z_)
    h = h.permute(0, 1, 5, 2, 6, 3, 7, 4)  # (B, C, X, a, Y, b, Z, d)
    return h.reshape(b, c, x_ * factor, y_ * factor, z_ * factor)


class UpBlock3d(nn.Module):
    """Conv3d(c_in -> 8*c_out, k3, p1) then :func:`pixel_shuffle_3d`: doubles each side."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out * 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_3d(self.conv(x), 2)


class Encoder3d(nn.Module):
    """(B, 1, R, R, R) float occupancy -> (B, C, L, L, L) latent (the first C of 2C output channels)."""

    def __init__(self, channels: tuple[int, ...], num_res_blocks: int, num_middle_blocks: int,
                 latent_channels: int, torso_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        ch = channels
        self.input_layer = _conv(1, ch[0])
        blocks: list[nn.Module] = []
        for i, c in enumerate(ch):
            blocks += [ResBlock3d(c) for _ in range(num_res_blocks)]
            if i + 1 < len(ch):
                blocks.append(DownBlock3d(c, ch[i + 1]))
        self.blocks = nn.ModuleList(blocks)
        self.middle_block = nn.Sequential(*[ResBlock3d(ch[-1]) for _ in range(num_middle_blocks)])
        self.out_layer = nn.Sequential(LayerNorm32(ch[-1], eps=1e-5), nn.SiLU(),
                                       _conv(ch[-1], 2 * latent_channels))
        self.latent_channels = latent_channels
        self.torso_dtype = torso_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_layer(x.float()).to(self.torso_dtype)
        for block in self.blocks:
            h = block(h)
        h = self.middle_block(h).float()
        return self.out_layer(h)[:, : self.latent_channels]


class Decoder3d(nn.Module):
    """(B, C, L, L, L) latent -> (B, 1, R, R, R) float32 occupancy logits (occupied = logit > 0)."""

    def __init__(self, channels: tuple[int, ...], num_res_blocks: int, num_middle_blocks: int,
                 latent_channels: int, torso_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        ch = tuple(reversed(channels))
        self.input_layer = _conv(latent_channels, ch[0])
        self.middle_block = nn.Sequential(*[ResBlock3d(ch[0]) for _ in range(num_middle_blocks)])
        blocks: list[nn.Module] = []
        for i, c in enumerate(ch):
            blocks += [ResBlock3d(c) for _ in range(num_res_blocks)]
            if i + 1 < len(ch):
                blocks.append(UpBlock3d(c, ch[i + 1]))
        self.blocks = nn.ModuleList(blocks)
        self.out_layer = nn.Sequential(LayerNorm32(ch[-1], eps=1e-5), nn.SiLU(), _conv(ch[-1], 1))
        self.torso_dtype = torso_dtype

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.input_layer(z.float()).to(self.torso_dtype)
        h = self.middle_block(h)
        for block in self.blocks:
            h = block(h)
        return self.out_layer(h.float())
