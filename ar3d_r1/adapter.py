"""``mme3dr evaluate`` adapters for ShapeLLM-Omni and AR3D-R1 (entry points ``shapellm-omni``, ``ar3d-r1``).

``--model-args`` (all optional; values are strings):

- ``checkpoint``: the policy, a local dir or hub id (default ``yejunliang23/ShapeLLM-7B-omni`` /
  ``IvanTang/3DGen-R1``); ``vqvae``: a dir holding ``3DVQVAE.bin`` or a hub id (``yejunliang23/3DVQVAE``);
- ``steps``: ``1`` (ShapeLLM-Omni's one-step prompt; the default for both, and the released AR3D-R1
  checkpoint is one-step) or ``2`` (AR3D-R1's semantic plan -> coarse tokens -> visual plan -> refined
  tokens; the output is the refined shape);
- ``top_k``, ``top_p``, ``temperature``, ``max_new_tokens``: sampling (defaults 8192, 0.7, 0.7, 2048);
- ``device`` (``auto``: cuda when available), ``dtype`` (``auto``: bfloat16 on cuda, float32 on cpu);
- ``mesh``: ``marching-cubes`` (default) or ``cubes``; ``texture``: ``auto`` (TRELLIS stage 2 when the
  ``trellis`` package imports), ``trellis`` (required) or ``none``;
- ``constrain``: ``1`` masks decoding to a well-formed mesh segment (for tiny random policies; off by
  default, as the authors sample freely); ``pad``: ``error`` (default) or ``repeat`` (the authors' parser).

The harness's seed seeds torch before each turn. An output without a well-formed segment raises
:class:`~ar3d_r1.policy.mesh_tokens.MeshTokenError`, which the harness records as that case's generation
failure, its reason (``too_short``, ``no_end`` ...) in the detail. ``ModelInfo.revision`` names the
checkpoint, the VQVAE file's sha256, the step count and whether the output is textured or geometry only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mme3dr.models.protocol import Asset, BaseTextTo3DModel, GenerationRequest, ModelInfo

__all__ = ["AR3DR1Model", "ShapeLLMOmniModel"]


def _flag(value: str | bool, name: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"--model-args {name} must be 0 or 1, got {value!r}")


def _trellis_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("trellis") is not None


def _weights_revision(source: str) -> str:
    """A short id of the policy weights: sha256[:12] of the weights file (or shard index) of a local dir."""
    path = Path(source)
    if not path.is_dir():
        return source
    from mme3dr.hashing import file_sha256

    for name in ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return f"{path.name}@{file_sha256(path / name)[:12]}"
    return path.name


class ShapeLLMOmniModel(BaseTextTo3DModel):
    """ShapeLLM-Omni: Qwen2.5-VL with mesh tokens + the 3D VQVAE (one-step prompt by default)."""

    max_batch_size = 1
    model_name = "shapellm-omni"
    default_checkpoint = "yejunliang23/ShapeLLM-7B-omni"
    default_steps = "1"
    licence = "unknown"
    homepage = "https://github.com/JAMESYJL/ShapeLLM-Omni"
    #: What `mme3dr models` lists (mme3dr.models.listing).
    requirements = {"extra": "train", "weights": "yejunliang23/ShapeLLM-7B-omni + yejunliang23/3DVQVAE",
                    "gpu": "yes (7B parameters)", "imports": ("torch", "transformers")}

    def __init__(self, checkpoint: str | None = None, vqvae: str = "yejunliang23/3DVQVAE",
                 steps: str | None = None, top_k: str = "8192", top_p: str = "0.7",
                 temperature: str = "0.7", max_new_tokens: str = "2048", device: str = "auto",
                 dtype: str = "auto", mesh: str = "marching-cubes", texture: str = "auto",
                 constrain: str = "0", pad: str = "error") -> None:
        import torch

        from ar3d_r1.policy.generation import SamplingConfig
        from ar3d_r1.policy.loading import load_policy
        from ar3d_r1.policy.mesh_tokens import MeshVocab
        from ar3d_r1.policy.vqvae import load_vqvae

        self.steps = int(steps or self.default_steps)
        if self.steps not in (1, 2):
            raise ValueError(f"--model-args steps must be 1 or 2, got {steps!r}")
        if mesh not in ("marching-cubes", "cubes"):
            raise ValueError(f"--model-args mesh must be marching-cubes or cubes, got {mesh!r}")
        if pad not in ("error", "repeat"):
            raise ValueError(f"--model-args pad must be error or repeat, got {pad!r}")
        if texture not in ("auto", "trellis", "none"):
            raise ValueError(f"--model-args texture must be auto, trellis or none, got {texture!r}")
        if texture == "trellis" and not _trellis_available():
            raise ValueError("--model-args texture=trellis needs the `trellis` package (TRELLIS repository)")
        self.texture = texture != "none" and _trellis_available()
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":
            dtype = "bfloat16" if str(self.device).startswith("cuda") else "float32"
        self.sampling = SamplingConfig(top_k=int(top_k), top_p=float(top_p), temperature=float(temperature),
                                       max_new_tokens=int(max_new_tokens))
        self.mesh_method, self.pad, self.constrain = mesh, pad, _flag(constrain, "constrain")
        self.checkpoint = checkpoint or self.default_checkpoint
        self.vqvae = load_vqvae(vqvae, device=self.device)
        self.policy, self.processor = load_policy(self.checkpoint, dtype=dtype, device=self.device)
        self.vocab = MeshVocab.from_tokenizer(self.processor.tokenizer, self.vqvae.config.codebook_size)
        from mme3dr.hashing import file_sha256

        vq_file = Path(vqvae) / "3DVQVAE.bin" if Path(vqvae).is_dir() else None
        vq_rev = file_sha256(vq_file)[:12] if vq_file and vq_file.is_file() else vqvae
        finish = "textured: TRELLIS-text-xlarge stage 2" if self.texture else "geometry only"
        self.info = ModelInfo(
            name=self.model_name,
            revision=f"{_weights_revision(self.checkpoint)}; vqvae {vq_rev}; steps {self.steps}; {finish}",
            output_format="glb", license=self.licence, open_weights=True, deterministic=False,
            url=self.homepage,
        )
        self._trellis = None

    # -- one request -----------------------------------------------------------------------------
    def _turn(self, messages, seed):
        from ar3d_r1.policy.generation import generate_turn

        out = generate_turn(self.policy, self.processor, messages, self.vocab, self.vqvae.config.num_tokens,
                            sampling=self.sampling, seed=seed, constrain=self.constrain, pad=self.pad)
        if out.error is not None:
            raise out.error
        return out

    def _occupancy(self, codes: np.ndarray) -> np.ndarray:
        import torch

        ids = torch.as_tensor(codes, dtype=torch.long, device=self.vqvae.vq.embeddings.weight.device)[None]
        occ = (self.vqvae.decode(ids)[0, 0] > 0).cpu().numpy()
        if not occ.any():
            raise ValueError("empty_occupancy: the decoded grid has no occupied voxel")
        return occ

    def generate_one(self, request: GenerationRequest) -> Asset:
        from ar3d_r1.policy.generation import build_messages
        from ar3d_r1.policy.voxels import devoxelise

        t0 = time.perf_counter()
        meta: dict[str, Any] = {"steps": self.steps}
        if self.steps == 1:
            turn = self._turn(build_messages(request.prompt, 0), request.seed)
            meta["reasoning"] = turn.text
        else:
            first = self._turn(build_messages(request.prompt, 1), request.seed)
            second = self._turn(build_messages(request.prompt, 2, plan=first.text), None)
            meta.update(semantic_plan=first.text, visual_plan=second.text,
                        coarse_tokens=len(first.token_ids))
            turn = second
        meta["new_tokens"] = len(turn.token_ids)
        occupancy = self._occupancy(turn.codes)
        meta["occupied_voxels"] = int(occupancy.sum())
        path = request.output_path("glb")
        up_axis = self.vqvae.config.up_axis
        if self.texture:
            self._texture(request.prompt, occupancy, request.seed, path)
            meta["texture"] = "trellis-text-xlarge stage 2"
            up_axis = "y"  # TRELLIS's to_glb turns its Z-up output into glTF's Y up
        else:
            devoxelise(occupancy, method=self.mesh_method).export(path)  # type: ignore[arg-type]
        return Asset(path=path, format="glb", seconds=time.perf_counter() - t0, meta=meta, up_axis=up_axis)

    def _texture(self, prompt: str, occupancy: np.ndarray, seed: int, path: Path) -> None:
        """TRELLIS stage 2 on the decoded voxels (shapellm-facts.md: ``sample_slat`` on the occupancy coords).

        Untested here (TRELLIS needs a CUDA GPU); written against TRELLIS's public pipeline API.
        """
        import torch
        from trellis.pipelines import TrellisTextTo3DPipeline
        from trellis.utils import postprocessing_utils

        if self._trellis is None:
            self._trellis = TrellisTextTo3DPipeline.from_pretrained("JeffreyXiang/TRELLIS-text-xlarge")
            self._trellis.to(self.device)
        pipe = self._trellis
        torch.manual_seed(seed)
        coords = torch.nonzero(torch.as_tensor(occupancy)).int()
        coords = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int32), coords], 1).to(self.device)
        cond = pipe.get_cond([prompt])
        slat = pipe.sample_slat(cond, coords)
        outputs = pipe.decode_slat(slat, ["mesh", "gaussian"])
        postprocessing_utils.to_glb(outputs["gaussian"][0], outputs["mesh"][0]).export(path)


class AR3DR1Model(ShapeLLMOmniModel):
    """AR3D-R1: ShapeLLM-Omni after Hi-GRPO (``IvanTang/3DGen-R1``); ``steps=2``: the two-step inference."""

    model_name = "ar3d-r1"
    default_checkpoint = "IvanTang/3DGen-R1"
    homepage = "https://github.com/Ivan-Tang-3D/3DGen-R1"
    requirements = {**ShapeLLMOmniModel.requirements,
                    "weights": "IvanTang/3DGen-R1 + yejunliang23/3DVQVAE"}
