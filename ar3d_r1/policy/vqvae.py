"""The 3D VQVAE of ShapeLLM-Omni: occupancy grid <-> mesh-token ids, one class for every size.

Architecture (shapellm-facts.md, "The 3D VQVAE"; the authors' ``3DVQVAE.bin`` loads strictly):

- ``Encoder``: ``input_layer`` Conv3d 1->c0 (k3, p1); ``blocks`` = per stage ``num_res_blocks`` residual
  blocks, then a stride-2 ``Down`` conv to the next width; ``middle_block`` = ``num_middle_blocks``
  residual blocks; ``out_layer`` = [LayerNorm, SiLU, Conv3d c_last->2*latent]. Only the first
  ``latent_channels`` of the output channels are the latent (the others, a VAE log-variance in the
  TRELLIS lineage, are discarded).
- ``Decoder``: the mirror, with ``middle_block`` applied *before* ``blocks`` and ``Up`` = Conv3d to 8x the
  channels followed by a 3-D pixel shuffle.
- ``vq``: one ``nn.Embedding(codebook_size, latent_channels * z_group)`` codebook, nearest entry by
  Euclidean distance.

Token layout (facts file): the latent (B, C, X, Y, Z) is permuted to (B, X, Y, Z, C) and reinterpreted
as (B, X*Y*Z/g, g*C) with g = ``z_group``: token t covers x = t // (Y*Z/g), y = (t // (Z/g)) % Y and the
g consecutive z latents g*(t % (Z/g)) ... g*(t % (Z/g)) + g - 1, all channels. At paper size
(X = Y = Z = 16, C = 8, g = 4) that is x = t // 64, y = (t // 4) % 16, z-block t % 4, 1024 tokens of 32-d.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ar3d_r1.policy.vqvae_layers import Decoder3d, Encoder3d, pixel_shuffle_3d

__all__ = [
    "VQVAE3D",
    "VQVAEConfig",
    "VQVAE_CONFIG_FILE",
    "VQVAE_WEIGHTS_FILE",
    "VQVAEWeightsError",
    "latents_to_tokens",
    "load_vqvae",
    "pixel_shuffle_3d",
    "save_vqvae",
    "tokens_to_latents",
]

#: The authors' file name (hub repo ``yejunliang23/3DVQVAE``); ``save_vqvae`` writes the same name.
VQVAE_WEIGHTS_FILE = "3DVQVAE.bin"
#: Our sidecar with the ``VQVAEConfig`` (absent from the authors' repo: no file means paper size).
VQVAE_CONFIG_FILE = "vqvae_config.json"


@dataclass(frozen=True)
class VQVAEConfig:
    """Size of a :class:`VQVAE3D`. Every size uses the same module class and state-dict key layout.

    - ``resolution``: R, the occupancy grid side (input and output are (B, 1, R, R, R)).
    - ``channels``: widths per stage, fine to coarse; ``len(channels) - 1`` stride-2 downsamplings, so
      the latent side is ``R / 2**(len(channels) - 1)``.
    - ``num_res_blocks``: residual blocks per stage; ``num_middle_blocks``: at the coarsest width.
    - ``latent_channels``: C of the latent (the encoder emits 2C, the first C are kept).
    - ``z_group``: g, consecutive z latents per token; ``codebook_size``: K entries of dim g*C.
    - ``torso_dtype``: ``"float32"``, ``"float16"`` or ``"bfloat16"``: the dtype of the convs inside
      ``blocks`` and ``middle_block`` (the authors' ``use_fp16``); input/output layers and every norm stay
      float32.
    - ``up_axis``: the up axis of the grids the weights were trained on: ``"z"`` for the authors' (their
      app turns Y-up meshes +90 degrees about x before voxelising), ``"y"`` for our canonical-frame fits.
      Not architecture: decoders use it to tell the harness how to stand the mesh up.
    """

    resolution: int = 64
    channels: tuple[int, ...] = (32, 128, 512)
    num_res_blocks: int = 2
    num_middle_blocks: int = 2
    latent_channels: int = 8
    z_group: int = 4
    codebook_size: int = 8192
    torso_dtype: str = "float32"
    up_axis: str = field(default="z", compare=False)
    name: str = field(default="paper", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        factor = 2 ** (len(self.channels) - 1)
        if self.resolution % factor:
            raise ValueError(f"resolution {self.resolution} is not divisible by {factor}")
        if self.latent_resolution % self.z_group:
            raise ValueError(f"latent side {self.latent_resolution} is not divisible by {self.z_group}")
        if self.up_axis not in ("y", "z"):
            raise ValueError(f"up_axis must be 'y' or 'z', got {self.up_axis!r}")
        if self.torso_dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"torso_dtype must be float32, float16 or bfloat16, got {self.torso_dtype!r}")

    @classmethod
    def paper(cls, **overrides) -> VQVAEConfig:
        """ShapeLLM-Omni's ``3DVQVAE.bin``: 64^3 -> 16^3 x 8 -> 1024 tokens, 8192 x 32 codebook."""
        return cls(**{"name": "paper", **overrides})

    @classmethod
    def tiny(cls, **overrides) -> VQVAEConfig:
        """The CPU reference size (``tiny-cpu``): 32^3 -> 8^3 x 4 -> 128 tokens, 256 x 16 codebook.

        No residual blocks at the full-resolution stages (``num_res_blocks=0``): 3-D convolutions at 32^3
        dominate the CPU cost, and the shapes it fits are simple.
        """
        base = dict(resolution=32, channels=(8, 16, 32), num_res_blocks=0, num_middle_blocks=2,
                    latent_channels=4, z_group=4, codebook_size=256, up_axis="y", name="tiny")
        return cls(**{**base, **overrides})

    @property
    def latent_resolution(self) -> int:
        """Side of the latent grid, ``R / 2**(len(channels) - 1)`` (16 at paper size)."""
        return self.resolution // 2 ** (len(self.channels) - 1)

    @property
    def num_tokens(self) -> int:
        """N, tokens per shape: ``latent_resolution**3 / z_group`` (1024 at paper size)."""
        return self.latent_resolution ** 3 // self.z_group

    @property
    def code_dim(self) -> int:
        """Dimension of one codebook entry, ``latent_channels * z_group`` (32 at paper size)."""
        return self.latent_channels * self.z_group

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> VQVAEConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown VQVAEConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def _torso_dtype(config: VQVAEConfig) -> torch.dtype:
    return getattr(torch, config.torso_dtype)


