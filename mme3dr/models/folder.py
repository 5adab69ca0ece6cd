"""``folder:DIR``: pre-generated assets on disk, named by case id (the path for closed or remote models).

Layout: each request resolves to exactly one file (format from the suffix), among

- ``DIR/<case_id>_<sample_index>.<ext>``
- ``DIR/<case_id>/<sample_index>.<ext>``
- ``DIR/<case_id>/<sample_index>/<any name>.<ext>`` (a folder per sample, for assets whose side files
  would collide with another sample's: two OBJs that both reference ``material.mtl``)
- ``DIR/<case_id>.<ext>`` (sample 0 only: the common one-sample-per-prompt case)

for ``<ext>`` in ``EXTENSIONS``. Several matches (``c1.glb`` and ``c1.obj``) are ambiguous and refused
(``Asset.meta["refused"]``, recorded as ``asset_refused``), as is a symlink that leaves ``DIR``. The
harness stores each asset with its file closure (an OBJ's MTL and textures, a glTF's buffers and
images; sub-folders included), never the whole folder, so ``DIR/demo-000.obj`` and
``DIR/demo-001.obj`` side by side stay two assets. A missing file is not an exception: the asset is returned
with its expected path and ``meta["missing"]`` saying that the folder has no file for the case, and the
harness records ``missing_output`` for that case alone. When *no* request has a file,
:func:`no_match_message` says which files the folder holds and which names were expected, and the
harness stops before rendering anything. Generation seconds are unknown (``None``) unless
``DIR/timings.json`` maps ``"<case_id>_<i>"`` to seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mme3dr.models.protocol import Asset, GenerationRequest, ModelInfo

__all__ = ["EXTENSIONS", "FolderModel", "no_match_message"]

#: Formats mme3dr.assets.mesh reads, in lookup order.
EXTENSIONS: tuple[str, ...] = ("glb", "gltf", "obj", "ply", "stl", "off")


class FolderModel:
    """Serve pre-generated files from ``root``; ``name``/``revision`` describe the model that made them."""

    max_batch_size = 64
    requirements = {"extra": "-", "weights": "-", "gpu": "no"}

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

    def candidates(self, case_id: str, sample_index: int) -> list[Path]:
        """Every file the layout allows for this request (normally none or one)."""
        stems = [self.root / f"{case_id}_{sample_index}", self.root / case_id / str(sample_index)]
        if sample_index == 0:
            stems.append(self.root / case_id)
        found = [stem.with_name(f"{stem.name}.{ext}") for stem in stems for ext in EXTENSIONS
                 if stem.with_name(f"{stem.name}.{ext}").is_file()]
        sample_dir = self.root / case_id / str(sample_index)
        if sample_dir.is_dir():
            found += [f for ext in EXTENSIONS for f in sorted(sample_dir.glob(f"*.{ext}")) if f.is_file()]
        return found

    def refusal(self, path: Path, others: list[Path]) -> str | None:
        """Why ``path`` must not be used: ambiguous, or a symlink that leaves the folder (else None)."""
        if others:
            names = ", ".join(p.relative_to(self.root).as_posix() for p in [path, *others])
            return f"ambiguous: several files match this case ({names}); keep exactly one"
        real, root = path.resolve(), self.root.resolve()
        if root not in real.parents:
            return f"refused: {path.relative_to(self.root).as_posix()} is a symlink to {real}, outside {root}"
        return None

    def find(self, case_id: str, sample_index: int) -> Path | None:
        found = self.candidates(case_id, sample_index)
        return found[0] if found else None

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Asset]:
        out = []
        for r in requests:
            found = self.candidates(r.case_id, r.sample_index)
            path = found[0] if found else None
            key = f"{r.case_id}_{r.sample_index}"
            meta = {} if path is not None else {"missing": _missing(self.root, r.case_id, r.sample_index)}
            refused = self.refusal(path, found[1:]) if path is not None else None
            if refused:
                meta = {"refused": refused}
            out.append(Asset(path=path if path is not None else self.root / f"{key}.glb",
                             seconds=self._timings.get(key), up_axis=self.up_axis, meta=meta))
        return out


def _names(case_id: str, sample_index: int) -> str:
    names = [f"{case_id}_{sample_index}.<ext>", f"{case_id}/{sample_index}.<ext>",
             f"{case_id}/{sample_index}/<name>.<ext>"]
    if sample_index == 0:
        names.append(f"{case_id}.<ext>")
    return ", ".join(names)


def _missing(root: Path, case_id: str, sample_index: int) -> str:
    return (f"the folder {root} has no file for case {case_id} sample {sample_index} (looked for "
            f"{_names(case_id, sample_index)}; <ext> one of {', '.join(EXTENSIONS)})")


def no_match_message(root: str | Path, keys: Sequence[tuple[str, int]], *, shown: int = 8) -> str | None:
    """``None`` when at least one ``(case_id, sample_index)`` has a file in ``root``; otherwise one line
    naming the files found there and the names expected, for the harness to stop with."""
    model = FolderModel(root)
    if not keys or any(model.find(c, i) is not None for c, i in keys):
        return None
    files = sorted(p.relative_to(model.root).as_posix() for p in model.root.rglob("*")
                   if p.is_file() and p.name != "timings.json")
    found = ", ".join(files[:shown]) + (f", … ({len(files)} files)" if len(files) > shown else "")
    expected = "; ".join(_names(c, i) for c, i in keys[:3])
    return (f"folder:{model.root} has no file for any of the {len(keys)} requested cases: it holds "
            f"{found or 'no files'}; expected names like {expected} (<ext> one of {', '.join(EXTENSIONS)}). "
            "Rename the files after the case ids (`mme3dr manifest show`), or check --benchmark")
