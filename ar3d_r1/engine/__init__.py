"""The training engine: the Hi-GRPO trainer (:mod:`.trainer`), several processes (:mod:`.distributed`),
checkpoint and exact resume (:mod:`.checkpoint`) and the SFT warm-up (:mod:`.sft`).

Light on import: the submodules import torch themselves. Import the pieces from their modules
(``from ar3d_r1.engine.trainer import HiGRPOTrainer``).
"""


class NoSignalError(RuntimeError):
    """``max_skipped_steps`` consecutive steps had no token carrying signal (every group dropped, every
    sample failed): the run stops with this one-line message instead of spinning (the trainer)."""
