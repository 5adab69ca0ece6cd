"""``oracle``: returns each case's own ground-truth object, the upper bound of every metric.

It checks the metric pipeline end to end: with the reference set as the "generations", KD and FD
must be ≈ 0 and CLIP must equal the reference renders' CLIP. The harness hands it the references with
``bind_references`` before generating (the only adapter that needs them; a real model never sees them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mme3dr.models.protocol import Asset, GenerationRequest, ModelInfo

__all__ = ["OracleModel"]


class OracleModel:
    """Each case's own reference object (the upper bound of every metric; checks the pipeline)."""

    requirements = {"extra": "-", "weights": "-", "gpu": "no"}
    info = ModelInfo(name="oracle", revision="ground-truth", output_format="mixed", license="n/a",
                     open_weights=True, deterministic=True)
    max_batch_size = 64

    def __init__(self) -> None:
        self._refs: dict[str, tuple[Path, str]] = {}

    def bind_references(self, references: Mapping[str, tuple[Path, str]]) -> None:
        """``case_id -> (reference file, up_axis)``; called by the harness before ``generate``."""
        self._refs = {k: (Path(p), axis) for k, (p, axis) in references.items()}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Asset]:
        out = []
        for r in requests:
            if r.case_id not in self._refs:
                raise KeyError(f"oracle: no reference object for case {r.case_id!r} (was it bound?)")
            path, axis = self._refs[r.case_id]
            out.append(Asset(path=path, seconds=0.0, up_axis=axis))
        return out
