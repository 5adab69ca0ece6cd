"""Tiny offline instances of the real generator classes, for tests and benchmarks (no hub needed).

- :func:`build_tiny_llama_mesh`: a random ``LlamaForCausalLM`` (2 layers, hidden 16) with a ByteLevel
  BPE trained here on OBJ-like text and prompts, Llama 3's chat tokens and a Llama-3-style chat
  template. Its replies are random text: every sample is a named parse failure.
- :func:`build_fixed_obj_llama_mesh`: the same model with its weights set so that it replies one fixed,
  valid LLaMA-Mesh OBJ (:data:`STAND_IN_OBJ`, a tetrahedron in the 64-grid) to any prompt: the success
  path end to end, through the real ``generate`` and the real parser (the technique of
  ``ar3d_r1.rewards.stand_ins.build_fixed_reply_vlm``).
- :func:`build_tiny_shap_e`: a ``diffusers.ShapEPipeline`` of tiny random components of the real
  classes (``PriorTransformer``, ``CLIPTextModelWithProjection``, ``HeunDiscreteScheduler``,
  ``ShapERenderer``) and a ``CLIPTokenizer`` read from vocabulary files written here, saved with
  ``save_pretrained`` so the adapter loads it like the hub checkpoint. The renderer's output layer is
  biased so its signed distance field has a surface for every latent (a random one may have none).

Each builder returns the folder to pass as ``--model-args checkpoint=DIR``; the same ``seed`` gives the
same weights and the global torch RNG is left as it was.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STAND_IN_OBJ", "build_fixed_obj_llama_mesh", "build_tiny_llama_mesh", "build_tiny_shap_e",
           "marching_cubes_table"]

#: The fixed reply of :func:`build_fixed_obj_llama_mesh`: a sentence, then a tetrahedron in the 64-grid
#: with 1-based faces, as LLaMA-Mesh writes it.
STAND_IN_OBJ = ("Here is the 3D model.\n"
                "v 0 0 0\nv 63 0 0\nv 0 63 0\nv 0 0 63\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")

_LLAMA_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|eot_id|>")
_LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
_CORPUS = ["Create a 3D model of a red chair with four legs", "v 12 0 33", "f 1 2 3", "v 63 17 5",
           "f 4 5 6", "Here is the 3D model of the object in OBJ format."]


def _llama_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=list(_LLAMA_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_CORPUS * 8, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                  pad_token="<|end_of_text|>", unk_token=None,
                                  additional_special_tokens=list(_LLAMA_SPECIALS[2:4]))
    tok.chat_template = _LLAMA_TEMPLATE
    return tok


def _llama(tok, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def _save(model, tok, out: Path) -> Path:
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def build_tiny_llama_mesh(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random LLaMA-Mesh stand-in (random replies) in ``out_dir``; returns the folder."""
    tok = _llama_tokenizer()
    return _save(_llama(tok, seed), tok, Path(out_dir))


def build_fixed_obj_llama_mesh(out_dir: str | Path, reply: str = STAND_IN_OBJ, seed: int = 0) -> Path:
    """A tiny Llama whose reply to any chat is ``reply`` followed by ``<|eot_id|>``; returns the folder.

    One added (non-special) token holds ``reply``. Every layer's attention and MLP output projections are
    zero, so the residual stream at a position is that token's embedding; the generation prompt's last
    token and the reply token get orthogonal unit embeddings, and the LM head maps the first to the reply
    token and the second to ``<|eot_id|>`` (a logit margin of 40 after the final RMSNorm: sampling at the
    adapter's temperature gives the same reply).
    """
    from tokenizers import AddedToken

    tok = _llama_tokenizer()
    tok.add_tokens([AddedToken(reply, normalized=False, special=False)])
    reply_id = tok.convert_tokens_to_ids(reply)
    start_id = tok.apply_chat_template([{"role": "user", "content": "?"}], add_generation_prompt=True,
                                       tokenize=True, return_dict=True)["input_ids"][-1]
    model = _llama(tok, seed)
    set_fixed_reply(model, model.model.layers, start_id, reply_id, tok.eos_token_id)
    return _save(model, tok, Path(out_dir))


def set_fixed_reply(model, layers, start_id: int, reply_id: int, eos_id: int) -> None:
    """Set a causal LM's weights (in place) so greedy decoding after ``start_id`` writes ``reply_id`` then
    ``eos_id``, whatever came before.

    Every layer's attention and MLP output projections become zero (the residual stream keeps the last
    token's embedding); ``start_id`` and ``reply_id`` get orthogonal unit embeddings; the LM head maps the
    first to ``reply_id`` and the second to ``eos_id``, every other row zero. Used by the fixed-OBJ Llama
    here and the fixed-reply reward VLM (``ar3d_r1.rewards.stand_ins``).
    """
    import torch

    with torch.no_grad():
        for layer in layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        for token, axis in ((start_id, 0), (reply_id, 1)):
            embed[token] = 0.0
            embed[token, axis] = 1.0
        head.zero_()
        head[reply_id, 0] = head[eos_id, 1] = 10.0


