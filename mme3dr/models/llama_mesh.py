"""``llama-mesh``: LLaMA-Mesh (``Zhengyi/LLaMA-Mesh``, a Llama-3.1-8B-Instruct fine-tune) through
``transformers``; it writes a mesh as OBJ text (extra ``llama-mesh``).

LLaMA-Mesh (Wang et al., 2024, "LLaMA-Mesh: Unifying 3D Mesh Generation with Language Models") writes
vertex lines ``v X Y Z`` with integer coordinates quantised to a 64-step grid (0 … 63 on each axis) and
face lines ``f A B C`` with 1-based vertex indices, inside an ordinary chat reply. The adapter:

- sends one user turn, ``prompt_template.format(prompt=...)`` (default ``"Create a 3D model of
  {prompt}"``, the wording of the authors' demo examples, "Create a 3D model of a table."), through the
  checkpoint's own chat template;
- samples with the authors' demo defaults (``nv-tlabs/LLaMA-Mesh`` ``app.py``): ``temperature=0.95``,
  ``max_new_tokens=4096``, stopping at ``eos`` or ``<|eot_id|>``; ``top_p=0.9`` is the checkpoint's
  generation config (Llama 3.1's), which the demo leaves in force. ``temperature=0`` decodes greedily;
- seeds torch with the request's seed before sampling;
- parses the reply with :func:`parse_llama_mesh` and writes ``<case>_<i>.obj`` (float coordinates
  ``c / (grid - 1) * 2 - 1`` in [-1, 1]; Y up, as the authors' viewer shows it).

A reply that is not a whole mesh raises :class:`LlamaMeshParseError` (the harness records the case as
``adapter_error`` with the reason): no vertex or face lines, prose between mesh lines, a coordinate that
is not an integer in the grid, a face index out of range or a face with fewer than 3 vertices, or a
reply cut off at ``max_new_tokens``. Never a partial mesh scored as a whole one.

``--model-args``: ``checkpoint`` (hub id or folder; default ``Zhengyi/LLaMA-Mesh``), ``weights_dir``,
``temperature``, ``top_p``, ``max_new_tokens``, ``prompt_template``, ``grid`` (64), ``device`` (``auto``:
cuda when available), ``dtype`` (``auto``: bfloat16 on cuda, float32 on cpu).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from mme3dr.models.protocol import Asset, BaseTextTo3DModel, GenerationRequest, ModelInfo

__all__ = ["DEFAULT_REPO", "LlamaMeshModel", "LlamaMeshParseError", "parse_llama_mesh"]

DEFAULT_REPO = "Zhengyi/LLaMA-Mesh"
DEFAULT_TEMPLATE = "Create a 3D model of {prompt}"
_REQUIRED = ("config.json", "tokenizer_config.json")
_MESH_LINE = re.compile(r"^\s*[vf]\s")


class LlamaMeshParseError(ValueError):
    """The reply is not a whole LLaMA-Mesh OBJ; the message says why (and shows where)."""


def parse_llama_mesh(text: str, grid: int = 64) -> tuple[list[tuple[int, int, int]], list[list[int]]]:
    """Vertices (grid integers) and faces (0-based index lists) of the OBJ inside a LLaMA-Mesh reply.

    The mesh is the block from the first ``v`` line to the last ``f`` line; text before and after it
    (a sentence of introduction) is allowed, anything but ``v``/``f``/blank/``#`` lines inside it is not.

    Raises:
        LlamaMeshParseError: no vertices, no faces, prose inside the block, a coordinate that is not an
            integer in ``[0, grid)``, a face with < 3 indices, or an index outside ``1 … len(vertices)``.
    """
    lines = text.splitlines()
    mesh = [i for i, ln in enumerate(lines) if _MESH_LINE.match(ln)]
    if not any(lines[i].lstrip().startswith("v") for i in mesh):
        raise LlamaMeshParseError(f"no vertex lines in the reply ({_preview(text)})")
    first = next(i for i in mesh if lines[i].lstrip().startswith("v"))
    faces_at = [i for i in mesh if lines[i].lstrip().startswith("f")]
    if not faces_at or faces_at[-1] < first:
        raise LlamaMeshParseError(f"no faces after the vertices ({_preview(text)})")
    vertices: list[tuple[int, int, int]] = []
    faces: list[list[int]] = []
    for n in range(first, faces_at[-1] + 1):
        line = lines[n].strip()
        if not line or line.startswith("#"):
            continue
        kind, *fields = line.split()
        if kind == "v":
            vertices.append(_vertex(fields, grid, n + 1))
        elif kind == "f":
            faces.append(_face(fields, n + 1))
        else:
            raise LlamaMeshParseError(f"line {n + 1} inside the mesh is not a v/f line: {line[:60]!r}")
    for k, face in enumerate(faces):
        bad = [i for i in face if not 1 <= i <= len(vertices)]
        if bad:
            raise LlamaMeshParseError(f"face {k + 1} uses vertex {bad[0]}, outside 1…{len(vertices)}")
    return vertices, [[i - 1 for i in face] for face in faces]


def _vertex(fields: list[str], grid: int, line: int) -> tuple[int, int, int]:
    try:
        xyz = tuple(int(f) for f in fields)
    except ValueError:
        xyz = ()
    if len(xyz) != 3 or not all(0 <= c < grid for c in xyz):
        raise LlamaMeshParseError(f"line {line}: vertex {' '.join(fields)!r} is not 3 integers in "
                                  f"0…{grid - 1}")
    return xyz  # type: ignore[return-value]


def _face(fields: list[str], line: int) -> list[int]:
    try:
        idx = [int(f.split("/")[0]) for f in fields]
    except ValueError:
        idx = []
    if len(idx) < 3:
        raise LlamaMeshParseError(f"line {line}: face {' '.join(fields)!r} is not 3 or more vertex indices")
    return idx


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return f"reply {flat[:80]!r}" + ("…" if len(flat) > 80 else "") if flat else "empty reply"


def write_obj(path: Path, vertices, faces, grid: int) -> Path:
    """Write the parsed mesh as an OBJ with float coordinates ``c / (grid - 1) * 2 - 1``; polygons are
    fanned into triangles."""
    scale = 2.0 / (grid - 1)
    out = [f"v {x * scale - 1:.6f} {y * scale - 1:.6f} {z * scale - 1:.6f}" for x, y, z in vertices]
    for face in faces:
        out += [f"f {face[0] + 1} {face[k] + 1} {face[k + 1] + 1}" for k in range(1, len(face) - 1)]
    path.write_text("\n".join(out) + "\n")
    return path


class LlamaMeshModel(BaseTextTo3DModel):
    """LLaMA-Mesh (Llama 3.1 8B writing OBJ text) through transformers (untextured mesh)."""

    max_batch_size = 1
    requirements = {"extra": "llama-mesh", "weights": DEFAULT_REPO, "gpu": "yes (8B parameters)",
                    "imports": ("torch", "transformers")}

    def __init__(self, checkpoint: str = DEFAULT_REPO, weights_dir: str | None = None,
                 temperature: str | float = 0.95, top_p: str | float = 0.9, max_new_tokens: str | int = 4096,
                 prompt_template: str = DEFAULT_TEMPLATE, grid: str | int = 64, device: str = "auto",
                 dtype: str = "auto") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from mme3dr.models.checkpoints import checkpoint_revision, resolve_checkpoint

        self.temperature, self.top_p = float(temperature), float(top_p)
        self.max_new_tokens, self.grid = int(max_new_tokens), int(grid)
        if "{prompt}" not in prompt_template:
            raise ValueError(f"--model-args prompt_template must contain {{prompt}}, got {prompt_template!r}")
        self.prompt_template = prompt_template
        folder, _how = resolve_checkpoint(checkpoint, _REQUIRED, what="LLaMA-Mesh", weights_dir=weights_dir)
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        torch_dtype = (torch.bfloat16 if self.device.startswith("cuda") else torch.float32) \
            if dtype == "auto" else getattr(torch, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype).to(self.device).eval()
        eot = self.tokenizer.convert_tokens_to_ids("<|eot_id|>")
        self.stop_ids = sorted({i for i in (self.tokenizer.eos_token_id, eot)
                                if isinstance(i, int) and i != self.tokenizer.unk_token_id})
        revision = checkpoint_revision(checkpoint, folder, ("model.safetensors.index.json",
                                                            "model.safetensors"))
        self.info = ModelInfo(name="llama-mesh", revision=revision, output_format="obj",
                              license="llama3.1", open_weights=True, url="https://github.com/nv-tlabs/LLaMA-Mesh")

    def reply(self, prompt: str, seed: int) -> tuple[str, bool]:
        """The model's reply to ``prompt`` and whether it stopped by itself (False: cut at max tokens)."""
        import torch

        text = self.prompt_template.format(prompt=prompt[:1].lower() + prompt[1:]
                                           if prompt[1:2].islower() else prompt)
        inputs = self.tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                    add_generation_prompt=True, return_tensors="pt",
                                                    return_dict=True).to(self.device)
        sampling: dict[str, Any] = ({"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}
                                    if self.temperature > 0 else {"do_sample": False})
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                      eos_token_id=self.stop_ids, pad_token_id=self.stop_ids[0], **sampling)
        new = out[0, inputs["input_ids"].shape[1]:].tolist()
        stopped = bool(new) and new[-1] in self.stop_ids
        return self.tokenizer.decode(new, skip_special_tokens=True), stopped

    def generate_one(self, request: GenerationRequest) -> Asset:
        t0 = time.perf_counter()
        text, stopped = self.reply(request.prompt, request.seed)
        if not stopped:
            raise LlamaMeshParseError(f"the reply was cut off at max_new_tokens={self.max_new_tokens} before "
                                      f"the model ended it; raise max_new_tokens ({_preview(text[-200:])})")
        vertices, faces = parse_llama_mesh(text, self.grid)
        path = write_obj(request.output_path("obj"), vertices, faces, self.grid)
        return Asset(path=path, format="obj", seconds=time.perf_counter() - t0, up_axis="y",
                     meta={"vertices": len(vertices), "faces": len(faces)})

