"""The adapter protocol: how any text-to-3D model plugs into ``mme3dr evaluate``.

Light module (standard library only): the leaderboard imports it to re-derive seeds, and an adapter
package can depend on it without pulling in torch or a renderer.

An adapter owns only "requests in, 3D files out" (design.md §1). The harness owns the prompts, the
seeds, the sample counts, the output file names, the rendering and the scoring. Concretely:

- ``info`` describes the model (``ModelInfo``); it is copied into every result.
- ``generate(requests)`` receives a batch of ``GenerationRequest`` and returns one ``Asset`` per
  request, **in the same order**. Each asset is a file the adapter wrote under
  ``request.output_dir`` (GLB, OBJ, PLY, … anything ``mme3dr.assets.mesh.load_mesh`` reads).
- Exceptions are allowed: the harness records them as failures of the batch's cases and goes on.

Example (a complete adapter; see ``docs/evaluate.md`` for more)::

    class MyModel(BaseTextTo3DModel):
        info = ModelInfo(name="my-model", revision="v1", output_format="glb")

        def generate_one(self, request):
            path = request.output_path("glb")
            my_pipeline(request.prompt, seed=request.seed).export(path)
            return path
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Asset",
    "BaseTextTo3DModel",
    "GenerationRequest",
    "ModelInfo",
    "SEED_BITS",
    "TextTo3DModel",
    "derive_seed",
]

#: Derived seeds lie in ``[0, 2**SEED_BITS)``: 31 bits fit every framework's seed type (numpy, torch,
#: JAX int32, CUDA curand) without sign or overflow surprises.
SEED_BITS = 31


def derive_seed(benchmark_version: str, case_id: str, sample_index: int) -> int:
    """The seed of one (benchmark, case, sample), fixed by the protocol so that anyone can re-derive it.

    ``seed = int.from_bytes(sha256(canonical)[:8], "big") % 2**31`` where ``canonical`` is the UTF-8 of
    the compact JSON array ``[benchmark_version, case_id, sample_index]`` (``json.dumps(...,
    separators=(",", ":"), ensure_ascii=False)``). A JSON array rather than a joined string so that no
    separator character inside an id can make two different triples collide.

    ``benchmark_version`` is the results' ``benchmark.seed_namespace`` (the manifest name, e.g.
    ``"mme3dr-v1"``).

    >>> derive_seed("mme3dr-v1", "mme3dr-v1-000", 0) == derive_seed("mme3dr-v1", "mme3dr-v1-000", 0)
    True
    >>> derive_seed("mme3dr-v1", "mme3dr-v1-000", 0) != derive_seed("mme3dr-v1", "mme3dr-v1-000", 1)
    True
    """
    if not isinstance(sample_index, int) or isinstance(sample_index, bool) or sample_index < 0:
        raise ValueError(f"sample_index must be a non-negative int, got {sample_index!r}")
    canonical = json.dumps([str(benchmark_version), str(case_id), sample_index], separators=(",", ":"),
                           ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % (1 << SEED_BITS)


@dataclass(frozen=True)
class ModelInfo:
    """What a model is; copied into ``results.json`` (``model_info``).

    - ``name``: a short stable id (``"trellis-text-xlarge"``).
    - ``revision``: a checkpoint hash, tag or version, so that results name the exact weights.
    - ``output_format``: the file format ``generate`` writes (``"glb"``, ``"obj"``, ``"ply"``).
    - ``license``: the weights' licence (SPDX id where one exists).
    - ``open_weights``: whether anyone can download the weights.
    - ``deterministic``: whether the same request (prompt + seed) always gives the same file bytes.
    """

    name: str
    revision: str = "unknown"
    output_format: str = "glb"
    license: str = "unknown"
    open_weights: bool = False
    deterministic: bool = False
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerationRequest:
    """One asset to generate: the harness fixes every field.

    - ``case_id``: the benchmark case (``"mme3dr-v1-042"``).
    - ``prompt``: the text prompt.
    - ``seed``: ``derive_seed(benchmark, case_id, sample_index)``; adapters should seed their sampler
      with it so that reruns reproduce.
    - ``sample_index``: 0 … ``samples_per_prompt - 1``.
    - ``output_dir``: an existing, empty directory that belongs to this request; write the asset here.
    """

    case_id: str
    prompt: str
    seed: int
    sample_index: int
    output_dir: Path

    def output_path(self, suffix: str = "glb") -> Path:
        """The conventional file path for this request's asset, ``<output_dir>/<case_id>_<i>.<suffix>``."""
        return Path(self.output_dir) / f"{self.case_id}_{self.sample_index}.{suffix.lstrip('.')}"


#: The frames an asset may declare (mme3dr.assets.mesh.load_mesh applies them).
UP_AXES = ("y", "z")


@dataclass(frozen=True)
class Asset:
    """One generated 3D file, returned by ``generate`` in the order of the requests.

    - ``path``: the file (it may live anywhere readable; the harness copies it into its content-addressed
      store, so the adapter may delete temporaries afterwards).
    - ``format``: the file format (``"glb"``, ``"obj"``, …); ``None`` means "from the file suffix".
    - ``seconds``: generation wall time of this asset (for a batch, its share).
    - ``meta``: free-form extra information (e.g. the reasoning text); recorded as given, JSON only.
    - ``up_axis``: ``"y"`` (glTF, the protocol's frame) or ``"z"`` (Blender-convention files); the
      harness rotates a Z-up asset into Y up when it loads it, never guessing per asset.
    """

    path: Path
    format: str | None = None
    seconds: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    up_axis: str = "y"

    def __post_init__(self) -> None:
        """ValueError on an ``up_axis`` the loader cannot apply (``"-x"``, ``"Y"``): the adapter's
        mistake, raised where it builds the asset, not a render failure later."""
        if self.up_axis not in UP_AXES:
            raise ValueError(f"Asset.up_axis must be one of {', '.join(map(repr, UP_AXES))}, got "
                             f"{self.up_axis!r}")

    @property
    def resolved_format(self) -> str:
        return (self.format or Path(self.path).suffix.lstrip(".")).lower()


@runtime_checkable
class TextTo3DModel(Protocol):
    """Anything with ``info`` and ``generate`` is an adapter; no base class is required.

    ``isinstance(obj, TextTo3DModel)`` checks both attributes exist (not their signatures).
    """

    info: ModelInfo

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Asset]:
        """One ``Asset`` per request, in order. May raise; the harness records the failure."""
        ...


class BaseTextTo3DModel:
    """Optional convenience base: implement ``generate_one`` and get a timed ``generate`` loop.

    ``generate_one(request)`` returns an ``Asset`` or just the written file's path. Models that batch
    natively override ``generate`` instead. ``max_batch_size`` tells the harness how many requests to
    send at once (1 means one request per call, which also makes the per-case timeout exact).
    """

    info: ModelInfo = ModelInfo(name="unnamed")
    max_batch_size: int = 1

    def generate_one(self, request: GenerationRequest) -> Asset | Path | str:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must implement generate_one() or generate()")

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Asset]:
        out: list[Asset] = []
        for request in requests:
            t0 = time.perf_counter()
            result = self.generate_one(request)
            seconds = time.perf_counter() - t0
            if isinstance(result, Asset):
                out.append(result if result.seconds is not None else replace(result, seconds=seconds))
            else:
                out.append(Asset(path=Path(result), seconds=seconds))
        return out
