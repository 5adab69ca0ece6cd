"""Fitting a :class:`~ar3d_r1.policy.vqvae.VQVAE3D` on procedural shapes (the ``tiny-cpu`` VQVAE).

Objective (van den Oord et al., "Neural Discrete Representation Learning", 2017, eq. 3, with the
codebook term replaced by exponential moving averages, their appendix A.1):
``BCE(logits, occupancy) + beta * ||z_e - sg[e]||^2`` through the straight-through estimator
(``VQVAE3D.forward``); each code moves to the decayed mean of the encoder outputs assigned to it. Two
standard remedies for codebook collapse: the codebook starts as a random sample of encoder outputs
(k-means-style initialisation, Łańcucki et al. 2020, "Robust training of vector quantized bottleneck
models"), and codes unused for ``restart_every`` steps are re-seeded from current encoder outputs. All of
this only writes ``vq.embeddings``: the saved state dict keeps the authors' layout.

Data: :func:`ar3d_r1.policy.shapes.shape_grids` (primitives and compositions, voxelised) with random
flips along x and z and x/z swaps (the up axis y is kept); the held-out set is drawn from another seed.
The run logs reconstruction IoU (after quantisation, threshold logit > 0) and codebook use (the share of
the K codes that held-out shapes use, and the perplexity of their frequencies).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ar3d_r1.policy.shapes import shape_grids
from ar3d_r1.policy.voxels import voxel_iou
from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, latents_to_tokens, save_vqvae

__all__ = ["FIT_PRESETS", "FitConfig", "FitResult", "codebook_usage", "evaluate_reconstruction", "fit_vqvae"]


@dataclass
class FitConfig:
    """How to fit a VQVAE; ``FitConfig.preset("tiny-cpu")`` is the CPU reference run."""

    vqvae: VQVAEConfig = field(default_factory=VQVAEConfig.tiny, metadata={"help": "model size"})
    n_train: int = field(default=512, metadata={"help": "procedural training shapes"})
    n_val: int = field(default=64, metadata={"help": "held-out shapes (another seed)"})
    fill: bool = field(default=True, metadata={"help": "solid grids (cavities filled), not surface voxels"})
    steps: int = field(default=1500, metadata={"help": "optimiser steps (at most)"})
    max_seconds: float = field(default=540.0, metadata={"help": "wall-clock budget for training (s)"})
    batch_size: int = field(default=16, metadata={"help": "shapes per step"})
    lr: float = field(default=3e-3, metadata={"help": "Adam learning rate (cosine decay to 5%)"})
    beta: float = field(default=0.25, metadata={"help": "commitment weight"})
    warmup_steps: int = field(default=0, metadata={"help": "autoencoder steps before the codebook is seeded"})
    ema_decay: float = field(default=0.95, metadata={"help": "codebook moving-average decay"})
    restart_every: int = field(default=20, metadata={"help": "re-seed codes unused for this many steps"})
    eval_every: int = field(default=100, metadata={"help": "held-out IoU every this many steps"})
    eval_seconds: float = field(default=60.0, metadata={"help": "... or after this many seconds (and at "
                                                                "the first step), whichever comes first"})
    target_iou: float = field(default=0.0, metadata={"help": "stop early at this held-out IoU (0: never)"})
    seed: int = field(default=0, metadata={"help": "data and initialisation seed"})
    threads: int = field(default=0, metadata={"help": "torch threads (0: as many as cores are free, "
                                                       ":func:`pick_threads`)"})

    def __post_init__(self) -> None:
        """Every number finite and in its :data:`FIT_RANGES` range: ValueError ``<field> must be ...``."""
        from ar3d_r1.config import in_range

        for name, spec in FIT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or not in_range(value, spec):
                where = f" {spec}" if spec[:1] in "<>" else f" in {spec}"
                raise ValueError(f"{name} must be a finite number{where}, got {value!r}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FitConfig:
        if name not in FIT_PRESETS:
            raise ValueError(f"unknown fit preset {name!r}; known: {', '.join(FIT_PRESETS)}")
        return cls(**{**FIT_PRESETS[name](), **overrides})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vqvae"] = self.vqvae.to_dict()
        return d


#: The range of each numeric :class:`FitConfig` field (``ar3d_r1.config.RANGES``' notation).
FIT_RANGES = {"n_train": ">= 1", "n_val": ">= 1", "steps": ">= 1", "max_seconds": "> 0",
              "batch_size": ">= 1", "lr": "> 0", "beta": ">= 0", "warmup_steps": ">= 0",
              "ema_decay": "[0, 1]", "restart_every": ">= 0", "eval_every": ">= 1", "eval_seconds": ">= 0",
              "target_iou": "[0, 1]", "seed": ">= 0", "threads": ">= 0"}

#: Named fit set-ups (factories so each call gets fresh objects).
FIT_PRESETS: dict[str, Callable[[], dict[str, Any]]] = {
    # The reference proof's input must not depend on the machine's load: a fixed step count (the cosine
    # schedule then decays fully), one torch thread (the summation order, hence the weights, is fixed),
    # and a time budget that is only a safety stop. It used to stop at a 540 s budget: 1,037 steps idle,
    # 619-673 on a loaded machine, and one such input failed the reward-rise proof (docs/training.md).
    "tiny-cpu": lambda: {"vqvae": VQVAEConfig.tiny(), "steps": 1000, "max_seconds": 3600.0, "threads": 1},
    # A seconds-long run for tests: same code path, far from converged.
    "smoke": lambda: {"vqvae": VQVAEConfig.tiny(), "n_train": 32, "n_val": 8, "steps": 6, "batch_size": 4,
                      "eval_every": 3, "restart_every": 2, "warmup_steps": 2},
}


@dataclass
class FitResult:
    """What a fit produced: ``model``, the held-out IoU / code use at the end, the logged ``history``."""

    model: VQVAE3D
    val_iou: float
    codes_used: float
    perplexity: float
    steps: int
    seconds: float
    history: list[dict[str, float]]
    weights: Path | None = None
    interrupted: bool = False

    def summary(self) -> dict[str, Any]:
        return {"val_iou": self.val_iou, "codes_used": self.codes_used, "perplexity": self.perplexity,
                "steps": self.steps, "seconds": self.seconds, "interrupted": self.interrupted,
                "weights": str(self.weights) if self.weights else None}


def pick_threads(requested: int = 0) -> tuple[int, str]:
    """The torch thread count for a fit, and why: ``requested`` when > 0, else the cores this process may
    run on (``os.sched_getaffinity``) less the 1-minute load average (rounded, at least 1).

    Why: on a machine shared with other jobs, torch's default (one thread per core) made the tiny-cpu fit
    about 5× slower than one thread (the threads wait on each other while other processes hold the
    cores), while on an idle 2-core machine two threads ran 80 steps in 60 s against one thread's 64
    (docs/benchmarks.md). The load average lags by about a minute.
    """
    import os

    if requested > 0:
        return requested, f"{requested} torch thread(s) (--threads)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    n = max(1, min(cores, int(cores - load + 0.5)))
    return n, (f"{n} torch thread(s): {cores} core(s), 1-minute load {load:.1f}, so about {n} free "
               "(more threads than free cores wait on each other; --threads N overrides)")


def codebook_usage(ids: torch.Tensor, codebook_size: int) -> tuple[float, float]:
    """(B, N) int64 ids -> (share of the K codes used at least once, perplexity exp(H(freq))).

    Perplexity is the usual VQ health measure (1 = collapse onto one code, K = uniform use).
    """
    counts = torch.bincount(ids.reshape(-1), minlength=codebook_size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float((counts > 0).double().mean()), float(entropy.exp())


@torch.no_grad()
def evaluate_reconstruction(model: VQVAE3D, grids: torch.Tensor, batch_size: int = 32) -> dict[str, float]:
    """Mean IoU of ``decode(encode(x)) > 0`` against (B, 1, R, R, R) float grids ``x``, plus code use."""
    model.eval()
    ious, all_ids = [], []
    for i in range(0, len(grids), batch_size):
        x = grids[i:i + batch_size]
        ids = model.encode(x)
        recon = model.decode(ids) > 0
        ious.append(voxel_iou(recon[:, 0].numpy(), x[:, 0].numpy() > 0.5))
        all_ids.append(ids)
    used, ppl = codebook_usage(torch.cat(all_ids), model.config.codebook_size)
    return {"iou": float(np.mean(np.concatenate([np.atleast_1d(v) for v in ious]))), "codes_used": used,
            "perplexity": ppl}


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips along x and z and a random x/z swap, per batch (y, the up axis, is kept)."""
    flips = torch.rand(3, generator=gen)
    if flips[0] < 0.5:
        x = x.flip(2)
    if flips[1] < 0.5:
        x = x.flip(4)
    if flips[2] < 0.5:
        x = x.transpose(2, 4)
    return x.contiguous()


