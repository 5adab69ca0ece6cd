"""Tiny random-initialised encoders for the ``smoke`` profile, built offline from configs.

Each is deterministic from its seed (initialised on CPU under a forked torch RNG, so the global RNG is
left alone) and its ``weights_sha256`` is the sha256 of its state dict, so a smoke result still records
exactly which weights made it. They are for checking that the pipeline runs — never for scores.

- CLIP: open_clip custom config ``mme3dr-tiny-clip`` (shipped beside this module; ~3.7M parameters, most
  of them the 49,408-token embedding of open_clip's bundled BPE tokenizer), 64 px input.
- Inception: :func:`mme3dr.features.inception.build_tiny_inception` (FID input handling, 2048-d).
- DINOv2: ``Dinov2Model(Dinov2Config(hidden_size=64, 2 layers, 2 heads, patch 14))``, 224 px CLS.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

TINY_CLIP_ARCH = "mme3dr-tiny-clip"
TINY_CLIP_CONFIG = Path(__file__).with_name(f"{TINY_CLIP_ARCH}.json")

#: Seed offsets per encoder so the three tiny models differ while all derive from the profile seed.
_SEED_OFFSETS = {"clip": 0, "inception": 1, "dinov2": 2}


def state_dict_sha256(model) -> str:
    """sha256 over ``name``, dtype, shape and bytes of every state-dict tensor, in state-dict order."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())  # contiguous: the same bytes for every dtype, bool and uint8 included
    return h.hexdigest()


def register_tiny_clip_config() -> str:
    """Make ``mme3dr-tiny-clip`` known to open_clip (idempotent); returns the architecture name."""
    import open_clip

    if TINY_CLIP_ARCH not in open_clip.list_models():
        open_clip.add_model_config(TINY_CLIP_CONFIG)
    return TINY_CLIP_ARCH


def tiny_clip_model(seed: int = 0):
    """The random-initialised tiny open_clip model (CPU, eval mode)."""
    import open_clip
    import torch

    from mme3dr.features.clip import quiet_open_clip

    arch = register_tiny_clip_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + _SEED_OFFSETS["clip"])
        with quiet_open_clip():
            model = open_clip.create_model(arch, pretrained=None)
    return model.eval()


def tiny_dinov2_config():
    from transformers import Dinov2Config

    return Dinov2Config(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        patch_size=14,
        image_size=224,
    )


def tiny_dinov2_model(seed: int = 0):
    """The random-initialised tiny DINOv2 (CPU, eval mode)."""
    import torch
    from transformers import Dinov2Model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + _SEED_OFFSETS["dinov2"])
        model = Dinov2Model(tiny_dinov2_config())
    return model.eval()


def smoke_clip(seed: int = 0, device: str = "cpu", batch_size: int = 32):
    import open_clip

    from mme3dr.features.clip import ClipEncoder, _input_size

    model = tiny_clip_model(seed)
    return ClipEncoder(
        model=model.to(device),
        tokenizer=open_clip.get_tokenizer(TINY_CLIP_ARCH),
        model_id=f"smoke:{TINY_CLIP_ARCH}/seed{seed}",
        input_size=_input_size(model),
        weights_sha256=state_dict_sha256(model),
        device=device,
        batch_size=batch_size,
    )


def smoke_inception(seed: int = 0, device: str = "cpu", batch_size: int = 32):
    from mme3dr.features.inception import InceptionEncoder, build_tiny_inception

    model = build_tiny_inception(seed + _SEED_OFFSETS["inception"])
    return InceptionEncoder(
        model=model.to(device),
        model_id=f"smoke:tiny-inception-like/seed{seed}",
        weights_sha256=state_dict_sha256(model),
        device=device,
        batch_size=batch_size,
    )


def smoke_dinov2(seed: int = 0, device: str = "cpu", batch_size: int = 32):
    from mme3dr.features.dinov2 import Dinov2Encoder

    model = tiny_dinov2_model(seed)
    return Dinov2Encoder(
        model=model.to(device),
        model_id=f"smoke:tiny-dinov2/seed{seed}",
        weights_sha256=state_dict_sha256(model),
        device=device,
        batch_size=batch_size,
    )
