"""CLIP encoder: smoke model behaviour, 77-token truncation, a real matched>mismatched signal after a few
training steps, and loading saved weights through the same path as hub weights (offline)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from mme3dr.features import WeightSpec  # noqa: E402
from mme3dr.features.clip import load_clip  # noqa: E402
from mme3dr.features.smoke import TINY_CLIP_ARCH, smoke_clip  # noqa: E402
from mme3dr.metrics import asset_clip_score, per_view_clip_scores  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def colour_views(rgb, n, seed, size=96):
    """``n`` views of a coloured square object on white, jittered in place and brightness."""
    rng = np.random.default_rng(seed)
    views = np.full((n, size, size, 3), 255, np.uint8)
    for i in range(n):
        s = int(rng.integers(30, 60))
        y, x = rng.integers(0, size - s, size=2)
        shade = np.clip(np.array(rgb) * rng.uniform(0.8, 1.1), 0, 255).astype(np.uint8)
        views[i, y : y + s, x : x + s] = shade
    return views


@pytest.fixture(scope="module")
def encoder():
    return smoke_clip(seed=0)


def test_embeddings_are_unit_float64_and_deterministic(encoder):
    images = colour_views(COLOURS["red"], 3, 0)
    a = encoder.encode_images(images)
    assert a.shape == (3, 64) and a.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(a, smoke_clip(seed=0).encode_images(images))
    assert not np.allclose(a, smoke_clip(seed=1).encode_images(images))


def test_long_text_is_truncated_at_77_tokens_without_error(encoder):
    long_text = "a very detailed toy rose with many curled petals " * 40
    tokens = encoder.tokenize([long_text])
    assert tokens.shape == (1, 77)
    eot = encoder.tokenizer.eot_token_id
    assert int(tokens[0, -1]) == eot
    # Everything past the context is dropped: appending more words changes nothing.
    a = encoder.encode_texts([long_text])
    b = encoder.encode_texts([long_text + " and an entirely different ending about trucks"])
    np.testing.assert_array_equal(a, b)
    assert encoder.encode_texts(["short"]).shape == (1, 64)


def test_rgba_input_is_refused_with_advice(encoder):
    with pytest.raises(ValueError, match="composite RGBA"):
        encoder.encode_images(np.zeros((1, 32, 32, 4), np.uint8))


def test_matched_prompt_beats_mismatched_after_a_few_training_steps():
    enc = smoke_clip(seed=0)
    names = list(COLOURS)
    prompts = [f"a {name} toy block" for name in names]
    model = enc.model
    model.train()
    # The 49,408-token embedding is most of the parameters; freezing it keeps each step cheap.
    model.token_embedding.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    tokens = enc.tokenize(prompts)
    labels = torch.arange(len(names))
    for step in range(15):
        images = np.concatenate([colour_views(COLOURS[n], 1, 100 * step + i) for i, n in enumerate(names)])
        img = torch.nn.functional.normalize(model.encode_image(enc.preprocess(images)), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        ce = torch.nn.functional.cross_entropy
        loss = (ce(logits, labels) + ce(logits.T, labels)) / 2  # CLIP's symmetric InfoNCE
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert torch.isfinite(loss)
    text_feats = enc.encode_texts(prompts)
    for i, name in enumerate(names):
        # Fresh views, never seen in training, scored through the metric functions.
        feats = enc.encode_images(colour_views(COLOURS[name], 6, 10_000 + i))
        matched = asset_clip_score(feats, text_feats[i])
        mismatched = [asset_clip_score(feats, text_feats[j]) for j in range(len(names)) if j != i]
        assert matched > max(mismatched), (name, matched, mismatched)
        assert per_view_clip_scores(feats, text_feats[i]).min() >= 0.0


def tiny_clip_spec(**kw):
    return WeightSpec(
        key="tiny-clip",
        kind="open_clip",
        model_id="test:tiny-clip",
        arch=TINY_CLIP_ARCH,
        quick_gelu=True,
        files=("open_clip_model.safetensors",),
        hub_repo="mme3dr-test/tiny-clip",
        **kw,
    )


def save_state(model, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def test_saved_weights_load_from_a_local_dir_and_from_the_hf_cache(encoder, isolated_weights, hf_snapshot):
    images = colour_views(COLOURS["blue"], 2, 5)
    want = encoder.encode_images(images)
    wdir = isolated_weights / "weights"
    (wdir / "tiny-clip").mkdir(parents=True)
    save_state(encoder.model, wdir / "tiny-clip" / "open_clip_model.safetensors")
    local = load_clip(tiny_clip_spec(), weights_dir=wdir)
    np.testing.assert_array_equal(local.encode_images(images), want)
    assert len(local.weights_sha256) == 64 and local.card()["model_id"] == "test:tiny-clip"

    hf_snapshot("mme3dr-test/tiny-clip", {
        "open_clip_model.safetensors": lambda p: save_state(encoder.model, p)
    })
    hub = load_clip(tiny_clip_spec())  # nothing in the weights dirs: found in the HF cache layout
    np.testing.assert_array_equal(hub.encode_images(images), want)
    assert hub.weights_sha256 == local.weights_sha256


def test_wrong_weight_file_is_refused_clearly(isolated_weights):
    from safetensors.torch import save_file

    wdir = isolated_weights / "weights"
    (wdir / "tiny-clip").mkdir(parents=True)
    save_file({"not.a.clip.key": torch.zeros(2)}, str(wdir / "tiny-clip" / "open_clip_model.safetensors"))
    with pytest.raises(ValueError, match="does not fit open_clip"):
        load_clip(tiny_clip_spec(), weights_dir=wdir)


@pytest.mark.parametrize("shape", [(96, 96), (80, 123)])
def test_preprocessing_matches_open_clip_transform(encoder, shape):
    import open_clip
    from PIL import Image

    images = np.random.default_rng(1).integers(0, 256, size=(2, *shape, 3), dtype=np.uint8)
    transform = open_clip.image_transform(
        encoder.input_size, is_train=False, mean=encoder.mean, std=encoder.std,
        interpolation="bicubic", resize_mode="shortest",
    )
    want = torch.stack([transform(Image.fromarray(im)) for im in images]).numpy()
    np.testing.assert_allclose(encoder.preprocess(images).numpy(), want, atol=1e-6)
