"""Our GRPO/DAPO loss and gradients equal trl 1.16 GRPOTrainer's on identical fixed rollouts (Must-show 2).

The same tiny causal LM (saved to a directory, so trl's reference model loads the same weights), the
same prompts, completions and rewards: trl receives the completions through its ``rollout_func`` hook
and the rewards through a reward function, builds its batch with ``_generate_and_score_completions`` and
computes ``compute_loss``; we recompute the log-probs (:mod:`ar3d_r1.logprobs`), the advantages
(:func:`group_advantages`) and the loss (:func:`policy_loss`) from the token lists alone, and again
through the trainer's own micro-batched step (:func:`ar3d_r1.engine.step.backward_micro_batches`, the
one loss path ``HiGRPOTrainer.optimise`` runs, on uneven micro-batches of 3, 3 and 2 rows). The policy
is perturbed away from the reference before scoring, so the k3 KL term and its gradient are not zero.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl")

from ar3d_r1.advantages import group_advantages  # noqa: E402
from ar3d_r1.logprobs import completion_logprobs, pack_sequences  # noqa: E402
from ar3d_r1.loss import policy_loss  # noqa: E402

PROMPTS = ["w3 w4 w5", "w7 w8"]
G = 4
# two prompts × four completions; id 1 is <eos>; two completions are cut at max_completion_length = 6
COMPLETIONS = [[10, 11, 12, 1], [13, 14, 1], [10, 10, 10, 10, 10, 10], [20, 1],
               [21, 22, 23, 1], [24, 1], [25, 26, 27, 28, 29, 30], [31, 1]]
REWARDS = [0.1, 0.9, 0.3, 0.5, 1.0, 0.0, 0.2, 0.2]
TEMPERATURE = 0.7


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    words = ["<pad>", "<eos>"] + [f"w{i}" for i in range(60)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="w0"
    )
    cfg = Qwen2Config(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      pad_token_id=0, eos_token_id=1, bos_token_id=None, tie_word_embeddings=False)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_lm")
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def _trl_step(model_dir, tmp_path, loss_type, eps_low, eps_high, beta, kl_correction):
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    # (AutoTokenizer would rebuild a Qwen2 BPE tokenizer from the model type; keep our word-level one)
    tok = PreTrainedTokenizerFast.from_pretrained(model_dir)

    def rollout(prompts, trainer):
        return {"prompt_ids": [tok(p)["input_ids"] for p in prompts], "completion_ids": COMPLETIONS,
                "logprobs": None}

    def fixed_reward(prompts, completions, completion_ids, **kwargs):
        return [REWARDS[COMPLETIONS.index(list(c))] for c in completion_ids]

    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=len(COMPLETIONS),
                      num_generations=G, max_completion_length=6, use_cpu=True, beta=beta,
                      loss_type=loss_type,
                      epsilon=eps_low, epsilon_high=eps_high, temperature=TEMPERATURE, report_to="none",
                      gradient_accumulation_steps=1, bf16=False,
                      use_bias_correction_kl=kl_correction)
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=fixed_reward, args=args, processing_class=tok,
                          train_dataset=Dataset.from_dict({"prompt": PROMPTS * G}), rollout_func=rollout)
    with torch.no_grad():  # move the policy off the reference so the KL term matters
        gen = torch.Generator().manual_seed(1)
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    trainer.model.train()
    inputs = trainer._generate_and_score_completions([{"prompt": p} for p in PROMPTS for _ in range(G)])
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop otherwise
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters()}
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return trainer, inputs, loss.detach(), grads, metrics, tok


@pytest.mark.parametrize(
    "loss_type, eps_low, eps_high, beta, aggregation, kl_correction",
    [("grpo", 0.2, 0.2, 0.04, "seq-mean-token-mean", False),  # GRPO: per-sequence mean, symmetric clip, k3
     ("dapo", 0.2, 0.28, 0.0, "token-mean", False),  # DAPO: token mean, clip-higher, no KL
     ("dapo", 0.2, 0.28, 0.01, "token-mean", False),  # one Hi-GRPO step: DAPO's loss + β = 0.01 k3 KL
     ("dapo", 0.2, 0.28, 0.01, "token-mean", True)],  # trl 1.16's default ratio-corrected KL gradient
)
def test_loss_and_gradients_equal_trl_grpo_trainer(tiny_lm_dir, tmp_path, loss_type, eps_low, eps_high, beta,
                                                   aggregation, kl_correction):
    from transformers import AutoModelForCausalLM

    trainer, inputs, trl_loss, trl_grads, metrics, tok = _trl_step(
        tiny_lm_dir, tmp_path, loss_type, eps_low, eps_high, beta, kl_correction
    )
    policy = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    policy.load_state_dict(trainer.model.state_dict())
    policy.train()
    ref = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()

    prompt_ids = [tok(p)["input_ids"] for p in PROMPTS for _ in range(G)]
    ids, att, cmask = pack_sequences(prompt_ids, COMPLETIONS, tok.pad_token_id)
    adv = group_advantages(torch.tensor(REWARDS), G)
    torch.testing.assert_close(adv, inputs["advantages"], rtol=0, atol=1e-6)

    logp = completion_logprobs(policy, ids, att, cmask.shape[1], temperature=TEMPERATURE)
    with torch.no_grad():
        ref_logp = completion_logprobs(ref, ids, att, cmask.shape[1], temperature=TEMPERATURE)
    loss, stats = policy_loss(logp, logp.detach(), adv, cmask, ref_logp=ref_logp if beta else None,
                              eps_low=eps_low, eps_high=eps_high, beta=beta, aggregation=aggregation,
                              kl_ratio_correction=kl_correction)
    loss.backward()

    assert abs(loss.item() - trl_loss.item()) <= 1e-6
    ours = dict(policy.named_parameters())
    assert set(ours) == set(trl_grads)
    for name, g in trl_grads.items():
        torch.testing.assert_close(ours[name].grad, g, rtol=0, atol=1e-6, msg=f"gradient of {name}")
    # the gradients are not trivially zero
    assert max(g.abs().max().item() for g in trl_grads.values()) > 1e-3
    if beta:
        assert stats["kl"] == pytest.approx(metrics["kl"], abs=1e-6) and stats["kl"] > 1e-3
    assert stats["clip_region"] == metrics["clip_ratio/region_mean"] == 0.0  # on-policy: ρ ≡ 1


@pytest.mark.parametrize(
    "loss_type, eps_low, eps_high, beta, aggregation",
    [("grpo", 0.2, 0.2, 0.04, "seq-mean-token-mean"), ("dapo", 0.2, 0.28, 0.0, "token-mean"),
     ("dapo", 0.2, 0.28, 0.01, "token-mean")],
)
def test_the_trainers_micro_batched_step_equals_trl(tiny_lm_dir, tmp_path, loss_type, eps_low, eps_high, beta,
                                                    aggregation):
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    from ar3d_r1.config import HiGRPOConfig
    from ar3d_r1.engine.step import backward_micro_batches

    trainer, _, trl_loss, trl_grads, metrics, tok = _trl_step(
        tiny_lm_dir, tmp_path, loss_type, eps_low, eps_high, beta, False
    )
    policy = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    policy.load_state_dict(trainer.model.state_dict())
    ref = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    prompt_ids = [tok(p)["input_ids"] for p in PROMPTS for _ in range(G)]
    ids, att, cmask = pack_sequences(prompt_ids, COMPLETIONS, tok.pad_token_id)
    tensors = {"step1": {"ids": ids, "att": att, "mask": cmask,
                         "advantages": group_advantages(torch.tensor(REWARDS), G).float()}}
    with torch.no_grad():
        ref_logp = {"step1": completion_logprobs(ref, ids, att, cmask.shape[1], temperature=TEMPERATURE)}
    config = HiGRPOConfig(num_generations=G, per_device_train_batch_size=3, epsilon_low=eps_low,
                          epsilon_high=eps_high, beta=beta, aggregation=aggregation, temperature=TEMPERATURE)
    stats = backward_micro_batches(Accelerator(cpu=True), policy, tensors, None, ref_logp if beta else None,
                                   config, max_len=6)
    assert abs(stats["loss"] - trl_loss.item()) <= 1e-6
    ours = dict(policy.named_parameters())
    for name, g in trl_grads.items():
        torch.testing.assert_close(ours[name].grad, g, rtol=0, atol=1e-6, msg=f"gradient of {name}")
    if beta:
        assert stats["step1/kl"] == pytest.approx(metrics["kl"], abs=1e-6)
