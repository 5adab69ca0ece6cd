"""What every reward callable returns: named dimensions over a batch, with failures kept apart.

A reward is a plain callable ``reward(prompts, views, **columns) -> RewardBatch`` (TRL's reward
convention, with named dimensions instead of one float): ``prompts`` is ``(N,)`` strings and
``views[i]`` is sample i's ``(V, H, W, 3|4) uint8`` renders (V = 6, the ``reward6`` rig).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RewardBatch:
    """``values``: dimension → ``(N,) float64``, NaN in the failed reward's dimensions of sample i
    (a failure is never given a score); ``failures[i]``: None or the
    reason (a parse failure, a request failure, a missing view); ``meta``: model ids, template hashes,
    decoding settings and per-view details for the training log."""

    values: dict[str, np.ndarray]
    failures: list[str | None]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.values = {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()}
        n = len(self.failures)
        bad = {k: v.shape for k, v in self.values.items() if v.shape != (n,)}
        if bad:
            raise ValueError(f"every dimension must be ({n},); got {bad}")

    @property
    def ok(self) -> np.ndarray:
        """``(N,) bool``: samples with every dimension present."""
        return np.array([f is None for f in self.failures], dtype=bool)


def merge(*batches: RewardBatch) -> RewardBatch:
    """Combine the batches of several rewards over the same samples (dimension names must not clash;
    a sample failed if it failed in any batch, and every reason is kept)."""
    values, meta = {}, {}
    n = len(batches[0].failures)
    failures: list[str | None] = [None] * n
    for b in batches:
        clash = set(values) & set(b.values)
        if clash or len(b.failures) != n:
            raise ValueError(f"cannot merge: clashing dimensions {sorted(clash)} or different batch sizes")
        values.update(b.values)
        meta.update(b.meta)
        for i, reason in enumerate(b.failures):
            if reason is not None:
                failures[i] = reason if failures[i] is None else f"{failures[i]}; {reason}"
    return RewardBatch(values, failures, meta)
