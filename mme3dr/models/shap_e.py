"""``shap-e``: OpenAI's Shap-E text-to-3D (``openai/shap-e``) through ``diffusers.ShapEPipeline`` (extra
``shap-e``).

Shap-E (Jun & Nichol, 2023, "Shap-E: Generating Conditional 3D Implicit Functions") samples a latent
with a diffusion prior conditioned on CLIP text features and decodes it into an implicit function
(signed distance + colour), meshed by marching cubes. The adapter runs the pipeline to its latent
(``output_type="latent"``) and decodes it with the pipeline's own renderer,
``ShapERenderer.decode_to_mesh(latent, device, grid_size)``, exactly what ``output_type="mesh"`` does,
with the grid size exposed (128 in the pipeline).

Defaults are the Shap-E authors' text-to-3D sampling settings, which diffusers' ShapEPipeline example
repeats: ``guidance_scale=15.0``, ``steps=64`` (the pipeline's own defaults, 4.0 and 25, are not used);
``grid_size=128``. ``frame_size`` only sizes rendered images, which a mesh output does not make.

Output: ``<case>_<i>.glb`` with per-vertex colours (the renderer's R, G, B channels, clipped to [0, 1]),
``up_axis="z"``: Shap-E's meshes are Z up (diffusers' guide rotates them by -90° about X to show them
upright), and the harness turns a Z-up asset into the protocol's Y-up frame. Each request's seed seeds
the pipeline's ``torch.Generator``.

``--model-args``: ``checkpoint`` (hub id or folder; default ``openai/shap-e``), ``weights_dir``,
``guidance_scale``, ``steps``, ``grid_size``, ``device`` (``auto``: cuda when available), ``dtype``
(``auto``: float16 on cuda, float32 on cpu). An empty mesh (the field has no surface) raises, which the
harness records as the case's ``adapter_error``.
"""

from __future__ import annotations

import time

from mme3dr.models.protocol import Asset, BaseTextTo3DModel, GenerationRequest, ModelInfo

__all__ = ["DEFAULT_REPO", "ShapEModel"]

DEFAULT_REPO = "openai/shap-e"
_REQUIRED = ("model_index.json", "prior", "text_encoder", "tokenizer", "scheduler", "shap_e_renderer")


class ShapEModel(BaseTextTo3DModel):
    """OpenAI Shap-E text-to-3D through diffusers' ShapEPipeline (textured mesh, Z up)."""

    max_batch_size = 1
    requirements = {"extra": "shap-e", "weights": DEFAULT_REPO, "gpu": "recommended",
                    "imports": ("torch", "diffusers", "transformers")}

    def __init__(self, checkpoint: str = DEFAULT_REPO, weights_dir: str | None = None,
                 guidance_scale: str | float = 15.0, steps: str | int = 64, grid_size: str | int = 128,
                 device: str = "auto", dtype: str = "auto") -> None:
        import torch
        from diffusers import ShapEPipeline

        from mme3dr.models.checkpoints import checkpoint_revision, resolve_checkpoint

        self.guidance_scale, self.steps, self.grid_size = float(guidance_scale), int(steps), int(grid_size)
        if self.steps < 1 or self.grid_size < 8:
            raise ValueError(f"--model-args steps must be >= 1 and grid_size >= 8, got {steps}, {grid_size}")
        folder, _how = resolve_checkpoint(checkpoint, _REQUIRED, what="Shap-E", weights_dir=weights_dir)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        torch_dtype = (torch.float16 if self.device.startswith("cuda") else torch.float32) \
            if dtype == "auto" else getattr(torch, dtype)
        self.pipe = ShapEPipeline.from_pretrained(folder, dtype=torch_dtype).to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        revision = checkpoint_revision(checkpoint, folder, ("prior/diffusion_pytorch_model.safetensors",
                                                            "prior/diffusion_pytorch_model.bin"))
        self.info = ModelInfo(name="shap-e", revision=revision, output_format="glb",
                              license="MIT", open_weights=True, url="https://github.com/openai/shap-e")

    def mesh(self, prompt: str, seed: int):
        """``(vertices [N, 3] float32, faces [M, 3] int64, colours [N, 3] float32 in [0, 1])`` in Shap-E's
        Z-up frame, for one prompt and seed."""
        import numpy as np
        import torch

        generator = torch.Generator(device=self.device).manual_seed(seed)
        latents = self.pipe(prompt, num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                            generator=generator, output_type="latent").images
        with torch.no_grad():
            out = self.pipe.shap_e_renderer.decode_to_mesh(latents[:1], self.device, grid_size=self.grid_size)
        verts = out.verts.detach().float().cpu().numpy()
        faces = out.faces.detach().cpu().numpy().astype(np.int64)
        rgb = np.stack([out.vertex_channels[c].detach().float().cpu().numpy() for c in "RGB"], axis=1)
        return verts, faces, np.clip(rgb, 0.0, 1.0)

    def generate_one(self, request: GenerationRequest) -> Asset:
        import numpy as np
        import trimesh

        t0 = time.perf_counter()
        verts, faces, rgb = self.mesh(request.prompt, request.seed)
        if len(faces) == 0:
            raise ValueError("Shap-E decoded an empty mesh (its signed distance field has no surface)")
        colours = np.concatenate([(rgb * 255).round(), np.full((len(rgb), 1), 255)], axis=1).astype(np.uint8)
        mesh = trimesh.Trimesh(verts, faces, vertex_colors=colours, process=False)
        path = request.output_path("glb")
        mesh.export(path, file_type="glb")
        return Asset(path=path, format="glb", seconds=time.perf_counter() - t0, up_axis="z",
                     meta={"vertices": len(verts), "faces": len(faces)})
