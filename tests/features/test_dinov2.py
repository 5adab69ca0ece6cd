"""DINOv2 encoder: preprocessing equals transformers' BitImageProcessor; saved weights load offline."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mme3dr.features import WeightSpec  # noqa: E402
from mme3dr.features.dinov2 import load_dinov2  # noqa: E402
from mme3dr.features.smoke import smoke_dinov2  # noqa: E402


def random_images(n, h=512, w=512, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, h // 8, w // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)  # blocky: a resize filter matters


@pytest.mark.parametrize("shape", [(512, 512), (300, 420)])
def test_preprocessing_matches_the_dinov2_image_processor(shape):
    from PIL import Image
    from transformers.image_utils import PILImageResampling

    try:  # transformers ≥ 5 defaults to a torchvision backend; the PIL one is what 4.x (and the authors) ran
        from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil as BitImageProcessor
    except ImportError:
        from transformers import BitImageProcessor

    # facebook/dinov2-base's preprocessor_config.json, restated.
    proc = BitImageProcessor(
        do_resize=True,
        size={"shortest_edge": 256},
        resample=PILImageResampling.BICUBIC,
        do_center_crop=True,
        crop_size={"height": 224, "width": 224},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    )
    images = random_images(2, *shape)
    want = proc([Image.fromarray(im) for im in images], return_tensors="np")["pixel_values"]
    got = smoke_dinov2().preprocess(images).numpy()
    assert got.shape == want.shape == (2, 3, 224, 224)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_smoke_features_are_cls_float64_and_deterministic():
    images = random_images(3)
    enc = smoke_dinov2(seed=0)
    feats = enc(images)
    assert feats.shape == (3, 64) and feats.dtype == np.float64
    np.testing.assert_array_equal(feats, smoke_dinov2(seed=0)(images))
    with torch.inference_mode():
        out = enc.model(pixel_values=enc.preprocess(images))
    # CLS = first token of the final (layer-normed) hidden state.
    np.testing.assert_allclose(feats, out.last_hidden_state[:, 0].double().numpy(), rtol=1e-6)


def test_saved_weights_load_from_a_local_dir_and_from_the_hf_cache(isolated_weights, hf_snapshot):
    enc = smoke_dinov2(seed=0)
    images = random_images(2, seed=3)
    want = enc(images)
    spec = WeightSpec(
        key="tiny-dinov2", kind="dinov2", model_id="test/tiny-dinov2",
        files=("config.json", "model.safetensors"), hub_repo="mme3dr-test/tiny-dinov2",
    )
    wdir = isolated_weights / "weights"
    enc.model.save_pretrained(wdir / "tiny-dinov2")
    local = load_dinov2(spec, weights_dir=wdir)
    np.testing.assert_allclose(local(images), want, rtol=1e-6)
    assert local.card()["model_id"] == "test/tiny-dinov2" and len(local.weights_sha256) == 64

    saved = wdir / "tiny-dinov2"
    hf_snapshot("mme3dr-test/tiny-dinov2", {
        "config.json": lambda p: p.write_bytes((saved / "config.json").read_bytes()),
        "model.safetensors": lambda p: p.write_bytes((saved / "model.safetensors").read_bytes()),
    })
    hub = load_dinov2(spec)
    np.testing.assert_allclose(hub(images), want, rtol=1e-6)
    assert hub.weights_sha256 == local.weights_sha256


def test_script_profile_resizes_to_224_with_pil_before_the_processor():
    """ar3d-r1-script: the authors' eval.py opens each view, ``.resize((224, 224))`` (PIL's default
    filter for RGB, bicubic), then hands it to DINOv2's processor. Re-derived here with PIL and
    transformers' own processor, independently of mme3dr's preprocessing code."""
    from dataclasses import replace

    from PIL import Image
    from transformers.image_utils import PILImageResampling

    from mme3dr.features import get_profile, load_feature_suite

    try:
        from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil as BitImageProcessor
    except ImportError:
        from transformers import BitImageProcessor

    proc = BitImageProcessor(do_resize=True, size={"shortest_edge": 256}, resample=PILImageResampling.BICUBIC,
                             do_center_crop=True, crop_size={"height": 224, "width": 224}, do_rescale=True,
                             rescale_factor=1 / 255, do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                             image_std=[0.229, 0.224, 0.225], do_convert_rgb=True)
    images = random_images(2, 299, 299, seed=3)  # the script renders at 299 px
    script_inputs = [Image.fromarray(im).resize((224, 224)) for im in images]
    want = proc(script_inputs, return_tensors="np")["pixel_values"]

    script = get_profile("ar3d-r1-script")
    assert script.dinov2_pre_resize == 224
    # The suite wires the profile's pre-resize into its DINOv2 encoder (tiny weights: no download).
    suite = load_feature_suite(replace(get_profile("smoke"), dinov2_pre_resize=script.dinov2_pre_resize))
    got = suite.dinov2.preprocess(images).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert "PIL bicubic to 224x224, then" in suite.dinov2.card()["resize"]
    # Without it (paper), the 299 px views go straight to the processor, and differ.
    plain = proc([Image.fromarray(im) for im in images], return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(smoke_dinov2().preprocess(images).numpy(), plain, atol=1e-6)
    assert np.abs(plain - want).max() > 0.05
