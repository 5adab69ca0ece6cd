"""Data parallelism for the Hi-GRPO trainer: who generates which rows, and the cross-process sums.

The global batch of one generation is B = P·G completions (P prompts, G samples each, grouped), split
into contiguous blocks, one per process, as trl's ``GRPOTrainer`` does (its ``process_slice``): process
k holds rows ``[k·B/W, (k+1)·B/W)``. A group of G samples may therefore span processes (paper set-up: 1
completion per device × 2 accumulation steps on 8 GPUs = 16 rows, so each group of 8 spans 4 GPUs).
The group z-score needs every reward of the group, so each process scores its own rows, the rewards are
gathered (all processes then hold all B, in row order), the advantages are computed on all of them,
and each process keeps its own block (trl: "``rewards_per_func = gather(rewards_per_func)`` ... this
part is crucial, because the rewards are normalized per group and the completions may be distributed
across processes").

The loss is a batch-level aggregate (token-mean over all valid tokens of the group, design.md §6). Each
micro-batch contributes ``loss_part × share`` where ``share`` is its fraction of the *global* tokens
(or rows), so the per-process losses add up to the batch loss; gradients are then summed over processes
(:func:`sum_gradients`), not averaged. This is trl's ``num_items_in_batch`` gathered over processes,
written as a sum instead of "average, then multiply by W".

With one process every function here is the identity (no collective is called).
"""

from __future__ import annotations

import numpy as np
import torch


def process_rows(total: int, num_processes: int, process_index: int) -> slice:
    """Rows ``[k·B/W, (k+1)·B/W)`` of a global batch of ``total`` rows held by process ``k`` of ``W``.

    Raises ValueError unless ``total`` splits evenly (the config's batch arithmetic guarantees it:
    ``per_device_train_batch_size × gradient_accumulation_steps`` rows per process).
    """
    if total % num_processes:
        raise ValueError(f"a global batch of {total} rows does not split over {num_processes} processes")
    per = total // num_processes
    return slice(process_index * per, (process_index + 1) * per)


def gather_rows(accelerator, local: np.ndarray) -> np.ndarray:
    """All processes' ``local (n,) float64`` blocks concatenated in process order: ``(W·n,) float64``.

    NaN (a failed sample) travels as NaN. Every process must call this with the same ``n``.
    """
    local = np.asarray(local, dtype=np.float64)
    if accelerator.num_processes == 1:
        return local.copy()
    from accelerate.utils import gather

    t = torch.as_tensor(local, device=accelerator.device)
    return gather(t).cpu().numpy().astype(np.float64)


def gather_list(accelerator, items: list) -> list:
    """All processes' python lists concatenated in process order (picklable items)."""
    if accelerator.num_processes == 1:
        return list(items)
    from accelerate.utils import gather_object

    return list(gather_object(list(items)))


def global_sums(accelerator, values: dict[str, float]) -> dict[str, float]:
    """Each value summed over processes (keys in sorted order, so every process reduces the same list)."""
    if accelerator.num_processes == 1 or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=accelerator.device)
    t = accelerator.reduce(t, reduction="sum")
    return dict(zip(keys, t.cpu().tolist(), strict=True))


def sum_gradients(accelerator, parameters) -> None:
    """Sum every ``.grad`` over processes in place (module docstring: losses are shares of the global
    aggregate). A no-op with one process, and under DeepSpeed, whose engine reduces its own partitions
    (see :func:`deepspeed_loss_scale`)."""
    if accelerator.num_processes == 1 or is_deepspeed(accelerator):
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    # one flat all-reduce instead of one per tensor (the tiny policy has ~50 tensors; the paper's ~700)
    flat = torch.cat([g.reshape(-1) for g in grads])
    flat = accelerator.reduce(flat, reduction="sum")
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def is_deepspeed(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def deepspeed_loss_scale(accelerator, micro_batches: int) -> float:
    """The factor a micro-batch loss is multiplied by under DeepSpeed so the engine's own reduction
    (mean over the W data-parallel ranks, and ×1/``gradient_accumulation_steps`` per backward) gives the
    summed gradient this trainer defines; 1.0 otherwise. ``micro_batches`` must equal the DeepSpeed
    config's ``gradient_accumulation_steps`` (:func:`check_deepspeed_accumulation`)."""
    if not is_deepspeed(accelerator):
        return 1.0
    return float(accelerator.num_processes * micro_batches)


def check_deepspeed_accumulation(accelerator, micro_batches: int) -> None:
    """Raise ValueError unless DeepSpeed steps its optimizer once per ``micro_batches`` backward calls
    (the trainer's micro-batches per optimizer step on each process)."""
    if not is_deepspeed(accelerator):
        return
    gas = accelerator.state.deepspeed_plugin.deepspeed_config.get("gradient_accumulation_steps")
    # accelerate's accumulate() marks every gas-th backward as the boundary DeepSpeed steps at
    if gas != micro_batches or accelerator.gradient_accumulation_steps != micro_batches:
        raise ValueError(
            f"the DeepSpeed config has gradient_accumulation_steps={gas} but the trainer takes "
            f"{micro_batches} micro-batches per optimizer step on each process "
            "(gradient_accumulation_steps of the run); set the DeepSpeed value to that number")