def _edge_of_midpoint() -> dict[tuple[float, float, float], int]:
    """diffusers' ``MeshDecoder`` local edge numbering (``_create_flat_edge_indices``): edges 0-3 span
    x at (y, z) = (0,0), (1,0), (0,1), (1,1); 4-7 span y at (x, z) in that order; 8-11 span z at (x, y)."""
    out = {}
    for k in range(4):
        a, b = float(k & 1), float(k >> 1)
        out[(0.5, a, b)], out[(a, 0.5, b)], out[(a, b, 0.5)] = k, 4 + k, 8 + k
    return out


def marching_cubes_table():
    """``(cases [256, 5, 3] long, masks [256, 5] bool)`` for diffusers' ``MeshDecoder`` (its buffers, which
    the hub checkpoint fills and a fresh renderer leaves zero): for each corner sign pattern (corner
    ``x + 2y + 4z`` is bit ``x + 2y + 4z``, set = inside), up to 5 triangles as local edge indices.

    Computed here, not copied: each pattern's 2×2×2 field (+1 inside, -1 outside) goes through
    scikit-image's classic (Lorensen) marching cubes, whose vertices then lie on edge midpoints.
    """
    import numpy as np
    import torch
    from skimage.measure import marching_cubes

    edge = _edge_of_midpoint()
    cases = torch.zeros(256, 5, 3, dtype=torch.long)
    masks = torch.zeros(256, 5, dtype=torch.bool)
    for bits in range(1, 255):
        field = np.array([[[1.0 if bits >> (x + 2 * y + 4 * z) & 1 else -1.0 for z in (0, 1)] for y in (0, 1)]
                          for x in (0, 1)])
        verts, faces, _n, _v = marching_cubes(field, level=0.0, method="lorensen", allow_degenerate=False)
        ids = [edge[tuple(float(c) for c in np.round(v * 2) / 2)] for v in verts]
        for j, face in enumerate(faces):
            cases[bits, j] = torch.tensor([ids[i] for i in face])
            masks[bits, j] = True
    return cases, masks


def _clip_tokenizer(folder: Path):
    """A ``CLIPTokenizer`` from vocabulary files written to ``folder``: the byte alphabet (with and
    without CLIP's ``</w>`` word end) and the two special tokens, no merges (character-level)."""
    import json

    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = sorted(ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate([*chars, *(c + "</w>" for c in chars),
                                         "<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def build_tiny_shap_e(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random ``ShapEPipeline`` (text encoder hidden 32, prior 1 layer, renderer MLP width 8; the
    sizes of diffusers' own pipeline tests) saved to ``out_dir``; returns the folder.

    The renderer's marching-cubes buffers get :func:`marching_cubes_table`, and its last layer's SDF
    output a positive bias (+0.4, weights halved), so every latent's field is positive (inside) around
    the volume's centre and meets the decoder's negative border: each prompt gives a closed mesh.
    """
    import torch
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    out = Path(out_dir)
    tok = _clip_tokenizer(out / "_vocab")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=32, projection_dim=32, intermediate_size=37,
            num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=77,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
        prior = PriorTransformer(num_attention_heads=2, attention_head_dim=16, embedding_dim=32,
                                 num_embeddings=32, embedding_proj_dim=32, time_embed_dim=128, num_layers=1,
                                 clip_embed_dim=64, additional_embeddings=0, time_embed_act_fn="gelu",
                                 norm_in_type="layer", encoder_hid_proj_type=None, added_emb_type=None)
        renderer = ShapERenderer(param_shapes=((8, 93), (8, 8), (8, 8), (8, 8)), d_latent=32, d_hidden=8,
                                 n_output=12, background=(255.0, 255.0, 255.0))
    cases, masks = marching_cubes_table()
    with torch.no_grad():
        renderer.mesh_decoder.cases.copy_(cases)
        renderer.mesh_decoder.masks.copy_(masks)
        last = renderer.mlp.mlp[-1]
        last.weight[0] *= 0.5
        last.bias[0] = 0.4
    # The scheduler of the hub checkpoint (openai/shap-e scheduler_config.json).
    scheduler = HeunDiscreteScheduler(beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample",
                                      use_karras_sigmas=True, clip_sample=True, clip_sample_range=1.0)
    pipe = ShapEPipeline(prior=prior, text_encoder=text_encoder, tokenizer=tok, scheduler=scheduler,
                         shap_e_renderer=renderer)
    pipe.save_pretrained(out)
    return out
