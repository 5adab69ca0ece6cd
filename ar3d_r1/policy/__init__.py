"""The policy side of AR3D-R1: the 3D VQVAE, voxels, the mesh-token vocabulary, policy loading, tiny builders.

Light on import: the submodules import torch / transformers themselves, so ``import ar3d_r1.policy`` costs
nothing. Import the pieces from their modules (``from ar3d_r1.policy.vqvae import VQVAE3D``).
"""
