"""The training engine: the Hi-GRPO trainer (:mod:`.trainer`), several processes (:mod:`.distributed`),
checkpoint and exact resume (:mod:`.checkpoint`) and the SFT warm-up (:mod:`.sft`).

Light on import: the submodules import torch themselves. Import the pieces from their modules
(``from ar3d_r1.engine.trainer import HiGRPOTrainer``).
"""