class _EMACodebook:
    """Moving-average codebook state (counts and sums per code); writes ``model.vq.embeddings`` only."""

    def __init__(self, model: VQVAE3D, decay: float, gen: torch.Generator) -> None:
        self.weight = model.vq.embeddings.weight
        self.weight.requires_grad_(False)
        self.decay, self.gen = decay, gen
        self.size = torch.ones(len(self.weight))
        self.sum = self.weight.detach().clone()

    @torch.no_grad()
    def seed(self, which: torch.Tensor, latents: torch.Tensor) -> None:
        """Codes ``which`` := random encoder outputs (M, D) plus a little noise (count reset to 1)."""
        if not len(which) or not len(latents):
            return
        pick = torch.randint(len(latents), (len(which),), generator=self.gen)
        noise = 0.01 * latents.std() * torch.randn(len(which), latents.shape[1], generator=self.gen)
        self.sum[which] = latents[pick] + noise
        self.size[which] = 1.0
        self.weight[which] = self.sum[which]

    @torch.no_grad()
    def update(self, ids: torch.Tensor, latents: torch.Tensor) -> None:
        """e_k := decayed sum / decayed count of the (M, D) latents assigned to k (Laplace-smoothed)."""
        k, d = self.weight.shape
        flat = ids.reshape(-1)
        counts = torch.bincount(flat, minlength=k).float()
        sums = torch.zeros(k, d).index_add_(0, flat, latents.reshape(-1, d).float())
        self.size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.size.sum()
        smoothed = (self.size + 1e-5) / (n + k * 1e-5) * n
        self.weight.copy_(self.sum / smoothed[:, None])


