"""``folder:DIR``: pre-generated assets on disk, named by case id (the path for closed or remote models).

Layout: for each request, the first of these that exists is returned (format from the suffix):

- ``DIR/<case_id>_<sample_index>.<ext>``
- ``DIR/<case_id>/<sample_index>.<ext>``
- ``DIR/<case_id>.<ext>`` (sample 0 only: the common one-sample-per-prompt case)

``<ext>`` is tried in ``EXTENSIONS`` order. A missing file is not an exception: the asset is returned
with its expected path, and the harness records ``missing_output`` for that case alone. Generation
seconds are unknown (``None``) unless ``DIR/timings.json`` maps ``"<case_id>_<i>"`` to seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mme3dr.models.protocol import Asset, GenerationRequest, ModelInfo

__all__ = ["EXTENSIONS", "FolderModel"]

#: Formats mme3dr.assets.mesh reads, in lookup order.
EXTENSIONS: tuple[str, ...] = ("glb", "gltf", "obj", "ply", "stl", "off")


class FolderModel:
    """Serve pre-generated files from ``root``; ``name``/``revision`` describe the model that made them."""

    max_batch_size = 64

    def __init__(self, root: str | Path, name: str | None = None, revision: str = "unknown",
                 up_axis: str = "y") -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"folder adapter: {self.root} is not a directory; pass --model folder:DIR with the "
                "pre-generated assets named <case_id>.glb (or <case_id>_<sample>.<ext>)"
            )
        if up_axis not in ("y", "z"):
            raise ValueError(f"folder adapter: up_axis must be 'y' or 'z', got {up_axis!r}")
        self.up_axis = up_axis
        self.info = ModelInfo(name=name or f"folder:{self.root.name}", revision=revision,
                              output_format="mixed", deterministic=True)
        timings = self.root / "timings.json"
        self._timings: dict[str, float] = json.loads(timings.read_text()) if timings.is_file() else {}

    def find(self, case_id: str, sample_index: int) -> Path | None:
        stems = [self.root / f"{case_id}_{sample_index}", self.root / case_id / str(sample_index)]
        if sample_index == 0:
            stems.append(self.root / case_id)
        for stem in stems:
            for ext in EXTENSIONS:
                candidate = stem.with_name(f"{stem.name}.{ext}")
                if candidate.is_file():
                    return candidate
        return None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Asset]:
        out = []
        for r in requests:
            path = self.find(r.case_id, r.sample_index)
            key = f"{r.case_id}_{r.sample_index}"
            out.append(Asset(path=path if path is not None else self.root / f"{key}.glb",
                             seconds=self._timings.get(key), up_axis=self.up_axis))
        return out
