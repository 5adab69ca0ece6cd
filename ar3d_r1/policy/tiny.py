"""Tiny random Qwen2.5-VL models of the real class, built offline in about a second (tests, dry runs, the
``tiny-cpu`` preset).

:func:`build_tiny_policy` writes a directory that :func:`ar3d_r1.policy.loading.load_policy` reads like a
downloaded checkpoint: a random ``Qwen2_5_VLForConditionalGeneration`` (2 layers, hidden 16, a 1-layer
vision tower; design.md §5), a ByteLevel BPE tokenizer trained here with the ``tokenizers`` library on
the shape descriptions and instructions of the toy task, holding Qwen's chat/vision special tokens and
the mesh tokens, and a ``Qwen2_5_VLProcessor`` with a Qwen-style chat template.

The tiny reward VLM that ``transformers serve`` serves in tests and dry runs
(:func:`ar3d_r1.rewards.stand_ins.build_tiny_vlm`) is built from the same pieces
(:func:`build_bpe_tokenizer`, :func:`tiny_qwen2_5_vl_config`, :func:`tiny_processor`) on another corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "build_bpe_tokenizer", "build_tiny_policy",
           "build_tiny_tokenizer", "tiny_corpus", "tiny_processor", "tiny_qwen2_5_vl_config"]

#: Qwen2.5-VL's special tokens (same strings as the real tokenizer; ids differ and are read back).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>",
)

#: A compact Qwen2-VL chat template: system default, string or typed content, images as vision pads.
#: Images are recognised in every form a message may carry them: the processor's ``{"type": "image"}``
#: and the OpenAI ``image_url`` parts that ``transformers serve`` passes through.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
    "<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_corpus() -> list[str]:
    """Training text for the tiny policy's BPE: every shape description and the instruction wording."""
    from ar3d_r1.policy.shapes import PART_NAMES, SHAPE_KINDS

    lines = [
        "Please generate a 3D mesh based on the prompt I provided:",
        "Please generate a 3D asset based on the prompt I provided:",
        "You are a helpful assistant. Think about the object's category, the layout of its parts, "
        "its proportions, counts, symmetry, colour, material and texture, then answer with a mesh.",
        "semantic reasoning: visual reasoning: the object is a with parts on top below left right",
    ]
    for kind in SHAPE_KINDS:
        for aspect in ("", "tall ", "flat ", "long ", "wide "):
            text = f"a {aspect}{kind}"
            if kind in PART_NAMES:
                word, lo, hi = PART_NAMES[kind]
                lines += [f"{text} with {n} {word}s" for n in range(lo, hi + 1)]
            lines.append(text)
    return lines


def build_bpe_tokenizer(corpus: list[str], vocab_size: int):
    """A ``PreTrainedTokenizerFast``: ByteLevel BPE trained on ``corpus`` up to ``vocab_size`` entries, with
    :data:`SPECIAL_TOKENS`, ``<|im_end|>`` as eos, left padding and :data:`CHAT_TEMPLATE`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]), model_max_length=32768, padding_side="left",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_tokenizer(codebook_size: int, *, vocab_size: int = 384):
    """The tiny policy's tokenizer (:func:`build_bpe_tokenizer` on :func:`tiny_corpus`) with the mesh
    tokens; returns ``(tokenizer, MeshVocab)``."""
    from ar3d_r1.policy.mesh_tokens import add_mesh_tokens

    tok = build_bpe_tokenizer(tiny_corpus(), vocab_size)
    vocab = add_mesh_tokens(tok, codebook_size)
    return tok, vocab


def tiny_qwen2_5_vl_config(tok, *, hidden_size: int = 16, num_layers: int = 2, vision_depth: int = 1):
    """A ``Qwen2_5_VLConfig`` for ``tok``'s vocabulary: ``num_layers`` text layers of ``hidden_size``
    (2 heads, 1 key-value head), a ``vision_depth``-layer vision tower (patch 14, 2×2 merge), special-token
    ids read from ``tok``, eos ``<|im_end|>``, pad and bos ``<|endoftext|>``, untied embeddings."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    heads = 2
    head_dim = hidden_size // heads
    # Multimodal RoPE: the (temporal, height, width) sections split head_dim / 2 frequencies.
    quarter = head_dim // 8 or 1
    mrope = [head_dim // 2 - 2 * quarter, quarter, quarter]
    text_config = dict(
        vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=1,
        max_position_embeddings=8192, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": mrope},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    vision_config = dict(depth=vision_depth, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_heads=heads, out_hidden_size=hidden_size, patch_size=14, spatial_merge_size=2,
                         temporal_patch_size=2, window_size=112, fullatt_block_indexes=[vision_depth - 1])
    config = Qwen2_5_VLConfig(
        text_config=text_config, vision_config=vision_config, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False,
    )
    config.eos_token_id = ids["<|im_end|>"]
    config.pad_token_id = ids["<|endoftext|>"]
    config.bos_token_id = ids["<|endoftext|>"]
    return config


def tiny_processor(tok, *, max_pixels: int):
    """A ``Qwen2_5_VLProcessor`` around ``tok`` whose image processor keeps images between 56² px and
    ``max_pixels`` (so the tiny tower sees a handful of merged patches per image)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    images = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=max_pixels)
    return Qwen2_5_VLProcessor(image_processor=images, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
                               chat_template=CHAT_TEMPLATE)


def build_tiny_policy(out_dir: str | Path, *, codebook_size: int, seed: int = 0, hidden_size: int = 16,
                      num_layers: int = 2) -> Path:
    """Write a random tiny Qwen2.5-VL policy with ``codebook_size`` mesh tokens to ``out_dir``; return it.

    The files are those of ``save_pretrained`` (``config.json``, ``model.safetensors``, tokenizer and
    processor files) plus ``tiny_policy.json`` (what was built, with which seed). The same ``seed`` gives the
    same weights. Loadable with :func:`ar3d_r1.policy.loading.load_policy`.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok, vocab = build_tiny_tokenizer(codebook_size)
    config = tiny_qwen2_5_vl_config(tok, hidden_size=hidden_size, num_layers=num_layers, vision_depth=1)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [config.eos_token_id, vocab.end_id]
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    # Small images: the tiny tower sees at most 16 x 16 merged patches per image.
    tiny_processor(tok, max_pixels=224 * 224).save_pretrained(out)
    tok.save_pretrained(out)
    info = {"kind": "tiny-qwen2.5-vl", "seed": seed, "hidden_size": hidden_size, "num_layers": num_layers,
            "codebook_size": codebook_size, "vocab_size": len(tok), "mesh_start_id": vocab.start_id,
            "mesh_end_id": vocab.end_id}
    (out / "tiny_policy.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out
