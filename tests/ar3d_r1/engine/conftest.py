"""Fixtures of the engine tests: a random tiny policy and VQVAE, built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # trainer_parts, beside this file


@pytest.fixture(scope="session")
def tiny_parts(tmp_path_factory):
    import torch

    from ar3d_r1.policy.tiny import build_tiny_policy
    from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, save_vqvae

    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    save_vqvae(VQVAE3D(VQVAEConfig.tiny()), root / "vqvae")
    build_tiny_policy(root / "policy", codebook_size=256, seed=0)
    return root
