"""One Hi-GRPO optimizer step against one trl 1.16 ``GRPOTrainer`` step (baseline), same tiny model.

Both train the same tiny Qwen2.5-VL-class policy (``build_tiny_policy``) on the same fixed rollouts (P
prompts × G completions of mesh-token length, fixed rewards) in a one-step configuration (DAPO loss:
token-mean, ε 0.2 / 0.28, β = 0.01 k3 KL against a frozen reference, μ = 1), and each step covers the
same work: reference log-probs, advantages, policy log-probs, loss, backward, AdamW step. Generation is
outside both (trl gets the completions through its ``rollout_func`` hook), since the rollouts are
fixed. Ours runs the trainer's own micro-batched step (``ar3d_r1.engine.step``, the path
``HiGRPOTrainer.optimise`` takes). The two are timed interleaved, one step of each per round, and the
medians compared; memory is the peak resident-set growth during a step (CPU; sampled every 2 ms) or
``max_memory_allocated`` (CUDA).

    python benchmarks/train_bench.py --rounds 5 --groups 2 --completion 160
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


class PeakRSS:
    """Peak resident-set growth (MiB) over a ``with`` block, sampled in a thread."""

    def __enter__(self):
        import psutil

        self.proc, self.peak, self.stop = psutil.Process(), 0, False
        self.base = self.proc.memory_info().rss

        def sample():
            while not self.stop:
                self.peak = max(self.peak, self.proc.memory_info().rss)
                time.sleep(0.002)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.mib = max(self.peak - self.base, 0) / 2**20


def fixed_rollouts(tok, vocab, groups: int, G: int, length: int, seed: int = 0):
    from ar3d_r1.rollout.hi_grpo import chat_prompt_ids
    from ar3d_r1.rollout.prompts import geometry_prompts, step1_messages

    gen = torch.Generator().manual_seed(seed)
    prompts = [p.text for p in geometry_prompts(groups, seed)]
    prompt_ids = [chat_prompt_ids(tok, step1_messages(p)) for p in prompts for _ in range(G)]
    codes = torch.randint(0, vocab.codebook_size, (groups * G, length - 3), generator=gen)
    completions = [[vocab.start_id, *vocab.codes_to_ids(c), vocab.end_id, tok.eos_token_id] for c in codes]
    rewards = torch.rand(groups * G, generator=gen).tolist()
    return prompts, prompt_ids, completions, rewards


def ours_step(acc, model, ref, opt, config, prompt_ids, completions, rewards, G, pad_id):
    """The trainer's own step (:func:`ar3d_r1.engine.step.backward_micro_batches`, the one loss path
    ``HiGRPOTrainer.optimise`` runs) on one micro-batch of every row, as trl's, then AdamW."""
    from ar3d_r1.advantages import group_advantages
    from ar3d_r1.engine.step import backward_micro_batches
    from ar3d_r1.logprobs import completion_logprobs, pack_sequences

    ids, att, mask = pack_sequences(prompt_ids, completions, pad_id)
    with torch.no_grad():
        ref_logp = completion_logprobs(ref, ids, att, mask.shape[1])
    adv = group_advantages(torch.tensor(rewards), G)
    tensors = {"step1": {"ids": ids, "att": att, "mask": mask, "advantages": adv}}
    backward_micro_batches(acc, model, tensors, None, {"step1": ref_logp}, config, max_len=mask.shape[1])
    opt.step()
    opt.zero_grad(set_to_none=True)
    return int(mask.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved steps of each")
    ap.add_argument("--groups", type=int, default=2, help="prompts per step (P)")
    ap.add_argument("--G", type=int, default=8, help="completions per prompt")
    ap.add_argument("--completion", type=int, default=160, help="tokens per completion")
    ap.add_argument("--hidden", type=int, default=64, help="hidden size of the tiny policy")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from ar3d_r1.policy.loading import load_policy
    from ar3d_r1.policy.mesh_tokens import MeshVocab
    from ar3d_r1.policy.tiny import build_tiny_policy

    tmp = Path(tempfile.mkdtemp(prefix="train_bench_"))
    policy_dir = build_tiny_policy(tmp / "policy", codebook_size=256, hidden_size=args.hidden)
    model, processor = load_policy(policy_dir)
    ref = load_policy(policy_dir)[0].requires_grad_(False)
    tok = processor.tokenizer
    vocab = MeshVocab.from_tokenizer(tok, 256)
    rollouts = fixed_rollouts(tok, vocab, args.groups, args.G, args.completion)
    prompts, prompt_ids, completions, rewards = rollouts
    n = len(completions)

    def rollout(batch_prompts, trainer):
        return {"prompt_ids": prompt_ids, "completion_ids": completions, "logprobs": None}

    def reward(prompts, completions, completion_ids, **kw):
        return list(rewards)

    cfg = GRPOConfig(output_dir=str(tmp / "trl"), per_device_train_batch_size=n, num_generations=args.G,
                     max_completion_length=args.completion, use_cpu=not torch.cuda.is_available(), beta=0.01,
                     loss_type="dapo", epsilon=0.2, epsilon_high=0.28, report_to="none",
                     gradient_accumulation_steps=1, bf16=False, use_bias_correction_kl=False,
                     learning_rate=1e-6)
    trainer = GRPOTrainer(model=str(policy_dir), reward_funcs=reward, args=cfg, processing_class=tok,
                          train_dataset=Dataset.from_dict({"prompt": prompts * args.G}), rollout_func=rollout)
    trainer.create_optimizer()
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    model.train()
    from accelerate import Accelerator

    from ar3d_r1.config import HiGRPOConfig

    acc = Accelerator(cpu=not torch.cuda.is_available())
    ours_cfg = HiGRPOConfig(num_generations=args.G, per_device_train_batch_size=n, epsilon_low=0.2,
                            epsilon_high=0.28, beta=0.01, aggregation="token-mean", temperature=1.0)
    batch = [{"prompt": p} for p in prompts for _ in range(args.G)]

    def trl_step():
        inputs = trainer._generate_and_score_completions(batch)  # fixed rollouts, rewards, ref log-probs
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        return int(inputs["completion_mask"].sum())

    times = {"ours": [], "trl": []}
    mem = {"ours": [], "trl": []}
    tokens = 0
    for r in range(args.rounds + 1):  # round 0 warms both up and is not counted
        for name in ("ours", "trl"):
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            with PeakRSS() as peak:
                t0 = time.perf_counter()
                if name == "ours":
                    tokens = ours_step(acc, model, ref, opt, ours_cfg, prompt_ids, completions, rewards,
                                       args.G, tok.pad_token_id)
                else:
                    tokens = trl_step()
                dt = time.perf_counter() - t0
            if r:
                times[name].append(dt)
                mem[name].append(torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available()
                                 else peak.mib)
    t_ours, t_trl = statistics.median(times["ours"]), statistics.median(times["trl"])
    print(f"{n} completions x {args.completion} tokens ({tokens} valid), hidden {args.hidden}, "
          f"{args.threads} thread(s), {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    for name, t in (("ours (Hi-GRPO step)", t_ours), ("trl GRPOTrainer", t_trl)):
        key = "ours" if name.startswith("ours") else "trl"
        print(f"{name:22s} median {t:.3f} s/step  {tokens / t:8.0f} tokens/s  peak +{max(mem[key]):.0f} MiB  "
              f"(all: {', '.join(f'{x:.3f}' for x in times[key])})")
    print(f"ratio ours / trl: {t_ours / t_trl:.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