class VectorQuantizer(nn.Module):
    """The codebook ``embeddings`` (K, D) and the nearest-entry lookup (squared Euclidean distance)."""

    def __init__(self, codebook_size: int, code_dim: int) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(codebook_size, code_dim)
        nn.init.uniform_(self.embeddings.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        """(..., D) float -> (...) int64 index of the nearest codebook entry (ties: the lowest index).

        ||v - e||^2 = ||v||^2 - 2 v.e + ||e||^2; ||v||^2 is constant per row, so argmin over
        ``||e||^2 - 2 v.e``, computed in float32.
        """
        flat = vectors.reshape(-1, vectors.shape[-1]).float()
        book = self.embeddings.weight.float()
        dist = (book * book).sum(1)[None, :] - 2.0 * flat @ book.T
        return dist.argmin(1).reshape(vectors.shape[:-1])

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """(...) int64 ids -> (..., D) float32 codebook vectors."""
        return self.embeddings(ids).float()


def latents_to_tokens(latent: torch.Tensor, z_group: int) -> torch.Tensor:
    """(B, C, X, Y, Z) -> (B, X*Y*Z/g, g*C): the documented token layout (module docstring)."""
    b, c, x, y, z = latent.shape
    return latent.permute(0, 2, 3, 4, 1).reshape(b, x * y * (z // z_group), z_group * c)


def tokens_to_latents(tokens: torch.Tensor, side: int, z_group: int) -> torch.Tensor:
    """(B, N, g*C) -> (B, C, L, L, L) with L = ``side``: the exact inverse of :func:`latents_to_tokens`."""
    b, _, d = tokens.shape
    c = d // z_group
    return tokens.reshape(b, side, side, side, c).permute(0, 4, 1, 2, 3).contiguous()


class VQVAE3D(nn.Module):
    """ShapeLLM-Omni's 3D VQVAE at any :class:`VQVAEConfig` size (children ``Encoder``, ``Decoder``, ``vq``).

    >>> cfg = VQVAEConfig.tiny()
    >>> model = VQVAE3D(cfg)
    >>> ids = model.encode(torch.zeros(2, 1, cfg.resolution, cfg.resolution, cfg.resolution))
    >>> tuple(ids.shape), ids.dtype
    ((2, 128), torch.int64)
    >>> tuple(model.decode(ids).shape)
    (2, 1, 32, 32, 32)
    """

    def __init__(self, config: VQVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or VQVAEConfig.paper()
        c = self.config
        args = (c.channels, c.num_res_blocks, c.num_middle_blocks, c.latent_channels, _torso_dtype(c))
        self.Encoder = Encoder3d(*args)
        self.Decoder = Decoder3d(*args)
        self.vq = VectorQuantizer(self.config.codebook_size, self.config.code_dim)
        self.apply_torso_dtype()

    def apply_torso_dtype(self) -> VQVAE3D:
        """Cast the convs in ``blocks`` / ``middle_block`` to ``config.torso_dtype`` (norms stay float32)."""
        dtype = _torso_dtype(self.config)
        for part in (self.Encoder, self.Decoder):
            for torso in (part.blocks, part.middle_block):
                for m in torso.modules():
                    if isinstance(m, nn.Conv3d):
                        m.to(dtype)
        return self

    def _check_grid(self, occupancy: torch.Tensor) -> None:
        r = self.config.resolution
        if occupancy.ndim != 5 or tuple(occupancy.shape[1:]) != (1, r, r, r):
            raise ValueError(f"occupancy must be (B, 1, {r}, {r}, {r}), got {tuple(occupancy.shape)}")

    def encode_latent(self, occupancy: torch.Tensor) -> torch.Tensor:
        """(B, 1, R, R, R) float occupancy in {0, 1} -> (B, C, L, L, L) float32 continuous latent."""
        self._check_grid(occupancy)
        return self.Encoder(occupancy)

    def quantize(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, C, L, L, L) float latent -> (B, N) int64 token ids (nearest codebook entry per token)."""
        return self.vq.nearest(latents_to_tokens(latent, self.config.z_group))

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 ids in [0, K) -> (B, C, L, L, L) float32 latent (the inverse layout)."""
        n, k = self.config.num_tokens, self.config.codebook_size
        if ids.ndim != 2 or ids.shape[1] != n:
            raise ValueError(f"ids must be (B, {n}), got {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= k):
            raise ValueError(f"ids must lie in [0, {k}), got [{int(ids.min())}, {int(ids.max())}]")
        side, group = self.config.latent_resolution, self.config.z_group
        return tokens_to_latents(self.vq.lookup(ids.long()), side, group)

    @torch.no_grad()
    def encode(self, occupancy: torch.Tensor) -> torch.Tensor:
        """(B, 1, R, R, R) float occupancy -> (B, N) int64 token ids in [0, K)."""
        return self.quantize(self.encode_latent(occupancy))

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, N) int64 ids -> (B, 1, R, R, R) float32 occupancy logits; occupied where logit > 0."""
        return self.Decoder(self.dequantize(ids))

    def forward(self, occupancy: torch.Tensor, quantize: bool = True) -> dict[str, torch.Tensor]:
        """Training pass with the straight-through estimator (van den Oord et al. 2017, eq. 3).

        Returns ``logits`` (B, 1, R, R, R), ``ids`` (B, N) int64, ``codebook_loss`` ||sg[z_e] - e||^2 and
        ``commitment_loss`` ||z_e - sg[e]||^2 (means over elements), and ``latent`` (B, N, D) = z_e.
        ``quantize=False`` decodes z_e itself (a plain autoencoder pass, for warming up before the
        codebook is seeded); the losses and ids are still reported.
        """
        tokens = latents_to_tokens(self.encode_latent(occupancy), self.config.z_group)
        ids = self.vq.nearest(tokens.detach())
        quant = self.vq.lookup(ids)
        codebook_loss = F.mse_loss(quant, tokens.detach())
        commitment_loss = F.mse_loss(tokens, quant.detach())
        straight = tokens + (quant - tokens).detach() if quantize else tokens
        side = self.config.latent_resolution
        logits = self.Decoder(tokens_to_latents(straight, side, self.config.z_group))
        return {"logits": logits, "ids": ids, "codebook_loss": codebook_loss,
                "commitment_loss": commitment_loss, "latent": tokens}


#: Where the paper VQVAE lives on the hub (shapellm-facts.md).
PAPER_VQVAE_REPO = "yejunliang23/3DVQVAE"


class VQVAEWeightsError(FileNotFoundError):
    """``3DVQVAE.bin`` is missing or does not fit the config; the message says which file and where."""


def save_vqvae(model: VQVAE3D, directory: str | Path) -> Path:
    """Write ``<dir>/3DVQVAE.bin`` (a plain float32 state dict, the authors' layout) + ``vqvae_config.json``.

    Returns the weights path. The torso is saved in float32 whatever ``torso_dtype`` is, as the authors'
    file is (their fp16 switch casts after loading).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    target = directory / VQVAE_WEIGHTS_FILE
    partial = target.with_suffix(".bin.partial")
    torch.save(state, partial)
    partial.replace(target)  # atomic: a half-written file never looks present
    cfg = model.config.to_dict()
    cfg["torso_dtype"] = "float32"
    (directory / VQVAE_CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return target


def _resolve_weights_file(source: str | Path, weights_dir: str | Path | None) -> Path:
    """A local file, a directory holding ``3DVQVAE.bin``, or a hub repo id (via mme3dr's weights code)."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        hit = path / VQVAE_WEIGHTS_FILE
        if hit.is_file():
            return hit
        raise VQVAEWeightsError(
            f"VQVAE weights not found: {hit} does not exist. Put the authors' {VQVAE_WEIGHTS_FILE} (hub repo "
            f"{PAPER_VQVAE_REPO}) there, or fit one with `ar3d-r1 vqvae fit --out {path}`."
        )
    source = str(source)
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise VQVAEWeightsError(
            f"VQVAE source {source!r} is neither an existing file or directory nor a hub repo id "
            f"(owner/name, e.g. {PAPER_VQVAE_REPO}); put {VQVAE_WEIGHTS_FILE} in a directory and pass it"
        )
    from mme3dr.features.weights import WeightsNotFoundError, WeightSpec, resolve_weights

    spec = WeightSpec(key=source.replace("/", "--"), kind="vqvae3d", model_id=source,
                      files=(VQVAE_WEIGHTS_FILE,), hub_repo=source,
                      description="ShapeLLM-Omni 3D VQVAE (64^3 occupancy <-> 1024 mesh tokens)")
    try:
        # `mme3dr weights download` knows only mme3dr's encoders: point at the trainer's own option.
        return resolve_weights(spec, weights_dir, dir_option="--vqvae DIR (a directory holding "
                               f"{VQVAE_WEIGHTS_FILE})").path(VQVAE_WEIGHTS_FILE)
    except WeightsNotFoundError as exc:
        raise VQVAEWeightsError(str(exc)) from exc


def load_vqvae(
    source: str | Path,
    config: VQVAEConfig | None = None,
    *,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "cpu",
    weights_dir: str | Path | None = None,
) -> VQVAE3D:
    """Build a :class:`VQVAE3D` and load ``3DVQVAE.bin`` strictly (every key and shape must match).

    ``source``: a ``3DVQVAE.bin`` file, a directory holding it (and optionally ``vqvae_config.json``), or
    a hub repo id (``yejunliang23/3DVQVAE``) resolved like mme3dr's feature weights: ``weights_dir`` /
    ``$MME3DR_WEIGHTS_DIR`` / ``~/.cache/mme3dr/weights/<owner>--<name>/3DVQVAE.bin``, then the HF cache,
    then a download unless ``HF_HUB_OFFLINE=1``. The config is ``config`` if given, else the directory's
    ``vqvae_config.json``, else paper size. ``dtype`` (``torch.float16``/``"float16"``, ...) sets the torso
    dtype (the authors' fp16 option); ``None`` keeps the config's.

    Raises:
        VQVAEWeightsError: the file is missing (the message says where to put it) or its keys/shapes do
            not match the config (the message lists the first differences).
    """
    weights = _resolve_weights_file(source, weights_dir)
    if config is None:
        side = weights.parent / VQVAE_CONFIG_FILE
        config = (VQVAEConfig.from_dict(json.loads(side.read_text(encoding="utf-8")))
                  if side.is_file() else VQVAEConfig.paper())
    if dtype is not None:
        name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
        config = VQVAEConfig.from_dict({**config.to_dict(), "torso_dtype": name})
    with torch.device("meta"):
        model = VQVAE3D(config)
    try:  # weights_only=True always: a file that needs more is refused, never loaded unsafely
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torn zip, text, a pickle of arbitrary objects
        raise VQVAEWeightsError(
            f"{weights} is not a VQVAE checkpoint (a state dict of tensors) and cannot be read "
            f"({type(exc).__name__}); fit it again with `ar3d-r1 vqvae fit --out {weights.parent}` or "
            f"download {PAPER_VQVAE_REPO}'s {weights.name} again") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VQVAEWeightsError(f"{weights} is not a VQVAE checkpoint (it holds a {type(state).__name__} "
                                "that is not a state dict of tensors); fit it again or download it again")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        shapes = [f"{k}: file {got[k]} vs model {expected[k]}" for k in sorted(set(expected) & set(got))
                  if got[k] != expected[k]][:5]
        raise VQVAEWeightsError(
            f"{weights} does not fit VQVAEConfig {config.name!r} ({len(got)} keys in the file, "
            f"{len(expected)} expected); missing {missing}, unexpected {extra}, shape mismatches {shapes}. "
            f"Pass the matching config or put its {VQVAE_CONFIG_FILE} next to the weights."
        )
    model.load_state_dict(state, strict=True, assign=True)
    model.apply_torso_dtype()
    return model.to(device).eval()
