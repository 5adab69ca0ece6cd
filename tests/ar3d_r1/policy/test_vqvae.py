"""The 3D VQVAE: the paper-size state dict (Must show 1), the token layout (Must show 2), weights I/O."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ar3d_r1.policy.vqvae import (  # noqa: E402
    VQVAE3D,
    VQVAEConfig,
    VQVAEWeightsError,
    latents_to_tokens,
    load_vqvae,
    save_vqvae,
    tokens_to_latents,
)
from ar3d_r1.policy.vqvae_layers import LayerNorm32, pixel_shuffle_3d  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _res(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    out = {}
    for n in ("norm1", "norm2"):
        out[f"{prefix}.{n}.weight"] = (c,)
        out[f"{prefix}.{n}.bias"] = (c,)
    for n in ("conv1", "conv2"):
        out[f"{prefix}.{n}.weight"] = (c, c, 3, 3, 3)
        out[f"{prefix}.{n}.bias"] = (c,)
    return out


def _facts_key_shapes() -> dict[str, tuple[int, ...]]:
    """The key/shape list of ``3DVQVAE.bin`` written out from shapellm-facts.md, item by item."""
    k: dict[str, tuple[int, ...]] = {
        "Encoder.input_layer.weight": (32, 1, 3, 3, 3), "Encoder.input_layer.bias": (32,),
    }
    for i, c in ((0, 32), (1, 32), (3, 128), (4, 128), (6, 512), (7, 512)):
        k.update(_res(f"Encoder.blocks.{i}", c))
    k.update({"Encoder.blocks.2.conv.weight": (128, 32, 2, 2, 2), "Encoder.blocks.2.conv.bias": (128,),
              "Encoder.blocks.5.conv.weight": (512, 128, 2, 2, 2), "Encoder.blocks.5.conv.bias": (512,)})
    for i in (0, 1):
        k.update(_res(f"Encoder.middle_block.{i}", 512))
    k.update({"Encoder.out_layer.0.weight": (512,), "Encoder.out_layer.0.bias": (512,),
              "Encoder.out_layer.2.weight": (16, 512, 3, 3, 3), "Encoder.out_layer.2.bias": (16,)})
    k.update({"Decoder.input_layer.weight": (512, 8, 3, 3, 3), "Decoder.input_layer.bias": (512,)})
    for i in (0, 1):
        k.update(_res(f"Decoder.middle_block.{i}", 512))
    for i, c in ((0, 512), (1, 512), (3, 128), (4, 128), (6, 32), (7, 32)):
        k.update(_res(f"Decoder.blocks.{i}", c))
    k.update({"Decoder.blocks.2.conv.weight": (1024, 512, 3, 3, 3), "Decoder.blocks.2.conv.bias": (1024,),
              "Decoder.blocks.5.conv.weight": (256, 128, 3, 3, 3), "Decoder.blocks.5.conv.bias": (256,)})
    k.update({"Decoder.out_layer.0.weight": (32,), "Decoder.out_layer.0.bias": (32,),
              "Decoder.out_layer.2.weight": (1, 32, 3, 3, 3), "Decoder.out_layer.2.bias": (1,)})
    k["vq.embeddings.weight"] = (8192, 32)
    return k


def test_paper_state_dict_equals_the_facts_file_key_and_shape_list():
    with torch.device("meta"):  # 133 M parameters: never allocated
        model = VQVAE3D(VQVAEConfig.paper())
    got = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert got == _facts_key_shapes()
    assert len(got) == 149
    assert sum(int(np.prod(s)) for s in got.values()) == 133_231_537
    cfg = VQVAEConfig.paper()
    assert (cfg.num_tokens, cfg.code_dim, cfg.latent_resolution) == (1024, 32, 16)


def test_token_layout_matches_an_independent_numpy_computation():
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(2, 8, 16, 16, 16)).astype(np.float32)
    tokens = latents_to_tokens(torch.from_numpy(latent), 4).numpy()
    assert tokens.shape == (2, 1024, 32)
    expected = np.empty_like(tokens)
    for t in range(1024):
        x, y, zb = t // 64, (t // 4) % 16, t % 4
        # token t = the 4 consecutive z latents 4*zb ... 4*zb+3, each with all 8 channels (z-major).
        expected[:, t] = np.concatenate([latent[:, :, x, y, 4 * zb + j] for j in range(4)], axis=1)
    np.testing.assert_array_equal(tokens, expected)
    back = tokens_to_latents(torch.from_numpy(tokens), 16, 4).numpy()
    np.testing.assert_array_equal(back, latent)


def test_decode_of_encode_is_exact_when_the_codebook_reproduces_the_latents():
    cfg = VQVAEConfig.tiny(codebook_size=512)
    torch.manual_seed(0)
    model = VQVAE3D(cfg).eval()
    x = (torch.rand(2, 1, cfg.resolution, cfg.resolution, cfg.resolution) > 0.6).float()
    with torch.no_grad():
        latent = model.encode_latent(x)
        tokens = latents_to_tokens(latent, cfg.z_group).reshape(-1, cfg.code_dim)  # 256 distinct vectors
        perm = torch.randperm(cfg.codebook_size)[: len(tokens)]
        book = torch.randn(cfg.codebook_size, cfg.code_dim) * 100 + 1000  # every other code far away
        book[perm] = tokens
        model.vq.embeddings.weight.copy_(book)
    ids = model.encode(x)
    assert ids.dtype == torch.int64 and ids.shape == (2, cfg.num_tokens)
    np.testing.assert_array_equal(ids.reshape(-1).numpy(), perm.numpy())
    torch.testing.assert_close(model.dequantize(ids), latent, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(model.decode(ids), model.Decoder(latent.contiguous()), rtol=0, atol=0)


def test_pixel_shuffle_3d_follows_the_documented_channel_order():
    x = torch.arange(2 * 16 * 2 * 3 * 2, dtype=torch.float32).reshape(2, 16, 2, 3, 2)
    out = pixel_shuffle_3d(x).numpy()
    xn = x.numpy()
    expected = np.empty((2, 2, 4, 6, 4), dtype=np.float32)
    for c in range(2):
        for a in range(2):
            for b in range(2):
                for d in range(2):
                    expected[:, c, a::2, b::2, d::2] = xn[:, c * 8 + a * 4 + b * 2 + d]
    np.testing.assert_array_equal(out, expected)


def test_layer_norm_is_over_channels_in_float32():
    norm = LayerNorm32(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 3, 4, 5).to(torch.bfloat16)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    xn = x.float().numpy()
    mean = xn.mean(1, keepdims=True)
    var = xn.var(1, keepdims=True)
    ref = (xn - mean) / np.sqrt(var + 1e-5) * norm.weight.detach().numpy()[None, :, None, None, None] \
        + norm.bias.detach().numpy()[None, :, None, None, None]
    np.testing.assert_allclose(out.detach().float().numpy(), ref, atol=3e-2)


def test_half_precision_torso_keeps_io_layers_and_norms_float32():
    model = VQVAE3D(VQVAEConfig.tiny(torso_dtype="bfloat16", num_res_blocks=1))
    assert model.Encoder.blocks[0].conv1.weight.dtype == torch.bfloat16
    assert model.Decoder.middle_block[0].conv2.weight.dtype == torch.bfloat16
    assert model.Encoder.blocks[0].norm1.weight.dtype == torch.float32
    assert model.Encoder.input_layer.weight.dtype == torch.float32
    assert model.Decoder.out_layer[2].weight.dtype == torch.float32
    x = (torch.rand(1, 1, 32, 32, 32) > 0.5).float()
    logits = model.decode(model.encode(x))
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_save_then_load_is_strict_and_exact(tmp_path):
    model = VQVAE3D(VQVAEConfig.tiny())
    path = save_vqvae(model, tmp_path)
    assert path.name == "3DVQVAE.bin" and (tmp_path / "vqvae_config.json").is_file()
    loaded = load_vqvae(tmp_path)
    assert loaded.config == model.config and loaded.config.up_axis == "y"
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    with pytest.raises(VQVAEWeightsError, match="does not fit"):
        load_vqvae(path, VQVAEConfig.tiny(codebook_size=128))


def test_missing_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    with pytest.raises(VQVAEWeightsError, match="3DVQVAE.bin") as err:
        load_vqvae(tmp_path)
    assert str(tmp_path) in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("MME3DR_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(VQVAEWeightsError) as err:
        load_vqvae("yejunliang23/3DVQVAE")
    msg = str(err.value)
    assert "3DVQVAE.bin" in msg and "offline" in msg
    assert str(tmp_path / "weights" / "yejunliang23--3DVQVAE" / "3DVQVAE.bin") in msg
    # the trainer's own option, not mme3dr's encoder downloader (which does not know this file)
    assert "--vqvae DIR" in msg and "mme3dr weights download" not in msg


def test_bad_inputs_raise_clear_errors():
    model = VQVAE3D(VQVAEConfig.tiny())
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32, 32\)"):
        model.encode(torch.zeros(1, 32, 32, 32))
    with pytest.raises(ValueError, match=r"\[0, 256\)"):
        model.decode(torch.full((1, 128), 256))
    with pytest.raises(ValueError, match="divisible"):
        VQVAEConfig(resolution=30)


def test_a_corrupt_or_foreign_checkpoint_is_named_and_never_loaded_unsafely(tmp_path):
    (tmp_path / "3DVQVAE.bin").write_text("corrupt")
    with pytest.raises(VQVAEWeightsError, match="is not a VQVAE checkpoint") as err:
        load_vqvae(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "3DVQVAE.bin") in msg and "vqvae fit" in msg and "\n" not in msg
    assert "weights_only" not in msg and "trust" not in msg
    torch.save({"a": [1, 2]}, tmp_path / "3DVQVAE.bin")  # loadable, but no state dict of tensors
    with pytest.raises(VQVAEWeightsError):
        load_vqvae(tmp_path)
    torch.save(object.__new__(VQVAEConfig), tmp_path / "3DVQVAE.bin")  # needs unsafe unpickling
    with pytest.raises(VQVAEWeightsError, match="is not a VQVAE checkpoint"):
        load_vqvae(tmp_path)