#: Below this held-out IoU a fit is not usable for the tiny-cpu policy: its decoded meshes are mostly
#: malformed, so `sft` learns from poor targets and `train`'s rewards are 0 (every step skipped). The
#: tiny-cpu reference fit reaches 0.85-0.95 in its 10-minute budget (docs/policy.md); a fit cut to a
#: minute or two on a busy machine can end near 0.
USABLE_IOU = 0.5


def usability_warning(result) -> str | None:
    """One line when a fit ``result`` (``FitResult``) is too poor to train on; ``None`` when it is usable."""
    if result.steps == 0:
        return ("warning: the time budget ran out before the first optimiser step: the saved weights are "
                "untrained; give it more --max-seconds")
    if not result.val_iou >= USABLE_IOU:  # also catches nan
        return (f"warning: held-out IoU {result.val_iou:.3f} is below {USABLE_IOU}: meshes decoded with this "
                "VQVAE will be mostly malformed and `ar3d-r1 train` will get no reward signal; fit longer "
                "(more --max-seconds or --steps; the tiny-cpu reference reaches 0.85+ in 10 minutes)")
    return None


def fit_vqvae(
    config: FitConfig,
    out_dir: str | Path | None = None,
    *,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Fit a VQVAE per ``config``; save it to ``out_dir`` (``3DVQVAE.bin`` + ``vqvae_config.json``) if given.

    ``progress`` is called after every step with ``{"step", "loss", "seconds"}`` and, at evaluations (the
    first step, then every ``eval_every`` steps or ``eval_seconds``, whichever comes first, and the last),
    also ``{"val_iou", "codes_used", "perplexity"}``. Training stops at ``steps``, after ``max_seconds``,
    when the held-out IoU reaches ``target_iou`` (> 0), or on Ctrl-C (``KeyboardInterrupt``): the model so
    far is then saved like a finished one (``result.interrupted``; it loads wherever a fitted VQVAE does).
    Threads: :func:`pick_threads`. Returns the final held-out evaluation.
    """
    torch.set_num_threads(pick_threads(config.threads)[0])
    run = _Fit(config, progress)
    interrupted = False
    try:
        while run.step < config.steps and time.perf_counter() - run.t0 < config.max_seconds:
            if run.one_step():
                break
    except KeyboardInterrupt:
        interrupted = True
    evaluation = run.evaluation
    if not evaluation or (not interrupted and "val_iou" not in run.history[-1]):
        evaluation = evaluate_reconstruction(run.model, run.val)
    run.model.eval()
    result = FitResult(run.model, evaluation["iou"], evaluation["codes_used"], evaluation["perplexity"],
                       run.step, time.perf_counter() - run.t0, run.history, interrupted=interrupted)
    if out_dir is not None:
        result.weights = save_vqvae(run.model, out_dir)
    return result


class _Fit:
    """The state of one :func:`fit_vqvae` run: data, model, codebook, optimiser, step and log."""

    def __init__(self, config: FitConfig, progress: Callable[[dict[str, float]], None] | None) -> None:
        self.config, self.progress, self.t0 = config, progress, time.perf_counter()
        cfg = config.vqvae
        torch.manual_seed(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        _, train = shape_grids(config.n_train, cfg.resolution, seed=config.seed, fill=config.fill)
        _, val = shape_grids(config.n_val, cfg.resolution, seed=config.seed + 1_000_003, fill=config.fill)
        self.train = torch.from_numpy(train).float().unsqueeze(1)
        self.val = torch.from_numpy(val).float().unsqueeze(1)
        self.model = VQVAE3D(cfg)
        self.codebook = _EMACodebook(self.model, config.ema_decay, self.gen)
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=config.lr)
        self.last_used = torch.zeros(cfg.codebook_size, dtype=torch.long)
        self.history: list[dict[str, float]] = []
        self.evaluation: dict[str, float] = {}
        self.seeded, self.step, self.last_eval = False, 0, self.t0

    def one_step(self) -> bool:
        """One optimiser step (and the evaluation when due); True when the target IoU is reached."""
        config, cfg, model = self.config, self.config.vqvae, self.model
        model.train()
        lr = config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * self.step / max(1, config.steps))))
        for group in self.opt.param_groups:
            group["lr"] = lr
        x = _augment(self.train[torch.randint(len(self.train), (config.batch_size,), generator=self.gen)],
                     self.gen)
        if not self.seeded and self.step >= config.warmup_steps:
            # k-means-style start: the codebook is a sample of the warmed-up encoder's outputs.
            with torch.no_grad():
                lat = latents_to_tokens(model.encode_latent(x), cfg.z_group).reshape(-1, cfg.code_dim)
            self.codebook.seed(torch.arange(cfg.codebook_size), lat)
            self.seeded = True
        out = model(x, quantize=self.seeded)
        recon = F.binary_cross_entropy_with_logits(out["logits"], x)
        loss = recon + config.beta * out["commitment_loss"] if self.seeded else recon
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        self._codebook_upkeep(out)
        now = time.perf_counter()
        record = {"step": float(self.step), "loss": float(loss.detach()), "recon": float(recon.detach()),
                  "seconds": now - self.t0}
        final = self.step >= config.steps or now - self.t0 >= config.max_seconds
        due = self.step % config.eval_every == 0 or now - self.last_eval >= config.eval_seconds
        if self.step == 1 or due or final:
            self.evaluation, self.last_eval = evaluate_reconstruction(model, self.val), now
            record.update({"val_iou": self.evaluation["iou"], "codes_used": self.evaluation["codes_used"],
                           "perplexity": self.evaluation["perplexity"]})
        self.history.append(record)
        if self.progress is not None:
            self.progress(record)
        return config.target_iou > 0 and "val_iou" in record and record["val_iou"] >= config.target_iou

    def _codebook_upkeep(self, out: dict) -> None:
        """The moving-average update, and the re-seeding of codes unused for ``restart_every`` steps."""
        if not self.seeded:
            return
        self.codebook.update(out["ids"], out["latent"].detach())
        self.last_used[torch.unique(out["ids"])] = self.step
        every = self.config.restart_every
        if every and self.step % every == 0:
            dead = torch.nonzero(self.step - self.last_used >= every).flatten()
            self.codebook.seed(dead, out["latent"].detach().reshape(-1, self.config.vqvae.code_dim))
            self.last_used[dead] = self.step
